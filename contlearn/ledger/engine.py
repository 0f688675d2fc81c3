"""Connecting to a ledger database and keeping its schema current.

This module owns the engine set-up (SQLite: WAL, foreign keys, a busy timeout, every transaction
``BEGIN IMMEDIATE``), the one place a SQLite URL is turned into a file path, the refusal of a
database that belongs to another program, and alembic. The migrations live in the repository's
top-level ``migrations/``; the wheel carries them as ``contlearn/ledger/migrations`` (setup.py's
build hook), so an installed contlearn can create and upgrade a ledger too.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine

from .. import faults
from ..errors import SchemaError

PACKAGED = Path(__file__).resolve().parent / "migrations"  # in an installed wheel
CHECKOUT = Path(__file__).resolve().parents[2] / "migrations"  # in a source checkout
SQLITE_PREFIX = "sqlite:///"
# the two lines of a migration file that place it in the chain (alembic's own template's)
_REVISION = re.compile(r"^(down_revision|revision)\b[^=]*=\s*(?:None|[\"']([^\"']+)[\"'])", re.M)


def busy_timeout() -> float:
    """How long an SQLite transaction waits for another process's write lock before it fails
    (``CONTLEARN_BUSY_TIMEOUT_SECONDS``, default 30 s)."""
    return float(os.environ.get("CONTLEARN_BUSY_TIMEOUT_SECONDS", "30"))


def sqlite_path(url: str) -> Path | None:
    """The database file a ``sqlite:///PATH`` URL names; None for other URLs and in-memory ones."""
    if not url.startswith(SQLITE_PREFIX):
        return None
    path = url[len(SQLITE_PREFIX) :].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event emit BEGIN itself (the driver's own handling would not).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout() * 1000)}")
    cursor.close()


def _begin_immediate(conn: Any) -> None:
    # Every ledger transaction takes SQLite's write lock up front, so two workers that read the
    # same pending task cannot both claim it (and a reader never has to upgrade its lock).
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys, a busy timeout, immediate writes."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": busy_timeout()})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _begin_immediate)
        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(connection: Any = None) -> Any:
    """An alembic Config on the packaged migrations, using ``connection`` when given."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location()))
    config.attributes["connection"] = connection
    return config


def script_location() -> Path:
    """Where the alembic environment is: inside the installed package, else the checkout's."""
    for folder in (PACKAGED, CHECKOUT):
        if (folder / "env.py").is_file():
            return folder
    raise SchemaError(
        f"contlearn's schema migrations are missing (neither {PACKAGED} nor {CHECKOUT}): "
        "reinstall contlearn"
    )


def _scripts() -> Any:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest schema revision this code knows: the one no other migration revises, read from
    the migration files' ``revision`` lines without importing alembic (~0.1-0.3 s), so that
    opening a ledger already at head (every command but the first) stays fast."""
    revisions, revised = set(), set()
    for path in (script_location() / "versions").glob("*.py"):
        found = dict(m.groups() for m in _REVISION.finditer(path.read_text(encoding="utf-8")))
        revisions.add(found["revision"])
        revised.add(found.get("down_revision"))
    heads = revisions - revised
    if len(heads) != 1:  # a branched history: alembic names it
        return _scripts().get_current_head()
    return heads.pop()


def known_revisions() -> set[str]:
    return {s.revision for s in _scripts().walk_revisions()}


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at (``None`` for an empty database), read from
    alembic's version table as alembic reads it, without importing alembic."""
    if "alembic_version" not in _table_names(engine):
        return None
    with engine.connect() as conn:
        stamped = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
    if len(stamped) > 1:
        raise SchemaError(
            f"the ledger is stamped with several schema revisions ({', '.join(stamped)}): "
            "it was not written by contlearn's migrations; restore it from a backup"
        )
    return stamped[0] if stamped else None


def _table_names(engine: Engine) -> set[str]:
    """The database's tables; an SQLite file is read read-only, so nothing in it changes."""
    path = sqlite_path(str(engine.url)) if engine.url.get_backend_name() == "sqlite" else None
    if path is None or not path.is_file():
        return set(inspect(engine).get_table_names())
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            return {r[0] for r in rows}
    except sqlite3.DatabaseError as exc:
        named = faults.database_fault(exc, str(path), busy_timeout())
        if named is not None:
            raise named from exc
        raise SchemaError(f"{path} is not an SQLite database ({exc}): check --db") from exc


def refuse_foreign(engine: Engine) -> None:
    """Refuse a database that holds another program's tables and no contlearn schema."""
    tables = _table_names(engine)
    if tables and "alembic_version" not in tables:
        raise SchemaError(
            f"the database holds other tables ({', '.join(sorted(tables)[:5])}) and no "
            "contlearn schema: point --db at a contlearn ledger or an empty database"
        )


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the schema to head; refuse a database newer than this code. Returns (from, to)."""
    refuse_foreign(engine)  # before anything connects: connecting sets WAL on an SQLite file
    before, head = current_revision(engine), head_revision()
    if before == head:  # the usual case: alembic is not even imported
        return before, head
    from alembic import command

    if before is not None and before not in known_revisions():
        raise SchemaError(
            f"the ledger's schema revision {before!r} is newer than this contlearn knows "
            f"(head {head!r}): upgrade contlearn to open it"
        )
    _migrate(engine, command.upgrade, "head")
    return before, head


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema back to ``revision`` (what a ledger of an older release expects)."""
    from alembic import command

    _migrate(engine, command.downgrade, revision)


def _migrate(engine: Engine, step: Any, revision: str) -> None:
    """Run one alembic command in one transaction, foreign keys off on SQLite."""
    with engine.connect() as conn, _foreign_keys_off(conn), conn.begin():
        step(alembic_config(conn), revision)
        _check_foreign_keys(conn)


@contextmanager
def _foreign_keys_off(conn: Any) -> Iterator[None]:
    """SQLite enforcement of foreign keys off for the migration, on again after.

    A migration that alters a table on SQLite copies it to a new table and drops the old one,
    and with foreign keys enforced that drop would cascade into the rows that refer to it (every
    run and evaluation of every task). The pragma only takes effect outside a transaction, so it
    is set on the driver connection before the migration's transaction begins."""
    if conn.dialect.name != "sqlite":
        yield
        return
    driver = conn.connection.driver_connection
    driver.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        driver.execute("PRAGMA foreign_keys=ON")


def _check_foreign_keys(conn: Any) -> None:
    """Refuse (and so roll back) a migration that left a dangling reference on SQLite."""
    if conn.dialect.name == "sqlite" and conn.exec_driver_sql("PRAGMA foreign_key_check").first():
        raise SchemaError("the schema migration left dangling references; the ledger is unchanged")
