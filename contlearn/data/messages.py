"""The pieces of ``BadData`` messages: quoted values, name listings, and the usual problems
(an unreadable file, one that is not UTF-8, too many rows).
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import BadData, ContlearnError
from ..faults import os_fault
from . import rules

_SHOWN_NAMES = 20  # column or file names listed in one message


def show(value: Any) -> str:
    """``repr(value)``, cut short: a message quotes values from the file, not whole fields."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def listing(names: Sequence[str]) -> str:
    shown = ", ".join(show(n) for n in names[:_SHOWN_NAMES])
    return shown + (f" and {len(names) - _SHOWN_NAMES} more" if len(names) > _SHOWN_NAMES else "")


def one_line(exc: BaseException) -> str:
    """A parser's message on one line and of modest length."""
    return " ".join(str(exc).split())[:300]


def too_many_rows(name: str) -> BadData:
    return BadData(
        f"{name} has over {rules.MAX_ROWS} rows, the limit per split (MAX_ROWS); "
        "sample it into a smaller file"
    )


def unreadable(name: str, exc: OSError) -> ContlearnError:
    """A data file that cannot be read: permission refused (its named fault), or missing."""
    refused = os_fault(exc, "reading", exc.filename or name)
    if refused is not None:
        return refused
    return BadData(f"cannot read {name}: {exc.strerror or one_line(exc)}; check that it exists")


def not_utf8(path: Path, name: str) -> BadData:
    offset, byte = _first_bad_byte(path)
    with path.open("rb") as f:
        if f.read(2) in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
            return BadData(
                f"{name} is UTF-16 (it starts with a UTF-16 byte-order mark), not UTF-8; "
                "re-save the file as UTF-8"
            )
    return BadData(
        f"{name} is not UTF-8: byte 0x{byte:02x} at offset {offset} cannot be decoded; "
        "re-save the file as UTF-8"
    )


def _first_bad_byte(path: Path) -> tuple[int, int]:
    """(offset, value) of the first byte that is not valid UTF-8: the text reader's error gives
    a position inside its buffer, not in the file."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with path.open("rb") as f:
        while True:
            chunk = f.read(rules.CHUNK)
            start = offset - len(decoder.getstate()[0])  # the decoder keeps a partial character
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                return start + exc.start, exc.object[exc.start]
            if not chunk:
                return offset, 0  # the file changed since it was read
            offset += len(chunk)
