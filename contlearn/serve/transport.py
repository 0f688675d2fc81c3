"""What ``contlearn serve`` adds to uvicorn's HTTP/1.1 connections (its h11 protocol) against
clients that hold them, and to its access log.

- A request's head must arrive within ``header_timeout`` seconds of the connection opening or
  of the previous answer: a connection that sends nothing, or its headers a byte at a time, is
  answered 408 and closed (uvicorn alone holds it for ever).
- At most ``max_connections`` are open: one more is answered 503 at once and closed.
- Both refusals close by lingering (as Apache does): the answer is sent, the sending side shut,
  and what the client still sends read and dropped until it closes or ``LINGER_SECONDS`` pass,
  so that it can read the answer instead of meeting a reset.
- The access log shows the names of a query string's parameters, never their values (a client
  may send a token there).
"""

from __future__ import annotations

import asyncio
import copy
import http
import json
import logging
from typing import Any

from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.h11_impl import H11Protocol

from .config import ServeConfig

log = logging.getLogger(__name__)
LINGER_SECONDS = 2.0
HIDDEN = "***"


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's head and a bound on open
    connections; :func:`protocol` makes one for a ServeConfig."""

    header_timeout: float = 10.0
    max_connections: int = 256

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._lingering: asyncio.TimerHandle | None = None
        if len(self.connections) > self.max_connections:
            log.warning("refused a connection: max_connections (%d) are open", self.max_connections)
            self._refuse(503, f"the server holds max_connections ({self.max_connections})")
        else:
            self._arm()

    def data_received(self, data: bytes) -> None:
        if self._lingering is not None:  # refused: what the client still sends is dropped
            return
        cycle = self.cycle
        super().data_received(data)
        if self.cycle is not cycle:  # a request's head arrived
            self._disarm()

    def on_response_complete(self) -> None:
        cycle = self.cycle
        super().on_response_complete()
        if self.cycle is cycle and not self.transport.is_closing():  # no request waiting
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._lingering is not None:
            self._lingering.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self._refuse(408, f"no request head within header_timeout ({self.header_timeout:g} s)")

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` outside h11 (no request was read), then close by lingering."""
        body = json.dumps({"error": message, "status": status}, separators=(",", ":")).encode()
        head = (
            f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self._lingering = self.loop.call_later(LINGER_SECONDS, self.transport.close)
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()  # its end of file once the answer is out; we read on


def protocol(config: ServeConfig) -> type[GuardedH11Protocol]:
    """The protocol class uvicorn makes each connection with, holding ``config``'s limits."""
    limits = {"header_timeout": config.header_timeout, "max_connections": config.max_connections}
    return type("GuardedH11Protocol", (GuardedH11Protocol,), limits)


class HiddenQuery(logging.Filter):
    """The access log's path with each query parameter's value hidden."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and "?" in str(args[2]):
            record.args = (*args[:2], hide_query(str(args[2])), *args[3:])
        return True


def hide_query(path: str) -> str:
    """``/healthz?token=abc&x`` -> ``/healthz?token=***&***``."""
    path, _, query = path.partition("?")
    pairs = (part.partition("=") for part in query.split("&"))
    return path + "?" + "&".join(name + "=" + HIDDEN if sep else HIDDEN for name, sep, _ in pairs)


def log_config() -> dict[str, Any]:
    """uvicorn's logging, with :class:`HiddenQuery` on its access log."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["hidden_query"] = {"()": HiddenQuery}
    config["loggers"]["uvicorn.access"]["filters"] = ["hidden_query"]
    return config


def uvicorn_settings(config: ServeConfig) -> dict[str, Any]:
    """The keyword arguments of ``uvicorn.Config`` that put these defences in place."""
    return {"http": protocol(config), "log_config": log_config()}
