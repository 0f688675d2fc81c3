"""What the ledger remembers, as rows for people and scripts: every run (of a task or of all),
and every comparison."""

from __future__ import annotations

from typing import Any

from ..errors import ContlearnError
from ..ledger.records import RunRecord
from ..ledger.store import Ledger
from ..model.methods.registry import UNNAMED
from ..runtime.base_reference import PURPOSE as BASE_REFERENCE
from ..runtime.runs import is_abandoned

SCORED_AS = {"train": "post-train", "tradeoff": "tradeoff"}  # purpose -> its evaluation's kind


def run_rows(ledger: Ledger, task: str | None = None) -> list[dict[str, Any]]:
    """The runs, oldest first: of task ``task`` (by its name in the sequence), or all."""
    only = ledger.task(task) if task is not None else None
    names = {t.id: t.name for t in [*ledger.tasks(), *ledger.tasks(removed=True)]}
    current = {run.id for t in ledger.tasks() if (run := ledger.trained_run(t.id)) is not None}
    runs = ledger.runs(task_id=only.id if only else None)
    return [_run_row(ledger, run, names, current) for run in runs]


def _run_row(
    ledger: Ledger, run: RunRecord, names: dict[int, str], current: set[int]
) -> dict[str, Any]:
    return {
        "id": run.id,
        "task": names.get(run.task_id),
        "purpose": run.purpose,
        "method": _method(run),
        "status": _status(run),
        "current": run.id in current,
        "metric": _score(ledger, run),
        "seconds": run.seconds,
        "started_at": run.started_at,
        "error": run.error,
        "verified": _verified(ledger, run) if run.purpose == "train" else None,
    }


def _verified(ledger: Ledger, run: RunRecord) -> dict[str, Any]:
    """How a training run verified the other tasks: how many fully and by the probe (records
    before the modes existed were full), the dev examples re-run, whether all were identical."""
    found = ledger.evaluations(run_id=run.id, kind="verification")
    modes = [e.mode or "full" for e in found]
    return {
        "full": modes.count("full"),
        "probe": modes.count("probe"),
        "examples_rerun": sum(e.example_count for e in found),
        "identical": all(e.identical for e in found),
    }


def _method(run: RunRecord) -> str | None:
    """The method by name: an adapter run's (houlsby, lora, head ...: its config records it;
    runs recorded before it did were houlsby), else the run's own (sequential, ewc ...)."""
    if run.method != "adapter":
        return run.method
    return (run.config or {}).get("method") or UNNAMED


def _status(run: RunRecord) -> str:
    if run.status == "running" and is_abandoned(run):
        return f"abandoned (process {run.pid} gone)"
    return run.status


def _score(ledger: Ledger, run: RunRecord) -> Any:
    """A training run's post-train score, an audit's verdict, a baseline step's or a
    trade-off point's score, the base model's perplexity on its reference set."""
    if run.purpose == "audit":
        return run.verdict
    if run.purpose == BASE_REFERENCE:
        return (run.result or {}).get("perplexity")
    kind = SCORED_AS.get(run.purpose, "comparison")
    for e in reversed(ledger.evaluations(run_id=run.id, kind=kind)):
        if e.task_id == run.task_id:
            return e.primary_value
    return None


def comparison_rows(ledger: Ledger) -> list[dict[str, Any]]:
    """Every comparison, oldest first."""
    return [
        {
            "id": c["id"],
            "methods": c["methods"],
            "tasks": c["task_names"],
            "started_at": c["started_at"],
            "finished": c["status"] == "done",
            "finished_at": c["finished_at"],
            "report": c["report_path"],
            "reused": (c["config"] or {}).get("reused", {}),  # baseline: comparison read from
        }
        for c in ledger.comparisons()
    ]


def require_comparison(ledger: Ledger, comparison_id: int) -> dict[str, Any]:
    """Comparison ``comparison_id``, refused with the ids there are if it does not exist."""
    known = {c["id"]: c for c in ledger.comparisons()}
    if comparison_id not in known:
        ids = ", ".join(str(i) for i in known) or "none yet"
        raise ContlearnError(
            f"no comparison {comparison_id} in the ledger (comparisons: {ids}): "
            "`contlearn comparisons` lists them"
        )
    return known[comparison_id]
