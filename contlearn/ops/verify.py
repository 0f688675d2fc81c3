"""Verification: reload a trained task from its files, replay its post-train evaluation exactly as
it was recorded, and compare. ``train-next`` verifies every earlier task after training a new
one; ``audit`` replays every task the same way."""

from __future__ import annotations

from ..errors import VerificationFailed
from ..eval.recipe import EvalResult
from ..ledger.records import EvaluationRecord, TaskRecord
from ..ledger.store import Ledger
from .context import ModelContext, read_task_data
from .current import recorded_post_train
from .evaluate import evaluate_task, evaluation_record

RELEASE_01_BATCH_SIZE = 64  # the canonical batch size of runs that did not record one


def reproduce(
    ctx: ModelContext, task: TaskRecord, *, progress: bool = False
) -> tuple[EvaluationRecord, EvalResult]:
    """Reload a trained task from its files and re-run its post-train evaluation exactly as it
    was recorded (max length, batch size and thread count); returns (recorded, now)."""
    recorded = recorded_post_train(ctx.ledger, task)
    meta = ctx.load_task(task)
    recipe = ctx.ledger.trained_run(task.id).config.get("canonical_eval", {})
    dev = ctx.encode(task, read_task_data(task).dev, meta["train"]["max_length"])
    now = evaluate_task(
        ctx,
        task,
        dev,
        threads=recorded.threads,
        batch_size=recipe.get("batch_size", RELEASE_01_BATCH_SIZE),
        progress=progress,
    )
    return recorded, now


def verify_earlier(
    ctx: ModelContext, current: TaskRecord, *, progress: bool = False
) -> list[EvaluationRecord]:
    """Reload every other trained task from disk, re-evaluate it, compare with its record."""
    records = []
    for task in ctx.ledger.tasks():
        if task.status != "trained" or task.id == current.id:
            continue
        records.append(_verify_one(ctx, task, current, progress))
    return records


def _verify_one(ctx, task, current, progress) -> EvaluationRecord:
    recorded, now = reproduce(ctx, task, progress=progress)
    identical = now.logits_sha256 == recorded.logits_sha256 and now.metrics == recorded.metrics
    findings = [] if identical else [f"recorded {recorded.logits_sha256}, now {now.logits_sha256}"]
    return evaluation_record(
        task, now, "verification", after_task_id=current.id, identical=identical, findings=findings
    )


def require_identical(ledger: Ledger, current: TaskRecord, records: list[EvaluationRecord]) -> None:
    """Fail loudly, naming them, if any earlier task's results changed."""
    changed = [r for r in records if not r.identical]
    if changed:
        names = ", ".join(repr(ledger.task_by_id(r.task_id).name) for r in changed)
        raise VerificationFailed(
            f"earlier task {names} no longer reproduces its recorded results after training "
            f"{current.name!r}, which was not marked trained: run `contlearn audit` to see why"
        )
