"""SIGINT and SIGTERM, stopped at a safe point.

While a command runs (``handled``), a signal is held until a safe point: a ``checkpoint`` (each
training step, between the phases of a run, before its commit, the command's end) raises it as
:class:`~contlearn.errors.Interrupted`, so the run's own clean-up (remove what it wrote, record
it interrupted, leave its task pending) happens on the way out. Inside an ``interruptible``
region (training epochs, evaluation, prediction: computation only) it is raised at once, except
inside a ledger transaction (``held``), which it never splits. Raising anywhere else could land
inside an import or a file's rename. A second signal while one is held is raised at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)
# The process's one signal disposition: held transactions, open regions, the held signal,
# and what a signal raises where it is not an interruption (``raises``).
_state: dict[str, Any] = {"held": 0, "open": 0, "pending": None, "raises": {}}


def raises(signum: int, make: Callable[[int], BaseException]) -> None:
    """From now on signal ``signum`` raises ``make(signum)`` instead of :class:`Interrupted`
    (at the same safe points): in a process ``torchrun`` started, its SIGTERM means another
    process of the run failed."""
    _state["raises"][signum] = make


def _error(signum: int) -> BaseException:
    make = _state["raises"].get(signum)
    return Interrupted(signum) if make is None else make(signum)


def _handle(signum: int, _frame: Any) -> None:
    again = _state["pending"] is not None
    if not _state["held"] and (_state["open"] or again):
        _state["pending"] = None
        raise _error(signum)
    _state["pending"] = signum


@contextmanager
def handled() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the safe points inside; the earlier handlers after (off
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
        _state["raises"].clear()


@contextmanager
def held() -> Iterator[None]:
    """A critical section (a ledger transaction): a signal waits for the next checkpoint."""
    _state["held"] += 1
    try:
        yield
    finally:
        _state["held"] -= 1


@contextmanager
def interruptible() -> Iterator[None]:
    """Computation a signal may stop at once (a signal already held is raised on entry)."""
    checkpoint()
    _state["open"] += 1
    try:
        yield
    finally:
        _state["open"] -= 1


def checkpoint() -> None:
    """A safe point: raise the signal held since the last one, if any."""
    signum = _state["pending"]
    if signum is not None and not _state["held"]:
        _state["pending"] = None
        raise _error(signum)
