"""Which files a data folder may hold: inside the folder, regular, and not too large."""

from __future__ import annotations

import stat
from pathlib import Path

from ..errors import BadData
from . import rules
from .messages import unreadable


def extension(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower()


def check_file(source: Path, name: str) -> None:
    """Refuse a file that leads outside the folder (the fingerprint would not cover what is read
    there, nor could another copy of the folder reproduce it), that is not a regular file (a
    named pipe would block the read forever) or that is too large to hold."""
    check_inside(source, name)
    try:
        info = (source / name).stat()
    except OSError as exc:
        raise unreadable(name, exc) from exc
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a pipe, socket or device"
        raise BadData(f"{name} in {source} is {kind}; replace it with a regular file of data")
    size = info.st_size
    if size > rules.MAX_FILE_BYTES:
        raise BadData(
            f"{name} is {size} bytes, over the {rules.MAX_FILE_BYTES}-byte limit (MAX_FILE_BYTES); "
            "split it or sample it into a smaller file"
        )


def check_inside(source: Path, name: str) -> None:
    try:
        target = (source / name).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop, before Python 3.13
        raise BadData(f"cannot resolve {name} in {source} ({exc}); fix or remove the link") from exc
    if not target.is_relative_to(source):
        raise BadData(
            f"{name} in {source} is a symlink to {target}, outside the data folder; "
            "copy the data into the folder instead"
        )
