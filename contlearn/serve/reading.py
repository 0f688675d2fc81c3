"""A request's bytes, read within the server's limits: the body within ``max_body_bytes`` and
``body_timeout``, and a request whose length is framed twice refused before any of it is read.

A body refused as too large is read on and discarded (up to ``DISCARD_BYTES``, within the same
deadline) before the 413 is sent: a client still sending it would otherwise meet a closed
socket (a reset, a broken pipe) and never read why.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import ClientDisconnect

from ..errors import BadRequest
from .config import ServeConfig

Receive = Callable[[], Awaitable[dict[str, Any]]]
DISCARD_BYTES = 64 << 20  # a refused body is read and dropped up to this much, then cut off


class _TooLarge(Exception):
    """The body is known to exceed max_body_bytes."""


async def body(receive: Receive, headers: Mapping[str, str], config: ServeConfig) -> bytes:
    """The whole body; 413 beyond ``max_body_bytes``, 408 when it is not all there within
    ``body_timeout``; ClientDisconnect when the client goes away first."""
    deadline = asyncio.get_running_loop().time() + config.body_timeout
    declared = _declared(headers)
    try:
        async with asyncio.timeout_at(deadline):
            return await _read(receive, declared, config.max_body_bytes)
    except TimeoutError:
        raise BadRequest(
            f"the body did not arrive within body_timeout ({config.body_timeout:g} s): "
            "send it at once",
            status=408,
            limit="body_timeout",
            allowed=config.body_timeout,
        ) from None
    except _TooLarge:
        if declared is None or declared <= DISCARD_BYTES:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await _discard(receive)
        raise BadRequest(
            f"the body exceeds max_body_bytes ({config.max_body_bytes} bytes): "
            "send fewer rows per request",
            status=413,
            limit="max_body_bytes",
            allowed=config.max_body_bytes,
        ) from None


def ambiguous(headers: Mapping[str, str]) -> BadRequest | None:
    """The refusal of a request framed by both Content-Length and Transfer-Encoding (RFC 9112
    6.1: a proxy in front may have read its length otherwise, and taken what follows for
    another request); None for any other."""
    if "content-length" in headers and "transfer-encoding" in headers:
        return BadRequest(
            "the request has both Content-Length and Transfer-Encoding: send one of them",
            status=400,
        )
    return None


async def _read(receive: Receive, declared: int | None, limit: int) -> bytes:
    if declared is not None and declared > limit:
        raise _TooLarge
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk, more = message.get("body", b""), message.get("more_body", False)
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def _discard(receive: Receive) -> None:
    seen, more = 0, True
    while more and seen <= DISCARD_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        more = message.get("more_body", False)


def _declared(headers: Mapping[str, str]) -> int | None:
    value = headers.get("content-length", "")
    return int(value) if value.isdigit() else None
