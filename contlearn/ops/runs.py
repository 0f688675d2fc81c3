"""What every run shares: the host and process that ran it, its heartbeat, how a run whose
process died is recognised, and how a failure is recorded."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

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


def heartbeat(ledger: Ledger, run_id: int) -> Callable[[], None]:
    """A training-step callback that refreshes the run's heartbeat every 30 s at most."""
    last = [time.monotonic()]

    def beat() -> None:
        if time.monotonic() - last[0] >= HEARTBEAT_SECONDS:
            ledger.heartbeat(run_id)
            last[0] = time.monotonic()

    return beat


def error_text(exc: BaseException) -> str:
    """How a run records the exception that ended it."""
    return f"{exc.__class__.__name__}: {str(exc) or exc.__class__.__name__}"


def record_failure(
    ledger: Ledger,
    run_id: int,
    exc: BaseException,
    evaluations: Sequence[EvaluationRecord] = (),
    task_status: str | None = "pending",
) -> None:
    """Mark the run failed with its error; a training run's task goes back to pending."""
    ledger.finish_run(
        run_id,
        status="failed",
        task_status=task_status,
        evaluations=evaluations,
        error=error_text(exc),
    )
