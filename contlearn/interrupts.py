"""SIGINT and SIGTERM, stopped at a safe point.

While a command runs, either signal raises :class:`~contlearn.errors.Interrupted` where the
program is, so the run's own clean-up (remove what it wrote, record it interrupted, leave its
task pending) happens on the way out, except inside a ledger transaction (``held``): there the
signal waits until the transaction has committed or rolled back, and is raised at the next
``checkpoint`` (the next transaction, the next training step, or the command's end).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_state = {"depth": 0, "pending": None}  # this process's one signal disposition


def _handle(signum: int, _frame: Any) -> None:
    if _state["depth"]:
        _state["pending"] = signum
        return
    raise Interrupted(signum)


@contextmanager
def handled() -> Iterator[None]:
    """Deliver SIGINT and SIGTERM as ``Interrupted`` inside; the earlier handlers after (off
    the main thread, where Python allows no handler, nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {s: signal.signal(s, _handle) for s in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
        _state["pending"] = None


@contextmanager
def held() -> Iterator[None]:
    """A critical section: a signal arriving inside waits for the next ``checkpoint``."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1


def checkpoint() -> None:
    """A safe point: raise the signal that arrived during a critical section, if any."""
    signum = _state["pending"]
    if signum is not None and not _state["depth"]:
        _state["pending"] = None
        raise Interrupted(signum)
