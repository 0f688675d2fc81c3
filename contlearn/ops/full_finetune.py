"""Sequential full fine-tuning, the baseline that forgets: every weight trainable, one head per
task, tasks in ledger order on one copy of the backbone, resumable from a checkpoint."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from .. import files
from ..artifacts import ArtifactStore
from ..config import TrainConfig
from ..ledger.records import EvaluationRecord, TaskRecord
from ..ledger.store import Ledger
from ..model.adapted import count_parameters
from .context import ModelContext, open_context, read_task_data, subsampled
from .evaluate import evaluate_task, evaluation_record
from .pace import Report, estimator, training_plan
from .runs import record_failure, run_values

METHOD = "full-finetune"


def run_sequence(
    ledger: Ledger,
    store: ArtifactStore,
    comparison_id: int,
    tasks: list[TaskRecord],
    settings: dict[str, TrainConfig],
    *,
    progress: bool = False,
    on_estimate: Report | None = None,
    device: str = "auto",
) -> None:
    """Train the tasks not yet done in this comparison, each with its recorded settings, on
    ``device``, saving a checkpoint after each."""
    done = set(ledger.finished_comparison_runs(comparison_id))
    if len(done) == len(tasks):
        remove_checkpoint(store, comparison_id)
        return
    ctx = open_context(ledger, store, device)  # a backbone copy this baseline may change
    ctx.model.upcast()  # trained weights are fp32, whatever the workspace's backbone dtype
    _restore(ctx, settings, comparison_id, [t for t in tasks if t.id in done])
    for i, task in enumerate(tasks):
        if task.id in done:
            continue
        _train_and_evaluate(
            ctx, settings, comparison_id, task, tasks[: i + 1], progress, on_estimate=on_estimate
        )
        _save_checkpoint(ctx, comparison_id)
    remove_checkpoint(store, comparison_id)


def _add_head(ctx: ModelContext, settings: dict[str, TrainConfig], task: TaskRecord) -> None:
    dropout = settings[task.name].dropout
    ctx.model.add_task(task.name, num_outputs=task.num_outputs, adapter=None, dropout=dropout)


def _restore(ctx, settings, comparison_id, done: list[TaskRecord]) -> None:
    """Load the backbone and heads as they were after the last finished task."""
    if not done:
        return
    state = files.load_tensors(checkpoint_path(ctx.store, comparison_id))
    ctx.model.backbone.load_state_dict(
        {k[9:]: v for k, v in state.items() if k.startswith("backbone.")}
    )
    for task in done:
        prefix = f"head.{task.name}."
        head = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        _add_head(ctx, settings, task)
        ctx.model.tasks[task.name].load_state_dict(head)


def _save_checkpoint(ctx: ModelContext, comparison_id: int) -> None:
    state = {
        f"backbone.{k}": v.detach().contiguous() for k, v in ctx.model.backbone.state_dict().items()
    }
    for name in ctx.model.tasks:
        state.update({f"head.{name}.{k}": v for k, v in ctx.model.task_state(name).items()})
    files.atomic_write(checkpoint_path(ctx.store, comparison_id), files.tensors_bytes(state))


def _train_and_evaluate(
    ctx, settings, comparison_id, task, so_far, progress, *, on_estimate=None
) -> None:
    config = settings[task.name]
    values = comparison_run_values(comparison_id, task, config, ctx.model.family.name)
    run_id = ctx.ledger.start_run(**values)
    try:
        result = fine_tune(ctx, settings, task, config, progress, on_estimate)
        evaluations = [_evaluate(ctx, settings, earlier, task, progress) for earlier in so_far]
    except BaseException as exc:
        record_failure(ctx.ledger, run_id, exc, task_status=None)
        raise
    trainable = count_parameters(ctx.model.backbone) + count_parameters(ctx.model.tasks[task.name])
    ctx.ledger.finish_run(
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


def fine_tune(ctx, settings, task: TaskRecord, config: TrainConfig, progress: bool, on_estimate):
    """Fine-tune the whole backbone and the task's new head on the task."""
    from ..train.loop import train
    from ..train.seeding import seed_everything

    data = read_task_data(task)
    split = ctx.encode(task, subsampled(data.train, config), config.max_length)
    dev = ctx.encode(task, data.dev, config.max_length)
    seed_everything(config.seed)
    _add_head(ctx, settings, task)
    ctx.model.activate(task.name)
    ctx.model.backbone.requires_grad_(True)
    report = None if on_estimate is None else (lambda e: on_estimate({"task": task.name, **e}))
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
        device=ctx.device,
        on_step=estimator(
            training_plan(len(split.encoded), config.epochs, config.batch_size), report
        ),
    )
    ctx.model.backbone.requires_grad_(False)
    return result


def _evaluate(ctx, settings, task: TaskRecord, after: TaskRecord, progress) -> EvaluationRecord:
    config = settings[task.name]
    dev = ctx.encode(task, read_task_data(task).dev, config.max_length)
    with torch.no_grad():
        result = evaluate_task(ctx, task, dev, progress=progress)
    return evaluation_record(task, result, "comparison", after_task_id=after.id)


def comparison_run_values(
    comparison_id: int, task: TaskRecord, config: TrainConfig, family: str
) -> dict:
    """A baseline run: its settings and the backbone family it fine-tuned, by name."""
    return run_values(
        "compare",
        {"family": family, "train": asdict(config)},
        method=METHOD,
        task_id=task.id,
        comparison_id=comparison_id,
        seed=config.seed,
    )


def checkpoint_path(store: ArtifactStore, comparison_id: int) -> Path:
    return store.folder / f".compare-{comparison_id}" / "state.safetensors"


def remove_checkpoint(store: ArtifactStore, comparison_id: int) -> None:
    path = checkpoint_path(store, comparison_id)
    path.unlink(missing_ok=True)
    if path.parent.exists():
        for stray in path.parent.iterdir():
            stray.unlink()
        path.parent.rmdir()
