"""The ``contlearn`` command line: parse, call one Workspace method, print a table or JSON.

Nothing here imports torch; the commands that train or evaluate import it through the library.
The options several commands share are decorators: ``workspace_options`` (``-w``, ``--db`` and
one-line errors), ``json_option`` and ``quiet_option``.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from .errors import ContlearnError

WORKSPACE_HELP = "Workspace folder (default: $CONTLEARN_WORKSPACE or the current folder)."


def _fail_cleanly(func: Callable) -> Callable:
    """Turn library errors into one-line click errors (exit 1)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ContlearnError as exc:
            raise click.ClickException(str(exc)) from exc
        except Exception as exc:
            message = _database_error(exc)
            if message is None:
                raise
            raise click.ClickException(message) from exc

    return wrapper


def _database_error(exc: Exception) -> str | None:
    """One line for a database error that reached the CLI unnamed, else None. Opening a ledger
    (engine, migrations) can fail before any session scope could name it: a --db that is not a
    database, a directory, an unknown dialect."""
    from sqlalchemy.exc import SQLAlchemyError

    if not isinstance(exc, SQLAlchemyError):
        return None
    cause = getattr(exc, "orig", None) or exc  # the driver's error, without SQL and links
    detail = " ".join(str(cause).split())[:200]
    return (
        f"cannot use the ledger database ({type(cause).__name__}: {detail}); "
        "check --db, $CONTLEARN_DB or db in tasks.toml"
    )


def workspace_options(func: Callable) -> Callable:
    """``--workspace/-w`` and ``--db`` on every command that opens a workspace."""
    func = click.option("--db", "db", default=None, help="Ledger URL (overrides tasks.toml).")(func)
    func = click.option(
        "--workspace",
        "-w",
        "workspace",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="CONTLEARN_WORKSPACE",
        default=Path("."),
        show_default=False,
        help=WORKSPACE_HELP,
    )(func)
    return _fail_cleanly(func)


