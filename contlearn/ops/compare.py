"""``compare``: the same ordered tasks learned several ways, side by side.

Adapters: the matrix comes from what ``train-next`` recorded (each task's post-train evaluation on
the diagonal, the verifications of earlier tasks below it). Sequential full fine-tuning: one copy
of the backbone is fine-tuned on task 1 with task 1's head, then task 2 with task 2's head, and so
on; after each task every task so far is evaluated with its own head on the current backbone.
EWC and replay are that sequence with a penalty or with earlier examples mixed in; joint trains
one model on every task at once; separate fine-tunes one model per task (``ops/baselines``).
Each finished task leaves a temporary checkpoint, so an interrupted comparison resumes per
method from the last finished task; the checkpoints are removed when the comparison completes.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any

from ..artifacts import ArtifactStore
from ..config import CompareConfig, TrainConfig, recorded_train_config, with_overrides
from ..errors import ContlearnError, UnknownSetting
from ..eval import forgetting
from ..kinds import kind_of
from ..ledger.records import RunRecord, TaskRecord
from ..ledger.store import Ledger
from ..runtime.pace import Report

ADAPTER, FULL = "adapter", "sequential"
EWC, REPLAY, JOINT, SEPARATE = "ewc", "replay", "joint", "separate"
METHODS = (ADAPTER, FULL, EWC, REPLAY, JOINT, SEPARATE)
ALIASES = {"full-finetune": FULL}  # the sequential baseline's name before the others existed
LABELS = {
    ADAPTER: "Adapters (frozen backbone)",
    FULL: "Sequential full fine-tuning",
    EWC: "EWC (online, sequential full fine-tuning)",
    REPLAY: "Experience replay (sequential full fine-tuning)",
    JOINT: "Joint multi-task training (all data at once)",
    SEPARATE: "Separate models (one fine-tuned model per task)",
}


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


def check_methods(methods: tuple[str, ...], task_count: int | None = None) -> tuple[str, ...]:
    """The methods by their current names, in the order given (``all``: every method that fits
    a sequence of ``task_count`` tasks); refuses an unknown one."""
    if tuple(methods) == ("all",):
        few = task_count is not None and task_count < 2  # nothing earlier to keep or replay
        return tuple(m for m in METHODS if not (few and m in (EWC, REPLAY, JOINT)))
    named = tuple(dict.fromkeys(ALIASES.get(m, m) for m in methods))
    unknown = sorted(set(named) - set(METHODS))
    if unknown or not named:
        raise ContlearnError(
            f"unknown method(s) {unknown}: choose from {', '.join(METHODS)}, or all"
        )
    return named


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
    reuses for each, each task's full fine-tuning settings (``overrides`` applied: the
    budget, and ``lr`` for the baselines' learning rate), the baselines' own settings and
    each task's dev targets (for the confidence intervals)."""
    unknown = sorted(set(overrides or {}) - set(BUDGET_KEYS))
    if unknown:
        raise UnknownSetting(
            f"unknown comparison setting {unknown[0]!r}: use one of {', '.join(BUDGET_KEYS)}"
        )
    tasks = trained_sequence(ledger)
    methods = check_methods(methods, len(tasks))
    runs = {t.name: ledger.trained_run(t.id) for t in tasks}
    configs = {t.name: full_finetune_config(runs[t.name], settings, overrides) for t in tasks}
    if device is not None:  # the baseline's precision must be one the device can do
        configs = _resolved(configs, device)
    full = {name: asdict(config) for name, config in configs.items()}
    config = {"full_finetune": full, "adapter_runs": {n: r.id for n, r in runs.items()}}
    config["baselines"] = baseline_settings(methods, settings, tasks, configs)
    config["dev_targets"] = {t.name: dev_targets(t) for t in tasks}
    planned = {"methods": list(methods), "task_names": [t.name for t in tasks], "config": config}
    return planned | {"notes": plan_notes(config["baselines"])}


