"""Housekeeping: ``remove`` a task, ``gc`` unused files, ``datasets prepare`` demo data, and
the ledger's schema (``db upgrade``, ``db current``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .app import main
from .options import fail_cleanly, json_option, open_workspace, workspace_options
from .output import emit_json, plural


@main.command()
@click.argument("task")
@json_option("Print what was removed as JSON.")
@workspace_options
def remove(workspace: Path, db: str | None, task: str, as_json: bool) -> None:
    """Take TASK out of the sequence; later tasks move up one position.

    Its runs, evaluations and artifact files stay in the ledger's history (a comparison that
    used it still renders) until `contlearn gc` deletes the files. Refused while the task is
    being trained. Its name is free for a new task.

    \b
    Example:
        contlearn remove rte
        contlearn gc
    """
    result = open_workspace(workspace, db).remove(task)
    if as_json:
        emit_json(result)
        return
    click.echo(
        f"removed {result['task']} from the sequence; its history ({plural(result['runs'], 'run')})"
        " stays in the ledger, its files until `contlearn gc`"
    )


@main.command()
@click.option("--dry-run", is_flag=True, help="Say what would be deleted; delete nothing.")
@json_option("Print what was deleted as JSON.")
@workspace_options
def gc(workspace: Path, db: str | None, dry_run: bool, as_json: bool) -> None:
    """Delete the artifact files no task uses: those of superseded runs (after `retrain`),
    of removed tasks, and what failed or killed runs left behind.

    \b
    Example:
        contlearn gc --dry-run
        contlearn gc
    """
    result = open_workspace(workspace, db).gc(dry_run=dry_run)
    if as_json:
        emit_json(result)
        return
    verb = "would free" if dry_run else "freed"
    click.echo(f"{verb} {_size(result['bytes'])} ({plural(result['files'], 'file')})")


def _size(count: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count} bytes"


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
    help="New folder for train.csv, dev.csv (or train.jsonl, dev.jsonl) and prepare.json.",
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
@click.option(
    "--form",
    type=click.Choice(["classification", "generation"]),
    default="classification",
    show_default=True,
    help="text,label csv files, or prompt/response jsonl files for a generation task.",
)
@click.option(
    "--max-words",
    type=int,
    help="With --form generation: cut each text to its first N words (default 120).",
)
@json_option("Print the provenance as JSON.")
@fail_cleanly
def datasets_prepare(name: str, out: Path, as_json: bool, **options: Any) -> None:
    """Write dataset NAME as a task folder: train.csv and dev.csv (text,label), prepare.json.

    NAME is bbc-topic (BBC News, 5 topics), imdb-sentiment or rt-sentiment (movie reviews,
    negative / positive). The split is stratified and seeded: the same options give the same
    bytes, and rerunning into the same folder changes nothing. --form generation writes
    train.jsonl and dev.jsonl instead: an instruction and the text as the prompt, the label
    word as the response; NAME may then also be bbc-headline (the article's body in, its
    headline out; split seeded, not stratified).

    \b
    Example:
        contlearn datasets prepare bbc-topic --out ./bbc --max-per-class 200
        contlearn datasets prepare imdb-sentiment --out ./imdb --seed 1 --json
        contlearn datasets prepare bbc-headline --form generation --out ./headlines
        contlearn add-task bbc --data ./bbc
    """
    from ..data.prepare import prepare_dataset

    result = prepare_dataset(name, out, **options)
    if as_json:
        emit_json(result)
        return
    for split in ("train", "dev"):
        click.echo(f"{split}: {result['rows'][split]} rows, {_classes(result, split)}")
    source = result["source"]
    done = "unchanged" if result["unchanged"] else "wrote"
    click.echo(f"{done} {result['out']} ({source['package']} {source['version']})")


def _classes(result: dict[str, Any], split: str) -> str:
    if "classes" not in result:
        return "free-text responses"
    counts = result["classes"][split]
    return f"{len(counts)} classes ({', '.join(f'{k} {v}' for k, v in counts.items())})"


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
    from ..api import ledger_url
    from ..ledger.engine import make_engine, upgrade

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
    from ..api import ledger_url
    from ..ledger.engine import current_revision, head_revision, make_engine

    engine = make_engine(ledger_url(workspace, db))
    click.echo(f"current {current_revision(engine)} (head {head_revision()})")
