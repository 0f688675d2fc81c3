"""The task sequence: ``init``, ``add-task``, ``status``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..config import METRICS
from ..kinds.generation import MAX_NEW_TOKENS
from ..model.converted import summary
from .app import main
from .options import json_option, method_options, open_workspace, workspace_options
from .output import emit_json, format_table, note, plural, scores


@main.command()
@click.option(
    "--backbone", default=None, help="Model folder or hub name (default: packaged MiniLM)."
)
@click.option(
    "--layout",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A TOML file describing the backbone's layout (a family contlearn does not know; "
    "README: Backbones).",
)
@click.option(
    "--backbone-dtype",
    type=click.Choice(["fp32", "bf16", "fp16"]),
    default="fp32",
    show_default=True,
    help="Load the backbone's weights in this dtype, for good: half the memory of fp32, and "
    "its tasks compute in it (fp32 task modules under autocast). bf16 on CUDA or the CPU, fp16 "
    "on CUDA or MPS.",
)
@workspace_options
def init(
    workspace: Path,
    db: str | None,
    backbone: str | None,
    layout: Path | None,
    backbone_dtype: str,
) -> None:
    """Create a workspace: tasks.toml, the ledger and artifacts/.

    Loads the backbone once and records its identity, dtype and weight fingerprint. A GGUF
    file (--backbone model.gguf, needs `pip install gguf`) is dequantised once into the
    workspace's backbone/ folder, which every later command loads.

    \b
    Example:
        contlearn init -w ./ws
        contlearn init -w ./ws --backbone ./my-bert --db postgresql://u@localhost/cl
        contlearn init -w ./ws --backbone ./my-encoder --layout layout.toml
        contlearn init -w ./ws --backbone ./Qwen3-0.6B --backbone-dtype bf16
        contlearn init -w ./ws --backbone ./SmolLM2-135M-Instruct.Q4_1.gguf
    """
    from ..api import Workspace

    ws = Workspace.create(
        workspace,
        backbone=backbone,
        db=db,
        layout=_read_layout(layout),
        backbone_dtype=backbone_dtype,
    )
    if ws.note:
        note(f"note: {ws.note}")
    bb = ws.ledger.backbone()
    click.echo(f"created workspace {ws.root}")
    click.echo(
        f"backbone {bb.identity} ({bb.model_type}, {bb.num_parameters:,} parameters, {bb.dtype})"
    )
    if bb.source is not None:
        click.echo(summary(bb.source, bb.dtype))
    click.echo(f"fingerprint {bb.fingerprint}")
    click.echo(f"ledger {ws.db_url}")


def _read_layout(path: Path | None) -> dict[str, str] | None:
    """A layout file's table: its top level, or its [backbone.layout]."""
    import tomllib

    if path is None:
        return None
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint="'--layout'") from exc
    return raw.get("backbone", {}).get("layout", raw)


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
    type=click.Choice(METRICS),
    help="Primary metric (default: GLUE's for GLUE tasks, else accuracy / pearson).",
)
@click.option("--max-length", type=click.IntRange(8, 4096), help="Max tokens for this task.")
@click.option("--bottleneck", type=click.IntRange(1), help="Adapter size m for this task.")
@method_options
@click.option(
    "--position",
    type=click.IntRange(1),
    help="Put the task at this position (1 to the number of tasks + 1; default: append).",
)
@click.option(
    "--kind",
    help="The task kind (classification, regression, tagging, extractive-qa, generation; "
    "default: recognised from the data).",
)
@click.option(
    "--max-new-tokens",
    type=click.IntRange(1, MAX_NEW_TOKENS),
    help="A generation task's answer budget: tokens its evaluation decodes at most (default 32).",
)
@click.option("--from-config", is_flag=True, help="Register the tasks listed in tasks.toml.")
@json_option("Print the registered task(s) as JSON.")
@workspace_options
def add_task(
    workspace: Path, db: str | None, name: str | None, data: Path | None, as_json: bool, **kw: Any
) -> None:
    """Register a task from a data folder (GLUE layout, csv/tsv/jsonl/parquet, datasets).

    A task put before trained tasks (--position) changes nothing they learned; sequential
    baselines (`contlearn compare`) see the new order.

    \b
    Example:
        contlearn add-task rte --data ../shared/data/glue/RTE
        contlearn add-task reviews --data ./reviews --text-fields text --label-field stars
        contlearn add-task mrpc --data ../shared/data/glue/MRPC --method lora --set rank=16
        contlearn add-task chat --data ./instructions --max-new-tokens 64
        contlearn add-task --from-config
    """
    ws = open_workspace(workspace, db)
    if kw.pop("from_config"):
        if name or data:
            raise click.UsageError("--from-config takes no NAME or --data")
        names = ws.sync()
    else:
        names = [ws.add_task(name, data, **_task_options(name, data, kw)).name]
    rows = [r for r in ws.status() if r["name"] in names]
    later = ws.trained_after(names)
    if as_json:
        emit_json({"added": rows, "before_trained": later})
        return
    _print_added(rows, later)


