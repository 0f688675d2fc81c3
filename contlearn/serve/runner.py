"""Running the server: the model's thread for a workspace, loaded before uvicorn listens, and
uvicorn until SIGTERM or Ctrl-C, when it stops taking connections, answers the requests in
flight, the model's thread finishes the queued batches, and the process exits with status 0."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

from .config import ServeConfig
from .worker import ModelWorker

log = logging.getLogger(__name__)
GRACEFUL_SECONDS = 30  # how long a shutdown waits for requests in flight


def worker_for(
    workspace: str | Path | Any, config: ServeConfig, *, db: str | None = None
) -> ModelWorker:
    """The (not yet started) model thread for ``workspace``: a folder or an open Workspace."""
    from ..api import Workspace

    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace, db=db)
    return ModelWorker(ws.ledger, ws.store, config)


def run(workspace: str | Path | Any, config: ServeConfig, *, db: str | None = None) -> None:
    """Load the backbone and the trained tasks, then serve until told to stop."""
    import uvicorn

    from .asgi import build
    from .transport import uvicorn_settings

    worker = worker_for(workspace, config, db=db)
    worker.start()  # a backbone or ledger problem stops here, before anything listens
    served = sorted(worker.snapshot.served)
    log.info("serving %d tasks: %s", len(served), ", ".join(served) or "none yet")
    if config.token is None and not config.loopback:
        log.warning("listening on %s without a token: anyone who reaches it can query", config.host)
    for stop in (signal.SIGTERM, signal.SIGINT):  # uvicorn raises them again once it stopped
        signal.signal(stop, _stopped)
    uvicorn.run(
        build(worker),
        host=config.host,
        port=config.port,
        log_level="info",
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        **uvicorn_settings(config),
    )


def _stopped(signum: int, frame: Any) -> None:
    """After a graceful shutdown on SIGTERM or Ctrl-C: exit with status 0."""
    log.info("stopped on %s", signal.Signals(signum).name)
    raise SystemExit(0)
