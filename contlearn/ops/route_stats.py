"""``route-stats``: routing statistics for the trained tasks that have none (trained before
routing existed, or imported), each computed under the rule its training run recorded and
recorded by a run of its own (purpose ``route-stats``) with its files in that run's folder. The
training runs, their files and every evaluation stay as they were; a task that has statistics
is left alone, so running it twice changes nothing.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from ..artifacts import ArtifactStore
from ..config import TrainConfig, WorkspaceConfig
from ..interrupts import interruptible
from ..ledger.records import TaskRecord
from ..ledger.store import Ledger
from ..runtime import routing
from ..runtime.runs import failure_recorded, run_values
from .route import trained_tasks

PURPOSE = "route-stats"
RULE = ("selection", "seed", "max_train_examples")  # what picks the rows, as a run records it


def route_stats(
    ledger: Ledger,
    store: ArtifactStore,
    *,
    device: str = "auto",
    workspace: WorkspaceConfig | None = None,
) -> dict[str, Any]:
    """``{"recorded": [{"task", "run_id", "seconds"}...], "had": [names]}``: the tasks given
    statistics now, and those that had them already (nothing loads when every task has)."""
    tasks = trained_tasks(ledger)
    missing = [t for t in tasks if routing.recorded(ledger, t) is None]
    had = [t.name for t in tasks if t not in missing]
    if not missing:
        return {"recorded": [], "had": had}
    from ..runtime.context import open_context

    ctx = open_context(ledger, store, device, workspace=workspace)
    with interruptible():
        done = [_record(ctx, task) for task in missing]
    return {"recorded": done, "had": had}


def _record(ctx: Any, task: TaskRecord) -> dict[str, Any]:
    """Compute and record one task's statistics under a run of its own."""
    meta = ctx.task_config(task)  # its artifact config, verified
    recorded = meta.get("train", {})
    train = replace(TrainConfig(), **{k: recorded[k] for k in RULE if k in recorded})
    run_id = ctx.ledger.start_run(
        **run_values(PURPOSE, {"task": task.name, "rule": {k: getattr(train, k) for k in RULE}}),
        task_id=task.id,
    )
    written: list = []
    start = time.perf_counter()
    try:
        with failure_recorded(ctx.ledger, run_id, "computing routing statistics"):
            records = routing.write(ctx, task, run_id, routing.compute(ctx, task, train), written)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        ctx.store.remove_empty(ctx.store.run_dir(task.name, run_id))
        raise
    seconds = time.perf_counter() - start
    ctx.ledger.finish_run(run_id, status="succeeded", artifacts=records, seconds=seconds)
    return {"task": task.name, "run_id": run_id, "seconds": seconds}
