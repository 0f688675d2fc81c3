"""A compared method's results, read back from the ledger: its accuracy matrix ``R[i][j]``
(task j's dev metric after training task i), its costs and, for the intervals, its dev
predictions. The ways a ``Baseline`` collects them: from the adapters' own runs, from one run
per task, or from one run for every task."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Any

from ...errors import ContlearnError
from ...eval import forgetting
from ...kinds import kind_of
from ...ledger.records import RunRecord, TaskRecord
from .base import Baseline, Recorded


def matrix(tasks: list[TaskRecord], cells: dict[tuple[int, int], float]) -> list[list]:
    """``cells`` ((after task id, task id) -> score) as the T x T matrix, None above it."""
    index = {t.id: i for i, t in enumerate(tasks)}
    size = len(tasks)
    rows: list[list[float | None]] = [[None] * size for _ in range(size)]
    for (after, task), value in cells.items():
        if after in index and task in index and index[task] <= index[after]:
            rows[index[after]][index[task]] = value
    return rows


def method_entry(label, tasks, cells, identical, runs, bytes_per_task, total_bytes, params):
    """A method as the results hold it: label, matrix, summary, identical count and costs."""
    rows = matrix(tasks, cells)
    forgetting.validate_matrix(rows)
    return {
        "label": label,
        "matrix": rows,
        "summary": forgetting.summarize(rows),
        "identical": identical,
        "cost": {
            "trainable_params": params,
            "bytes": bytes_per_task,
            "total_bytes": total_bytes,
            "train_seconds": [r.seconds for r in runs],
            "examples_per_second": [r.examples_per_second for r in runs],
        },
    }


def base_row(runs: list[RunRecord]) -> list[dict[str, Any] | None] | None:
    """What each step did to the base model, every task switched off (perplexity and the share
    of greedy answers identical to the base reference's), as its run measured it: a baseline
    run on its changed backbone, an adapter run in its verification; None for a step that
    measured nothing (a run before the base reference was recorded), and None for the whole
    row when no step did."""
    row = [_base_step((run.result or {}).get("base")) for run in runs]
    return row if any(step is not None for step in row) else None


def _base_step(found: dict[str, Any] | None) -> dict[str, Any] | None:
    """A step's base measure; a verification's check (``now`` beside ``recorded``) read as one."""
    if found is None or "now" not in found:
        return found
    keys = ("answers_identical", "identical")
    return {"perplexity": found["now"]["perplexity"]} | {k: found[k] for k in keys}


def fill_unverified(tasks: list[TaskRecord], cells: dict[tuple[int, int], float]) -> None:
    """Every cell below the diagonal that nothing measured repeats the task's own score."""
    for i, later in enumerate(tasks):
        for earlier in tasks[:i]:
            cells.setdefault((later.id, earlier.id), cells[(earlier.id, earlier.id)])


def adapters(baseline: Baseline, recorded: Recorded) -> dict[str, Any]:
    """The adapter matrix from the recorded runs: the diagonal from each run's post-train
    evaluation, the cells below it from the verifications later runs made of that very run. A
    task retrained after a later task was trained was never verified by it: that cell repeats
    the task's own score (adapters leave it as trained) and is not counted as a check."""
    ledger, tasks, runs = recorded.ledger, recorded.tasks, recorded.adapter_runs
    cells, same, total = _verified_cells(ledger, tasks, runs)
    fill_unverified(tasks, cells)
    files = [ledger.artifacts(r.id) for r in runs]
    sizes = [sum(a.bytes for a in f if a.role in ("weights", "config")) for f in files]
    params = [next(a.trainable_params for a in f if a.role == "weights") for f in files]
    stored = baseline.memory(ledger.backbone().num_parameters, params, sizes)
    identical = {"identical": same, "total": total}
    method = method_entry(baseline.label, tasks, cells, identical, runs, sizes, stored, params)
    method["base"] = base_row(runs)
    if recorded.intervals:
        method["predictions"] = _adapter_predictions(recorded)
    return method


def _verified_cells(ledger, tasks, runs) -> tuple[dict[tuple[int, int], float], int, int]:
    cells: dict[tuple[int, int], float] = {}
    same = total = 0
    trained_at = {t.id: r.finished_at for t, r in zip(tasks, runs, strict=True)}
    for task, run in zip(tasks, runs, strict=True):
        for e in ledger.evaluations(run_id=run.id):
            if e.kind == "post-train" and e.task_id == task.id:
                cells[(task.id, task.id)] = e.primary_value
            elif e.kind == "verification" and e.task_id in trained_at:
                if _utc(e.created_at) < _utc(trained_at[e.task_id]):
                    continue  # it verified an earlier run of that task
                cells[(task.id, e.task_id)] = e.primary_value
                same, total = same + bool(e.identical), total + 1
    return cells, same, total


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _adapter_predictions(recorded: Recorded) -> tuple[list, list] | None:
    """Each task's dev predictions from its adapter run's recorded dev logits (verified
    identical after every later task: the final predictions are these too), decided as its
    artifact config records (a SQuAD v2 task's no-answer threshold, chosen on its selection
    split); None when a run has none, or gc deleted them before it kept those of compared runs
    (no intervals then), or deleted the config of a task that chose something on its selection
    split (a removed task's config goes; a kind that chooses nothing needs none)."""
    from ...runtime.current import recorded_calibration

    if recorded.store is None:
        return None
    tokenizer = _tokenizer(recorded)
    out = []
    for run, task in zip(recorded.adapter_runs, recorded.tasks, strict=True):
        files = {a.role: a for a in recorded.ledger.artifacts(run.id)}
        kind, kept = kind_of(task), {r for r, a in files.items() if a.deleted_at is None}
        if "logits" not in kept or ("config" not in kept and kind.calibrates(task.labels)):
            return None
        logits = recorded.store.load_tensors(files["logits"].path)["logits"]
        meta = recorded.store.load_json(files["config"].path) if "config" in kept else {}
        calibrated = kind.calibrated(recorded_calibration(meta))
        out.append(calibrated.stored_predictions(logits, tokenizer))
    return out, out


def _tokenizer(recorded: Recorded) -> Callable[[], Any]:
    """Loads the backbone's tokenizer the first time a kind asks (a generation task's stored
    token ids are scored as text), once."""

    @cache
    def load() -> Any:
        from ...model.backbone import load_tokenizer

        return load_tokenizer(recorded.ledger.backbone().identity, recorded.store.root)

    return load


def finished(baseline: Baseline, recorded: Recorded) -> dict[int, RunRecord]:
    """The comparison's succeeded runs of ``baseline`` (under any name it had; those of the
    comparison it reused them from), by task id."""
    names = set(baseline.names)
    return recorded.ledger.finished_comparison_runs(recorded.source(baseline.name), methods=names)


def _comparison_cells(ledger, runs: dict[int, RunRecord]) -> dict[tuple[int, int], float]:
    cells: dict[tuple[int, int], float] = {}
    for run in runs.values():
        for e in ledger.evaluations(run_id=run.id, kind="comparison"):
            cells[(e.after_task_id, e.task_id)] = e.primary_value
    return cells


def per_task(baseline: Baseline, recorded: Recorded) -> dict[str, Any]:
    """A baseline with one run per task: its matrix, costs and recorded predictions."""
    ledger, tasks = recorded.ledger, recorded.tasks
    runs = finished(baseline, recorded)
    cells = _comparison_cells(ledger, runs)
    ordered = [runs[t.id] for t in tasks if t.id in runs]
    if len(ordered) != len(tasks):
        raise ContlearnError(
            f"the {baseline.name} baseline of this comparison is not finished: "
            "run `contlearn compare`"
        )
    if baseline.keeps_each:
        fill_unverified(tasks, cells)  # each task keeps its own model: it never changes
    params = [r.result["trainable_params"] for r in ordered]
    sizes = [r.result["bytes_if_kept"] for r in ordered]
    stored = baseline.memory(ledger.backbone().num_parameters, params, sizes)
    method = method_entry(baseline.label, tasks, cells, None, ordered, sizes, stored, params)
    method["base"] = base_row(ordered)
    method["predictions"] = _recorded_predictions(ordered, tasks, baseline.keeps_each)
    return method


def _recorded_predictions(ordered, tasks, keeps_each: bool) -> tuple[list, list] | None:
    """(final, just trained) dev predictions per task, from the runs' results."""
    if not all("predictions" in r.result for r in ordered):
        return None  # runs recorded before predictions were
    diagonal = [r.result["predictions"][str(t.id)] for r, t in zip(ordered, tasks, strict=True)]
    if keeps_each:
        return diagonal, diagonal
    last = ordered[-1].result["predictions"]
    return [last[str(t.id)] for t in tasks], diagonal


def once(baseline: Baseline, recorded: Recorded) -> dict[str, Any]:
    """A baseline with one run for every task, evaluated once at the end: the same row
    throughout its matrix."""
    ledger, tasks = recorded.ledger, recorded.tasks
    runs = finished(baseline, recorded)
    if len(runs) != 1:
        raise ContlearnError(
            f"the {baseline.name} baseline of this comparison is not finished: "
            "run `contlearn compare`"
        )
    (run,) = runs.values()
    cells = _comparison_cells(ledger, runs)
    last = tasks[-1].id
    for i, later in enumerate(tasks):
        for earlier in tasks[: i + 1]:
            cells[(later.id, earlier.id)] = cells[(last, earlier.id)]
    params = [run.result["trainable_params"]] * len(tasks)
    sizes = [run.result["bytes_if_kept"]]
    stored = baseline.memory(ledger.backbone().num_parameters, params, sizes)
    method = method_entry(baseline.label, tasks, cells, None, [run], sizes, stored, params)
    method["base"] = base_row([run] * len(tasks))
    preds = run.result.get("predictions")
    final = [preds[str(t.id)] for t in tasks] if preds else None
    method["predictions"] = None if final is None else (final, None)
    return method
