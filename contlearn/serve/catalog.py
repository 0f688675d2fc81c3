"""Which tasks the server answers for: the ledger's trained tasks whose artifacts verify.

The model's thread refreshes the catalog every poll, so a task that ``train-next`` (or
``retrain``) finishes is served without a restart: its artifact is checked against the sha256
the ledger records and loaded before any request reaches it. An artifact that does not match is
refused (logged; the other tasks keep being served) and checked again on the next poll; a task
still pending or training is not served. The event loop reads :attr:`Catalog.snapshot`, which
each refresh replaces whole.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from ..data.columns import text_aliases
from ..errors import ContlearnError
from ..kinds import kind_of
from ..ledger.records import TaskRecord
from ..ops.intake import status
from ..runtime.context import ModelContext
from ..runtime.current import trained_artifacts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedTask:
    """A task the server answers for; ``info`` is what ``GET /v1/tasks`` shows of it;
    ``generates``: its kind generates text (served by the generation endpoints too)."""

    name: str
    text_fields: tuple[str, ...]
    weights_sha256: str
    info: dict[str, Any]
    aliases: dict[str, str] = field(default_factory=dict)  # text field -> its other name
    generates: bool = False


@dataclass(frozen=True)
class Snapshot:
    """The catalog at one poll: served tasks, refused ones (name -> why, for the log), and the
    status of every registered task that is not trained (pending or training)."""

    served: dict[str, ServedTask] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    untrained: dict[str, str] = field(default_factory=dict)


class Catalog:
    """The served tasks of one model context; only the thread that owns the context refreshes."""

    def __init__(self, ctx: ModelContext) -> None:
        self.ctx = ctx
        self.snapshot = Snapshot()
        self._recheck: set[str] = set()

    def recheck(self, names: set[str]) -> None:
        """Verify these served tasks' files again at the next refresh (one failed to load)."""
        self._recheck |= names

    def refresh(self) -> Snapshot:
        """Read the ledger again; load (verified) every task trained or retrained since."""
        ledger, before = self.ctx.ledger, self.snapshot
        rows = {row["name"]: row for row in status(ledger)}
        served: dict[str, ServedTask] = {}
        refused: dict[str, str] = {}
        untrained: dict[str, str] = {}
        for task in ledger.tasks():
            if task.status != "trained":
                untrained[task.name] = task.status
                continue
            entry = self._serve(task, rows.get(task.name, {}), before)
            if isinstance(entry, ServedTask):
                served[task.name] = entry
            else:
                refused[task.name] = entry
        self._recheck.clear()
        self.snapshot = Snapshot(served, refused, untrained)
        self._unload(set(before.served) - set(served))
        return self.snapshot

    def _serve(self, task: TaskRecord, row: dict[str, Any], before: Snapshot) -> ServedTask | str:
        """The task, served; or why its artifact was refused."""
        sha256 = trained_artifacts(self.ctx.ledger, task)["weights"].sha256
        known = before.served.get(task.name)
        if known is not None and known.weights_sha256 == sha256 and task.name not in self._recheck:
            return known
        try:
            self.ctx.load_task(task)  # checks both files' sha256 before reading them
        except ContlearnError as exc:
            if before.refused.get(task.name) != str(exc):
                log.warning("refused task %r, the others are still served: %s", task.name, exc)
            return str(exc)
        log.info("%s task %r", "reloaded" if known else "serving", task.name)
        aliases = text_aliases(task.glue_task, task.text_fields)
        fields, generates = tuple(task.text_fields), kind_of(task).generates
        return ServedTask(task.name, fields, sha256, _info(task, row), aliases, generates)

    def _unload(self, names: set[str]) -> None:
        for name in sorted(names):
            self.ctx.unload(name)
            log.info("no longer serving task %r: %s", name, _gone(self.snapshot, name))


def _gone(snapshot: Snapshot, name: str) -> str:
    """Why a task served until now is not served any more."""
    if name in snapshot.refused:
        return f"its artifact is refused ({snapshot.refused[name]})"
    if name in snapshot.untrained:
        return f"it is {snapshot.untrained[name]} in the ledger"
    return "it is no longer in the ledger"


def _info(task: TaskRecord, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": task.name,
        "method": row.get("method"),
        "problem_type": task.problem_type,
        "kind": kind_of(task).name,
        "labels": task.labels,
        "regression": kind_of(task).predicts == "value",
        "metric": task.metric,
        "score": row.get("score"),
        "trained_at": task.trained_at.isoformat() if task.trained_at else None,
        "text_fields": list(task.text_fields),
    }
