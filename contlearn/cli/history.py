"""What the ledger remembers: ``runs`` and ``comparisons``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .app import main
from .options import json_option, open_workspace, workspace_options
from .output import emit_json, format_table


@main.command()
@click.argument("task", required=False)
@json_option('Print {"runs": [...]} as JSON.')
@workspace_options
def runs(workspace: Path, db: str | None, task: str | None, as_json: bool) -> None:
    """List runs, oldest first: every run, or those of TASK.

    "method" is what trained (houlsby, lora, head ... for adapter runs; sequential, ewc ... for
    a comparison's baselines). A training or trade-off run's metric is its dev score, an
    audit's its verdict; "current" marks the run that serves each task; "verified" says how a
    training run proved the other tasks unchanged (full or probe, and the dev rows it re-ran).

    \b
    Example:
        contlearn runs
        contlearn runs rte --json
    """
    rows = open_workspace(workspace, db).runs(task)
    if as_json:
        emit_json({"runs": rows})
        return
    if not rows:
        click.echo("no runs yet: `contlearn train-next` trains the first pending task")
        return
    click.echo(format_table([_run_row(r) for r in rows], RUN_COLUMNS))


RUN_COLUMNS = ["id", "task", "purpose", "method", "status", "current", "metric", "seconds"]
RUN_COLUMNS += ["verified", "started", "error"]


def _verified(found: dict[str, Any] | None) -> str:
    """ "2 full, 1 probe (96 rows)" for a training run's verification of the other tasks."""
    if not found or not found["full"] + found["probe"]:
        return ""
    kinds = [f"{found[m]} {m}" for m in ("full", "probe") if found[m]]
    changed = "" if found["identical"] else ", CHANGED"
    return f"{', '.join(kinds)} ({found['examples_rerun']:,} rows{changed})"


def _run_row(row: dict[str, Any]) -> dict[str, Any]:
    error = row["error"] or ""
    return {
        **row,
        "verified": _verified(row.get("verified")),
        "current": "yes" if row["current"] else "",
        "seconds": None if row["seconds"] is None else f"{row['seconds']:.1f}",
        "started": f"{row['started_at']:%Y-%m-%d %H:%M:%S}",
        "error": error if len(error) <= 60 else error[:57] + "...",
    }


@main.command()
@json_option('Print {"comparisons": [...]} as JSON.')
@workspace_options
def comparisons(workspace: Path, db: str | None, as_json: bool) -> None:
    """List the forgetting comparisons: id, methods, tasks, when, finished or not.

    \b
    Example:
        contlearn comparisons
        contlearn report --comparison 2
    """
    rows = open_workspace(workspace, db).comparisons()
    if as_json:
        emit_json({"comparisons": rows})
        return
    if not rows:
        click.echo("no comparisons yet: `contlearn compare` runs one")
        return
    table = [
        {
            **r,
            "started": f"{r['started_at']:%Y-%m-%d %H:%M}",
            "finished": "yes" if r["finished"] else "no (`compare` resumes it)",
            "reused": ", ".join(f"{m} from {c}" for m, c in r["reused"].items()),
        }
        for r in rows
    ]
    columns = ["id", "methods", "tasks", "started", "finished", "reused", "report"]
    click.echo(format_table(table, columns))
