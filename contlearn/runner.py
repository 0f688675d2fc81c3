"""``train-next``: claim the next pending task, train its adapter in isolation, write its
artifact atomically, verify every earlier task is bit-identical, and record it all.

Any failure marks the run failed with its error, removes what the run wrote, registers no
artifact and leaves the task pending for a retry.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import artifacts as art
from .adapters import count_parameters
from .batching import subsample
from .config import AdapterConfig, TrainConfig, with_overrides
from .errors import NoPendingTask, VerificationFailed
from .evaluation import CANONICAL_BATCH_SIZE, EvalResult, evaluate
from .ledger import ArtifactRecord, EvaluationRecord, RunRecord, TaskRecord
from .models import (
    ModelContext,
    artifact_config,
    artifact_paths,
    open_context,
    read_task_data,
)

if TYPE_CHECKING:
    from .workspace import Workspace

HOST = socket.gethostname()
LEASE = timedelta(seconds=float(os.environ.get("CONTLEARN_LEASE_SECONDS", "900")))
HEARTBEAT_SECONDS = 30.0


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_abandoned(run: RunRecord) -> bool:
    """A run whose process is gone (same host), or whose heartbeat is older than the lease."""
    if run.host == HOST and run.pid is not None and run.pid != os.getpid():
        return not process_alive(run.pid)
    beat = run.heartbeat_at or run.started_at
    if beat.tzinfo is None:
        beat = beat.replace(tzinfo=UTC)
    return datetime.now(UTC) - beat > LEASE


def heartbeat(ws: Workspace, run_id: int) -> Callable[[], None]:
    """A training-step callback that refreshes the run's heartbeat every 30 s at most."""
    last = [time.monotonic()]

    def beat() -> None:
        if time.monotonic() - last[0] >= HEARTBEAT_SECONDS:
            ws.ledger.heartbeat(run_id)
            last[0] = time.monotonic()

    return beat


TRAIN_KEYS = (
    "epochs",
    "lr",
    "batch_size",
    "max_length",
    "seed",
    "max_train_examples",
    "backbone_attention_dropout",
)


def train_pending(
    ws: Workspace,
    *,
    all_tasks: bool = False,
    progress: bool = False,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    **overrides: Any,
) -> list[dict[str, Any]]:
    """Train the first pending task (or every pending task, in order)."""
    ctx: ModelContext | None = None
    results: list[dict[str, Any]] = []
    while True:
        claimed = ws.ledger.claim_next_pending(
            {"method": "adapter", "config": {}, "versions": {}, "host": HOST, "pid": os.getpid()},
            is_abandoned,
        )
        if claimed is None:
            break
        try:
            ctx = ctx or _open_and_load(ws)
        except BaseException as exc:
            _record_failure(ws, claimed[1], exc)
            raise
        results.append(train_one(ctx, *claimed, overrides=overrides, progress=progress))
        if on_result is not None:
            on_result(results[-1])
        if not all_tasks:
            break
    if not results:
        raise NoPendingTask("no pending task: `contlearn add-task NAME --data PATH` adds one")
    return results


def _open_and_load(ws: Workspace) -> ModelContext:
    ctx = open_context(ws)
    for task in ws.ledger.tasks():
        if task.status == "trained":
            ctx.load_task(task)
    return ctx


def task_configs(ws: Workspace, task: TaskRecord, overrides: dict[str, Any]):
    """Workspace defaults, then the task's own settings, then command-line overrides."""
    settings = task.settings
    train = with_overrides(ws.config.train, max_length=settings.get("max_length"))
    train = with_overrides(train, **{k: overrides.get(k) for k in TRAIN_KEYS})
    adapter = with_overrides(ws.config.adapter, bottleneck=settings.get("bottleneck"))
    adapter = with_overrides(adapter, bottleneck=overrides.get("bottleneck"))
    return train, adapter


def train_one(
    ctx: ModelContext, task: TaskRecord, run_id: int, *, overrides: dict, progress: bool
) -> dict[str, Any]:
    ws = ctx.ws
    written: list = []
    verifications: list[EvaluationRecord] = []
    try:
        train_cfg, adapter_cfg = task_configs(ws, task, overrides)
        ws.ledger.update_run(run_id, **_run_config(ctx, train_cfg, adapter_cfg))
        ctx.check_backbone()
        outcome = _train(ctx, task, run_id, train_cfg, adapter_cfg, progress)
        records = _write_artifact(ctx, task, run_id, train_cfg, adapter_cfg, outcome, written)
        verifications = verify_earlier(ctx, task, progress=progress)
        require_identical(ctx, task, verifications)
        ctx.check_backbone()
    except BaseException as exc:
        _fail(ctx, task, run_id, exc, written, verifications)
        raise
    post = evaluation_record(task, outcome["eval"], "post-train")
    result = _result(ctx, task, run_id, outcome, records, verifications)
    ws.ledger.finish_run(
        run_id,
        status="succeeded",
        task_status="trained",
        artifacts=records,
        evaluations=[post, *verifications],
        seconds=outcome["train"].seconds,
        examples=outcome["train"].examples,
        examples_per_second=outcome["train"].examples_per_second,
        result=result,
    )
    return result


