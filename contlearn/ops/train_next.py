"""``train-next`` and ``retrain``: the queue. Check the settings, claim the next pending task
(or a trained task to train again) in one transaction, then hand it to ``train_task``.

Nothing here needs a model until a task is claimed, so an empty queue, an unknown task or a
bad setting comes back without loading the backbone (or importing torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import interrupts
from ..artifacts import ArtifactStore
from ..config import WorkspaceConfig
from ..errors import ConfigError, NoPendingTask, PeerFailed
from ..ledger.store import Ledger
from ..runtime.events import QUIET, Events
from ..runtime.runs import is_abandoned, record_failure, stamp
from ..runtime.settings import Resolved, check_queue_lengths, resolve
from ..train.world import SINGLE, World
from ..train.world import from_environment as world_from_environment

if TYPE_CHECKING:
    from ..runtime.context import ModelContext
    from ..runtime.results import RunResult


def train_pending(
    ledger: Ledger,
    store: ArtifactStore,
    defaults: WorkspaceConfig,
    *,
    all_tasks: bool = False,
    events: Events = QUIET,
    device: str | None = None,
    **overrides: Any,
) -> list[RunResult]:
    """Train the first pending task (or every pending task, in order). ``events`` hears each
    run's result as it finishes and each training's size and estimated time once its first
    steps are timed. ``device`` defaults to the workspace's (tasks.toml).

    Under ``torchrun`` every process of the world calls this: rank 0 claims each task and
    records it, the others train beside it and return nothing."""
    settings = resolve(defaults, overrides, device, _backbone_dtype(ledger))
    pending = [t for t in ledger.tasks() if t.status == "pending"]
    check_queue_lengths(
        defaults, pending if all_tasks else pending[:1], overrides, _identity(ledger)
    )
    world = world_from_environment()
    _check_sources(ledger, settings, pending[:1], world)
    if world.distributed:
        return _train_distributed(ledger, store, settings, world, all_tasks, events)
    ctx: ModelContext | None = None
    results: list[RunResult] = []
    while (claimed := ledger.claim_next_pending(_claim(), is_abandoned)) is not None:
        ctx = ctx or _open_and_load(ledger, store, settings, claimed[1], "pending")
        from ..runtime.train_task import train_one

        results.append(train_one(ctx, settings, *claimed, events=events))
        events.result(results[-1])
        if not all_tasks:
            break
    if not results:
        raise NoPendingTask("no pending task: `contlearn add-task NAME --data PATH` adds one")
    return results


def _train_distributed(ledger, store, settings, world, all_tasks, events) -> list[RunResult]:
    """The same queue over several processes: rank 0 claims a task and shares it, every rank
    trains it, rank 0 writes, verifies and records."""
    from .. import devices
    from ..train import distributed

    target = devices.resolve(distributed.rank_device(settings.device, world))
    world = distributed.start(world, target)
    main = world.main
    events = events if main else events.without_bars()
    ctx, results = None, []
    try:
        while True:
            claimed = distributed.share(
                world, ledger.claim_next_pending(_claim(), is_abandoned) if main else None
            )
            if claimed is None:
                break
            ctx = ctx or _open_and_load(
                ledger, store, settings, claimed[1], "pending", world, target
            )
            from ..runtime.train_task import train_one

            try:
                result = train_one(ctx, settings, *claimed, events=events)
                distributed.share(world, None)  # the others wait while rank 0 records
            except RuntimeError as exc:
                raise _peer_failure(exc, claimed[0].name) from exc
            if main:
                results.append(result)
                events.result(result)
            if not all_tasks:
                break
    except BaseException:
        distributed.stop(world, together=False)
        raise
    distributed.stop(world)
    if main and not results:
        raise NoPendingTask("no pending task: `contlearn add-task NAME --data PATH` adds one")
    return results


def retrain(
    ledger: Ledger,
    store: ArtifactStore,
    defaults: WorkspaceConfig,
    name: str,
    *,
    events: Events = QUIET,
    device: str | None = None,
    **overrides: Any,
) -> RunResult:
    """Train task ``name`` again, a new adapter from scratch. The new run becomes the task's
    current one only if it succeeds, its verification of every other trained task included;
    until then, and if it fails, the run before it serves the task."""
    settings = resolve(defaults, overrides, device, _backbone_dtype(ledger))
    check_queue_lengths(defaults, [ledger.task(name)], overrides, _identity(ledger))
    _check_sources(ledger, settings, [ledger.task(name)], world_from_environment())
    from ..runtime.fusion import refuse_if_read

    refuse_if_read(ledger, name, "retrain")
    task, run_id, current = ledger.claim_retrain(name, _claim(), is_abandoned)
    ctx = _open_and_load(ledger, store, settings, run_id, None)
    ctx.model.remove_task(task.name)  # the current version; the new run builds its own
    from ..runtime.train_task import train_one

    return train_one(
        ctx,
        settings,
        task,
        run_id,
        events=events,
        supersedes=current,
    )


def _check_sources(ledger: Ledger, settings: Resolved, tasks: list, world: World) -> None:
    """Before a task is claimed: the ``--init-from`` each of ``tasks`` asks for names a trained
    task it can start from (``runtime.init_from``), and a fusion task's fused tasks are
    trained pfeiffer tasks (``runtime.fusion``); both refused under a data-parallel world (only
    rank 0 loads the trained tasks)."""
    if not tasks:
        return  # nothing pending: the error that follows needs no model (nor torch)
    from ..runtime import fusion
    from ..runtime.init_from import check_init_from, requested
    from ..runtime.settings import method_name

    for task in tasks:
        name = requested(task, settings.overrides)
        method = method_name(settings.workspace.adapter, task.settings, settings.overrides)
        if name is None and method != fusion.METHOD:
            continue  # nothing read from other tasks (and the settings merged once, for the run)
        adapter = fusion.resolved(ledger, task, settings.task_configs(task)[1])
        reads = "--init-from" if name is not None else "method fusion"
        if world.distributed:
            raise ConfigError(
                f"task {task.name!r}: {reads} cannot train data-parallel yet (only rank 0 loads "
                "the trained tasks): train it in one process (without --nproc or torchrun)"
            )
        if name is not None:
            check_init_from(ledger, task, adapter, name)


def _claim() -> dict[str, Any]:
    """The values of the run a claim opens (its config is recorded once it starts)."""
    return {"method": "adapter", "config": {}, "versions": {}} | stamp()


PEER_SIGNS = ("gloo", "nccl", "connection", "timed out", "timeout", "socket")


def _peer_failure(exc: RuntimeError, task: str) -> Exception:
    """A collective that broke because another rank died or hung, as one line; any other
    RuntimeError as it was."""
    message = str(exc)
    if not any(sign in message.lower() for sign in PEER_SIGNS):
        return exc
    first = " ".join(message.split())[:160]
    return PeerFailed(
        f"another process of the data-parallel run stopped while training {task!r} ({first}): "
        "the run is recorded failed and the task is pending again; run train-next again"
    )


def _open_and_load(
    ledger: Ledger,
    store: ArtifactStore,
    settings: Resolved,
    run_id: int,
    task_status: str | None,
    world: World = SINGLE,
    target: Any = None,
) -> ModelContext:
    """The backbone, checked, with the trained tasks loaded (on rank 0: the others only
    train), the most recent ones when there are more than ``[workspace] resident_tasks``; if
    that fails, run ``run_id`` is recorded failed and its task set to ``task_status`` (None:
    left as it is). ``target``: this process's device (default: the command's)."""
    from ..runtime.context import build_context

    try:
        target = target if target is not None else settings.target
        ctx = build_context(ledger, store, target, settings.workspace, world)
        trained = [t for t in ledger.tasks() if t.status == "trained"] if world.main else []
        limit = ctx.residency.limit or len(trained)
        for task in trained[-limit:] if limit else ():
            ctx.load_task(task)
        interrupts.checkpoint()
    except BaseException as exc:
        if world.main:
            record_failure(ledger, run_id, exc, task_status=task_status, during="loading")
        raise
    return ctx


def _backbone_dtype(ledger: Ledger) -> str:
    recorded = ledger.backbone()
    return recorded.dtype if recorded is not None else "float32"


def _identity(ledger: Ledger) -> str:
    """The workspace's backbone as the ledger names it (a folder, or the packaged name)."""
    recorded = ledger.backbone()
    return recorded.identity if recorded is not None else ""
