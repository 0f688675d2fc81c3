"""Sequential full fine-tuning, the baseline that forgets: every weight trainable, one head per
task, tasks in ledger order on one copy of the backbone, resumable from a checkpoint."""

from __future__ import annotations

import os
import socket
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from . import artifacts as art
from . import backbone as bb
from .adapters import AdaptedModel, count_parameters
from .backbone import library_versions
from .config import TrainConfig, recorded_train_config
from .ledger import TaskRecord
from .models import ModelContext, read_task_data
from .runner import evaluate_task, evaluation_record, subsampled

if TYPE_CHECKING:
    from .workspace import Workspace


def run_sequence(
    ws: Workspace, comparison_id: int, tasks: list[TaskRecord], *, progress: bool = False
) -> None:
    """Train the tasks not yet done in this comparison, saving a checkpoint after each."""
    done = {
        r.task_id
        for r in ws.ledger.runs(purpose="compare")
        if r.comparison_id == comparison_id and r.status == "succeeded"
    }
    if len(done) == len(tasks):
        remove_checkpoint(ws, comparison_id)
        return
    ctx = _fresh_context(ws)
    _restore(ctx, ws, comparison_id, [t for t in tasks if t.id in done])
    for i, task in enumerate(tasks):
        if task.id in done:
            continue
        _train_and_evaluate(ctx, comparison_id, task, tasks[: i + 1], progress)
        _save_checkpoint(ctx, ws, comparison_id)
    remove_checkpoint(ws, comparison_id)


def _fresh_context(ws: Workspace) -> ModelContext:
    """A second, independent copy of the backbone that this baseline is allowed to change."""
    recorded = ws.ledger.backbone()
    loaded = bb.load(recorded.identity)
    bb.check_same(recorded.fingerprint, loaded.fingerprint, recorded.identity)
    return ModelContext(ws, loaded, AdaptedModel(loaded.model))


def _add_head(ctx: ModelContext, task: TaskRecord) -> None:
    dropout = full_finetune_config(ctx.ws, task).dropout
    ctx.model.add_task(task.name, num_outputs=task.num_outputs, adapter=None, dropout=dropout)


def _restore(ctx, ws, comparison_id, done: list[TaskRecord]) -> None:
    """Load the backbone and heads as they were after the last finished task."""
    if not done:
        return
    state = art.load_tensors(checkpoint_path(ws, comparison_id))
    ctx.model.backbone.load_state_dict(
        {k[9:]: v for k, v in state.items() if k.startswith("backbone.")}
    )
    for task in done:
        prefix = f"head.{task.name}."
        head = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        _add_head(ctx, task)
        ctx.model.tasks[task.name].load_state_dict(head)


def _save_checkpoint(ctx: ModelContext, ws: Workspace, comparison_id: int) -> None:
    state = {
        f"backbone.{k}": v.detach().contiguous() for k, v in ctx.model.backbone.state_dict().items()
    }
    for name in ctx.model.tasks:
        state.update({f"head.{name}.{k}": v for k, v in ctx.model.task_state(name).items()})
    art.atomic_write(checkpoint_path(ws, comparison_id), art.tensors_bytes(state))


def _train_and_evaluate(ctx, comparison_id, task, so_far, progress) -> None:
    from .training import seed_everything, train

    ws, config = ctx.ws, full_finetune_config(ctx.ws, task)
    run_id = ws.ledger.start_run(**comparison_run_values(comparison_id, task, config))
    try:
        data = read_task_data(task)
        split = ctx.encode(task, subsampled(data.train, config), config.max_length)
        dev = ctx.encode(task, data.dev, config.max_length)
        seed_everything(config.seed)
        _add_head(ctx, task)
        ctx.model.activate(task.name)
        ctx.model.backbone.requires_grad_(True)
        params = list(ctx.model.backbone.parameters()) + ctx.model.trainable_parameters(task.name)
        result = train(
            ctx.model,
            params,
            split.encoded,
            split.targets,
            config,
            problem_type=task.problem_type,
            progress=progress,
            evaluate=lambda: evaluate_task(ctx, task, dev).primary_value,
            desc=f"{task.name} (full fine-tuning)",
        )
        ctx.model.backbone.requires_grad_(False)
        evaluations = [_evaluate_earlier(ctx, earlier, task, progress) for earlier in so_far]
    except BaseException as exc:
        ws.ledger.finish_run(run_id, status="failed", error=f"{exc.__class__.__name__}: {exc}")
        raise
    trainable = count_parameters(ctx.model.backbone) + count_parameters(ctx.model.tasks[task.name])
    ws.ledger.finish_run(
        run_id,
        status="succeeded",
        evaluations=evaluations,
        seconds=result.seconds,
        examples=result.examples,
        examples_per_second=result.examples_per_second,
        result={
            "trainable_params": trainable,
            "bytes_if_kept": 4 * trainable,
            "best_epoch": result.best_epoch,
            "history": result.history,
        },
    )


def _evaluate_earlier(ctx, task: TaskRecord, after: TaskRecord, progress: bool):
    config = full_finetune_config(ctx.ws, task)
    dev = ctx.encode(task, read_task_data(task).dev, config.max_length)
    with torch.no_grad():
        result = evaluate_task(ctx, task, dev, progress=progress)
    return evaluation_record(task, result, "comparison", after_task_id=after.id)


def full_finetune_config(ws: Workspace, task: TaskRecord) -> TrainConfig:
    """The adapter run's settings for this task, with the full fine-tuning learning rate; the
    backbone trains here, so it keeps its own attention dropout as in standard fine-tuning."""
    adapter_run = recorded_train_config(ws.ledger.trained_run(task.id).config["train"])
    lr = ws.config.compare.full_finetune_lr
    return replace(adapter_run, lr=lr, backbone_attention_dropout=True)


def comparison_run_values(comparison_id: int, task: TaskRecord, config: TrainConfig) -> dict:
    return {
        "purpose": "compare",
        "method": "full-finetune",
        "task_id": task.id,
        "comparison_id": comparison_id,
        "config": {"train": config.__dict__},
        "seed": config.seed,
        "versions": library_versions(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }


def checkpoint_path(ws: Workspace, comparison_id: int) -> Path:
    return ws.artifacts_dir / f".compare-{comparison_id}" / "state.safetensors"


def remove_checkpoint(ws: Workspace, comparison_id: int) -> None:
    path = checkpoint_path(ws, comparison_id)
    path.unlink(missing_ok=True)
    if path.parent.exists():
        for stray in path.parent.iterdir():
            stray.unlink()
        path.parent.rmdir()