def _run_config(ctx: ModelContext, train: TrainConfig, adapter: AdapterConfig) -> dict[str, Any]:
    from .backbone import library_versions

    return {
        "config": {
            "train": asdict(train),
            "adapter": asdict(adapter),
            "canonical_eval": {"batch_size": CANONICAL_BATCH_SIZE, "dtype": "float32"},
            "backbone": ctx.backbone.identity,
        },
        "seed": train.seed,
        "versions": library_versions(),
    }


def _train(
    ctx: ModelContext,
    task: TaskRecord,
    run_id: int,
    train_cfg: TrainConfig,
    adapter_cfg: AdapterConfig,
    progress: bool,
) -> dict[str, Any]:
    from .training import seed_everything, train

    data = read_task_data(task)
    train_split = ctx.encode(task, subsampled(data.train, train_cfg), train_cfg.max_length)
    dev = ctx.encode(task, data.dev, train_cfg.max_length)
    model = ctx.model
    seed_everything(train_cfg.seed)  # the adapter and head initialisation follow the run's seed
    model.add_task(
        task.name, num_outputs=task.num_outputs, adapter=adapter_cfg, dropout=train_cfg.dropout
    )
    model.activate(task.name)
    with model.backbone_attention_dropout(keep=train_cfg.backbone_attention_dropout):
        result = train(
            model,
            model.trainable_parameters(task.name),
            train_split.encoded,
            train_split.targets,
            train_cfg,
            problem_type=task.problem_type,
            evaluate=lambda: evaluate_task(ctx, task, dev).primary_value,
            progress=progress,
            desc=task.name,
            on_step=heartbeat(ctx.ws, run_id),
        )
    final = evaluate_task(ctx, task, dev, progress=progress)
    return {"train": result, "eval": final}


def subsampled(rows: Any, train_cfg: TrainConfig) -> Any:
    """The deterministic training subset that ``max_train_examples`` asks for."""
    keep = subsample(len(rows.labels), train_cfg.max_train_examples, train_cfg.seed)
    if len(keep) == len(rows.labels):
        return rows
    return replace(
        rows,
        texts=tuple(rows.texts[i] for i in keep),
        labels=tuple(rows.labels[i] for i in keep),
    )


def evaluate_task(
    ctx: ModelContext,
    task: TaskRecord,
    split: Any,
    *,
    threads: int | None = None,
    batch_size: int = CANONICAL_BATCH_SIZE,
    progress: bool = False,
) -> EvalResult:
    """The canonical evaluation of ``task`` with its own adapter and head."""
    ctx.model.activate(task.name)
    return evaluate(
        ctx.model,
        split.encoded,
        split.targets,
        metrics=task.metrics,
        problem_type=task.problem_type,
        num_classes=None if task.labels is None else len(task.labels),
        threads=threads,
        batch_size=batch_size,
        progress=progress,
        desc=f"evaluating {task.name}",
    )


def _write_artifact(ctx, task, run_id, train_cfg, adapter_cfg, outcome, written):
    """Write weights, config and dev logits atomically; return their ledger records."""
    paths = artifact_paths(ctx.ws, task.name)
    for stale in ctx.ws.task_dir(task.name).glob(".*.tmp"):  # left by a killed writer
        stale.unlink(missing_ok=True)
    meta = artifact_config(task, adapter_cfg, train_cfg, ctx)
    meta["eval_threads"] = outcome["eval"].threads
    blobs = {
        "weights": art.tensors_bytes(ctx.model.task_state(task.name)),
        "config": art.json_bytes(meta),
        "logits": art.tensors_bytes({"logits": outcome["eval"].logits}),
    }
    trainable = count_parameters(ctx.model.tasks[task.name])
    backbone_params = count_parameters(ctx.model.backbone)
    records = []
    for role, blob in blobs.items():
        art.atomic_write(paths[role], blob)
        written.append(paths[role])
        records.append(
            ArtifactRecord(
                run_id=run_id,
                task_id=task.id,
                role=role,
                path=str(paths[role].relative_to(ctx.ws.root)),
                sha256=art.sha256_bytes(blob),
                bytes=len(blob),
                trainable_params=trainable if role == "weights" else None,
                backbone_params=backbone_params if role == "weights" else None,
            )
        )
    return records