def json_option(help: str) -> Callable[[Callable], Callable]:
    """``--json``: print what the command returns as JSON instead of a table or sentence."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def quiet_option(func: Callable) -> Callable:
    """``--quiet/-q``: no progress bars."""
    return click.option("--quiet", "-q", is_flag=True, help="No progress bars.")(func)


def _open(workspace: Path, db: str | None) -> Any:
    from .api import Workspace

    return Workspace.open(workspace, db=db)


def _emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain aligned text table."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="contlearn")
def main() -> None:
    """contlearn: learn NLP tasks one after another without forgetting.

    Each task gets its own bottleneck adapter on one frozen backbone; the ledger proves that
    training a new task leaves every earlier task's predictions bit-identical.

    \b
    Example:
        contlearn init
        contlearn add-task rte --data ./RTE
        contlearn train-next --all
        contlearn audit
    """


@main.command()
@click.option(
    "--backbone", default=None, help="Model folder or hub name (default: packaged MiniLM)."
)
@workspace_options
def init(workspace: Path, db: str | None, backbone: str | None) -> None:
    """Create a workspace: tasks.toml, the ledger and artifacts/.

    Loads the backbone once and records its identity and weight fingerprint.

    \b
    Example:
        contlearn init -w ./ws
        contlearn init -w ./ws --backbone ./my-bert --db postgresql://u@localhost/cl
    """
    from .api import Workspace

    ws = Workspace.create(workspace, backbone=backbone, db=db)
    bb = ws.ledger.backbone()
    click.echo(f"created workspace {ws.root}")
    click.echo(f"backbone {bb.identity} ({bb.model_type}, {bb.num_parameters:,} parameters)")
    click.echo(f"fingerprint {bb.fingerprint}")
    click.echo(f"ledger {ws.db_url}")


def _split_fields(value: str | None) -> list[str] | None:
    """Split "a, b" into ["a", "b"]. Given but naming no column is a usage error: passed on
    empty, it would silently mean "infer the columns"."""
    if value is None:
        return None
    fields = [v.strip() for v in value.split(",") if v.strip()]
    if not fields:
        raise click.BadParameter(f"{value!r} names no column", param_hint="'--text-fields'")
    return fields


@main.command("add-task")
@click.argument("name", required=False)
@click.option("--data", type=click.Path(path_type=Path), help="Task data folder.")
@click.option("--text-fields", help="Comma-separated text column(s), e.g. sentence1,sentence2.")
@click.option("--label-field", help="Label column.")
@click.option(
    "--metric",
    type=click.Choice(["accuracy", "f1", "matthews", "pearson", "spearman"]),
    help="Primary metric (default: GLUE's for GLUE tasks, else accuracy / pearson).",
)
@click.option("--max-length", type=click.IntRange(8, 4096), help="Max tokens for this task.")
@click.option("--bottleneck", type=click.IntRange(1), help="Adapter size m for this task.")
@click.option("--position", type=click.IntRange(1), help="Insert before this position.")
@click.option("--from-config", is_flag=True, help="Register the tasks listed in tasks.toml.")
@json_option("Print the registered task(s) as JSON.")
@workspace_options
def add_task(
    workspace: Path, db: str | None, name: str | None, data: Path | None, as_json: bool, **kw: Any
) -> None:
    """Register a task from a data folder (GLUE layout, csv/tsv/jsonl/parquet, datasets).

    \b
    Example:
        contlearn add-task rte --data ../glue/RTE
        contlearn add-task reviews --data ./reviews --text-fields text --label-field stars
        contlearn add-task --from-config
    """
    ws = _open(workspace, db)
    if kw.pop("from_config"):
        if name or data:
            raise click.UsageError("--from-config takes no NAME or --data")
        names = ws.sync()
    else:
        if not name or data is None:
            raise click.UsageError("give a task NAME and --data PATH (or --from-config)")
        kw["text_fields"] = _split_fields(kw["text_fields"])
        label = kw["label_field"]
        if label is not None and not label.strip():
            raise click.BadParameter(f"{label!r} names no column", param_hint="'--label-field'")
        names = [ws.add_task(name, data, **kw).name]
    rows = [r for r in ws.status() if r["name"] in names]
    if as_json:
        _emit_json({"added": rows})
        return
    if not rows:
        click.echo("nothing to add: every task in tasks.toml is registered")
    for r in rows:
        labels = "regression" if r["labels"] is None else f"{len(r['labels'])} labels"
        click.echo(
            f"added {r['name']} at position {r['position']}: {r['train_rows']} train / "
            f"{r['dev_rows']} dev rows, {labels}, metric {r['metric']}"
        )


@main.command()
@json_option('Print {"tasks": [...]} as JSON.')
@workspace_options
def status(workspace: Path, db: str | None, as_json: bool) -> None:
    """Show the task sequence: position, name, status, rows, labels, metric, score.

    \b
    Example:
        contlearn status
        contlearn status --json | jq '.tasks[].name'
    """
    rows = _open(workspace, db).status()
    if as_json:
        _emit_json({"tasks": rows})
        return
    if not rows:
        click.echo("no tasks yet: `contlearn add-task NAME --data PATH` registers one")
        return
    for r in rows:
        r["labels"] = "regression" if r["labels"] is None else len(r["labels"])
        r["rows"] = f"{r['train_rows']}/{r['dev_rows']}"
    cols = ["position", "name", "status", "rows", "labels", "metric", "score"]
    click.echo(format_table(rows, cols))


@main.command("train-next")
@click.option("--all", "all_tasks", is_flag=True, help="Drain the queue: train every pending task.")
@click.option("--epochs", type=click.IntRange(1), help="Epochs (default from tasks.toml).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Learning rate.")
@click.option("--batch-size", type=click.IntRange(1), help="Training batch size.")
@click.option("--max-length", type=click.IntRange(8, 4096), help="Max tokens per example.")
@click.option("--bottleneck", type=click.IntRange(1), help="Adapter size m.")
@click.option("--seed", type=int, help="Random seed.")
@click.option(
    "--max-train-examples",
    type=click.IntRange(0),
    help="Deterministic training subsample (0: all).",
)
@click.option(
    "--backbone-attention-dropout/--no-backbone-attention-dropout",
    default=None,
    help="Keep the frozen backbone's attention dropout while training (default from "
    "tasks.toml: kept); --no-... trains faster with PyTorch's fused attention.",
)
@click.option(
    "--decay-norms-and-biases/--no-decay-norms-and-biases",
    default=None,
    help="Apply weight decay to LayerNorm weights and biases too (default from tasks.toml: "
    "no, only weight matrices decay; runs before this setting decayed everything).",
)
@quiet_option
@json_option("Print the run results as JSON.")
@workspace_options
def train_next(
    workspace: Path, db: str | None, all_tasks: bool, quiet: bool, as_json: bool, **overrides: Any
) -> None:
    """Train the next pending task's adapter, then verify every earlier task is unchanged.

    \b
    Example:
        contlearn train-next
        contlearn train-next --all --epochs 3 --max-train-examples 4000
    """
    ws = _open(workspace, db)
    results = ws.train_next(
        all_tasks=all_tasks,
        progress=not quiet and not as_json,
        on_result=None if as_json else _print_training,
        **overrides,
    )
    if as_json:
        _emit_json({"runs": results})


def _print_training(result: dict[str, Any]) -> None:
    scores = _scores(result["metrics"])
    click.echo(
        f"trained {result['task']}: {scores} (best epoch {result['best_epoch']}); "
        f"{result['trainable_params']:,} trainable parameters "
        f"({result['trainable_pct']:.2f}% of the backbone); "
        f"{result['seconds']:.1f} s, {result['examples_per_second']:.1f} examples/s"
    )
    rows = [
        {
            "task": v["task"],
            "recorded": _scores(v["recorded"]),
            "now": _scores(v["now"]),
            "logits": v["logits_sha256"][:16],
            "identical": v["identical"],
        }
        for v in result["verifications"]
    ]
    if rows:
        click.echo("verification of earlier tasks:")
        click.echo(format_table(rows, ["task", "recorded", "now", "logits", "identical"]))


def _scores(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())


@main.command()
@click.option("--task", "task", default=None, help="Audit only this task.")
@click.option("--history", "show_history", is_flag=True, help="List past audits and verdicts.")
@quiet_option
@json_option("Print the per-task results as JSON.")
@workspace_options
def audit(
    workspace: Path,
    db: str | None,
    task: str | None,
    show_history: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Re-evaluate every trained task and check it is exactly as when it was trained.

    Checks artifact checksums, the backbone and data fingerprints, then compares the dev
    logits digest and metrics with the recorded ones. Exit code 0: every task identical and
    intact; 1: something drifted or was tampered with; 2: usage error.

    \b
    Example:
        contlearn audit
        contlearn audit --task rte --json
        contlearn audit --history
    """
    ws = _open(workspace, db)
    if show_history:
        rows = ws.audit_history()
        if as_json:
            _emit_json({"audits": rows})
        else:
            click.echo(format_table(rows, ["run_id", "started_at", "verdict", "tasks", "seconds"]))
        return
    result = ws.audit(task=task, progress=not quiet and not as_json)
    if as_json:
        _emit_json(result)
    else:
        _print_audit(result)
    if result["verdict"] != "clean":
        sys.exit(1)


