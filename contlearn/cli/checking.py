"""``audit``: re-evaluate every trained task and check it is exactly as when it was trained."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..errors import TaskNotTrained
from .app import main
from .options import (
    UsageProblem,
    device_option,
    json_option,
    open_workspace,
    quiet_option,
    show_bars,
    workspace_options,
)
from .output import emit_json, format_table, plural


@main.command()
@click.option("--task", "task", default=None, help="Audit only this task.")
@click.option("--history", "show_history", is_flag=True, help="List past audits and verdicts.")
@click.option(
    "--adopt-host",
    is_flag=True,
    help="Record this machine's logits as the reference of every task that passed under "
    "another recipe (a workspace copied here), so that later checks here are bit for bit.",
)
@device_option
@quiet_option
@json_option("Print the per-task results as JSON.")
@workspace_options
def audit(
    workspace: Path,
    db: str | None,
    task: str | None,
    show_history: bool,
    adopt_host: bool,
    device: str | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Re-evaluate every trained task and check it is exactly as when it was trained.

    Checks artifact checksums, the backbone and data fingerprints, then compares the dev
    logits digest and metrics with the recorded ones; on a device (or software) other than the
    recorded one it passes a task only if every prediction and metric value is the same, and
    says so. Verdicts: clean; tampered (an artifact
    file is missing, modified or unreadable); drift (data files changed, or the predictions
    did). Exit code 0: clean; 1: tampered or drift; 2: usage error (such as an unknown or
    untrained --task).

    \b
    Example:
        contlearn audit
        contlearn audit --task rte --json
        contlearn audit --history
        contlearn audit --adopt-host
    """
    ws = open_workspace(workspace, db)
    if show_history:
        _print_history(ws.audit_history(), as_json)
        return
    try:
        result = ws.audit(
            task=task, device=device, progress=show_bars(quiet, as_json), adopt_host=adopt_host
        )
    except TaskNotTrained as exc:  # an unknown task is a usage error (exit 2) of its own
        raise UsageProblem(str(exc)) from exc
    if as_json:
        emit_json(result)
    else:
        _print_audit(result)
    if result["verdict"] != "clean":
        sys.exit(1)


def _print_history(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        emit_json({"audits": rows})
    else:
        click.echo(format_table(rows, ["run_id", "started_at", "verdict", "tasks", "seconds"]))


def _print_audit(result: dict[str, Any]) -> None:
    cols = ["position", "task", "metric", "recorded", "now", "delta"]
    cols += ["outcome", "logits_identical", "artifact_ok", "data_ok"]
    click.echo(format_table(result["tasks"], cols))
    base = result.get("base")
    if base is not None:
        click.echo(
            f"{base['task']}: perplexity {base['recorded']['perplexity']:.6g} -> "
            f"{base['now']['perplexity']:.6g}, {base['answers_identical']:.0%} of the greedy "
            f"answers identical ({base['outcome']})"
        )
    adopted = [row["task"] for row in [*result["tasks"], base or {}] if row.get("adopted")]
    if adopted:
        click.echo(
            f"adopted this host's outputs as the reference of {', '.join(adopted)}: later "
            "checks here compare with them bit for bit"
        )
    for row in [*result["tasks"], *([base] if base is not None else [])]:
        for finding in row["findings"]:
            click.echo(f"! {finding}")
        for note in row.get("notes", []):
            click.echo(f"note: {note}")
    click.echo(
        f"verdict: {result['verdict']} ({plural(len(result['tasks']), 'task')}, "
        f"{result['examples']} dev examples in {result['seconds']:.1f} s, "
        f"{result['examples_per_second']:.1f} examples/s)"
    )
