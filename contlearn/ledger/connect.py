"""Reaching the ledger's database when the environment misbehaves: a server that restarts or
is down for a while is retried with backoff before a transaction begins, and a database error
that is a fault of the environment (locked, full, read-only, unreachable) gets its name.

Only connecting is retried: nothing has been sent yet, so it is safe for every step. A
transaction that loses its server half-way is not retried (its commit may or may not have
happened); it fails with :class:`~contlearn.errors.LedgerUnavailable`, and a claimed task whose
run never finished is taken over later as abandoned."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from .. import faults
from ..errors import LedgerUnavailable
from .engine import busy_timeout, sqlite_path

log = logging.getLogger(__name__)
FIRST_WAIT, LONGEST_WAIT = 0.5, 8.0


def retry_seconds() -> float:
    """How long contlearn waits for an unreachable ledger server (default 60 s)."""
    return float(os.environ.get("CONTLEARN_LEDGER_RETRY_SECONDS", "60"))


def describe(engine: Engine) -> str:
    """The ledger as a message names it: the SQLite file, or the server and database (no
    password)."""
    path = sqlite_path(str(engine.url))
    if path is not None:
        return str(path)
    url = engine.url
    return f"{url.get_backend_name()}://{url.host}:{url.port or ''}/{url.database}"


def connected(session: Any, engine: Engine) -> None:
    """Give ``session`` its connection, retried while the server cannot be reached."""
    _retrying(engine, session.connection, session.close)


def reachable(engine: Engine) -> None:
    """Wait (as ``connected``) until ``engine``'s server accepts a connection."""

    def attempt() -> None:
        with engine.connect():
            pass

    _retrying(engine, attempt, lambda: None)


def _retrying(engine: Engine, attempt: Any, reset: Any) -> None:
    """Call ``attempt``; on a server, retry a refused or dropped connection with backoff (0.5 s
    doubling to 8 s) for ``retry_seconds``, then raise naming how long it waited. An SQLite
    file has no server to wait for: nothing is attempted."""
    if engine.dialect.name == "sqlite":
        return
    start, wait, attempts = time.monotonic(), FIRST_WAIT, 0
    while True:
        attempts += 1
        try:
            attempt()
            return
        except OperationalError as exc:
            reset()
            waited = time.monotonic() - start
            if waited >= retry_seconds():
                raise faults.unreachable(describe(engine), waited, attempts, exc) from exc
            if attempts == 1:
                log.warning(
                    "the ledger server %s is unreachable; retrying for up to %.0f s",
                    describe(engine),
                    retry_seconds(),
                )
            time.sleep(min(wait, retry_seconds() - waited))
            wait = min(wait * 2, LONGEST_WAIT)


def fault(exc: Exception, engine: Engine) -> Exception | None:
    """The named error for a database error on ``engine``'s ledger, or None."""
    named = faults.database_fault(exc, describe(engine), busy_timeout())
    if named is None and isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return LedgerUnavailable(
            f"lost the connection to the ledger server {describe(engine)} during a "
            "transaction: run the command again once it is up (a run it left unfinished is "
            "taken over then)"
        )
    return named