def plan_notes(baselines: dict[str, Any]) -> list[str]:
    """One line per thing the user should know about a plan: a replay buffer larger than the
    earlier tasks' training examples keeps every one of them."""
    replay = baselines.get(REPLAY, {})
    if "keeps_all" not in replay:
        return []
    return [
        f"replay_buffer {replay['buffer']} is larger than the earlier tasks' "
        f"{replay['keeps_all']} training examples: replay keeps every one of them"
    ]


def baseline_settings(methods, settings: CompareConfig, tasks, configs) -> dict[str, Any]:
    """The settings of the chosen baselines that have any, checked against the tasks."""
    chosen: dict[str, Any] = {"bootstrap": {"resamples": settings.bootstrap_resamples, "seed": 0}}
    if EWC in methods:
        chosen[EWC] = {
            "lambda": settings.ewc_lambda,
            "decay": settings.ewc_decay,
            "fisher_examples": settings.fisher_examples,
        }
    if REPLAY in methods:
        chosen[REPLAY] = {"buffer": settings.replay_buffer, "ratio": settings.replay_ratio}
        earlier = _earlier_rows(tasks, configs)
        if settings.replay_buffer > earlier:  # the reservoir keeps every row it sees
            chosen[REPLAY]["keeps_all"] = earlier
    return chosen


def _earlier_rows(tasks: list[TaskRecord], configs: dict[str, TrainConfig]) -> int:
    """Training examples of every task but the last (what replay can keep)."""
    rows = 0
    for task in tasks[:-1]:
        limit = configs[task.name].max_train_examples
        rows += min(task.train_rows, limit) if limit else task.train_rows
    return rows


def dev_targets(task: TaskRecord) -> list:
    """The task's dev labels as the model predicts them (class indices, or values)."""
    from ..runtime.context import read_task_data, targets

    return targets(task, read_task_data(task).dev.labels)


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
    """Run (or resume) the comparison, the baselines on ``device``; returns the results the
    report is built from."""
    planned = plan(ledger, settings, methods, overrides, device)
    comparison_id = _open_comparison(ledger, planned)
    meta = ledger.comparison(comparison_id)
    tasks = [ledger.task_by_id(r.task_id) for r in compared_runs(ledger, meta)]
    configs = {
        name: recorded_train_config(values)
        for name, values in meta["config"]["full_finetune"].items()
    }
    from .baselines import run_baseline  # loads models: only once the plan is sound

    for method in planned["methods"]:
        if method != ADAPTER:
            run_baseline(
                method,
                ledger,
                store,
                comparison_id,
                tasks,
                configs,
                settings,
                progress=progress,
                on_estimate=on_estimate,
                device=device,
            )
    results = build_results(ledger, comparison_id, store)
    ledger.finish_comparison(comparison_id, results)
    return results


def _open_comparison(ledger: Ledger, planned: dict[str, Any]) -> int:
    names, config, methods = planned["task_names"], planned["config"], planned["methods"]
    for row in reversed(ledger.comparisons()):
        same = row["task_names"] == names and _same_config(row["config"], config)
        if same and [ALIASES.get(m, m) for m in row["methods"]] == methods:
            return row["id"]  # resume an interrupted one, or reuse a finished one
    return ledger.start_comparison(methods=methods, task_names=names, config=config)


def _same_config(recorded: dict[str, Any], config: dict[str, Any]) -> bool:
    """Whether a recorded comparison ran with ``config``; settings added to TrainConfig since it
    ran read as the values it used, and one recorded before the baselines' settings and dev
    targets were (adapters and sequential fine-tuning only) is the same without them: it is
    reused as it is, without intervals."""
    full = {
        name: asdict(recorded_train_config(values))
        for name, values in recorded.get("full_finetune", {}).items()
    }
    if "baselines" not in recorded:
        config = {k: v for k, v in config.items() if k not in ("baselines", "dev_targets")}
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