def _print_audit(result: dict[str, Any]) -> None:
    cols = ["position", "task", "metric", "recorded", "now", "delta"]
    cols += ["logits_identical", "artifact_ok", "data_ok"]
    click.echo(format_table(result["tasks"], cols))
    for row in result["tasks"]:
        for finding in row["findings"]:
            click.echo(f"! {finding}")
    click.echo(
        f"verdict: {result['verdict']} ({len(result['tasks'])} tasks, {result['examples']} dev "
        f"examples in {result['seconds']:.1f} s, {result['examples_per_second']:.1f} examples/s)"
    )


@main.command()
@click.option(
    "--methods",
    default="adapter,full-finetune",
    show_default=True,
    help="Comma-separated: adapter, full-finetune.",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Report folder.")
@quiet_option
@json_option("Print the results as JSON.")
@workspace_options
def compare(
    workspace: Path, db: str | None, methods: str, out: Path | None, quiet: bool, as_json: bool
) -> None:
    """Compare adapters with sequential full fine-tuning on the same task sequence.

    Adapters reuse the runs of train-next (every task must be trained: run
    `contlearn train-next --all` first). Full fine-tuning trains one backbone copy on each
    task in turn and evaluates every earlier task after each; an interrupted comparison
    resumes from the last finished task. Writes report.md/html/json, CSVs and PNGs.

    \b
    Example:
        contlearn compare
        contlearn compare --methods adapter --out ./report
    """
    ws = _open(workspace, db)
    chosen = tuple(m.strip() for m in methods.split(",") if m.strip())
    results = ws.compare(methods=chosen, progress=not quiet and not as_json)
    files = ws.write_report(results, out)
    _print_results(results, files, as_json)


@main.command()
@click.option("--comparison", "comparison_id", type=int, help="Comparison id (default: latest).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Report folder.")
@json_option("Print the results as JSON.")
@workspace_options
def report(
    workspace: Path, db: str | None, comparison_id: int | None, out: Path | None, as_json: bool
) -> None:
    """Rebuild a comparison's report from the ledger alone (trains nothing).

    \b
    Example:
        contlearn report --out ./report
    """
    results, files = _open(workspace, db).rebuild_report(comparison_id, out)
    _print_results(results, files, as_json)


def _print_results(results: dict[str, Any], files: dict[str, Path], as_json: bool) -> None:
    if as_json:
        _emit_json({**results, "report": {k: str(v) for k, v in files.items()}})
        return
    rows = []
    for name, method in results["methods"].items():
        row = {"method": name, **method["summary"]}
        same = method.get("identical")
        row["identical"] = f"{same['identical']}/{same['total']}" if same else None
        rows.append(row)
    click.echo(format_table(rows, ["method", "acc", "bwt", "forgetting", "identical"]))
    click.echo(f"report: {files['html']}")


@main.command()
@click.argument("task", required=False)
@click.option(
    "--input",
    "input_path",
    required=True,
    help="Rows to label: .csv, .tsv, .jsonl, .json or .parquet, or - for jsonl on stdin.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the predictions here (default: standard output).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True
)
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True)
@click.option("--task-field", help="Field in which each row names its task (instead of TASK).")
@quiet_option
@json_option("With --output: print a summary as JSON.")
@workspace_options
def predict(
    workspace: Path,
    db: str | None,
    task: str | None,
    input_path: str,
    output: Path | None,
    fmt: str,
    batch_size: int,
    task_field: str | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Label new rows with trained tasks; one result per row, in input order.

    Each row holds the task's text fields; TASK labels every row, or --task-field names the
    field in which each row names its own task.

    \b
    Example:
        contlearn predict sst2 --input reviews.csv --output labels.csv --format csv
        contlearn predict --task-field task --input mixed.jsonl > labels.jsonl
        echo '{"text": "good movie"}' | contlearn predict sst2 --input -
    """
    import time

    from .ops.predict_files import read_rows, write_rows

    if (task is None) == (task_field is None):
        raise click.ClickException("give a TASK or --task-field FIELD: one of them, not both")
    ws = _open(workspace, db)
    start = time.perf_counter()
    results = ws.predict(
        task,
        read_rows(input_path),
        task_field=task_field,
        batch_size=batch_size,
        progress=not quiet,
    )
    seconds = time.perf_counter() - start
    write_rows(results, output, fmt)
    if output is None:
        return
    rate = len(results) / seconds if seconds > 0 else 0.0
    if as_json:
        summary = {"task": task, "rows": len(results), "output": str(output)}
        _emit_json({**summary, "seconds": seconds, "examples_per_second": rate})
    else:
        click.echo(f"wrote {len(results)} predictions to {output} ({rate:.1f} examples/s)")


@main.group("datasets")
def datasets_group() -> None:
    """Build demo task folders from labelled text shipped in installed packages.

    \b
    Example:
        contlearn datasets prepare rt-sentiment --out ./data/rt
        contlearn add-task rt --data ./data/rt
    """


@datasets_group.command("prepare")
@click.argument("name")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="New folder for train.csv, dev.csv and prepare.json.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split.")
@click.option(
    "--dev-fraction",
    type=float,
    default=0.2,
    show_default=True,
    help="Share of each class held out for dev, in (0, 0.5].",
)
@click.option("--max-per-class", type=int, help="Keep at most N rows per class (N >= 2).")
@json_option("Print the provenance as JSON.")
@_fail_cleanly
def datasets_prepare(name: str, out: Path, as_json: bool, **options: Any) -> None:
    """Write dataset NAME as a task folder: train.csv and dev.csv (text,label), prepare.json.

    NAME is bbc-topic (BBC News, 5 topics), imdb-sentiment or rt-sentiment (movie reviews,
    negative / positive). The split is stratified and seeded: the same options give the same
    bytes, and rerunning into the same folder changes nothing.

    \b
    Example:
        contlearn datasets prepare bbc-topic --out ./bbc --max-per-class 200
        contlearn datasets prepare imdb-sentiment --out ./imdb --seed 1 --json
        contlearn add-task bbc --data ./bbc
    """
    from .data.prepare import prepare_dataset

    result = prepare_dataset(name, out, **options)
    if as_json:
        _emit_json(result)
        return
    for split in ("train", "dev"):
        counts = ", ".join(f"{k} {v}" for k, v in result["classes"][split].items())
        classes = len(result["classes"][split])
        click.echo(f"{split}: {result['rows'][split]} rows, {classes} classes ({counts})")
    source = result["source"]
    done = "unchanged" if result["unchanged"] else "wrote"
    click.echo(f"{done} {result['out']} ({source['package']} {source['version']})")


@main.group()
def db() -> None:
    """Ledger schema commands.

    \b
    Example:
        contlearn db current
        contlearn db upgrade
    """


@db.command("upgrade")
@workspace_options
def db_upgrade(workspace: Path, db: str | None) -> None:
    """Apply pending schema migrations to the ledger.

    \b
    Example:
        contlearn db upgrade -w ./ws
    """
    from .api import ledger_url
    from .ledger.engine import make_engine, upgrade

    before, after = upgrade(make_engine(ledger_url(workspace, db)))
    click.echo(f"ledger at {after}" + ("" if before == after else f" (was {before})"))


@db.command("current")
@workspace_options
def db_current(workspace: Path, db: str | None) -> None:
    """Print the ledger's schema revision and this code's head revision.

    \b
    Example:
        contlearn db current
    """
    from .api import ledger_url
    from .ledger.engine import current_revision, head_revision, make_engine

    engine = make_engine(ledger_url(workspace, db))
    click.echo(f"current {current_revision(engine)} (head {head_revision()})")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
