"""Training one claimed task: its adapter in isolation, its artifact written atomically into a
folder of its own with the task's routing statistics (:mod:`.routing`), every other trained
task verified bit-identical, and all of it recorded.

Any failure marks the run failed with its error, removes what the run wrote and registers no
artifact; a first training's task goes back to pending, a retrained task stays trained.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import devices, faults, files, interrupts
from ..config import TrainConfig
from ..eval.recipe import CANONICAL_BATCH_SIZE, EvalResult
from ..kinds import kind_of
from ..ledger.records import EvaluationRecord, TaskRecord
from ..ledger.store import Ledger
from ..model.adapted import count_parameters
from ..train.distributed import allreduce_bytes
from ..train.loop import TrainResult
from ..version import library_versions
from . import base_reference, fusion, init_from, routing
from .context import ModelContext, read_task_data, training_rows, write_record
from .current import CALIBRATION, recorded_post_train
from .evaluate import evaluate_task, evaluation_record
from .events import QUIET, Events
from .pace import chain, estimator, training_plan
from .results import RunResult, Verification
from .runs import heartbeat, record_failure
from .selection import Selection
from .settings import Resolved
from .verify import require_identical, verify_earlier


def train_one(
    ctx: ModelContext,
    settings: Resolved,
    task: TaskRecord,
    run_id: int,
    *,
    events: Events = QUIET,
    supersedes: int | None = None,
) -> RunResult | None:
    """Train ``task`` (claimed by run ``run_id``), write and verify; returns the run's result.
    ``supersedes`` is the run a retrain replaces (the task stays trained if this one fails).
    On a rank other than 0 of a data-parallel world it only trains, and returns None."""
    if not ctx.world.main:
        train_cfg, adapter_cfg = _configs(ctx, settings, task)
        fit_task(ctx, task, run_id, train_cfg, adapter_cfg, events.without_bars())
        return None
    written: list[Path] = []
    verifications: list[EvaluationRecord] = []
    stage = "preparing"  # what an interrupted run records it was doing
    try:
        train_cfg, adapter_cfg = _configs(ctx, settings, task)
        init = _init_plan(ctx, settings, task, train_cfg, adapter_cfg)
        reads = _fused(ctx, adapter_cfg)
        ctx.ledger.update_run(run_id, **run_config(ctx, train_cfg, adapter_cfg, init, reads))
        ctx.check_backbone()
        if kind_of(task).generates:  # the first generation task: the base model's reference
            stage = "recording the base reference"
            base_reference.ensure_recorded(ctx)
        stage = "training"
        outcome = fit_task(ctx, task, run_id, train_cfg, adapter_cfg, events, init)
        interrupts.checkpoint()
        stage = "writing artifacts"
        chose = None if outcome.calibration is None else {CALIBRATION: outcome.calibration}
        if init is not None:
            chose = (chose or {}) | {"init_from": init.record()}
        if reads:
            chose = (chose or {}) | {"fused": reads}
        records = write_artifact(
            ctx, task, run_id, train_cfg, adapter_cfg, outcome.final, written, chose
        )
        stage = "computing routing statistics"
        records += routing.write(ctx, task, run_id, routing.compute(ctx, task, train_cfg), written)
        stage = "verifying earlier tasks"
        began = time.perf_counter()
        with interrupts.interruptible():
            verifications = verify_earlier(ctx, task, settings=settings.verify, events=events)
            base = base_reference.check(ctx)
        verify_seconds = time.perf_counter() - began
        require_identical(ctx.ledger, task, verifications)
        base_reference.require_kept(base, task.name)
        ctx.check_backbone()
        stage = "committing"
        interrupts.checkpoint()  # the last safe point: after it the run commits
    except BaseException as exc:
        status = None if supersedes is not None else "pending"
        with interrupts.held():  # a second signal waits until the clean-up is recorded
            undo_run(ctx, task, run_id, exc, written, verifications, status, stage)
        raise
    post = evaluation_record(task, outcome.final, "post-train")
    ran = (supersedes, verify_seconds)
    result = replace(_result(ctx, task, run_id, outcome, records, verifications, ran), base=base)
    ctx.ledger.finish_run(
        run_id,
        status="succeeded",
        task_status="trained",
        artifacts=records,
        evaluations=[post, *verifications],
        seconds=outcome.train.seconds,
        examples=outcome.train.examples,
        examples_per_second=outcome.train.examples_per_second,
        result=result.as_dict(),
    )
    return result


def _configs(ctx: ModelContext, settings: Resolved, task: TaskRecord) -> tuple:
    """The run's training and method configs, the precision resolved on the context's device
    (a run records what it used, never "auto")."""
    train_cfg, adapter_cfg = settings.task_configs(task)
    adapter_cfg = fusion.resolved(ctx.ledger, task, adapter_cfg)  # the tasks a fusion reads
    return replace(train_cfg, precision=ctx.precision(train_cfg.precision)), adapter_cfg


def _init_plan(
    ctx: ModelContext, settings: Resolved, task: TaskRecord, train: TrainConfig, adapter: Any
) -> init_from.InitPlan | None:
    """Where the task's modules start (``--init-from``), checked again now that earlier runs of
    this command may have trained more tasks; None: fresh."""
    name = init_from.requested(task, settings.overrides)
    if name is None:
        return None
    candidates = init_from.check_init_from(ctx.ledger, task, adapter, name)
    return init_from.plan(ctx, task, candidates, name, train.max_length)


def _fused(ctx: ModelContext, adapter: Any) -> dict[str, str]:
    """For a fusion task: the tasks it reads, loaded (checksums verified), and the sha256 of
    their weights files by name, which its run and artifact record; else nothing."""
    if adapter.method != fusion.METHOD:
        return {}
    reads = fusion.weight_hashes(ctx.ledger, adapter.fuse)
    ctx.ensure([ctx.ledger.task(name) for name in adapter.fuse])
    return reads


def _made_with(ctx: ModelContext, adapter: Any) -> dict[str, str]:
    """The method and backbone family by name, so that a later release loads them by name, and
    how batches were padded (the tokenizer's own pad token, or its end-of-text token)."""
    return {"method": adapter.method, "family": ctx.model.family.name, "pad": ctx.backbone.pad}


def run_config(
    ctx: ModelContext,
    train: TrainConfig,
    adapter: Any,
    init: init_from.InitPlan | None = None,
    reads: dict[str, str] | None = None,
) -> dict[str, Any]:
    """What a run records of its configuration (``init``: where its modules started;
    ``reads``: a fusion task's fused tasks' weights sha256)."""
    started = {} if init is None else {"init_from": init.record()}
    started |= {"fused": reads} if reads else {}
    return {
        "config": {
            **_made_with(ctx, adapter),
            "train": asdict(train),
            "adapter": asdict(adapter),
            "canonical_eval": {"batch_size": CANONICAL_BATCH_SIZE, "dtype": ctx.backbone.dtype},
            "device": {"type": ctx.device.type, "model": devices.device_model(ctx.device)},
            **_distributed(ctx, train),
            "backbone": ctx.backbone.identity,
            **started,
        },
        "seed": train.seed,
        "versions": library_versions(),
    }


def _distributed(ctx: ModelContext, train: TrainConfig) -> dict[str, Any]:
    """What a data-parallel run records: the world size, backend and global batch."""
    if not ctx.world.distributed:
        return {}
    world = ctx.world
    global_batch = train.batch_size * world.size
    return {
        "distributed": {
            "world_size": world.size,
            "backend": world.backend,
            "global_batch": global_batch,
        }
    }


@dataclass(frozen=True)
class Fitted:
    """What fitting one task produced: the training (every rank) and, on rank 0, the final
    canonical dev evaluation, what the user should know about it, the bytes summed across
    processes per step, the frozen prefix cache's summary and what the task's kind chose on
    the selection split (``TaskKind.calibrate``; None: nothing)."""

    train: TrainResult
    final: EvalResult | None = None
    warnings: list[str] = field(default_factory=list)
    allreduce_bytes: int = 0
    prefix_cache: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None


def fit_task(
    ctx: ModelContext,
    task: TaskRecord,
    run_id: int,
    train_cfg: TrainConfig,
    adapter_cfg: Any,
    events: Events = QUIET,
    init: init_from.InitPlan | None = None,
) -> Fitted:
    from ..train.loop import train
    from ..train.seeding import seed_everything

    data = read_task_data(task)
    rows, held = training_rows(data.train, train_cfg)
    train_split = ctx.encode(task, rows, train_cfg.max_length, training=True)
    budget = train_cfg.max_new_tokens
    dev = ctx.dev_split(task, train_cfg.max_length, data, max_new_tokens=budget)
    pick = (
        dev if held is None else ctx.encode(task, held, train_cfg.max_length, max_new_tokens=budget)
    )
    select = Selection(ctx, task, pick, held_out=held is not None)
    model = ctx.model
    seed_everything(train_cfg.seed)  # the adapter and head initialisation follow the run's seed
    model.add_task(
        task.name,
        num_outputs=kind_of(task).num_outputs(task.labels),
        adapter=adapter_cfg,
        dropout=train_cfg.dropout,
        head=kind_of(task).head,
    )
    if init is not None:  # the earlier task's modules, copied (read, never written)
        init_from.apply(ctx, task.name, init)
    model.activate(task.name)
    main, world = ctx.world.main, ctx.world
    size = training_plan(
        len(train_split.encoded), train_cfg.epochs, train_cfg.batch_size * world.size
    )
    report = events.estimates(task=task.name, selection="dev" if held is None else "holdout")
    on_step = chain(heartbeat(ctx.ledger, run_id), estimator(size, report)) if main else None
    limit = train_cfg.prefix_cache_mb * 2**20 if train_cfg.cache_frozen_prefix else None
    with (
        faults.accelerator_memory(train_cfg.batch_size, ctx.device),
        model.backbone_attention_dropout(keep=train_cfg.backbone_attention_dropout),
        model.frozen_prefix(task.name, limit) if limit is not None else nullcontext() as cache,
    ):
        result = train(
            model,
            model.trainable_parameters(task.name),
            train_split.encoded,
            train_split.targets,
            train_cfg,
            kind=kind_of(task),
            evaluate=select,
            progress=events.bars,
            desc=task.name,
            on_step=on_step,
            device=ctx.device,
            world=world,
            prefix=cache,
        )
    if not main:
        return Fitted(result)
    chosen = select.chosen(result.best_epoch)
    final = evaluate_task(ctx, task, dev, events=events, calibration=chosen)
    sent = allreduce_bytes(model.trainable_parameters(task.name)) if world.distributed else 0
    return Fitted(
        result,
        final,
        kind_of(task).warnings(task.name, task.labels, dev.targets, final.logits),
        sent,
        None if cache is None else cache.summary(),
        chosen,
    )


def artifact_config(
    ctx: ModelContext, task: TaskRecord, adapter: Any, train: TrainConfig
) -> dict[str, Any]:
    """What ``adapter_config.json`` holds."""
    return {
        **_made_with(ctx, adapter),
        "task": task.name,
        "adapter": asdict(adapter),
        "train": asdict(train),
        "labels": task.labels,
        "problem_type": task.problem_type,
        "kind": kind_of(task).name,
        "head": kind_of(task).head,
        "text_fields": task.text_fields,
        "metrics": task.metrics,
        "num_outputs": kind_of(task).num_outputs(task.labels),
        "backbone": {
            "identity": ctx.backbone.identity,
            "fingerprint": ctx.backbone.fingerprint,
            "dtype": ctx.backbone.dtype,
        },
        "versions": library_versions(),
    }


def write_artifact(ctx, task, run_id, train_cfg, adapter_cfg, final, written, extra=None):
    """Write weights, config and dev logits (of ``final``, the canonical dev evaluation)
    atomically; return their ledger records.
    ``extra``: more keys for the config (where an imported adapter came from)."""
    paths = ctx.store.paths(task.name, run_id)  # a folder of its own: nothing else is in it
    meta = artifact_config(ctx, task, adapter_cfg, train_cfg) | (extra or {})
    meta["eval_threads"] = final.threads
    blobs = {
        "weights": files.tensors_bytes(ctx.model.task_state(task.name)),
        "config": files.json_bytes(meta),
        "logits": files.tensors_bytes({"logits": final.logits}),
    }
    where = ctx.store.relative(ctx.store.run_dir(task.name, run_id))
    faults.require_space(ctx.store.folder, sum(map(len, blobs.values())), where)
    trainable = count_parameters(ctx.model.tasks[task.name])
    backbone_params = count_parameters(ctx.model.backbone)
    records = []
    for role, blob in blobs.items():
        counts = {"trainable_params": trainable, "backbone_params": backbone_params}
        records.append(
            write_record(
                ctx.store,
                paths[role],
                blob,
                run_id=run_id,
                task_id=task.id,
                role=role,
                **(counts if role == "weights" else {}),
            )
        )
        written.append(paths[role])
    return records


def undo_run(ctx, task, run_id, exc, written, verifications, task_status, stage=None) -> None:
    """Undo what the run wrote and record why it failed; a first training's task goes back to
    pending, a retrained one stays trained."""
    for path in written:
        path.unlink(missing_ok=True)
    ctx.store.remove_empty(ctx.store.run_dir(task.name, run_id))
    if task.name in ctx.model.tasks:
        ctx.model.remove_task(task.name)
    record_failure(ctx.ledger, run_id, exc, verifications, task_status=task_status, during=stage)


def _result(ctx, task, run_id, outcome, records, verifications, ran) -> RunResult:
    """The run's result; ``ran``: the run a retrain replaces, and the seconds verifying took."""
    trained, final = outcome.train, outcome.final
    weights = next(r for r in records if r.role == "weights")
    return RunResult(
        task=task.name,
        run_id=run_id,
        metrics=final.metrics,
        metric=task.metric,
        logits_sha256=final.logits_sha256,
        trainable_params=weights.trainable_params,
        trainable_pct=100.0 * weights.trainable_params / weights.backbone_params,
        best_epoch=trained.best_epoch,
        history=trained.history,
        seconds=trained.seconds,
        examples_per_second=trained.examples_per_second,
        real_token_share=trained.real_token_share,
        warnings=outcome.warnings,
        world_size=ctx.world.size,
        allreduce_bytes_per_step=outcome.allreduce_bytes,
        prefix_cache=outcome.prefix_cache,
        verifications=tuple(verification_row(ctx.ledger, v) for v in verifications),
        supersedes=ran[0],
        verification_seconds=ran[1],
    )


def verification_row(ledger: Ledger, v: EvaluationRecord) -> Verification:
    """What a run's result says of one verification record."""
    earlier = ledger.task_by_id(v.task_id)
    recorded = recorded_post_train(ledger, earlier).metrics
    return Verification(
        task=earlier.name,
        recorded=recorded,
        now=v.metrics,
        metric=earlier.metric,
        shown=kind_of(earlier).shown_metrics(list(recorded), earlier.metric),
        logits_sha256=v.logits_sha256,
        identical=v.identical,
        outcome=v.outcome,
        mode=v.mode,
        examples_rerun=v.example_count,
    )
