"""``compare``: the same ordered tasks trained two ways, side by side.

Adapters: the matrix comes from what ``train-next`` recorded (each task's post-train evaluation on
the diagonal, the verifications of earlier tasks below it). Sequential full fine-tuning: one copy
of the backbone is fine-tuned on task 1 with task 1's head, then task 2 with task 2's head, and so
on; after each task every task so far is evaluated with its own head on the current backbone.
Each finished task leaves a temporary checkpoint, so an interrupted comparison resumes from the
last finished task; the checkpoints are removed when the comparison completes.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any

from ..artifacts import ArtifactStore
from ..config import CompareConfig, TrainConfig, recorded_train_config, with_overrides
from ..errors import ContlearnError, UnknownSetting
from ..eval import forgetting
from ..ledger.records import RunRecord, TaskRecord
from ..ledger.store import Ledger
from .pace import Report

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


def check_methods(methods: tuple[str, ...]) -> None:
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or not methods:
        raise ContlearnError(f"unknown method(s) {unknown}: choose from {', '.join(METHODS)}")


BUDGET_KEYS = (
    "epochs",
    "max_train_examples",
    "batch_size",
    "max_length",
    "seed",
    "lr",
    "precision",
)


def plan(
    ledger: Ledger,
    settings: CompareConfig,
    methods: tuple[str, ...] = METHODS,
    overrides: dict[str, Any] | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """What a comparison will run, before it runs: the tasks in order, the adapter run it
    reuses for each, and each task's full fine-tuning settings (``overrides`` applied: the
    budget, and ``lr`` for the baseline's learning rate)."""
    check_methods(methods)
    unknown = sorted(set(overrides or {}) - set(BUDGET_KEYS))
    if unknown:
        raise UnknownSetting(
            f"unknown comparison setting {unknown[0]!r}: use one of {', '.join(BUDGET_KEYS)}"
        )
    tasks = trained_sequence(ledger)
    runs = {t.name: ledger.trained_run(t.id) for t in tasks}
    configs = {t.name: full_finetune_config(runs[t.name], settings, overrides) for t in tasks}
    if device is not None:  # the baseline's precision must be one the device can do
        configs = _resolved(configs, device)
    full = {name: asdict(config) for name, config in configs.items()}
    return {
        "methods": list(methods),
        "task_names": [t.name for t in tasks],
        "config": {"full_finetune": full, "adapter_runs": {n: r.id for n, r in runs.items()}},
    }


