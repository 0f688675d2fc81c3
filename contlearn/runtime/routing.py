"""A task's routing statistics as artifact files, and the router over the trained tasks.

``routing.safetensors`` holds the statistics (:class:`~contlearn.eval.routing.RoutingStats`)
and ``routing.json`` how they were computed: which rows (the run's training rows and its
selection split, under the rule its training config records), at what max length, under which
recipe, on which backbone. Both are written into the folder of the run that made them (the
training run; or a ``route-stats`` run for a task trained before routing existed, its training
run untouched) and recorded with their sha256. No later run rewrites them: the router over the
trained tasks is a fixed function of these files, each verified before it is read, and an audit
recomputes them (bit for bit under the same recipe).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .. import files
from ..config import TrainConfig
from ..devices import same_recipe
from ..errors import ArtifactError, RoutingUnavailable
from ..kinds import kind_of
from ..ledger.records import ArtifactRecord, TaskRecord
from ..ledger.schema import ROUTING, ROUTING_META, ROUTING_ROLES
from ..ledger.store import Ledger

if TYPE_CHECKING:  # torch: imported by the functions that compute (`status` stays light)
    from ..eval.routing import Router, RoutingStats
    from .context import ModelContext

FILES = {ROUTING: "routing.safetensors", ROUTING_META: "routing.json"}
FORMAT = 1
ROUTE_STATS_FIX = "run `contlearn route-stats` to compute them (nothing trained is changed)"


@dataclass(frozen=True)
class Computed:
    """A task's statistics and the JSON that says how they were computed."""

    stats: RoutingStats
    meta: dict[str, Any]

    def blobs(self) -> dict[str, bytes]:
        return {
            ROUTING: files.tensors_bytes(self.stats.tensors()),
            ROUTING_META: files.json_bytes(self.meta),
        }


def compute(
    ctx: ModelContext, task: TaskRecord, train: TrainConfig, threads: int | None = None
) -> Computed:
    """The routing statistics of ``task`` trained under ``train``: the frozen backbone's features
    of (at most ``STATS_ROWS`` of) its training rows, and of (at most ``HELD_OUT_ROWS`` of) its
    selection split's rows (the held-out slice, or the dev split when the dev split selects)."""
    from ..eval.features import ROUTING_MAX_LENGTH, routing_features
    from ..eval.routing import HELD_OUT_ROWS, STATS_ROWS, RoutingStats
    from ..train.batching import subsample
    from .context import read_task_data, training_rows

    data = read_task_data(task)
    rows, held = training_rows(data.train, train)
    held = data.dev if held is None else held
    kind = kind_of(task)
    max_length = ctx.capped(ROUTING_MAX_LENGTH)
    made: dict[str, Any] = {}
    parts = []
    for texts, limit in ((rows.texts, STATS_ROWS), (held.texts, HELD_OUT_ROWS)):
        keep = subsample(len(texts), limit, train.seed)
        encoded = _encode(ctx, [kind.routing_text(texts[i]) for i in keep], max_length)
        features, made = routing_features(ctx.model, encoded, device=ctx.device, threads=threads)
        parts.append(features)
    meta = {
        "format": FORMAT,
        "task": task.name,
        "features": "mean-pooled final hidden states of the frozen backbone, no task active",
        "max_length": max_length,
        "rows": {"training": len(parts[0]), "held_out": len(parts[1])},
        "rule": {k: getattr(train, k) for k in ("selection", "seed", "max_train_examples")},
        "backbone": {"identity": ctx.backbone.identity, "fingerprint": ctx.backbone.fingerprint},
        "recipe": made,
    }
    return Computed(RoutingStats.of(parts[0], parts[1]), meta)


