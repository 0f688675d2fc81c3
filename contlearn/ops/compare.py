"""``compare``: the same ordered tasks learned several ways, side by side.

Adapters: the matrix comes from what ``train-next`` recorded (each task's post-train evaluation on
the diagonal, the verifications of earlier tasks below it). Sequential full fine-tuning: one copy
of the backbone is fine-tuned on task 1 with task 1's head, then task 2 with task 2's head, and so
on; after each task every task so far is evaluated with its own head on the current backbone.
EWC and replay are that sequence with a penalty or with earlier examples mixed in; joint trains
one model on every task at once; separate fine-tunes one model per task; lora-merged trains a
LoRA per task and merges it into the weights before the next. Each of these ways is a
``Baseline`` registered in ``ops/baselines``: this module asks it how it runs, what it records,
how its results are read back and what it stores, and never branches on its name.
Each finished task leaves a temporary checkpoint, so an interrupted comparison resumes per
method from the last finished task; the checkpoints are removed when the comparison completes.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

from ..artifacts import ArtifactStore
from ..config import CompareConfig, TrainConfig, recorded_train_config, with_overrides
from ..errors import ContlearnError, UnknownSetting
from ..eval import forgetting
from ..kinds import kind_of
from ..ledger.records import RunRecord, TaskRecord
from ..ledger.store import Ledger
from ..runtime.events import QUIET, Events
from .baselines.base import Job, Recorded
from .baselines.registry import ADAPTERS, SEQUENTIAL, current_name, get_baseline, registered


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
    known = [b.name for b in registered()]
    if tuple(methods) == ("all",):
        few = task_count is not None and task_count < 2  # nothing earlier to keep or replay
        return tuple(b.name for b in registered() if not (few and b.needs_earlier))
    named = tuple(dict.fromkeys(current_name(m) for m in methods))
    unknown = sorted(set(named) - set(known))
    if unknown or not named:
        raise ContlearnError(f"unknown method(s) {unknown}: choose from {', '.join(known)}, or all")
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
    methods: tuple[str, ...] | None = None,
    overrides: dict[str, Any] | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """What a comparison will run, before it runs: the tasks in order, the adapter run it
    reuses for each, each task's full fine-tuning settings (``overrides`` applied: the
    budget, and ``lr`` for the baselines' learning rate), the baselines' own settings and
    each task's dev targets (for the confidence intervals). ``methods`` by name (None: every
    registered one), or ``("all",)``: every one that fits the sequence."""
    unknown = sorted(set(overrides or {}) - set(BUDGET_KEYS))
    if unknown:
        raise UnknownSetting(
            f"unknown comparison setting {unknown[0]!r}: use one of {', '.join(BUDGET_KEYS)}"
        )
    tasks = trained_sequence(ledger)
    methods = check_methods(methods or tuple(b.name for b in registered()), len(tasks))
    runs = {t.name: ledger.trained_run(t.id) for t in tasks}
    configs = {t.name: full_finetune_config(runs[t.name], settings, overrides) for t in tasks}
    if device is not None:  # the baseline's precision must be one the device can do
        configs = _resolved(configs, device)
    full = {name: asdict(config) for name, config in configs.items()}
    config = {"full_finetune": full, "adapter_runs": {n: r.id for n, r in runs.items()}}
    config["baselines"] = baseline_settings(methods, settings, tasks, configs)
    config["dev_targets"] = {t.name: dev_targets(t) for t in tasks}
    names = [t.name for t in tasks]
    config["reused"] = reusable(ledger, methods, names, config)
    planned = {"methods": list(methods), "task_names": names, "config": config}
    return planned | {"notes": plan_notes(config["baselines"]) + reuse_notes(config["reused"])}


def reusable(ledger: Ledger, methods, names: list[str], config: dict[str, Any]) -> dict[str, int]:
    """Per baseline that trains: the finished comparison whose runs of it this one reads
    instead of training it again, the latest one of the same tasks, adapter runs, full
    fine-tuning settings, dev targets and settings of that baseline (the one it reused in turn)."""
    found: dict[str, int] = {}
    for row in reversed(ledger.comparisons(status="done")):
        recorded = row["config"]
        if row["task_names"] != names or not _same_runs(recorded, config):
            continue
        for name in map(current_name, row["methods"]):
            if name not in methods or name in found or get_baseline(name).run is None:
                continue
            if recorded["baselines"].get(name) == config["baselines"].get(name):
                found[name] = recorded.get("reused", {}).get(name, row["id"])
    return found


def _same_runs(recorded: dict[str, Any], config: dict[str, Any]) -> bool:
    """Whether a recorded comparison trained its baselines as ``config`` would: the same
    adapter runs, full fine-tuning settings and dev targets (one recorded before dev targets
    were has no predictions for intervals: never reused)."""
    if "dev_targets" not in recorded or "baselines" not in recorded:
        return False
    return (
        recorded["adapter_runs"] == config["adapter_runs"]
        and _full_settings(recorded) == config["full_finetune"]
        and recorded["dev_targets"] == config["dev_targets"]
    )


def reuse_notes(reused: dict[str, int]) -> list[str]:
    """One line per baseline read from an earlier comparison."""
    return [
        f"{name}: reusing comparison {source}'s runs (same tasks, adapter runs and settings); "
        "nothing is trained again for it"
        for name, source in reused.items()
    ]


def plan_notes(baselines: dict[str, Any]) -> list[str]:
    """One line per thing the user should know about a plan, from each baseline's recorded
    settings (a replay buffer larger than the earlier tasks' training examples, say)."""
    lines: list[str] = []
    for baseline in registered():
        if baseline.notes is not None and baseline.name in baselines:
            lines += baseline.notes(baselines[baseline.name])
    return lines


def baseline_settings(methods, settings: CompareConfig, tasks, configs) -> dict[str, Any]:
    """The settings of the chosen baselines that have any, checked against the tasks (in the
    registry's order, whatever the order chosen)."""
    chosen: dict[str, Any] = {"bootstrap": {"resamples": settings.bootstrap_resamples, "seed": 0}}
    for baseline in registered():
        if baseline.settings is not None and baseline.name in methods:
            chosen[baseline.name] = baseline.settings(settings, tasks, configs)
    return chosen


def dev_targets(task: TaskRecord) -> list:
    """The task's dev labels as the model predicts them (class indices, or values)."""
    from ..runtime.context import read_task_data, targets

    return targets(task, read_task_data(task).dev.labels)


def compare(
    ledger: Ledger,
    store: ArtifactStore,
    settings: CompareConfig,
    *,
    methods: tuple[str, ...] | None = None,
    overrides: dict[str, Any] | None = None,
    events: Events = QUIET,
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
    job = Job(ledger, store, comparison_id, tasks, configs, settings, events, device)
    reused = meta["config"].get("reused", {})
    for baseline in map(get_baseline, planned["methods"]):
        if baseline.run is not None and baseline.name not in reused:  # only once the plan is sound
            baseline.run(job)
    results = build_results(ledger, comparison_id, store)
    ledger.finish_comparison(comparison_id, results)
    return results


def _open_comparison(ledger: Ledger, planned: dict[str, Any]) -> int:
    names, config, methods = planned["task_names"], planned["config"], planned["methods"]
    for row in reversed(ledger.comparisons()):
        same = row["task_names"] == names and _same_config(row["config"], config)
        if same and [current_name(m) for m in row["methods"]] == methods:
            return row["id"]  # resume an interrupted one, or reuse a finished one
    return ledger.start_comparison(methods=methods, task_names=names, config=config)


def _same_config(recorded: dict[str, Any], config: dict[str, Any]) -> bool:
    """Whether a recorded comparison ran with ``config``; settings added to TrainConfig since it
    ran read as the values it used, and one recorded before the baselines' settings and dev
    targets were (adapters and sequential fine-tuning only) is the same without them: it is
    reused as it is, without intervals. Which comparisons' runs it reads is not a setting."""
    config = {k: v for k, v in config.items() if k != "reused"}
    if "baselines" not in recorded:
        config = {k: v for k, v in config.items() if k not in ("baselines", "dev_targets")}
    recorded = {k: v for k, v in recorded.items() if k != "reused"}
    return {**recorded, "full_finetune": _full_settings(recorded)} == config


def _full_settings(recorded: dict[str, Any]) -> dict[str, Any]:
    """A recorded comparison's full fine-tuning settings per task, settings added to
    TrainConfig since it ran read as the values it used."""
    return {
        name: asdict(recorded_train_config(values))
        for name, values in recorded.get("full_finetune", {}).items()
    }


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
    reused = meta["config"].get("reused", {})
    recorded = Recorded(ledger, comparison_id, tasks, runs, store, _wants_intervals(meta), reused)
    methods = {}
    for baseline in map(get_baseline, meta["methods"]):
        methods[baseline.name] = baseline.collect(baseline, recorded)
    fwt_reference = _add_references(methods, meta, tasks)
    _add_intervals(methods, meta, tasks)
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
        "notes": plan_notes(meta["config"].get("baselines", {})) + reuse_notes(reused),
        "base_reference": _base_reference(ledger),
    }


def _base_reference(ledger: Ledger) -> dict[str, Any] | None:
    """The base model's recorded perplexity on the base reference set (None: none recorded)."""
    from ..runtime.base_reference import reference_run

    run = reference_run(ledger)
    return None if run is None else {"run_id": run.id, "perplexity": run.result["perplexity"]}


def _add_references(methods: dict[str, Any], meta: dict, tasks: list[TaskRecord]) -> str | None:
    """FWT against a per-task reference (the separate models' scores where they ran, else the
    majority class's dev score) and intransigence against joint's, where it ran; returns which
    reference FWT used (None: none could be had)."""
    reference, source = _fwt_reference(methods, meta, tasks)
    joint = _reference_matrix(methods, lambda b: b.intransigence_reference)
    for name, method in methods.items():
        summary = forgetting.summarize(
            method["matrix"], reference=reference, joint=joint[-1] if joint else None
        )
        if not get_baseline(name).sequence:  # nothing was learned before anything else
            summary |= {k: None for k in ("bwt", "forgetting", "forgetting_avalanche", "fwt")}
        method["summary"] = summary
    return source


def _reference_matrix(methods: dict[str, Any], role) -> list[list] | None:
    """The matrix of the first method compared whose baseline plays ``role``, if any."""
    found = [m["matrix"] for name, m in methods.items() if role(get_baseline(name))]
    return found[0] if found else None


def _fwt_reference(methods, meta, tasks) -> tuple[list[float] | None, str | None]:
    for name, method in methods.items():
        source = get_baseline(name).fwt_reference
        if source and method["matrix"]:
            return [row[j] for j, row in enumerate(method["matrix"])], source
    wanted = meta["config"].get("dev_targets")
    if not wanted:
        return None, None  # no dev targets recorded
    scores = [kind_of(t).chance_scores(t.metric, wanted[t.name], t.labels) for t in tasks]
    if any(score is None for score in scores):
        return None, None  # a kind with no input-blind baseline (regression)
    return scores, "majority class"


def _wants_intervals(meta: dict[str, Any]) -> bool:
    """Whether the comparison recorded what intervals need: dev targets and bootstrap settings
    (one recorded before intervals existed did not)."""
    config = meta["config"]
    return bool(config.get("dev_targets") and config.get("baselines", {}).get("bootstrap"))


def _add_intervals(methods, meta, tasks) -> None:
    """95% bootstrap intervals (dev examples resampled, seeded) of every method's final task
    scores, ACC and BWT, where the predictions and dev targets were recorded."""
    from ..eval.bootstrap import bootstrap_summary

    if not _wants_intervals(meta):
        return
    wanted = meta["config"]["dev_targets"]
    boot = meta["config"]["baselines"]["bootstrap"]
    targets = [wanted[t.name] for t in tasks]
    metric = [_metric(t) for t in tasks]
    additive = [kind_of(t).additive(t.metric, t.labels) for t in tasks]
    for method in methods.values():
        predicted = method.pop("predictions", None)
        if predicted is None:
            continue
        final, diagonal = predicted
        method["intervals"] = bootstrap_summary(
            final,
            diagonal,
            targets,
            metric,
            resamples=boot["resamples"],
            seed=boot["seed"],
            additive=additive,
        )


def _metric(task: TaskRecord) -> Any:
    """Task ``task``'s primary metric as a function of (targets, predictions)."""
    kind = kind_of(task)

    def score(y_true, y_pred) -> float:
        return kind.score([task.metric], y_true, y_pred, task.labels)[task.metric]

    return score


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
    # keyed by the adapters and by full fine-tuning, whose settings every other baseline uses
    adapters, full = ADAPTERS.name, SEQUENTIAL.name
    config["lr"] = {adapters: adapter_lr, full: full_lr}
    kept = _per_task(tasks, [run["backbone_attention_dropout"] for run in runs])
    config["backbone_attention_dropout"] = {adapters: kept, full: True}
    return config


def _per_task(tasks: list[TaskRecord], values: list[Any]) -> Any:
    if len(set(values)) == 1:
        return values[0]
    return " / ".join(f"{t.name} {v}" for t, v in zip(tasks, values, strict=True))