def _task_options(name: str | None, data: Path | None, kw: dict[str, Any]) -> dict[str, Any]:
    if not name or data is None:
        raise click.UsageError("give a task NAME and --data PATH (or --from-config)")
    kw["text_fields"] = _split_fields(kw["text_fields"])
    label = kw["label_field"]
    if label is not None and not label.strip():
        raise click.BadParameter(f"{label!r} names no column", param_hint="'--label-field'")
    return kw


def _print_added(rows: list[dict[str, Any]], later: list[str]) -> None:
    if not rows:
        click.echo("nothing to add: every task in tasks.toml is registered")
    from .. import kinds

    for r in rows:
        outputs = kinds.get(r["kind"]).describe_outputs(r["labels"])  # "2 labels", "9 tags"
        click.echo(
            f"added {r['name']} ({r['kind']}) at position {r['position']}: {r['train_rows']} "
            f"train / {r['dev_rows']} dev rows, {outputs}, metric {r['metric']}, method "
            f"{r['method']}"
        )
    if later:
        note(
            f"note: placed before trained task(s) {', '.join(later)}: their adapters are "
            "unaffected; sequential baselines (`contlearn compare`) will see the new order"
        )


@main.command()
@click.option("--verbose", "-v", is_flag=True, help="Add each task's current run.")
@json_option('Print {"backbone": {...}, "tasks": [...]} as JSON.')
@workspace_options
def status(workspace: Path, db: str | None, verbose: bool, as_json: bool) -> None:
    """Show the task sequence: position, name, status, method, kind, rows, labels, metric,
    score, and the fields `predict` needs (text fields -> label field); then the backbone (and,
    for a GGUF one, what it was converted from).

    \b
    Example:
        contlearn status
        contlearn status --verbose
        contlearn status --json | jq '.tasks[].name'
    """
    ws = open_workspace(workspace, db)
    rows, backbone = ws.status(verbose=verbose), _backbone(ws.ledger.backbone())
    if as_json:
        emit_json({"backbone": backbone, "tasks": rows})
        return
    if not rows:
        click.echo("no tasks yet: `contlearn add-task NAME --data PATH` registers one")
    else:
        click.echo(format_table([_status_row(r) for r in rows], STATUS_COLUMNS))
    for row in rows if verbose else ():
        _print_run(row)
    click.echo(
        f"backbone {backbone['identity']} ({backbone['model_type']}, {backbone['dtype']}), "
        f"fingerprint {backbone['fingerprint'][:12]}"
    )
    if backbone["converted"]:
        click.echo(f"  {backbone['converted']}")


def _backbone(record: Any) -> dict[str, Any]:
    """What status says of the backbone: the ledger's record, and a line on what a converted
    one was converted from (None for a backbone loaded as given)."""
    fields = ("identity", "model_type", "dtype", "fingerprint", "num_parameters", "source")
    converted = record.source and summary(record.source, record.dtype)
    return {key: getattr(record, key) for key in fields} | {"converted": converted or None}


STATUS_COLUMNS = [
    "position",
    "name",
    "status",
    "method",
    "kind",
    "rows",
    "labels",
    "metric",
    "score",
    "fields",
]


def _status_row(row: dict[str, Any]) -> dict[str, Any]:
    labels = "regression" if row["labels"] is None else len(row["labels"])
    fields = f"{','.join(row['text_fields'])} -> {row['label_field']}"
    return {
        **row,
        "labels": labels,
        "rows": f"{row['train_rows']}/{row['dev_rows']}",
        "fields": fields,
    }


def _print_run(row: dict[str, Any]) -> None:
    run = row.get("run")
    if run is None:
        return
    s = run["settings"]
    subsample = run["max_train_examples"] or "all"
    click.echo(
        f"{row['name']}: run {run['id']} ({run['method']}), {scores(run['metrics'])}; "
        f"{plural(s['epochs'], 'epoch')}, lr {s['lr']}, batch {s['batch_size']}, max length "
        f"{s['max_length']}, train examples {subsample}; "
        f"finished {run['finished_at']:%Y-%m-%d %H:%M} after {run['seconds']:.0f} s"
    )
    for warning in run["warnings"]:
        click.echo(f"! {warning}")