def routing_texts(task: TaskRecord, texts: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """What routing encodes of rows ``predict`` was given for ``task`` (its text fields)."""
    kind = kind_of(task)
    return [kind.routing_text(row) for row in kind.predict_inputs(texts)]


def features_of(ctx: ModelContext, texts: list[tuple[str, ...]], max_length: int) -> Any:
    """[N, d] routing features of routing texts, as the statistics were computed."""
    from ..eval.features import routing_features

    return routing_features(ctx.model, _encode(ctx, texts, max_length), device=ctx.device)[0]


def _encode(ctx: ModelContext, texts: list[tuple[str, ...]], max_length: int) -> Any:
    from ..eval.features import encode_for_routing
    from ..model.families import uses_token_types

    token_types = uses_token_types(ctx.backbone.model)
    return encode_for_routing(ctx.backbone.tokenizer, texts, max_length, token_types)


def write(
    ctx: ModelContext, task: TaskRecord, run_id: int, computed: Computed, written: list
) -> list[ArtifactRecord]:
    """Write the statistics into run ``run_id``'s folder (atomically, each file) and return
    their ledger records; every path written is appended to ``written``."""
    from .context import write_record

    records = []
    folder = ctx.store.run_dir(task.name, run_id)
    for role, blob in computed.blobs().items():
        path = folder / FILES[role]
        records.append(
            write_record(ctx.store, path, blob, run_id=run_id, task_id=task.id, role=role)
        )
        written.append(path)
    return records


def recorded(ledger: Ledger, task: TaskRecord) -> dict[str, ArtifactRecord] | None:
    """The routing files that serve ``task``'s current run (its own, or the latest written
    after it by ``route-stats``), by role; None when it has none."""
    run = ledger.trained_run(task.id)
    if run is None:
        return None
    found: dict[str, ArtifactRecord] = {}
    for record in ledger.task_artifacts(task.id, ROUTING_ROLES):
        if record.run_id >= run.id:
            found[record.role] = record  # the latest wins
    return found if set(found) == set(ROUTING_ROLES) else None


def load(store: Any, task: TaskRecord, records: dict[str, ArtifactRecord]) -> tuple:
    """(statistics, their JSON) from verified files; a file that does not read is refused."""
    from ..eval.routing import RoutingStats

    for record in records.values():
        store.verify(record.path, record.sha256, task.name)
    try:
        stats = RoutingStats.from_tensors(store.load_tensors(records[ROUTING].path))
        meta = store.load_json(records[ROUTING_META].path)
        meta["max_length"] = int(meta["max_length"])
    except (KeyError, TypeError, ValueError, IndexError, ArtifactError) as exc:
        raise ArtifactError(
            f"task {task.name!r}: its routing files do not read ({exc}): restore them, or "
            "record new ones with `contlearn route-stats`"
        ) from exc
    return stats, meta


@dataclass(frozen=True)
class Loaded:
    """The router over trained tasks, and what each task's routing reads."""

    router: Router
    tasks: dict[str, TaskRecord]
    max_length: int


def router_for(ledger: Ledger, store: Any, tasks: list[TaskRecord]) -> Loaded:
    """The router over ``tasks`` (trained, in ledger order) from their verified files; refused
    in one line when there are none or one has no statistics."""
    from ..eval.routing import Router

    stats, max_length = load_stats(ledger, store, tasks)
    return Loaded(Router([t.name for t in tasks], stats), {t.name: t for t in tasks}, max_length)


def load_stats(ledger: Ledger, store: Any, tasks: list[TaskRecord]) -> tuple[list, int]:
    """Each task's statistics (verified) and the max length routing reads inputs at."""
    if not tasks:
        raise RoutingUnavailable(
            "no task is trained, so none can be chosen: train one with `contlearn train-next`"
        )
    stats, lengths = [], set()
    for task in tasks:
        records = recorded(ledger, task)
        if records is None:
            raise RoutingUnavailable(
                f"task {task.name!r} has no routing statistics (trained before routing "
                f"existed): {ROUTE_STATS_FIX}"
            )
        one, meta = load(store, task, records)
        stats.append(one)
        lengths.add(meta["max_length"])
    return stats, min(lengths)


def recheck(ctx: ModelContext, task: TaskRecord) -> list[str]:
    """An audit's findings on the task's routing files (none: they reproduce): recomputed under
    the recorded rule and thread count; under the same recipe they must be the same bytes,
    under another the same values within float rounding."""
    records = recorded(ctx.ledger, task)
    if records is None:
        return []
    stats, meta = load(ctx.store, task, records)
    train = replace(TrainConfig(), **meta["rule"])
    now = compute(ctx, task, train, threads=meta["recipe"].get("threads"))
    if same_recipe(meta["recipe"], now.meta["recipe"]):
        if files.sha256_bytes(now.blobs()[ROUTING]) == records[ROUTING].sha256:
            return []
        return [
            f"task {task.name!r}: its routing statistics do not reproduce bit for bit under "
            "the recipe they were recorded with; check the backbone and library versions"
        ]
    close = _close(stats, now.stats)
    return (
        []
        if close
        else [
            f"task {task.name!r}: its routing statistics differ from a recomputation on this "
            "device beyond float rounding; audit on the device they were recorded on"
        ]
    )


def _close(a: RoutingStats, b: RoutingStats) -> bool:
    import torch

    return a.count == b.count and all(
        x.shape == y.shape and torch.allclose(x.double(), y.double(), rtol=1e-3, atol=1e-4)
        for x, y in ((a.mean, b.mean), (a.scatter, b.scatter), (a.held_out, b.held_out))
    )
