"""``compare``: the same ordered tasks trained two ways, side by side.

Adapters: the matrix comes from what ``train-next`` recorded (each task's post-train evaluation on
the diagonal, the verifications of earlier tasks below it). Sequential full fine-tuning: one copy
of the backbone is fine-tuned on task 1 with task 1's head, then task 2 with task 2's head, and so
on; after each task every task so far is evaluated with its own head on the current backbone.
Each finished task leaves a temporary checkpoint, so an interrupted comparison resumes from the
last finished task; the checkpoints are removed when the comparison completes.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ..artifacts import ArtifactStore
from ..config import CompareConfig, recorded_train_config
from ..errors import ContlearnError
from ..eval import forgetting
from ..ledger.records import TaskRecord
from ..ledger.store import Ledger
from .full_finetune import full_finetune_config, run_sequence

ADAPTER, FULL = "adapter", "full-finetune"
METHODS = (ADAPTER, FULL)
LABELS = {ADAPTER: "Adapters (Houlsby, frozen backbone)", FULL: "Sequential full fine-tuning"}


def trained_sequence(ledger: Ledger) -> list[TaskRecord]:
    """Every task, all trained with adapters (the comparison reuses those runs)."""
    tasks = ledger.tasks()
    pending = [t.name for t in tasks if t.status != "trained"]
    if not tasks or pending:
        what = ", ".join(pending) if pending else "no tasks"
        raise ContlearnError(
            f"compare needs every task trained with adapters first ({what} not trained): "
            "run `contlearn train-next --all`"
        )
    return tasks


def compare(
    ledger: Ledger,
    store: ArtifactStore,
    settings: CompareConfig,
    *,
    methods: tuple[str, ...] = METHODS,
    progress: bool = False,
) -> dict[str, Any]:
    """Run (or resume) the comparison; returns the results the report is built from."""
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or not methods:
        raise ContlearnError(f"unknown method(s) {unknown}: choose from {', '.join(METHODS)}")
    tasks = trained_sequence(ledger)
    comparison_id = _open_comparison(ledger, settings, tasks, methods)
    if FULL in methods:
        run_sequence(ledger, store, settings, comparison_id, tasks, progress=progress)
    results = build_results(ledger, comparison_id)
    ledger.finish_comparison(comparison_id, results)
    return results


def _open_comparison(
    ledger: Ledger, settings: CompareConfig, tasks: list[TaskRecord], methods: tuple[str, ...]
) -> int:
    config = {
        "full_finetune": {t.name: asdict(full_finetune_config(ledger, settings, t)) for t in tasks},
        "adapter_runs": {t.name: ledger.trained_run(t.id).id for t in tasks},
    }
    names = [t.name for t in tasks]
    for row in reversed(ledger.comparisons()):
        same = row["task_names"] == names and _same_config(row["config"], config)
        if same and row["methods"] == list(methods):
            return row["id"]  # resume an interrupted one, or reuse a finished one
    return ledger.start_comparison(methods=list(methods), task_names=names, config=config)


def _same_config(recorded: dict[str, Any], config: dict[str, Any]) -> bool:
    """Whether a recorded comparison ran with ``config``; settings added to TrainConfig since it
    ran read as the values it used."""
    full = {
        name: asdict(recorded_train_config(values))
        for name, values in recorded.get("full_finetune", {}).items()
    }
    return {**recorded, "full_finetune": full} == config


def build_results(ledger: Ledger, comparison_id: int) -> dict[str, Any]:
    """Everything the report shows, from the ledger alone."""
    meta = ledger.comparison(comparison_id)
    tasks = [ledger.task(n) for n in meta["task_names"]]
    bb = ledger.backbone()
    methods = {}
    if ADAPTER in meta["methods"]:
        methods[ADAPTER] = _adapter_method(ledger, tasks)
    if FULL in meta["methods"]:
        methods[FULL] = _full_method(ledger, tasks, comparison_id)
    return {
        "comparison_id": comparison_id,
        "created_at": str(meta["started_at"]),
        "backbone": {
            "identity": bb.identity,
            "fingerprint": bb.fingerprint,
            "num_parameters": bb.num_parameters,
        },
        "tasks": [{"name": t.name, "position": t.position, "metric": t.metric} for t in tasks],
        "methods": methods,
        "config": _shared_config(ledger, tasks, meta["config"]),
    }


def _shared_config(
    ledger: Ledger, tasks: list[TaskRecord], recorded: dict[str, Any]
) -> dict[str, Any]:
    """Each training setting once, or per task (``rte 5 / mrpc 3``) where the tasks differ."""
    runs = [asdict(recorded_train_config(ledger.trained_run(t.id).config["train"])) for t in tasks]
    config: dict[str, Any] = {}
    for key in ("epochs", "batch_size", "max_length", "seed", "max_train_examples"):
        config[key] = _per_task(tasks, [run[key] for run in runs])
    adapter_lr = _per_task(tasks, [run["lr"] for run in runs])
    full_lr = _per_task(tasks, [recorded["full_finetune"][t.name]["lr"] for t in tasks])
    config["lr"] = {ADAPTER: adapter_lr, FULL: full_lr}
    kept = _per_task(tasks, [run["backbone_attention_dropout"] for run in runs])
    config["backbone_attention_dropout"] = {ADAPTER: kept, FULL: True}
    return config


def _per_task(tasks: list[TaskRecord], values: list[Any]) -> Any:
    if len(set(values)) == 1:
        return values[0]
    return " / ".join(f"{t.name} {v}" for t, v in zip(tasks, values, strict=True))


def _matrix(tasks: list[TaskRecord], cells: dict[tuple[int, int], float]) -> list[list]:
    index = {t.id: i for i, t in enumerate(tasks)}
    size = len(tasks)
    matrix: list[list[float | None]] = [[None] * size for _ in range(size)]
    for (after, task), value in cells.items():
        if after in index and task in index and index[task] <= index[after]:
            matrix[index[after]][index[task]] = value
    return matrix


def _method(label, tasks, cells, identical, runs, bytes_per_task, total_bytes, params):
    matrix = _matrix(tasks, cells)
    forgetting.validate_matrix(matrix)
    return {
        "label": label,
        "matrix": matrix,
        "summary": forgetting.summarize(matrix),
        "identical": identical,
        "cost": {
            "trainable_params": params,
            "bytes": bytes_per_task,
            "total_bytes": total_bytes,
            "train_seconds": [r.seconds for r in runs],
            "examples_per_second": [r.examples_per_second for r in runs],
        },
    }


def _adapter_method(ledger: Ledger, tasks: list[TaskRecord]) -> dict[str, Any]:
    runs = [ledger.trained_run(t.id) for t in tasks]
    cells: dict[tuple[int, int], float] = {}
    same = total = 0
    for task, run in zip(tasks, runs, strict=True):
        for e in ledger.evaluations(run_id=run.id):
            if e.kind == "post-train" and e.task_id == task.id:
                cells[(task.id, task.id)] = e.primary_value
            elif e.kind == "verification":
                cells[(task.id, e.task_id)] = e.primary_value
                same, total = same + bool(e.identical), total + 1
    files = [ledger.artifacts(r.id) for r in runs]
    sizes = [sum(a.bytes for a in f if a.role in ("weights", "config")) for f in files]
    params = [next(a.trainable_params for a in f if a.role == "weights") for f in files]
    backbone_bytes = ledger.backbone().num_parameters * 4
    return _method(
        LABELS[ADAPTER],
        tasks,
        cells,
        {"identical": same, "total": total},
        runs,
        sizes,
        backbone_bytes + sum(sizes),
        params,
    )


def _full_method(ledger: Ledger, tasks: list[TaskRecord], comparison_id: int) -> dict[str, Any]:
    runs = ledger.finished_comparison_runs(comparison_id)
    cells = {}
    for run in runs.values():
        for e in ledger.evaluations(run_id=run.id, kind="comparison"):
            cells[(e.after_task_id, e.task_id)] = e.primary_value
    ordered = [runs[t.id] for t in tasks if t.id in runs]
    if len(ordered) != len(tasks):
        raise ContlearnError(
            "the full fine-tuning sequence is not finished: run `contlearn compare`"
        )
    params = [r.result["trainable_params"] for r in ordered]
    sizes = [r.result["bytes_if_kept"] for r in ordered]
    return _method(LABELS[FULL], tasks, cells, None, ordered, sizes, sum(sizes), params)
