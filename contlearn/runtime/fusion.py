"""What a ``fusion`` task (``model.methods.fusion``) reads, as the ledger knows it: which earlier
tasks it fuses (named, or by default every trained ``pfeiffer`` task with shared norms), the
sha256 of their weights files that its artifact names and its loading checks, and which fusion
tasks read a given task (``remove`` and ``retrain`` of such a task are refused)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..errors import ArtifactError, ConfigError
from ..ledger.records import TaskRecord
from ..ledger.store import Ledger
from ..model.methods.fusion import FUSABLE
from ..model.methods.registry import UNNAMED
from .current import trained_artifacts

METHOD = "fusion"


def fusable(ledger: Ledger, task: TaskRecord) -> bool:
    """Whether trained ``task``'s adapters can be fused: a pfeiffer task with shared norms."""
    config = ledger.trained_run(task.id).config
    adapter = config.get("adapter", {})
    return config.get("method", UNNAMED) == FUSABLE and adapter.get("norms") == "shared"


def resolved(ledger: Ledger, task: TaskRecord, adapter: Any) -> Any:
    """``adapter`` with the tasks it fuses named (a fusion config; any other as it is), each
    checked: trained, not ``task`` itself, fusable. Raises :class:`ConfigError` naming the fix."""
    if adapter.method != METHOD:
        return adapter
    trained = {t.name: t for t in ledger.tasks() if t.status == "trained" and t.name != task.name}
    if not adapter.fuse:
        names = tuple(n for n, t in trained.items() if fusable(ledger, t))
        if not names:
            raise ConfigError(
                f"task {task.name!r}: fusion needs a trained {FUSABLE} task with shared norms "
                "to read: train one first (--method pfeiffer), or choose another method"
            )
        return replace(adapter, fuse=names)
    for name in adapter.fuse:
        if name not in trained:
            raise ConfigError(
                f"task {task.name!r}: --fuse names {name!r}, which is not a trained task other "
                f"than it (trained: {', '.join(trained) or 'none'}): fuse trained tasks"
            )
        if not fusable(ledger, trained[name]):
            raise ConfigError(
                f"task {task.name!r}: --fuse names {name!r}, which is not a {FUSABLE} task with "
                f"shared norms: fuse only such tasks"
            )
    return adapter


def weight_hashes(ledger: Ledger, names: Any) -> dict[str, str]:
    """The sha256 of each of tasks ``names``' current weights file, by task name."""
    return {name: trained_artifacts(ledger, ledger.task(name))["weights"].sha256 for name in names}


def check_recorded(ledger: Ledger, task: TaskRecord, meta: dict[str, Any]) -> list[TaskRecord]:
    """The tasks a fusion task's artifact config ``meta`` names, each checked to be trained
    with the weights whose sha256 it records; raises :class:`ArtifactError` otherwise."""
    named = meta.get("fused")
    if not isinstance(named, dict) or set(named) != set(meta["adapter"].get("fuse", ())):
        raise ArtifactError(
            f"task {task.name!r}: its config does not name the weights it fuses: restore it"
        )
    now = weight_hashes(ledger, named)
    for name, sha in named.items():
        if now[name] != sha:
            raise ArtifactError(
                f"task {task.name!r} fuses {name!r} weights {sha[:12]}, but {name!r} now has "
                f"{now[name][:12]}: restore {name!r}'s run, or retrain {task.name!r}"
            )
    return [ledger.task(name) for name in named]


def dependents(ledger: Ledger, name: str) -> list[str]:
    """The trained fusion tasks that read task ``name``'s adapters."""
    found = []
    for task in ledger.tasks():
        run = ledger.trained_run(task.id) if task.status == "trained" else None
        config = run.config if run is not None else {}
        if config.get("method") == METHOD and name in config.get("adapter", {}).get("fuse", ()):
            found.append(task.name)
    return found


def refuse_if_read(ledger: Ledger, name: str, doing: str) -> None:
    """Refuse ``doing`` (remove, retrain) task ``name`` while a fusion task reads it."""
    readers = dependents(ledger, name)
    if readers:
        raise ConfigError(
            f"cannot {doing} task {name!r}: fusion task(s) {', '.join(readers)} read its "
            f"adapters: remove {readers[0]!r} first"
        )