def build_results(
    ledger: Ledger, comparison_id: int, store: ArtifactStore | None = None
) -> dict[str, Any]:
    """Everything the report shows, from the ledger (and, for the adapters' confidence
    intervals, their recorded dev logits in ``store``)."""
    meta = ledger.comparison(comparison_id)
    runs = compared_runs(ledger, meta)
    tasks = [ledger.task_by_id(r.task_id) for r in runs]
    bb = ledger.backbone()
    methods = {}
    for name in (ALIASES.get(m, m) for m in meta["methods"]):
        if name == ADAPTER:
            methods[ADAPTER] = _adapter_method(ledger, tasks, runs)
        else:
            methods[name] = _baseline_method(ledger, tasks, comparison_id, name, meta)
    fwt_reference = _add_references(methods, meta, tasks)
    _add_intervals(ledger, methods, meta, tasks, runs, store)
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
        "fwt_reference": fwt_reference,
        "notes": plan_notes(meta["config"].get("baselines", {})),
    }


def _add_references(methods: dict[str, Any], meta: dict, tasks: list[TaskRecord]) -> str | None:
    """FWT against a per-task reference (the separate models' scores where they ran, else the
    majority class's dev score) and intransigence against joint's, where it ran; returns which
    reference FWT used (None: none could be had)."""
    reference, source = _fwt_reference(methods, meta, tasks)
    joint = methods.get(JOINT, {}).get("matrix")
    for name, method in methods.items():
        summary = forgetting.summarize(
            method["matrix"], reference=reference, joint=joint[-1] if joint else None
        )
        if name == JOINT:  # no sequence: nothing was learned before anything else
            summary |= {k: None for k in ("bwt", "forgetting", "forgetting_avalanche", "fwt")}
        method["summary"] = summary
    return source


def _fwt_reference(methods, meta, tasks) -> tuple[list[float] | None, str | None]:
    separate = methods.get(SEPARATE, {}).get("matrix")
    if separate:
        return [row[j] for j, row in enumerate(separate)], "separate models"
    wanted = meta["config"].get("dev_targets")
    if not wanted:
        return None, None  # no dev targets recorded
    scores = [kind_of(t).chance_scores(t.metric, wanted[t.name], t.labels) for t in tasks]
    if any(score is None for score in scores):
        return None, None  # a kind with no input-blind baseline (regression)
    return scores, "majority class"


def _add_intervals(ledger, methods, meta, tasks, runs, store) -> None:
    """95% bootstrap intervals (dev examples resampled, seeded) of every method's final task
    scores, ACC and BWT, where the predictions and dev targets were recorded."""
    from ..eval.bootstrap import bootstrap_summary

    wanted = meta["config"].get("dev_targets")
    boot = meta["config"].get("baselines", {}).get("bootstrap")
    if not wanted or not boot:
        return  # a comparison recorded before intervals existed
    targets = [wanted[t.name] for t in tasks]
    metric = [_metric(t) for t in tasks]
    for name, method in methods.items():
        predicted = method.pop("predictions", None)
        if name == ADAPTER:
            predicted = _adapter_predictions(ledger, runs, tasks, store)
        if predicted is None:
            continue
        final, diagonal = predicted
        method["intervals"] = bootstrap_summary(
            final, diagonal, targets, metric, resamples=boot["resamples"], seed=boot["seed"]
        )


def _metric(task: TaskRecord) -> Any:
    """Task ``task``'s primary metric as a function of (targets, predictions)."""
    from ..eval.metrics import compute_metrics

    classes = kind_of(task).num_classes(task.labels)

    def score(y_true, y_pred) -> float:
        values = compute_metrics([task.metric], y_true=y_true, y_pred=y_pred, num_classes=classes)
        return values[task.metric]

    return score


