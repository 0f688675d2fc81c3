"""``contlearn tradeoff TASK``: the parameter/performance trade-off of Houlsby et al. 2019
(section 3.4): a grid of method configurations trained on one registered task, each a recorded
run with purpose ``tradeoff`` that never touches the task's trained artifact, against full
fine-tuning. A point already finished with the same settings on the same data and backbone is
reused, so an interrupted grid resumes where it stopped."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..artifacts import ArtifactStore
from ..config import TrainConfig, WorkspaceConfig, with_overrides
from ..errors import ConfigError, ContlearnError
from ..ledger.records import RunRecord, TaskRecord
from ..ledger.store import Ledger
from ..model.methods.common import check_depth
from ..model.methods.registry import get_method
from ..runtime.events import QUIET, Events
from ..runtime.runs import recorded_run, run_values
from ..runtime.settings import TRAIN_KEYS, resolve, task_configs

PURPOSE = "tradeoff"
FULL = "full"  # full fine-tuning: the reference point
DEFAULT_GRID = (
    "houlsby:bottleneck=2,houlsby:bottleneck=8,houlsby:bottleneck=64,houlsby:bottleneck=256,"
    "pfeiffer:bottleneck=64,lora:rank=1,lora:rank=8,lora:rank=64,ia3,topk:k=1,topk:k=3,head,full"
)


@dataclass(frozen=True)
class Point:
    """One configuration of the grid: a method (or ``full``), its options, and an optional
    learning rate of its own."""

    method: str
    options: dict[str, Any] = field(default_factory=dict)
    lr: float | None = None

    @property
    def label(self) -> str:
        shown = " ".join(f"{k}={v}" for k, v in self.options.items())
        name = "full fine-tuning" if self.method == FULL else self.method
        return f"{name} {shown}".strip()


def parse_grid(text: str, num_layers: int | None = None) -> list[Point]:
    """``method[:key=value...]`` points, comma-separated (e.g. ``houlsby:bottleneck=8,lora:
    rank=4:lr=2e-3,full``); every method and option is checked here, before anything runs."""
    points = [_point(item.strip(), num_layers) for item in text.split(",") if item.strip()]
    if not points:
        raise ConfigError(f"--grid {text!r} names no point: e.g. houlsby:bottleneck=8,full")
    labels = [p.label for p in points]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ConfigError(f"--grid repeats the point {repeated[0]!r}")
    return points


def _grid(grid: str | None, num_layers: int) -> list[Point]:
    """The points of ``grid``; without one, the default grid's points that fit the backbone
    (a backbone of two layers has no top 3)."""
    if grid is not None:
        return parse_grid(grid, num_layers)
    fits = []
    for item in DEFAULT_GRID.split(","):
        try:
            fits += parse_grid(item, num_layers)
        except ConfigError:
            continue
    return fits


def _point(item: str, num_layers: int | None) -> Point:
    method, *pairs = item.split(":")
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise ConfigError(f"--grid point {item!r}: {pair!r} is not key=value")
        options[key.strip()] = _number(raw.strip())
    lr = options.pop("lr", None)
    if lr is not None and (not isinstance(lr, (int, float)) or lr <= 0):
        raise ConfigError(f"--grid point {item!r}: lr must be a positive number")
    if method == FULL:
        if options:
            raise ConfigError(f"--grid point {item!r}: full fine-tuning takes only lr")
    else:
        try:
            config = get_method(method).config(options)
            if num_layers is not None:
                check_depth(config, num_layers)
        except ConfigError as exc:
            raise ConfigError(f"--grid point {item!r}: {exc}") from exc
    return Point(method, options, None if lr is None else float(lr))


def _number(raw: str) -> Any:
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            continue
    return raw


def point_train_config(
    defaults: WorkspaceConfig, task: TaskRecord, point: Point, overrides: dict[str, Any]
) -> TrainConfig:
    """The task's training settings with the point's learning rate, then the caller's
    overrides (the budget: epochs, examples, batch size, length, seed)."""
    train, _ = task_configs(defaults, task, {})
    train = replace(train, lr=point.lr or _default_lr(defaults, point) or train.lr)
    if point.method == FULL:  # the backbone trains: it keeps its attention dropout
        train = replace(train, backbone_attention_dropout=True)
    return with_overrides(train, **{k: overrides.get(k) for k in TRAIN_KEYS})


def _default_lr(defaults: WorkspaceConfig, point: Point) -> float | None:
    """The learning rate a point trains with when the grid gives none: [compare]
    full_finetune_lr for full fine-tuning, else its method's ``tradeoff_lr`` (None: the
    task's own, tasks.toml's lr)."""
    if point.method == FULL:
        return defaults.compare.full_finetune_lr
    return get_method(point.method).tradeoff_lr


def point_config(
    point: Point, train: TrainConfig, task: TaskRecord, ledger: Ledger
) -> dict[str, Any]:
    """What a point's run records, and what a later run must match to reuse it (as JSON
    gives it back: lists, not tuples)."""
    method = None
    if point.method != FULL:
        method = asdict(get_method(point.method).config(point.options))
    config = {
        "point": point.method,
        "label": point.label,
        "method": point.method,
        "adapter": method,
        "train": asdict(train),
        "data_fingerprint": task.data_fingerprint,
        "backbone_fingerprint": ledger.backbone().fingerprint,
    }
    return json.loads(json.dumps(config))


def _reusable(run: RunRecord, config: dict[str, Any]) -> bool:
    return run.status == "succeeded" and _same(run, config)


def tradeoff(
    ledger: Ledger,
    store: ArtifactStore,
    defaults: WorkspaceConfig,
    name: str,
    *,
    grid: str | None = None,
    device: str | None = None,
    events: Events = QUIET,
    **overrides: Any,
) -> dict[str, Any]:
    """Train every point of ``grid`` on task ``name`` not yet finished with the same settings,
    and return the trade-off: each point's trainable parameters, dev score and seconds;
    ``events`` hears each point's row once it is done (or reused) and each training's estimate."""
    unknown = sorted(set(overrides) - set(TRAIN_KEYS))
    if unknown:
        raise ConfigError(f"tradeoff takes the training budget only, not {unknown[0]!r}")
    settings = resolve(defaults, overrides, device, ledger.backbone().dtype)
    task = ledger.task(name)
    points = _grid(grid, ledger.backbone().num_layers)
    configs = [
        point_config(p, point_train_config(defaults, task, p, overrides), task, ledger)
        for p in points
    ]
    done = ledger.runs(purpose=PURPOSE, task_id=task.id)
    trainer = _Trainer(ledger, store, settings, task, events)
    params = ledger.backbone().num_parameters
    for point, config in zip(points, configs, strict=True):
        if not any(_reusable(run, config) for run in done):
            trainer.run(point, config)
        events.point(_point_row(ledger.runs(purpose=PURPOSE, task_id=task.id), config, params))
    return tradeoff_result(ledger, task, configs)


def tradeoff_result(
    ledger: Ledger, task: TaskRecord, configs: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """The trade-off as ``contlearn.report.tradeoff`` renders it."""
    backbone = ledger.backbone()
    params = backbone.num_parameters
    runs = ledger.runs(purpose=PURPOSE, task_id=task.id)
    return {
        "task": task.name,
        "metric": task.metric,
        "backbone": {"name": backbone.identity, "parameters": params},
        "points": [_point_row(runs, config, params) for config in configs],
    }


def _point_row(
    recorded: Sequence[RunRecord], config: dict[str, Any], backbone_params: int | None
) -> dict[str, Any]:
    """A point as its latest finished run (else its latest run, else pending) records it."""
    runs = [r for r in recorded if _same(r, config)]
    finished = [r for r in runs if r.status == "succeeded"]
    run = (finished or runs or [None])[-1]
    result = (run.result or {}) if run else {}
    trainable = result.get("trainable_params")
    percent = 100.0 * trainable / backbone_params if trainable and backbone_params else None
    status = "pending" if run is None else {"succeeded": "finished"}.get(run.status, run.status)
    return {
        "label": config["label"],
        "method": config["method"],
        "options": config["adapter"] or {},
        "lr": config["train"]["lr"],
        "trainable_params": trainable,
        "percent_of_backbone": percent,
        "score": result.get("score"),
        "seconds": run.seconds if run and run.status == "succeeded" else None,
        "run_id": run.id if run else None,
        "status": status,
        "error": run.error if run and run.status == "failed" else None,
    }


def _same(run: RunRecord, config: dict[str, Any]) -> bool:
    keys = ("method", "adapter", "train", "data_fingerprint", "backbone_fingerprint")
    return all(run.config.get(k) == config[k] for k in keys)


class _Trainer:
    """Trains the points, on one backbone for the parameter-efficient ones and on a fresh copy
    for each full fine-tuning."""

    def __init__(self, ledger, store, settings, task, events):
        self.ledger, self.store, self.settings, self.task = ledger, store, settings, task
        self.events = events
        self.shared = None

    def run(self, point: Point, config: dict[str, Any]) -> None:
        train = TrainConfig(**config["train"])
        values = run_values(
            PURPOSE, config, method="full-finetune" if point.method == FULL else "adapter"
        )
        values |= {"task_id": self.task.id, "seed": train.seed}
        try:
            with recorded_run(self.ledger, values, "training a trade-off point") as run_id:
                outcome = self._train(point, config, train, run_id)
        except (ContlearnError, RuntimeError, ValueError):
            return  # recorded failed; the sweep goes on with the next point
        self._finish(run_id, outcome)

    def _train(self, point, config, train, run_id) -> dict[str, Any]:
        if point.method == FULL:
            return self._full(self._context(), train)
        self.shared = self.shared or self._context()
        return self._adapter(self.shared, point, config, train, run_id)

    def _context(self) -> Any:
        """A fresh copy of the backbone on the command's device."""
        from ..runtime.context import build_context

        return build_context(self.ledger, self.store, self.settings.target, self.settings.workspace)

    def _adapter(self, ctx, point, config, train, run_id) -> dict[str, Any]:
        from ..model.adapted import count_parameters
        from ..runtime.train_task import fit_task

        adapter = get_method(point.method).config(config["adapter"])
        train = replace(train, precision=ctx.precision(train.precision))
        try:
            outcome = fit_task(ctx, self.task, run_id, train, adapter, self.events)
            trainable = count_parameters(ctx.model.tasks[self.task.name])
        finally:
            if self.task.name in ctx.model.tasks:
                ctx.model.remove_task(self.task.name)
        return {"train": outcome.train, "eval": outcome.final, "trainable": trainable}

    def _full(self, ctx, train) -> dict[str, Any]:
        from ..model.adapted import count_parameters
        from ..runtime.context import read_task_data
        from ..runtime.evaluate import evaluate_task
        from .full_finetune import fine_tune

        train = replace(train, precision=ctx.precision(train.precision))
        tuned = fine_tune(ctx, {self.task.name: train}, self.task, train, self.events)
        result, _, chosen = tuned
        rows = read_task_data(self.task).dev
        dev = ctx.encode(self.task, rows, train.max_length, max_new_tokens=train.max_new_tokens)
        final = evaluate_task(ctx, self.task, dev, events=self.events, calibration=chosen)
        trainable = count_parameters(ctx.model.backbone)
        trainable += count_parameters(ctx.model.tasks[self.task.name])
        return {"train": result, "eval": final, "trainable": trainable}

    def _finish(self, run_id: int, outcome: dict[str, Any]) -> None:
        from ..runtime.evaluate import evaluation_record

        result, final = outcome["train"], outcome["eval"]
        self.ledger.finish_run(
            run_id,
            status="succeeded",
            evaluations=[evaluation_record(self.task, final, PURPOSE)],
            seconds=result.seconds,
            examples=result.examples,
            examples_per_second=result.examples_per_second,
            result={
                "score": final.primary_value,
                "metrics": final.metrics,
                "trainable_params": outcome["trainable"],
                "best_epoch": result.best_epoch,
                "history": result.history,
            },
        )
