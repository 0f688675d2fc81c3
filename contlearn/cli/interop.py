"""Adapters in and out: ``export`` (a trained task as an AdapterHub or peft folder) and
``import-adapter`` (such a folder as a new task)."""

from __future__ import annotations

from pathlib import Path

import click

from .app import main
from .options import (
    device_option,
    json_option,
    open_workspace,
    quiet_option,
    show_bars,
    workspace_options,
)
from .output import emit_json, note, scores
from .training import print_verifications

FORMATS = click.Choice(["adapterhub", "peft"])


@main.command()
@click.argument("task")
@click.option("--format", "fmt", type=FORMATS, required=True, help="The folder's format.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="A new (or empty) folder to write.",
)
@click.option(
    "--include-norms",
    is_flag=True,
    help='Also write the task\'s own LayerNorm copies (norms = "task") to '
    "contlearn_layer_norms.safetensors, to load after the adapter.",
)
@json_option("Print what was written as JSON.")
@workspace_options
def export(
    workspace: Path,
    db: str | None,
    task: str,
    fmt: str,
    out: Path,
    include_norms: bool,
    as_json: bool,
) -> None:
    """Write trained TASK as an AdapterHub or peft adapter folder.

    adapterhub: houlsby, pfeiffer and parallel tasks (DoubleSeqBnConfig, SeqBnConfig,
    ParBnConfig) with their head (classification; tagging for a tagging task,
    question_answering for an extractive-QA task); load it with model.load_adapter(DIR). peft:
    lora and ia3 tasks, the head in modules_to_save (task type SEQ_CLS; TOKEN_CLS for a tagging
    task, QUESTION_ANS for an extractive-QA task); load it with PeftModel.from_pretrained(base,
    DIR). contlearn_export.json records the task, run, artifact sha256 and contlearn version.

    \b
    Example:
        contlearn export rte --format adapterhub --out ./rte-adapter
        contlearn export sst2 --format peft --out ./sst2-lora
    """
    ws = open_workspace(workspace, db)
    result = ws.export(task, fmt, out, include_norms=include_norms)
    if as_json:
        emit_json(result)
        return
    click.echo(f"exported {task} as {fmt} to {out}: {', '.join(result['files'])}")


@main.command("import-adapter")
@click.argument("name")
@click.option(
    "--from",
    "source",
    type=click.Path(path_type=Path),
    required=True,
    help="The AdapterHub or peft adapter folder.",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    required=True,
    help="The task's data folder (its dev split evaluates the adapter).",
)
@click.option("--format", "fmt", type=FORMATS, default=None, help="Default: detected.")
@click.option("--max-length", type=click.IntRange(1), default=None, help="Token limit.")
@device_option
@quiet_option
@json_option("Print the run's result as JSON.")
@workspace_options
def import_adapter(
    workspace: Path,
    db: str | None,
    name: str,
    source: Path,
    data: Path,
    fmt: str | None,
    max_length: int | None,
    device: str | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Register task NAME whose adapter comes from an AdapterHub or peft folder.

    Checks the folder fits this backbone, converts it without loss, evaluates it on the
    data's dev split, records the run like a trained task's and verifies every earlier task.
    The data decides the task's kind, and the folder's head must be that kind's (a TOKEN_CLS
    or tagging head for tagging data, QUESTION_ANS or question_answering for SQuAD data). Bad
    input (another format, another backbone, a pickle, keys that do not map, a head of another
    kind) writes nothing.

    \b
    Example:
        contlearn import-adapter rte --from ./rte-adapter --data ../shared/data/glue/RTE
        contlearn import-adapter sst2 --from ./sst2-lora --data ../shared/data/glue/SST-2 \\
            --format peft --json
    """
    ws = open_workspace(workspace, db)
    result = ws.import_adapter(
        name,
        source,
        data,
        fmt=fmt,
        max_length=max_length,
        device=device,
        progress=show_bars(quiet, as_json),
    )
    for warning in result["warnings"]:
        note(f"! {warning}")
    if as_json:
        emit_json(result)
        return
    origin = result["imported_from"]
    click.echo(
        f"imported {name} ({result['method']}) from {origin['format']} folder {source}: "
        f"{scores(result['metrics'])}; {result['trainable_params']:,} parameters"
    )
    print_verifications(result)
