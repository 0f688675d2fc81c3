"""A task's current run, found without loading any model: the run that serves the task, its
files and its post-train evaluation."""

from __future__ import annotations

from typing import Any

from ..errors import TaskNotTrained
from ..ledger.records import ArtifactRecord, EvaluationRecord, RunRecord, TaskRecord
from ..ledger.store import Ledger


def trained_artifacts(ledger: Ledger, task: TaskRecord) -> dict[str, ArtifactRecord]:
    """The files of the run that trained ``task``, by role; refuses an untrained task."""
    run = ledger.trained_run(task.id)
    if task.status != "trained" or run is None:
        raise TaskNotTrained(
            f"task {task.name!r} is {task.status}, not trained: run `contlearn train-next`"
        )
    return {a.role: a for a in ledger.artifacts(run.id)}


RELEASE_01_BATCH_SIZE = 64  # the canonical batch size of runs that did not record one


def canonical_batch_size(ledger: Ledger, task: TaskRecord) -> int:
    """The batch size of the canonical evaluation of the run that trained ``task``."""
    return run_batch_size(ledger.trained_run(task.id))


def run_batch_size(run: RunRecord) -> int:
    """The batch size of run ``run``'s canonical evaluation (release 0.1's when it recorded
    none)."""
    return run.config.get("canonical_eval", {}).get("batch_size", RELEASE_01_BATCH_SIZE)


def recorded_post_train(ledger: Ledger, task: TaskRecord) -> EvaluationRecord:
    """The post-train evaluation of the run that trained ``task``."""
    run = ledger.trained_run(task.id)
    return ledger.evaluations(run_id=run.id, task_id=task.id, kind="post-train")[-1]


CALIBRATION = "calibration"  # the artifact config's key for what the kind chose after training


def recorded_calibration(meta: dict[str, Any]) -> dict[str, Any] | None:
    """What a task's artifact config records its kind chose on the selection split (None: a
    kind that chooses nothing, or a run recorded before kinds chose: it replays without)."""
    return meta.get(CALIBRATION)
