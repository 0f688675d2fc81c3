"""What a command tells its user while it works, as one object built at the top (the CLI or the
Python API) and handed down, as Avalanche's plugin callbacks are: whether progress bars are
drawn, each training's size and estimated time once its first steps are timed, each finished
run and each finished trade-off point. Every hook does nothing by default, so a caller that
hands none hears nothing, and no layer between the top and the hook threads a callback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .pace import Report
from .results import RunResult

Hear = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Events:
    """bars: draw progress bars (the CLI: only on a terminal, never with --quiet or --json).
    on_estimate: a training's plan and estimated seconds; on_result: a finished run's result;
    on_point: a finished trade-off point's row; on_note: a line worth telling while predicting
    (long work begins without bars; a task's rows ran in batches of their own)."""

    bars: bool = False
    on_estimate: Report | None = None
    on_result: Callable[[RunResult], None] | None = None
    on_point: Hear | None = None
    on_note: Callable[[str], None] | None = None

    def estimates(self, **about: Any) -> Report | None:
        """The estimate hook of one training, its plan headed by ``about`` (its task, how it
        picks its best epoch, the method); None when nobody listens, so nothing is timed."""
        if self.on_estimate is None:
            return None
        hear = self.on_estimate
        return lambda plan: hear({**about, **plan})

    def result(self, result: RunResult) -> None:
        if self.on_result is not None:
            self.on_result(result)

    def point(self, row: dict[str, Any]) -> None:
        if self.on_point is not None:
            self.on_point(row)

    def note(self, message: str) -> None:
        if self.on_note is not None:
            self.on_note(message)

    def without_bars(self) -> Events:
        """The same hooks, no progress bars (a data-parallel rank other than 0)."""
        return replace(self, bars=False)


QUIET = Events()
