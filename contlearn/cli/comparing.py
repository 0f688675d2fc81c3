"""The forgetting comparison: ``compare`` (run or resume it, write its report) and ``report``
(rebuild a report from the ledger alone)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .app import main
from .options import (
    BUDGET,
    PRECISION,
    apply_options,
    budget_options,
    device_option,
    given,
    json_option,
    open_workspace,
    quiet_option,
    show_bars,
    workspace_options,
)
from .output import emit_json, format_table, note
from .training import print_estimate

SETTINGS_SHOWN = ("epochs", "lr", "batch_size", "max_length", "max_train_examples", "seed")
SETTINGS_SHOWN += ("precision",)


@main.command()
@click.option(
    "--methods",
    default="all",
    show_default=True,
    help="Comma-separated: adapter, sequential, ewc, replay, joint, separate, lora-merged; or "
    "all (every one that fits the sequence). Their settings: [compare] in tasks.toml.",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Report folder.")
@budget_options
@device_option
@quiet_option
@json_option("Print the results as JSON.")
@workspace_options
def compare(
    workspace: Path,
    db: str | None,
    methods: str,
    out: Path | None,
    device: str | None,
    quiet: bool,
    as_json: bool,
    **budget: Any,
) -> None:
    """Compare adapters with the baselines on the same task sequence: sequential full
    fine-tuning, EWC, experience replay, joint multi-task training, separate models and
    sequential LoRA merged into the weights.

    Adapters reuse the runs of train-next (every task must be trained: run
    `contlearn train-next --all` first). The baselines fine-tune the whole backbone with each
    task's adapter-run settings unless the budget options say otherwise (printed first); the
    sequential ones evaluate every earlier task after each. An interrupted comparison resumes
    per method from the last finished task; a baseline a finished comparison already ran on
    the same tasks and settings is read from it, not trained again. Reports ACC, BWT,
    forgetting, FWT and intransigence with 95% bootstrap intervals; writes report.md/html/json,
    CSVs and PNGs.

    \b
    Example:
        contlearn compare --epochs 1 --max-train-examples 1000
        contlearn compare --methods adapter,sequential,ewc,replay --out ./report
    """
    ws = open_workspace(workspace, db)
    chosen = tuple(m.strip() for m in methods.split(",") if m.strip())
    planned = ws.plan_comparison(methods=chosen, device=device, **given(budget))
    if not as_json:
        _print_plan(planned)
    for line in planned["notes"]:
        note(line)
    results = ws.compare(
        methods=chosen,
        progress=show_bars(quiet, as_json),
        on_estimate=None if quiet or as_json else print_estimate,
        device=device,
        **given(budget),
    )
    _print_results(results, ws.write_report(results, out), as_json)


def _setting(value: Any) -> str:
    """A setting as written in tasks.toml (a learning rate of 5e-05 stays 5e-05)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _print_plan(planned: dict[str, Any]) -> None:
    if planned["methods"] == ["adapter"]:
        return
    rows = [
        {"task": name, **{k: _setting(values[k]) for k in SETTINGS_SHOWN}}
        for name, values in planned["config"]["full_finetune"].items()
    ]
    note("baseline settings (from each task's adapter run, budget options applied):")
    note(format_table(rows, ["task", *SETTINGS_SHOWN]))


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
        contlearn report --comparison 2
    """
    results, files = open_workspace(workspace, db).rebuild_report(comparison_id, out)
    _print_results(results, files, as_json)


def _print_results(results: dict[str, Any], files: dict[str, Path], as_json: bool) -> None:
    if as_json:
        emit_json({**results, "report": {k: str(v) for k, v in files.items()}})
        return
    rows = []
    for name, method in results["methods"].items():
        row = {"method": name, **method["summary"]}
        same = method.get("identical")
        row["identical"] = f"{same['identical']}/{same['total']}" if same else None
        rows.append(row | _base_cells(method.get("base")))
    columns = ["method", "acc", "bwt", "forgetting", "identical"]
    if results.get("base_reference") is not None:
        base = results["base_reference"]["perplexity"]
        click.echo(f"base model (no task): perplexity {base:.4f} on the base reference set")
        columns += ["base_perplexity", "base_answers_same"]
    click.echo(format_table(rows, columns))
    click.echo(f"report: {files['html']}")


def _base_cells(steps: list | None) -> dict[str, Any]:
    """The base model after the last step: its perplexity and share of identical answers."""
    last = steps[-1] if steps else None
    if last is None:
        return {"base_perplexity": None, "base_answers_same": None}
    share = f"{last['answers_identical']:.0%}"
    return {"base_perplexity": round(last["perplexity"], 4), "base_answers_same": share}


@main.command()
@click.argument("task")
@click.option(
    "--grid",
    help="Comma-separated points method[:key=value...] (lr=... sets a point's learning rate); "
    "default: houlsby bottleneck 2/8/64/256, pfeiffer 64, lora rank 1/8/64, ia3, topk 1/3, "
    "head, full.",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Report folder.")
@apply_options((*BUDGET, PRECISION))
@device_option
@quiet_option
@json_option('Print {"task": ..., "points": [...]} as JSON.')
@workspace_options
def tradeoff(
    workspace: Path,
    db: str | None,
    task: str,
    grid: str | None,
    out: Path | None,
    device: str | None,
    quiet: bool,
    as_json: bool,
    **budget: Any,
) -> None:
    """Trade accuracy against trainable parameters on one task (Houlsby et al. 2019, 3.4).

    Trains each point of the grid on TASK from scratch as a recorded `tradeoff` run (the
    task's own trained artifact is never replaced), with full fine-tuning as the reference;
    finished points are reused, so an interrupted grid resumes. --out writes tradeoff.json,
    tradeoff.md, tradeoff.html and tradeoff.png (metric vs parameters, log scale).

    \b
    Example:
        contlearn tradeoff sst2 --epochs 1 --max-train-examples 4000 --out ./tradeoff
        contlearn tradeoff mrpc --grid houlsby:bottleneck=8,lora:rank=4:lr=2e-3,head,full
    """
    ws = open_workspace(workspace, db)
    show = None if quiet or as_json else _print_point
    result = ws.tradeoff(
        task,
        grid=grid,
        device=device,
        progress=show_bars(quiet, as_json),
        on_point=show,
        on_estimate=None if quiet or as_json else print_estimate,
        **given(budget),
    )
    written = ws.write_tradeoff(result, out) if out else []
    if as_json:
        emit_json({**result, "files": [str(p) for p in written]})
        return
    click.echo(format_table([_tradeoff_row(p) for p in result["points"]], TRADEOFF_COLUMNS))
    for path in written:
        click.echo(f"wrote {path}")


TRADEOFF_COLUMNS = ["point", "lr", "trainable", "% backbone", "score", "seconds", "status"]


def _tradeoff_row(point: dict[str, Any]) -> dict[str, Any]:
    def num(value, spec):
        return "—" if value is None else format(value, spec)

    return {
        "point": point["label"],
        "lr": _setting(point["lr"]),
        "trainable": num(point["trainable_params"], ","),
        "% backbone": num(point["percent_of_backbone"], ".3g"),
        "score": num(point["score"], ".4f"),
        "seconds": num(point["seconds"], ".1f"),
        "status": point["status"] if not point["error"] else f"failed: {point['error']}",
    }


def _print_point(point: dict[str, Any]) -> None:
    row = _tradeoff_row(point)
    note(f"{row['point']}: {row['status']}, score {row['score']}, {row['trainable']} trainable")
