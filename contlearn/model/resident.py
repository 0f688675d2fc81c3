"""Which tasks' modules are built on the device: at most ``limit`` (0: no limit), the least
recently used leaving first, so that a process serving a thousand tasks holds only the ones its
recent batches needed. What leaves is rebuilt on demand by its owner (from the CPU copy it keeps,
or from the artifact on disk)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable


class Residency:
    """The order in which resident tasks were last used, and the limit on how many stay."""

    def __init__(self, limit: int = 0):
        if limit < 0:
            raise ValueError(f"the resident task limit must be >= 0 (0: none), got {limit}")
        self.limit = limit
        self._order: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, name: str) -> bool:
        return name in self._order

    def __len__(self) -> int:
        return len(self._order)

    def use(self, name: str) -> None:
        """``name`` is resident and was just used."""
        self._order[name] = None
        self._order.move_to_end(name)

    def forget(self, name: str) -> None:
        self._order.pop(name, None)

    def over(self, keep: Iterable[str] = ()) -> list[str]:
        """The least recently used tasks to evict to get back within the limit, never one of
        ``keep`` (a batch's own tasks stay even if they alone exceed it)."""
        if not self.limit or len(self._order) <= self.limit:
            return []
        keep = set(keep)
        excess = len(self._order) - self.limit
        victims = [name for name in self._order if name not in keep][:excess]
        for name in victims:
            del self._order[name]
        return victims