def _adapter_predictions(ledger, runs, tasks, store) -> tuple[list, list] | None:
    """Each task's dev predictions from its adapter run's recorded dev logits (verified
    identical after every later task: the final predictions are these too); None when a run
    has none, or gc deleted them before it kept those of compared runs (no intervals then)."""
    if store is None:
        return None
    out = []
    for run, task in zip(runs, tasks, strict=True):
        files = {a.role: a for a in ledger.artifacts(run.id)}
        if "logits" not in files or files["logits"].deleted_at is not None:
            return None
        logits = store.load_tensors(files["logits"].path)["logits"]
        out.append(kind_of(task).predictions(logits))
    return out, out


def _shared_config(
    tasks: list[TaskRecord], adapter_runs: list[RunRecord], recorded: dict[str, Any]
) -> dict[str, Any]:
    """Each training setting once, or per task (``rte 5 / mrpc 3``) where the tasks differ."""
    runs = [asdict(recorded_train_config(r.config["train"])) for r in adapter_runs]
    config: dict[str, Any] = {}
    for key in ("epochs", "batch_size", "max_length", "seed", "max_train_examples", "selection"):
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


def _baseline_method(
    ledger: Ledger, tasks: list[TaskRecord], comparison_id: int, name: str, meta: dict
) -> dict[str, Any]:
    """A baseline's matrix, costs and recorded predictions from its runs."""
    from .full_finetune import finished_runs

    runs = finished_runs(ledger, comparison_id, name)
    cells: dict[tuple[int, int], float] = {}
    for run in runs.values():
        for e in ledger.evaluations(run_id=run.id, kind="comparison"):
            cells[(e.after_task_id, e.task_id)] = e.primary_value
    if name == JOINT:
        return _joint_method(ledger, tasks, runs, cells)
    ordered = [runs[t.id] for t in tasks if t.id in runs]
    if len(ordered) != len(tasks):
        raise ContlearnError(
            f"the {name} baseline of this comparison is not finished: run `contlearn compare`"
        )
    if name == SEPARATE:
        _fill_unverified(tasks, cells)  # each task keeps its own model: it never changes
    params = [r.result["trainable_params"] for r in ordered]
    sizes = [r.result["bytes_if_kept"] for r in ordered]
    total = sum(sizes) if name == SEPARATE else _one_model_bytes(ledger, params)
    if name == EWC:
        total += 8 * ledger.backbone().num_parameters  # Fisher and anchor, to go on
    method = _method(LABELS[name], tasks, cells, None, ordered, sizes, total, params)
    method["predictions"] = _recorded_predictions(ordered, tasks, name)
    return method


def _one_model_bytes(ledger: Ledger, params: list[int]) -> int:
    """One backbone and every task's head, in fp32: what serves every task at the end."""
    backbone = ledger.backbone().num_parameters
    return 4 * (backbone + sum(p - backbone for p in params))


def _joint_method(ledger, tasks, runs, cells) -> dict[str, Any]:
    if len(runs) != 1:
        raise ContlearnError(
            "the joint baseline of this comparison is not finished: run `contlearn compare`"
        )
    (run,) = runs.values()
    last = tasks[-1].id
    for i, later in enumerate(tasks):  # one model, evaluated once: the same row throughout
        for earlier in tasks[: i + 1]:
            cells[(later.id, earlier.id)] = cells[(last, earlier.id)]
    params = [run.result["trainable_params"]] * len(tasks)
    size = run.result["bytes_if_kept"]
    method = _method(LABELS[JOINT], tasks, cells, None, [run], [size], size, params)
    preds = run.result.get("predictions")
    final = [preds[str(t.id)] for t in tasks] if preds else None
    method["predictions"] = None if final is None else (final, None)
    return method


def _recorded_predictions(ordered, tasks, name) -> tuple[list, list] | None:
    """(final, just trained) dev predictions per task, from the runs' results."""
    if not all("predictions" in r.result for r in ordered):
        return None  # runs recorded before predictions were
    diagonal = [r.result["predictions"][str(t.id)] for r, t in zip(ordered, tasks, strict=True)]
    if name == SEPARATE:
        return diagonal, diagonal
    last = ordered[-1].result["predictions"]
    return [last[str(t.id)] for t in tasks], diagonal