def compare(
    ledger: Ledger,
    store: ArtifactStore,
    settings: CompareConfig,
    *,
    methods: tuple[str, ...] = METHODS,
    overrides: dict[str, Any] | None = None,
    progress: bool = False,
    on_estimate: Report | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Run (or resume) the comparison, the baseline on ``device``; returns the results the
    report is built from."""
    planned = plan(ledger, settings, methods, overrides, device)
    comparison_id = _open_comparison(ledger, planned)
    if FULL in methods:
        meta = ledger.comparison(comparison_id)
        tasks = [ledger.task_by_id(r.task_id) for r in compared_runs(ledger, meta)]
        full = meta["config"]["full_finetune"]
        configs = {name: recorded_train_config(values) for name, values in full.items()}
        from .full_finetune import run_sequence  # loads models: only once the plan is sound

        run_sequence(
            ledger,
            store,
            comparison_id,
            tasks,
            configs,
            progress=progress,
            on_estimate=on_estimate,
            device=device,
        )
    results = build_results(ledger, comparison_id)
    ledger.finish_comparison(comparison_id, results)
    return results


def _open_comparison(ledger: Ledger, planned: dict[str, Any]) -> int:
    names, config, methods = planned["task_names"], planned["config"], planned["methods"]
    for row in reversed(ledger.comparisons()):
        same = row["task_names"] == names and _same_config(row["config"], config)
        if same and row["methods"] == methods:
            return row["id"]  # resume an interrupted one, or reuse a finished one
    return ledger.start_comparison(methods=methods, task_names=names, config=config)


def _same_config(recorded: dict[str, Any], config: dict[str, Any]) -> bool:
    """Whether a recorded comparison ran with ``config``; settings added to TrainConfig since it
    ran read as the values it used."""
    full = {
        name: asdict(recorded_train_config(values))
        for name, values in recorded.get("full_finetune", {}).items()
    }
    return {**recorded, "full_finetune": full} == config


def _resolved(configs: dict[str, TrainConfig], device: str) -> dict[str, TrainConfig]:
    from .. import devices

    target = devices.resolve(device)
    return {
        name: replace(config, precision=devices.resolve_precision(config.precision, target))
        for name, config in configs.items()
    }


def full_finetune_config(
    adapter_run: RunRecord, settings: CompareConfig, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """The baseline's settings for a task: its adapter run's, with the full fine-tuning
    learning rate, then any budget ``overrides``. The backbone trains here, so it keeps its own
    attention dropout as in standard fine-tuning; the weight-decay rule is the adapter run's,
    so a comparison over runs recorded before the rule existed replays as they were trained."""
    recorded = recorded_train_config(adapter_run.config["train"])
    config = replace(recorded, lr=settings.full_finetune_lr, backbone_attention_dropout=True)
    return with_overrides(config, **(overrides or {}))


def compared_runs(ledger: Ledger, meta: dict[str, Any]) -> list[RunRecord]:
    """The adapter run of each task the comparison covered, in its order (a task retrained or
    removed since keeps the run the comparison used)."""
    recorded = meta["config"]["adapter_runs"]
    return [ledger.run(recorded[name]) for name in meta["task_names"]]


def build_results(ledger: Ledger, comparison_id: int) -> dict[str, Any]:
    """Everything the report shows, from the ledger alone."""
    meta = ledger.comparison(comparison_id)
    runs = compared_runs(ledger, meta)
    tasks = [ledger.task_by_id(r.task_id) for r in runs]
    bb = ledger.backbone()
    methods = {}
    if ADAPTER in meta["methods"]:
        methods[ADAPTER] = _adapter_method(ledger, tasks, runs)
    if FULL in meta["methods"]:
        methods[FULL] = _full_method(ledger, tasks, comparison_id)
    return {
        "comparison_id": comparison_id,
        "created_at": str(meta["started_at"]),
        "backbone": {
            "identity": bb.identity,
            "fingerprint": bb.fingerprint,
            "num_parameters": bb.num_parameters,
            "dtype": bb.dtype,
        },
        "tasks": [{"name": t.name, "position": t.position, "metric": t.metric} for t in tasks],
        "methods": methods,
        "config": _shared_config(tasks, runs, meta["config"]),
    }


def _shared_config(
    tasks: list[TaskRecord], adapter_runs: list[RunRecord], recorded: dict[str, Any]
) -> dict[str, Any]:
    """Each training setting once, or per task (``rte 5 / mrpc 3``) where the tasks differ."""
    runs = [asdict(recorded_train_config(r.config["train"])) for r in adapter_runs]
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


def _adapter_method(
    ledger: Ledger, tasks: list[TaskRecord], runs: list[RunRecord]
) -> dict[str, Any]:
    """The adapter matrix from the recorded runs: the diagonal from each run's post-train
    evaluation, the cells below it from the verifications later runs made of that very run. A
    task retrained after a later task was trained was never verified by it: that cell repeats
    the task's own score (adapters leave it as trained) and is not counted as a check."""
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
    _fill_unverified(tasks, cells)
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


def _fill_unverified(tasks: list[TaskRecord], cells: dict[tuple[int, int], float]) -> None:
    for i, later in enumerate(tasks):
        for earlier in tasks[:i]:
            cells.setdefault((later.id, earlier.id), cells[(earlier.id, earlier.id)])


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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
