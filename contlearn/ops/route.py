"""``route``: which trained task each row belongs to, chosen from the tasks' routing statistics
(:mod:`contlearn.eval.routing`), with its confidence; ``None`` for a row beyond the router's
"none of these" threshold. ``predict`` with the task ``auto`` routes rows here first.

A row can only go to a task whose text fields it holds; each row's features are computed from
the fields each candidate task reads, by the frozen backbone with no task active. Every row is
checked, and every routing file verified, before the backbone loads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..artifacts import ArtifactStore
from ..config import WorkspaceConfig
from ..errors import BadData
from ..ledger.records import TaskRecord
from ..ledger.store import Ledger
from ..naming import AUTO
from ..runtime import routing
from .rows import row_texts

if TYPE_CHECKING:
    from ..runtime.context import ModelContext

__all__ = ["AUTO", "Decision", "RoutedRows", "route"]


@dataclass(frozen=True)
class Decision:
    """Where one row goes: ``task`` (None: none of these), the ``confidence`` of the nearest
    task (its posterior among the row's candidate tasks), and that ``nearest`` task."""

    task: str | None
    confidence: float
    nearest: str

    def fields(self) -> dict[str, Any]:
        """What a result says of the decision."""
        shown: dict[str, Any] = {"task": self.task, "confidence": self.confidence}
        return shown if self.task is not None else {**shown, "nearest": self.nearest}


class RoutedRows:
    """Rows to route (by their index in a request), checked against the trained tasks' text
    fields and the router loaded from verified files, all before any model loads."""

    def __init__(self, ledger: Ledger, store: ArtifactStore, rows: list[Any], where: list[int]):
        self.loaded = routing.router_for(ledger, store, trained_tasks(ledger))
        self.where = where
        # per routed row: {task: its text fields in that task's order} for each candidate task
        self.texts = [self._candidates(rows[i], i) for i in where]

    def _candidates(self, row: Any, i: int) -> dict[str, tuple[str, ...]]:
        found = {}
        for name, task in self.loaded.tasks.items():
            try:
                found[name] = row_texts(row, i, task)
            except BadData:
                continue
        if not found:
            wanted = sorted({", ".join(t.text_fields) for t in self.loaded.tasks.values()})
            columns = ", ".join(map(str, row)) if isinstance(row, dict) else "none"
            raise BadData(
                f"row {i + 1} holds none of the trained tasks' text fields (they read "
                f"{' | '.join(wanted)}; the row's columns are {columns or 'none'}): "
                "name the text column as one of them"
            )
        return found

    def decide(self, ctx: ModelContext) -> list[Decision]:
        """Each routed row's decision, in the order of ``where``."""
        import torch

        from ..eval.routing import decide

        names = self.loaded.router.names
        unique: dict[tuple[str, ...], int] = {}
        keys: list[dict[str, int]] = []
        for texts in self.texts:
            keys.append({})
            for name, fields in texts.items():
                key = routing.routing_texts(self.loaded.tasks[name], [fields])[0]
                keys[-1][name] = unique.setdefault(key, len(unique))
        features = routing.features_of(ctx, list(unique), self.loaded.max_length)
        table = self.loaded.router.distances(features)  # [U, T]
        distance = torch.full((len(keys), len(names)), float("inf"), dtype=torch.float64)
        for r, row in enumerate(keys):
            for t, name in enumerate(names):
                if name in row:
                    distance[r, t] = table[row[name], t]
        routes = decide(distance, self.loaded.router.threshold)
        return [
            Decision(
                names[c] if ok else None,
                float(conf),
                names[c],
            )
            for c, conf, ok in zip(
                routes.choice.tolist(), routes.confidence, routes.in_scope.tolist(), strict=True
            )
        ]


def route(
    ledger: Ledger,
    store: ArtifactStore,
    rows: Iterable[dict[str, Any]],
    *,
    context: ModelContext | None = None,
    device: str = "auto",
    workspace: WorkspaceConfig | None = None,
) -> list[dict[str, Any]]:
    """One result per row, in input order: ``{"index", "id"?, "task", "confidence"}`` (and
    ``"nearest"`` when ``task`` is None: beyond the "none of these" threshold). ``context``
    reuses a loaded backbone; else one is loaded on ``device`` once every row is checked."""
    rows = list(rows)
    if not rows:
        return []
    routed = RoutedRows(ledger, store, rows, list(range(len(rows))))
    from ..runtime.context import open_context

    ctx = context or open_context(ledger, store, device, workspace=workspace)
    return [
        {"index": i, **({"id": row["id"]} if "id" in row else {}), **d.fields()}
        for i, (row, d) in enumerate(zip(rows, routed.decide(ctx), strict=True))
    ]


def trained_tasks(ledger: Ledger) -> list[TaskRecord]:
    """The trained tasks, in ledger order."""
    return [t for t in ledger.tasks() if t.status == "trained"]
