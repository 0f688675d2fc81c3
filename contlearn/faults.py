"""Faults from the environment, named: an ``OSError`` (a full disk, a read-only file system, a
permission refused) or a database error (an SQLite file locked past the busy timeout, a full or
read-only disk under it, a server that cannot be reached) becomes one :class:`ContlearnError`
whose one line says what happened, where, and what to do. Callers translate where they know
the path and size; the command line translates whatever arrives unnamed."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import (
    ContlearnError,
    LedgerUnavailable,
    OutOfMemory,
    ReadOnlyStorage,
    StorageFull,
)

FULL = {errno.ENOSPC, errno.EDQUOT}
READ_ONLY = {errno.EROFS}
DENIED = {errno.EACCES, errno.EPERM}
# Room left beside a file checked beforehand: the ledger's commit (and its WAL) comes after it.
MARGIN = 1 << 20
MOVE = "free space or move the workspace"


def size_text(n: int) -> str:
    """``n`` bytes for a person: 512 B, 42.0 kB, 3.0 MB, 1.2 GB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def os_fault(
    exc: OSError, doing: str, path: Path | str | None = None, needed: int | None = None
) -> ContlearnError | None:
    """The named error for ``exc`` raised while ``doing`` (e.g. "writing") ``path``; None for
    an errno that is not a fault of the environment."""
    where = path if path is not None else (exc.filename or "a file")
    if exc.errno in FULL:
        need = f" ({size_text(needed)} needed)" if needed else ""
        return StorageFull(f"no space left on device while {doing} {where}{need}: {MOVE}")
    if exc.errno in READ_ONLY:
        return ReadOnlyStorage(
            f"read-only file system while {doing} {where}: remount it read-write, or move "
            "the workspace"
        )
    if exc.errno in DENIED:
        return ReadOnlyStorage(
            f"permission denied while {doing} {where}: give this user access to it "
            "(chmod, chown), or move the workspace"
        )
    return None


@contextmanager
def guarded(doing: str, path: Path | str, needed: int | None = None) -> Iterator[None]:
    """Turn an environment ``OSError`` raised inside into its named error; others pass."""
    try:
        yield
    except OSError as exc:
        fault = os_fault(exc, doing, path, needed)
        if fault is None:
            raise
        raise fault from exc


def require_space(folder: Path, needed: int, what: str) -> None:
    """Refuse before writing when the file system under ``folder`` (or its nearest existing
    parent) has less than ``needed`` bytes free, plus a margin for the ledger's commit."""
    existing = Path(folder)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if free < needed + MARGIN:
        raise StorageFull(
            f"no space left on device for {what} ({size_text(needed)} needed, "
            f"{size_text(free)} free on {existing}): {MOVE}"
        )


def database_fault(exc: Exception, where: str, busy_seconds: float) -> ContlearnError | None:
    """The named error for a database error raised on the ledger ``where``; None when it is
    not a fault of the environment (a constraint, a bug)."""
    cause = getattr(exc, "orig", None) or exc
    text = " ".join(str(cause).split()).lower()
    if "database is locked" in text or "database table is locked" in text:
        return LedgerUnavailable(
            f"the ledger {where} is locked by another process for longer than the busy "
            f"timeout ({busy_seconds:g} s): let that process finish (or stop it), then run "
            "the command again"
        )
    if "database or disk is full" in text or ("disk i/o error" in text and _full(where)):
        return StorageFull(f"no space left on device for the ledger {where}: {MOVE}")
    opening = "disk i/o error" in text or "unable to open database file" in text
    if "readonly database" in text or "read-only" in text or (opening and _read_only(where)):
        return ReadOnlyStorage(
            f"the ledger {where} is on a read-only file system or not writable: remount it "
            "read-write, or give this user write access to it and its folder"
        )
    if opening:
        return ReadOnlyStorage(
            f"cannot write the ledger {where} ({text[:80]}): check that its folder exists, "
            f"is writable and has free space"
        )
    return None


def _full(where: str) -> bool:
    """Whether the file system of the ledger file ``where`` (if it is one) is out of room:
    SQLite reports a shared-memory file it cannot grow as a disk I/O error."""
    folder = Path(where).parent
    return folder.is_dir() and shutil.disk_usage(folder).free < MARGIN


def _read_only(where: str) -> bool:
    """Whether the ledger file ``where`` (if it is one) sits on a read-only mount."""
    folder = Path(where).parent
    return folder.is_dir() and bool(os.statvfs(folder).f_flag & os.ST_RDONLY)


def unreachable(where: str, waited: float, attempts: int, exc: Exception) -> LedgerUnavailable:
    """The ledger server could not be reached for ``waited`` seconds."""
    cause = getattr(exc, "orig", None) or exc
    detail = " ".join(str(cause).split())[:120]
    return LedgerUnavailable(
        f"the ledger server {where} was unreachable for {waited:.0f} s ({attempts} attempts; "
        f"{detail}): start it or check --db, then run the command again "
        "(CONTLEARN_LEDGER_RETRY_SECONDS sets how long contlearn waits)"
    )


@contextmanager
def accelerator_memory(batch_size: int, device: object) -> Iterator[None]:
    """Turn torch's out-of-memory error raised inside into :class:`OutOfMemory`."""
    try:
        yield
    except RuntimeError as exc:
        import torch

        if not isinstance(exc, torch.OutOfMemoryError):
            raise
        raise out_of_memory(batch_size, str(device)) from exc


def out_of_memory(batch_size: int, device: str) -> OutOfMemory:
    """The accelerator's out-of-memory error, with a batch size that halves the memory."""
    smaller = max(1, batch_size // 2)
    return OutOfMemory(
        f"out of memory on {device} with batch size {batch_size}: run again with "
        f"--batch-size {smaller} (or a shorter --max-length)"
    )
