"""``predict``: label new rows with trained tasks; ``generate``: answer prompts with a
generation task."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from ..interrupts import interruptible
from .app import main
from .options import (
    device_option,
    json_option,
    open_workspace,
    quiet_option,
    show_bars,
    workspace_options,
)
from .output import emit_json, note, plural


def _columns(value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    if not names:
        raise click.BadParameter(f"{value!r} names no column", param_hint="'--keep-columns'")
    return names


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
@click.option(
    "--keep-columns",
    help="Copy these input columns into each result (comma-separated, or * for all).",
)
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True)
@click.option("--task-field", help="Field in which each row names its task (instead of TASK).")
@click.option(
    "--task",
    "task_option",
    help="The task of every row (as TASK); auto: routing chooses each row's task.",
)
@device_option
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
    keep_columns: str | None,
    batch_size: int,
    task_field: str | None,
    task_option: str | None,
    device: str | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Label new rows with trained tasks; one result per row, in input order.

    Each row holds the task's text fields (`contlearn status` lists them); TASK labels every
    row, or --task-field names the field in which each row names its own task. Each result
    carries the row's 0-based "index" (and its "id" when the row has one) to join it back to
    the input. Blank lines are skipped; their count is reported on standard error. Rows of
    several tasks run together, one forward pass per mixed batch. With the task auto, routing
    chooses each row's task among the trained ones (a row's field may name auto too): each
    result adds its "confidence", and "task" is null for a row like none of them.

    \b
    Example:
        echo '{"sentence": "a gripping, funny film"}' | contlearn predict sst2 --input -
        contlearn predict sst2 --input reviews.csv --output labels.csv --format csv
        contlearn predict --task-field task --input mixed.jsonl --keep-columns '*'
        contlearn predict --task auto --input inbox.jsonl
    """
    from ..ops.predict_files import read_rows, write_rows

    if task is not None and task_option is not None:
        raise click.ClickException("give the task once: as TASK or as --task, not both")
    task = task if task is not None else task_option
    if (task is None) == (task_field is None):
        raise click.ClickException("give a TASK or --task-field FIELD: one of them, not both")
    keep = _columns(keep_columns)
    ws = open_workspace(workspace, db)
    read = read_rows(input_path)
    start = time.perf_counter()
    with interruptible():  # nothing is written until every row is predicted
        results = ws.predict(
            task,
            read.rows,
            task_field=task_field,
            keep_columns=keep,
            batch_size=batch_size,
            device=device,
            progress=show_bars(quiet),
            on_note=None if quiet else note,
        )
    seconds = time.perf_counter() - start
    write_rows(results, output, fmt)
    if read.blank_lines:
        shown = ", ".join(map(str, read.blank_lines[:10]))
        note(f"skipped {plural(len(read.blank_lines), 'blank line')} of {read.source} ({shown})")
    if output is None:
        return
    rate = len(results) / seconds if seconds > 0 else 0.0
    if as_json:
        summary = {"task": task, "rows": len(results), "output": str(output)}
        skipped = {"skipped_blank_lines": list(read.blank_lines)}
        emit_json({**summary, "seconds": seconds, "examples_per_second": rate, **skipped})
    else:
        click.echo(f"wrote {len(results)} predictions to {output} ({rate:.1f} examples/s)")


@main.command()
@click.argument("task")
@click.argument("prompt", required=False)
@click.option(
    "--max-new-tokens",
    type=int,
    help="Tokens to generate at most, 1-1024 (default: the task's recorded budget).",
)
@click.option(
    "--temperature", type=float, default=0.0, show_default=True, help="0: greedy; > 0 samples."
)
@click.option("--top-p", type=float, default=1.0, show_default=True, help="Nucleus sampling.")
@click.option("--seed", type=int, help="Seed that makes sampling reproducible.")
@device_option
@json_option("Print each prompt's answer as JSON.")
@workspace_options
def generate(
    workspace: Path,
    db: str | None,
    task: str,
    prompt: str | None,
    max_new_tokens: int | None,
    temperature: float,
    top_p: float,
    seed: int | None,
    device: str | None,
    as_json: bool,
) -> None:
    """Answer PROMPT with a trained generation task (no PROMPT, or -: one prompt per line of
    standard input); prints each answer. Sampling (--temperature, --top-p, --seed) is for use:
    the task's recorded evaluation always decodes greedily.

    \b
    Example:
        contlearn generate chat "Is this review positive? A gripping, funny film."
        printf 'first prompt\\nsecond prompt\\n' | contlearn generate chat --json
        contlearn generate chat "Write a tagline" --temperature 0.8 --top-p 0.9 --seed 1
    """
    if prompt is None or prompt == "-":
        prompts = [line for line in sys.stdin.read().splitlines() if line.strip()]
    else:
        prompts = [prompt]
    ws = open_workspace(workspace, db)
    with interruptible():
        results = ws.generate(
            task,
            prompts,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            device=device,
        )
    if as_json:
        emit_json({"task": task, "answers": results})
        return
    for row in results:
        click.echo(row["text"])
