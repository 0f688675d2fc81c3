"""The server's settings: where it listens, how it batches, what it accepts, as one frozen,
validated :class:`ServeConfig`."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..devices import check_spec
from ..errors import ConfigError
from ..kinds.generation import MAX_NEW_TOKENS
from ..validation import check, check_types

MAX_BODY_BYTES = 1 << 20  # 1 MiB: 64 rows of 10,000 characters fit with room to spare
MAX_ROWS = 64
MAX_TEXT_CHARS = 10_000
MAX_QUEUED_ROWS = 4096
HEADER_TIMEOUT = 10.0  # seconds for a request's head: a client's headers fit in one packet
BODY_TIMEOUT = 30.0  # seconds for a whole body: 1 MiB at 35 KB/s
MAX_TOKENS = 256  # tokens a generation request may ask for (its max_tokens) at most
MAX_CONNECTIONS = 256  # open connections: a quarter of the usual 1,024 open files


@dataclass(frozen=True)
class ServeConfig:
    """How ``contlearn serve`` runs.

    max_batch: rows per forward at most (a request is never split: one with more rows than this
    runs alone); max_wait_ms: how long the first queued request waits for others to join it.
    max_batch 1 turns dynamic batching off (one request per forward). poll_seconds: how often
    the ledger is read for newly trained tasks. max_body_bytes, max_rows (per request),
    max_text_chars (per text field) bound a request; max_queued_rows bounds the queue (503
    beyond it). threads: the CPU threads a forward uses (default :func:`serving_threads`).
    token: the bearer token every endpoint but /healthz requires (None: none). header_timeout:
    seconds a connection has to send a request's head (from its opening, or from the previous
    answer; 408 and closed after); body_timeout: seconds to receive a whole body (408);
    max_connections: connections open at once (one more is answered 503 and closed).
    max_tokens: the most tokens a generation request may ask for (1-1024; more is a 400).
    header_timeout and max_connections hold under ``contlearn serve`` (its uvicorn protocol);
    another ASGI server applies its own.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    device: str = "auto"
    max_batch: int = 32
    max_wait_ms: float = 5.0
    poll_seconds: float = 2.0
    max_body_bytes: int = MAX_BODY_BYTES
    max_rows: int = MAX_ROWS
    max_text_chars: int = MAX_TEXT_CHARS
    max_queued_rows: int = MAX_QUEUED_ROWS
    threads: int = field(default_factory=lambda: serving_threads())
    token: str | None = field(default=None, repr=False)  # never in a log line
    header_timeout: float = HEADER_TIMEOUT
    body_timeout: float = BODY_TIMEOUT
    max_connections: int = MAX_CONNECTIONS
    max_tokens: int = MAX_TOKENS

    def __post_init__(self) -> None:
        check_types(self)
        check(0 <= self.port <= 65535, f"port must be 0-65535, got {self.port}")
        check_spec(self.device)
        check(self.max_batch >= 1, f"max_batch must be >= 1, got {self.max_batch}")
        check(
            0 <= self.max_wait_ms <= 10_000, f"max_wait_ms must be 0-10000, got {self.max_wait_ms}"
        )
        check(self.poll_seconds > 0, f"poll_seconds must be > 0, got {self.poll_seconds}")
        for name in ("header_timeout", "body_timeout"):
            check(getattr(self, name) > 0, f"{name} must be > 0 seconds, got {getattr(self, name)}")
        names = (
            "max_body_bytes",
            "max_rows",
            "max_text_chars",
            "max_queued_rows",
            "max_connections",
        )
        for name in names:
            check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        check(
            1 <= self.max_tokens <= MAX_NEW_TOKENS,
            f"max_tokens must be 1-{MAX_NEW_TOKENS}, got {self.max_tokens}",
        )
        check(self.threads >= 1, f"threads must be >= 1, got {self.threads}")
        check(self.token is None or self.token.strip() == self.token != "", "token is empty")
        _check_host(self.host)

    @property
    def loopback(self) -> bool:
        return self.host == "localhost" or _is_loopback(self.host)


def serving_threads() -> int:
    """Half this process's cores, 1 to 4: torch's default (one thread per core) oversubscribes
    a machine whose cores other processes use too (on 2 busy cores a 1-row MiniLM forward took
    830 ms with 2 threads, 80 ms with 1), and a serving batch gains little past 4 threads."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(4, max(1, (cores or 1) // 2))


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_host(host: str) -> None:
    check(bool(host) and " " not in host, f"host must be an address or a name, got {host!r}")


def read_token(path: str) -> str:
    """The bearer token in file ``path`` (its first line, stripped); refused when empty."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the token file {path}: {exc}") from exc
    token = text.strip().splitlines()[0].strip() if text.strip() else ""
    check(bool(token), f"the token file {path} is empty: write the token on its first line")
    return token
