"""Training: ``train-next`` (the next pending task, or all) and ``retrain`` (a trained task
again, the old run serving it until the new one is verified)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..train.world import from_environment
from .app import main
from .options import (
    device_option,
    given,
    json_option,
    open_workspace,
    quiet_option,
    show_bars,
    training_options,
    workspace_options,
)
from .output import duration, emit_json, format_table, note, scores
from .parallel import join, launch, leave_quickly


@main.command("train-next")
@click.option("--all", "all_tasks", is_flag=True, help="Drain the queue: train every pending task.")
@training_options
@click.option(
    "--verify",
    type=click.Choice(["auto", "full", "probe"]),
    help="How earlier tasks are proven unchanged: full (every dev example re-run), probe "
    "(hashes of the backbone and every task, and a seeded sample of dev batches re-run bit "
    "for bit) or auto: full while the earlier tasks' dev examples total at most "
    "[verify] full_max_examples in tasks.toml (10,000), probe beyond (default from tasks.toml).",
)
@device_option
@click.option(
    "--nproc",
    type=click.IntRange(1),
    help="Train each task with N data-parallel processes (torchrun: gloo on the CPU, NCCL "
    "and one GPU per process on CUDA); the batch size is per process.",
)
@quiet_option
@json_option("Print the run results as JSON.")
@workspace_options
def train_next(
    workspace: Path,
    db: str | None,
    all_tasks: bool,
    nproc: int | None,
    quiet: bool,
    as_json: bool,
    **settings: Any,
) -> None:
    """Train the next pending task's adapter, then verify every earlier task is unchanged.

    Before training, each task prints its size (examples x epochs) and, after its first
    steps, an estimate of the training time. Settings not given come from tasks.toml. With
    --nproc N (or under torchrun) N processes train each task on shares of a global batch of
    N x --batch-size; rank 0 claims, writes, verifies and records.

    \b
    Example:
        contlearn train-next
        contlearn train-next --all --epochs 3 --max-train-examples 2000
        contlearn train-next --nproc 2 --device cpu
    """
    world = from_environment()
    if nproc is not None and not world.distributed:
        sys.exit(launch(nproc, settings.get("device"), lambda: open_workspace(workspace, db)))
    join(world)
    quiet, as_json = (quiet, as_json) if world.main else (True, False)
    ws = open_workspace(workspace, db)
    results = ws.train_next(
        all_tasks=all_tasks,
        progress=show_bars(quiet, as_json),
        on_result=None if as_json else print_training,
        on_estimate=None if quiet or as_json else print_estimate,
        **given(settings),
    )
    if as_json and world.main:
        emit_json({"runs": results})
    if world.distributed:
        leave_quickly()


@main.command()
@click.argument("task")
@training_options
@device_option
@quiet_option
@json_option("Print the run's result as JSON.")
@workspace_options
def retrain(
    workspace: Path, db: str | None, task: str, quiet: bool, as_json: bool, **settings: Any
) -> None:
    """Train TASK again: a new adapter from scratch, e.g. with a bigger budget.

    The new run becomes the task's current one only if it succeeds and every other trained
    task verifies identical; until then, and if it fails, the old run serves the task. The
    old run's files stay (not loaded) until `contlearn gc`.

    \b
    Example:
        contlearn retrain rte --epochs 10
        contlearn retrain mrpc --max-train-examples 0 --lr 5e-4 --json
    """
    ws = open_workspace(workspace, db)
    result = ws.retrain(
        task,
        progress=show_bars(quiet, as_json),
        on_estimate=None if quiet or as_json else print_estimate,
        **given(settings),
    )
    if as_json:
        emit_json(result)
        return
    print_training(result)
    click.echo(
        f"run {result['run_id']} is now {task}'s current run; run {result['supersedes']}'s "
        "files stay until `contlearn gc`"
    )


def print_estimate(plan: dict[str, Any]) -> None:
    """The size and estimated time of a training, named by its task (and its method, for a
    baseline or a trade-off point)."""
    what = f"{plan['task']} ({plan['method']})" if plan.get("method") else plan["task"]
    note(
        f"{what}: {plan['examples']:,} examples x {plan['epochs']} epochs = "
        f"{plan['steps']:,} steps of {plan['batch_size']}; about {duration(plan['seconds'])} of "
        f"training ({plan['seconds_per_step']:.2f} s per step), plus a "
        f"{plan.get('selection', 'dev')} evaluation per epoch"
    )


def print_training(result: dict[str, Any]) -> None:
    verb = "retrained" if result.get("supersedes") else "trained"
    click.echo(
        f"{verb} {result['task']}: {scores(result['metrics'])} (best epoch "
        f"{result['best_epoch']}); {result['trainable_params']:,} trainable parameters "
        f"({result['trainable_pct']:.2f}% of the backbone); "
        f"{result['seconds']:.1f} s, {result['examples_per_second']:.1f} examples/s"
    )
    for warning in result.get("warnings", []):
        click.echo(f"! {warning}")
    print_verifications(result)


def shown(metrics: dict[str, float], row: dict[str, Any]) -> dict[str, float]:
    """The metrics a verification row's kind shows in the table (``--json``: all of them)."""
    names = row.get("shown")
    return metrics if names is None else {k: metrics[k] for k in names if k in metrics}


def print_verifications(result: dict[str, Any]) -> None:
    """The run's verification of the other trained tasks, as a table."""
    rows = [
        {
            "task": v["task"],
            "mode": v.get("mode") or "full",
            "rerun": v.get("examples_rerun", ""),
            "recorded": scores(shown(v["recorded"], v)),
            "now": scores(shown(v["now"], v)),
            "logits": (v["logits_sha256"] or "-")[:16],
            "identical": v["identical"],
            "outcome": v.get("outcome") or "",
        }
        for v in result["verifications"]
    ]
    base = result.get("base")
    if base is not None:
        rows.append(base_row(base))
    if rows:
        others = "the other trained tasks" if result.get("supersedes") else "earlier tasks"
        click.echo(f"verification of {others}:")
        columns = ["task", "mode", "rerun", "recorded", "now", "logits", "identical", "outcome"]
        click.echo(format_table(rows, columns))


def base_row(base: dict[str, Any]) -> dict[str, Any]:
    """The base model's check as a verification table row: perplexity before and now."""
    return {
        "task": base["task"],
        "mode": "full",
        "rerun": "",
        "recorded": scores(base["recorded"]),
        "now": scores(base["now"]),
        "logits": base["digest"][:16],
        "identical": base["identical"],
        "outcome": base["outcome"],
    }
