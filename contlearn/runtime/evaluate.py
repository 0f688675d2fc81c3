"""A task's canonical evaluation on a model context, and the ledger record of one."""

from __future__ import annotations

from typing import Any

from ..eval.recipe import CANONICAL_BATCH_SIZE, EvalResult, evaluate
from ..kinds import kind_of
from ..ledger.records import EvaluationRecord, TaskRecord
from .context import ModelContext, Split
from .events import QUIET, Events


def evaluate_task(
    ctx: ModelContext,
    task: TaskRecord,
    split: Split,
    *,
    threads: int | None = None,
    batch_size: int = CANONICAL_BATCH_SIZE,
    events: Events = QUIET,
    calibration: dict[str, Any] | None = None,
) -> EvalResult:
    """The canonical evaluation of ``task`` with its own modules and head (a progress bar if
    ``events`` draws them), its predictions decided by ``calibration`` (what its kind chose on
    the selection split: ``current.recorded_calibration`` of a trained task)."""
    ctx.model.activate(task.name)
    return evaluate(
        ctx.model,
        split.encoded,
        split.targets,
        metrics=task.metrics,
        kind=kind_of(task).calibrated(calibration),
        labels=task.labels,
        threads=threads,
        batch_size=batch_size,
        device=ctx.device,
        progress=events.bars,
        desc=f"evaluating {task.name}",
    )


def evaluation_record(
    task: TaskRecord, result: EvalResult, kind: str, **extra: Any
) -> EvaluationRecord:
    """The ledger record of one canonical evaluation."""
    return EvaluationRecord(
        task_id=task.id,
        kind=kind,
        metrics=result.metrics,
        primary_value=result.primary_value,
        example_count=result.example_count,
        logits_sha256=result.logits_sha256,
        predictions_sha256=result.predictions_sha256,
        threads=result.threads,
        seconds=result.seconds,
        recipe=result.recipe or None,
        **extra,
    )
