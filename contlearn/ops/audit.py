"""``audit``: re-evaluate every trained task and prove it still behaves as when it was trained.

Per task, in ledger order: the artifact files' checksums (a modified file is never loaded; the
routing statistics' files too), the data files' fingerprint (a change is data drift, not
forgetting), then the canonical evaluation of the dev split compared with the recorded
post-train evaluation, and the routing statistics recomputed (the same bytes under the recipe
they were recorded with). The backbone is checked once, before anything is evaluated; where the
workspace records a base reference (:mod:`contlearn.runtime.base_reference`), the base model is
measured again with every task switched off and compared with it. Every audit is recorded as a
run with one evaluation per task.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..artifacts import ArtifactStore
from ..config import WorkspaceConfig
from ..data.task import data_fingerprint
from ..devices import describe
from ..errors import ArtifactError, BackboneMismatch, ContlearnError, TaskNotTrained
from ..interrupts import interruptible
from ..ledger.records import ArtifactRecord, EvaluationRecord, TaskRecord
from ..ledger.schema import HOST_LOGITS, HOST_REFERENCE
from ..ledger.store import Ledger
from ..runtime import base_reference, routing
from ..runtime.current import recorded_post_train, trained_artifacts
from ..runtime.events import QUIET, Events
from ..runtime.runs import failure_recorded, run_values

if TYPE_CHECKING:
    from ..runtime.context import ModelContext


def audit(
    ledger: Ledger,
    store: ArtifactStore,
    *,
    task: str | None = None,
    device: str = "auto",
    events: Events = QUIET,
    adopt_host: bool = False,
    workspace: WorkspaceConfig | None = None,
) -> dict[str, Any]:
    """Audit the trained tasks (or one) on ``device``; returns per-task rows and a verdict.
    ``adopt_host``: every task that passed under another recipe (equivalent, or identical but
    recorded without this host's identity) gets this host's logits as its reference, so that
    later replays here are bit for bit (:mod:`.references`); so does the base reference, with
    this host's measurement of it (:mod:`contlearn.runtime.base_reference`). ``workspace``:
    ``tasks.toml`` as the caller read it (read here when not given)."""
    tasks = _tasks_to_audit(ledger, task)  # before anything loads: an unknown task is quick
    from .. import devices
    from ..runtime.context import build_context, read_workspace

    # a device this machine lacks is refused before a run is recorded
    target = devices.resolve(device)
    workspace = workspace or read_workspace(store)

    settings = {"task": task, "device": device} | ({"adopt_host": True} if adopt_host else {})
    run_id = ledger.start_run(**run_values("audit", settings))
    start = time.perf_counter()
    try:
        ctx = build_context(ledger, store, target, workspace)
    except BackboneMismatch as exc:
        ledger.finish_run(run_id, status="succeeded", verdict="backbone-mismatch", error=str(exc))
        raise
    with failure_recorded(ledger, run_id, "auditing"), interruptible():
        audited = [_audit_task(ctx, record, events) for record in tasks]
        adopted = adopt(ctx, run_id, audited) if adopt_host else ([], [])
        adopting = run_id if adopt_host else None
        base = None if task is not None else base_reference.check(ctx, adopt_for=adopting)
    rows = [row for row, _, _ in audited]
    summary = _summary(rows, time.perf_counter() - start, run_id, base)
    ledger.finish_run(
        run_id,
        status="succeeded",
        verdict=summary["verdict"],
        artifacts=adopted[0],
        evaluations=[evaluation for _, evaluation, _ in audited] + adopted[1],
        seconds=summary["seconds"],
        examples=summary["examples"],
        examples_per_second=summary["examples_per_second"],
        result=summary,
    )
    return summary


def _summary(
    rows: list[dict[str, Any]], seconds: float, run_id: int, base: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The audit's result: the verdict, the per-task rows, the base model's check (None: the
    workspace records no base reference, or one task was audited) and the speed."""
    examples = sum(r["examples"] for r in rows)
    return {
        "verdict": verdict(rows, base),
        "tasks": rows,
        "base": base,
        "seconds": seconds,
        "examples": examples,
        "examples_per_second": examples / seconds if seconds else 0.0,
        "run_id": run_id,
    }


def verdict(rows: list[dict[str, Any]], base: dict[str, Any] | None = None) -> str:
    """ "tampered" when an artifact file is missing, modified or unreadable; else "drift" when
    anything else changed (the data files, the predictions, or the base model with every task
    switched off); else "clean"."""
    if not all(r["artifact_ok"] for r in rows):
        return "tampered"
    kept = base is None or base["ok"]
    return "clean" if kept and all(r["ok"] for r in rows) else "drift"


def _tasks_to_audit(ledger: Ledger, name: str | None) -> list[TaskRecord]:
    if name is not None:
        record = ledger.task(name)
        if record.status != "trained":
            raise TaskNotTrained(f"task {name!r} is {record.status}: nothing to audit yet")
        return [record]
    return [t for t in ledger.tasks() if t.status == "trained"]


def _audit_task(ctx: ModelContext, task: TaskRecord, events: Events):
    """One task's audit row, the evaluation record of it and its replay (None if none ran)."""
    recorded = recorded_post_train(ctx.ledger, task)
    row = _blank_row(task, recorded)
    _check_files(ctx, task, row)
    check = None
    if row["artifact_ok"] and row["data_ok"]:
        try:
            check = _reevaluate(ctx, task, recorded, row, events)
            _recheck_routing(ctx, task, row)
        except ArtifactError as exc:  # checksum matched but the file does not load
            row["artifact_ok"] = False
            row["findings"].append(str(exc))
    row["ok"] = not row["findings"]
    evaluation = EvaluationRecord(
        task_id=task.id,
        kind="audit",
        metrics=row.pop("_metrics", {}),
        primary_value=row["now"],
        example_count=row["examples"],
        logits_sha256=row.pop("_digest", None),
        identical=row["logits_identical"],
        max_abs_diff=row["max_abs_diff"],
        findings=row["findings"],
        threads=recorded.threads,
        recipe=row.pop("_recipe", None),
        outcome=row["outcome"],
    )
    return row, evaluation, check


def _blank_row(task: TaskRecord, recorded: EvaluationRecord) -> dict[str, Any]:
    """A task's audit row before anything is checked: intact, nothing re-evaluated yet."""
    return {
        "position": task.position,
        "task": task.name,
        "metric": task.metric,
        "recorded": recorded.primary_value,
        "now": None,
        "delta": None,
        "logits_identical": None,
        "outcome": None,
        "reference": None,
        "adopted": False,
        "predictions_identical": None,
        "max_abs_diff": None,
        "artifact_ok": True,
        "data_ok": True,
        "routing": None,
        "findings": [],
        "notes": [],
        "recipe": None,
        "device": None,
        "examples": 0,
        "examples_per_second": None,
    }


def _recheck_routing(ctx: ModelContext, task: TaskRecord, row: dict[str, Any]) -> None:
    """The task's routing statistics recomputed and compared (``routing``: "reproduced",
    "changed", or None for a task without them)."""
    if routing.recorded(ctx.ledger, task) is None:
        return
    found = routing.recheck(ctx, task)
    row["routing"] = "changed" if found else "reproduced"
    row["findings"] += found


def _check_files(ctx: ModelContext, task: TaskRecord, row: dict[str, Any]) -> None:
    files = trained_artifacts(ctx.ledger, task)
    extra = routing.recorded(ctx.ledger, task) or {}  # route-stats' files, recorded apart
    for record in [*files.values(), *(r for r in extra.values() if r not in files.values())]:
        try:
            ctx.store.verify(record.path, record.sha256, task.name)
        except ContlearnError as exc:
            row["artifact_ok"] = False
            row["findings"].append(str(exc))
    try:
        now = data_fingerprint(Path(task.data_source), task.data_files)
    except OSError as exc:
        now = f"unreadable: {exc.strerror}"
    if now != task.data_fingerprint:
        row["data_ok"] = False
        row["findings"].append(
            f"task {task.name!r}: data drift: the files under {task.data_source} changed since "
            "registration (not forgetting); restore them, or register the new data as a new task"
        )


def _reevaluate(ctx, task, recorded: EvaluationRecord, row, events: Events) -> Any:
    from ..runtime.verify import reproduce

    check = reproduce(ctx, task, events=events)
    now = check.now
    row.update(
        now=now.primary_value,
        delta=now.primary_value - recorded.primary_value,
        logits_identical=check.logits_identical,
        outcome=check.outcome,
        reference="post-train" if check.adopted is None else f"host (audit run {check.adopted})",
        predictions_identical=now.predictions_sha256 == recorded.predictions_sha256,
        recipe="same" if check.same_recipe else "different",
        device=describe(now.recipe),
        notes=list(check.notes),
        examples=now.example_count,
        examples_per_second=now.examples_per_second,
        _metrics=now.metrics,
        _digest=now.logits_sha256,
        _recipe=now.recipe,
    )
    if not check.same_recipe:
        _across_devices(check, row)
    elif not check.logits_identical:
        _changed(ctx, task, check, row)
    else:
        row["max_abs_diff"] = 0.0
    return check


def _across_devices(check: Any, row: dict[str, Any]) -> None:
    """Under another recipe: passes when every prediction and metric value is the same."""
    row["max_abs_diff"] = check.max_abs_diff
    row["predictions_identical"] = check.prediction_share == 1.0
    if not check.ok:
        row["findings"].append(
            check.notes[0] + ": not every prediction and metric value reproduced (a different "
            "device passes only then); audit on the device the task was trained on"
        )
        row["notes"] = []


def _changed(ctx, task, check: Any, row: dict[str, Any]) -> None:
    """Under the recorded recipe the logits must be identical: say how they changed."""
    recorded, now = check.recorded, check.now
    saved = ctx.store.load_tensors(check.logits_path)["logits"]
    row["max_abs_diff"] = (
        float((saved - now.logits).abs().nan_to_num().max())
        if saved.shape == now.logits.shape
        else None
    )
    if row["predictions_identical"]:
        row["findings"].append(
            f"task {task.name!r}: logits differ from the recorded ones (max abs diff "
            f"{row['max_abs_diff']:.3g}) but every prediction is the same, under the recipe "
            "they were recorded with; versions recorded at training are in its "
            "adapter_config.json"
        )
    else:
        row["findings"].append(
            f"task {task.name!r}: predictions differ from the recorded ones (metric "
            f"{recorded.primary_value:.4f} -> {now.primary_value:.4f}); check the backbone, "
            "library versions and the artifact"
        )


def adopt(ctx: ModelContext, run_id: int, audited: list) -> tuple[list, list]:
    """This host's reference for every task that passed under another recipe: its logits
    written atomically under the audit run's folder, and the artifact and evaluation records
    that the audit run's closing transaction adds (history kept: earlier references stay)."""
    from .. import faults, files
    from ..runtime.evaluate import evaluation_record

    artifacts, evaluations = [], []
    for row, _, check in audited:
        if check is None or not row["ok"] or check.same_recipe:
            continue
        task = ctx.ledger.task(row["task"])
        blob = files.tensors_bytes({"logits": check.now.logits})
        path = ctx.store.run_dir(task.name, run_id) / "host_logits.safetensors"
        faults.require_space(ctx.store.folder, len(blob), ctx.store.relative(path.parent))
        ctx.store.write(path, blob)
        artifacts.append(_host_logits(ctx, task, run_id, path, blob))
        evaluations.append(
            evaluation_record(task, check.now, HOST_REFERENCE, outcome=check.outcome)
        )
        row["adopted"] = True
    return artifacts, evaluations


def _host_logits(ctx: ModelContext, task: TaskRecord, run_id: int, path: Path, blob: bytes):
    from .. import files

    return ArtifactRecord(
        run_id=run_id,
        task_id=task.id,
        role=HOST_LOGITS,
        path=ctx.store.relative(path),
        sha256=files.sha256_bytes(blob),
        bytes=len(blob),
    )


def history(ledger: Ledger) -> list[dict[str, Any]]:
    """Past audits, oldest first."""
    return [
        {
            "run_id": r.id,
            "started_at": r.started_at,
            "verdict": r.verdict,
            "tasks": len((r.result or {}).get("tasks", [])),
            "seconds": r.seconds,
            "error": r.error,
        }
        for r in ledger.runs(purpose="audit")
    ]