def verify_earlier(
    ctx: ModelContext, current: TaskRecord, *, progress: bool = False
) -> list[EvaluationRecord]:
    """Reload every earlier trained task from disk, re-evaluate it, compare with its record."""
    records = []
    for task in ctx.ws.ledger.tasks():
        if task.status != "trained" or task.id == current.id:
            continue
        records.append(_verify_one(ctx, task, current, progress))
    return records


def require_identical(ctx: ModelContext, current: TaskRecord, records) -> None:
    """Fail loudly, naming them, if any earlier task's results changed."""
    changed = [r for r in records if not r.identical]
    if changed:
        names = ", ".join(repr(ctx.ws.ledger.task_by_id(r.task_id).name) for r in changed)
        raise VerificationFailed(
            f"earlier task {names} no longer reproduces its recorded results after training "
            f"{current.name!r}, which was not marked trained: run `contlearn audit` to see why"
        )


def recorded_post_train(ctx: ModelContext, task: TaskRecord) -> EvaluationRecord:
    run = ctx.ws.ledger.trained_run(task.id)
    return ctx.ws.ledger.evaluations(run_id=run.id, task_id=task.id, kind="post-train")[-1]


def _verify_one(ctx, task, current, progress) -> EvaluationRecord:
    recorded, now = reproduce(ctx, task, progress=progress)
    identical = now.logits_sha256 == recorded.logits_sha256 and now.metrics == recorded.metrics
    findings = [] if identical else [f"recorded {recorded.logits_sha256}, now {now.logits_sha256}"]
    return evaluation_record(
        task, now, "verification", after_task_id=current.id, identical=identical, findings=findings
    )


def reproduce(
    ctx: ModelContext, task: TaskRecord, *, progress: bool = False
) -> tuple[EvaluationRecord, EvalResult]:
    """Reload a trained task from its files and re-run its post-train evaluation exactly as it
    was recorded (max length, batch size and thread count); returns (recorded, now)."""
    recorded = recorded_post_train(ctx, task)
    meta = ctx.load_task(task)
    recipe = ctx.ws.ledger.trained_run(task.id).config.get("canonical_eval", {})
    dev = ctx.encode(task, read_task_data(task).dev, meta["train"]["max_length"])
    now = evaluate_task(
        ctx,
        task,
        dev,
        threads=recorded.threads,
        batch_size=recipe.get("batch_size", 64),
        progress=progress,
    )
    return recorded, now


def evaluation_record(
    task: TaskRecord, result: EvalResult, kind: str, **extra: Any
) -> EvaluationRecord:
    """The ledger record of one canonical evaluation."""
    return EvaluationRecord(
        task_id=task.id,
        kind=kind,
        metrics=result.metrics,
        primary_value=result.primary_value,
        example_count=result.example_count,
        logits_sha256=result.logits_sha256,
        predictions_sha256=result.predictions_sha256,
        threads=result.threads,
        seconds=result.seconds,
        **extra,
    )


def _fail(ctx, task, run_id, exc, written, verifications) -> None:
    """Undo what the run wrote and record why it failed; the task goes back to pending."""
    for path in written:
        path.unlink(missing_ok=True)
    if task.name in ctx.model.tasks:
        ctx.model.remove_task(task.name)
    _record_failure(ctx.ws, run_id, exc, verifications)


def _record_failure(ws: Workspace, run_id: int, exc: BaseException, evaluations=()) -> None:
    message = str(exc) or exc.__class__.__name__
    ws.ledger.finish_run(
        run_id,
        status="failed",
        task_status="pending",
        evaluations=evaluations,
        error=f"{exc.__class__.__name__}: {message}",
    )


def _result(ctx, task, run_id, outcome, records, verifications) -> dict[str, Any]:
    trained, final = outcome["train"], outcome["eval"]
    verifications_info = []
    for v in verifications:
        earlier = ctx.ws.ledger.task_by_id(v.task_id)
        verifications_info.append((v, earlier.name, recorded_post_train(ctx, earlier).metrics))
    weights = next(r for r in records if r.role == "weights")
    return {
        "task": task.name,
        "run_id": run_id,
        "metrics": final.metrics,
        "metric": task.metric,
        "logits_sha256": final.logits_sha256,
        "trainable_params": weights.trainable_params,
        "trainable_pct": 100.0 * weights.trainable_params / weights.backbone_params,
        "best_epoch": trained.best_epoch,
        "history": trained.history,
        "seconds": trained.seconds,
        "examples_per_second": trained.examples_per_second,
        "real_token_share": trained.real_token_share,
        "verifications": [
            {
                "task": name,
                "recorded": recorded,
                "now": v.metrics,
                "logits_sha256": v.logits_sha256,
                "identical": v.identical,
            }
            for v, name, recorded in verifications_info
        ],
    }
