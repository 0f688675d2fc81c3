"""What every run shares: the host and process that ran it, its heartbeat, how a run whose
process died is recognised, and its lifecycle: opened (``recorded_run``), its failure recorded
under the signal guard (``failure_recorded``), finished by its use case in one transaction."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import interrupts
from ..ledger.records import EvaluationRecord, RunRecord
from ..ledger.store import Ledger
from ..version import library_versions

HOST = socket.gethostname()
LEASE = timedelta(seconds=float(os.environ.get("CONTLEARN_LEASE_SECONDS", "900")))
HEARTBEAT_SECONDS = 30.0


def stamp() -> dict[str, Any]:
    """The host and process id a run records."""
    return {"host": HOST, "pid": os.getpid()}


def run_values(purpose: str, config: dict[str, Any], **values: Any) -> dict[str, Any]:
    """The ledger values that open a run: purpose, config, library versions, host and pid."""
    return {"purpose": purpose, "config": config, "versions": library_versions()} | stamp() | values


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


def fail_abandoned(ledger: Ledger, reason: str) -> list[int]:
    """Record every running training run of this host whose process is gone failed with
    ``reason``, its task pending again (a process killed before it could record its own
    failure); returns their ids."""
    gone = [
        run
        for run in ledger.runs(purpose="train")
        if run.status == "running" and run.host == HOST and is_abandoned(run)
    ]
    for run in gone:
        ledger.finish_run(run.id, status="failed", task_status="pending", error=reason)
    return [run.id for run in gone]


def heartbeat(ledger: Ledger, run_id: int) -> Callable[[], None]:
    """A training-step callback that refreshes the run's heartbeat every 30 s at most."""
    last = [time.monotonic()]

    def beat() -> None:
        interrupts.checkpoint()  # every step is a safe point
        if time.monotonic() - last[0] >= HEARTBEAT_SECONDS:
            ledger.heartbeat(run_id)
            last[0] = time.monotonic()

    return beat


def error_text(exc: BaseException, during: str | None = None) -> str:
    """How a run records the exception that ended it (and, for a signal, what it was doing)."""
    if isinstance(exc, KeyboardInterrupt):
        signal = getattr(exc, "signum", None)
        name = "SIGINT" if signal is None else str(exc)
        return f"interrupted by {name}" + (f" while {during}" if during else "")
    return f"{exc.__class__.__name__}: {str(exc) or exc.__class__.__name__}"


@contextmanager
def recorded_run(ledger: Ledger, values: dict[str, Any], during: str) -> Iterator[int]:
    """Open a run with ``values`` (``run_values``) and yield its id; if anything inside raises,
    the run is recorded failed (or interrupted) under the signal guard and the error re-raised.
    The caller finishes a run that succeeded."""
    run_id = ledger.start_run(**values)
    with failure_recorded(ledger, run_id, during):
        yield run_id


@contextmanager
def failure_recorded(ledger: Ledger, run_id: int, during: str) -> Iterator[None]:
    """Record run ``run_id`` failed (or interrupted) if anything inside raises, then re-raise;
    a task's status stays as it is."""
    try:
        yield
    except BaseException as exc:
        with interrupts.held():
            record_failure(ledger, run_id, exc, task_status=None, during=during)
        raise


def record_failure(
    ledger: Ledger,
    run_id: int,
    exc: BaseException,
    evaluations: Sequence[EvaluationRecord] = (),
    task_status: str | None = "pending",
    during: str | None = None,
) -> None:
    """Mark the run failed with its error (interrupted, for SIGINT or SIGTERM); a training
    run's task goes back to pending."""
    ledger.finish_run(
        run_id,
        status="interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
        task_status=task_status,
        evaluations=evaluations,
        error=error_text(exc, during),
    )
