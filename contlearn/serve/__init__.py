"""``contlearn serve``: one backbone in memory answering for every trained task over HTTP.

``app(workspace)`` is the ASGI application, for any ASGI server; ``run(workspace, config)`` is
what the command does (the model loaded first, then uvicorn until SIGTERM or Ctrl-C). The
modules: ``config`` (ServeConfig), ``catalog`` (the served tasks, hot-loaded and verified),
``batching`` (the queue), ``worker`` (the model's thread), ``bodies`` (request checks),
``metrics`` (Prometheus text), ``asgi`` (the endpoints), ``runner`` (uvicorn); for generation
tasks ``generating`` (request checks), ``completions`` (the endpoints, streaming) and
``openai`` (OpenAI's shapes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import ServeConfig


def app(
    workspace: str | Path | Any, config: ServeConfig | None = None, *, db: str | None = None
) -> Any:
    """The ASGI application serving ``workspace`` (a folder or an open Workspace); the model
    loads when the ASGI server starts the app (its lifespan)."""
    from .asgi import build
    from .runner import worker_for

    return build(worker_for(workspace, config or ServeConfig(), db=db))


__all__ = ["ServeConfig", "app"]
