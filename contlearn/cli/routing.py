"""``route``: which trained task each row belongs to; ``route-stats``: routing statistics for
tasks trained before routing existed; ``routing``: how routing decides, measured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..interrupts import interruptible
from .app import main
from .options import device_option, json_option, open_workspace, workspace_options
from .output import emit_json, format_table, plural


@main.command()
@click.option(
    "--input",
    "input_path",
    required=True,
    help="Rows to route: .csv, .tsv, .jsonl, .json or .parquet, or - for jsonl on stdin.",
)
@device_option
@workspace_options
def route(workspace: Path, db: str | None, input_path: str, device: str | None) -> None:
    """Print, as jsonl, the trained task each row belongs to, with its confidence ("task":
    null when the row is like none of them). Each row holds a task's text fields.

    \b
    Example:
        echo '{"text": "a gripping, funny film"}' | contlearn route --input -
    """
    from ..ops.predict_files import read_rows, write_rows

    ws = open_workspace(workspace, db)
    read = read_rows(input_path)
    with interruptible():
        results = ws.route(read.rows, device=device)
    write_rows(results, None, "jsonl")


@main.command("route-stats")
@device_option
@json_option("Print what was recorded as JSON.")
@workspace_options
def route_stats(workspace: Path, db: str | None, device: str | None, as_json: bool) -> None:
    """Record routing statistics for every trained task that has none (trained before routing
    existed, or imported), each under a run of its own; nothing trained changes.

    \b
    Example:
        contlearn route-stats
    """
    ws = open_workspace(workspace, db)
    with interruptible():
        done = ws.route_stats(device=device)
    if as_json:
        emit_json(done)
        return
    for row in done["recorded"]:
        click.echo(f"{row['task']}: routing statistics recorded (run {row['run_id']})")
    if not done["recorded"]:
        click.echo(
            f"every trained task has routing statistics ({plural(len(done['had']), 'task')})"
        )


@main.command()
@click.option(
    "--max-rows",
    type=click.IntRange(1),
    default=1000,
    show_default=True,
    help="Dev rows per task measured at most.",
)
@device_option
@json_option("Print every measurement as JSON.")
@workspace_options
def routing(
    workspace: Path, db: str | None, max_rows: int, device: str | None, as_json: bool
) -> None:
    """Measure routing on the trained tasks' dev rows: the routing matrix after each task,
    "none of these" AUROC per held-out task, the end-to-end metric with routing and with the
    true task, and throughput with routing and with the task given.

    \b
    Example:
        contlearn routing --json
    """
    ws = open_workspace(workspace, db)
    with interruptible():
        report = ws.routing_report(device=device, max_rows=max_rows)
    if as_json:
        emit_json(report)
        return
    click.echo(render(report))


def render(report: dict[str, Any]) -> str:
    """The report as text: the last step's matrix, then the other measurements."""
    names = report["tasks"]
    last = report["steps"][-1]
    matrix = [
        {"task": name, **dict(zip([*names, "none"], row, strict=True))}
        for name, row in zip(names, last["matrix"], strict=True)
    ]
    parts = [
        f"routing after {last['after']} (rows: true task; columns: routed to)",
        format_table(matrix, ["task", *names, "none"]),
        "accuracy after each task: "
        + ", ".join(f"{s['after']} {s['accuracy']:.4f}" for s in report["steps"]),
        "",
        format_table(
            [{"held out": n, **v} for n, v in report["out_of_scope"].items()],
            ["held out", "auroc", "none_share", "in_scope_kept"],
        ),
        "",
        format_table(
            [{"task": n, **v} for n, v in report["end_to_end"].items()],
            ["task", "metric", "task_given", "routed", "routed_to_own_task"],
        ),
        "",
        "throughput: {task_given_rows_per_s:.1f} rows/s with the task given, "
        "{routed_rows_per_s:.1f} routed (ratio {ratio:.3f})".format(**report["throughput"]),
    ]
    return "\n".join(parts)
