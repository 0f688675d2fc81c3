"""The ledger's schema (SQLAlchemy 2.x typed ORM), engine set-up and schema check.

Alembic revisions under ``migrations/`` create this schema; a test checks that autogenerate
finds no difference between the two. Only :mod:`contlearn.ledger` uses these classes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

TASK_STATUSES = ("pending", "training", "trained", "failed")
RUN_STATUSES = ("running", "succeeded", "failed")
EVALUATION_KINDS = ("post-train", "verification", "audit", "comparison")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}


class BackboneRow(Base):
    """The shared backbone every task of the workspace is trained on (one row)."""

    __tablename__ = "backbones"
    id: Mapped[int] = mapped_column(primary_key=True)
    identity: Mapped[str] = mapped_column(String(512))
    model_type: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(String(64))
    hidden_size: Mapped[int]
    num_layers: Mapped[int]
    num_parameters: Mapped[int]
    versions: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TaskRow(Base):
    """A task, its place in the sequence, where its data lives and what it looks like."""

    __tablename__ = "tasks"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    position: Mapped[int] = mapped_column(Integer, unique=True)
    data_source: Mapped[str] = mapped_column(String(4096))
    data_format: Mapped[str] = mapped_column(String(16))
    glue_task: Mapped[str | None] = mapped_column(String(16))
    data_files: Mapped[list[Any]]
    data_fingerprint: Mapped[str] = mapped_column(String(64))
    train_rows: Mapped[int]
    dev_rows: Mapped[int]
    text_fields: Mapped[list[Any]]
    label_field: Mapped[str] = mapped_column(String(256))
    problem_type: Mapped[str] = mapped_column(String(16))
    labels: Mapped[list[Any] | None] = mapped_column(JSON)
    metric: Mapped[str] = mapped_column(String(16))
    metrics: Mapped[list[Any]]
    settings: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    trained_at: Mapped[datetime | None]


class ComparisonRow(Base):
    """A forgetting comparison: the sequence it covered and, when done, its matrices."""

    __tablename__ = "comparisons"
    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="running")
    methods: Mapped[list[Any]]
    task_names: Mapped[list[Any]]
    config: Mapped[dict[str, Any]]
    results: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    report_path: Mapped[str | None] = mapped_column(String(4096))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class RunRow(Base):
    """One attempt at something: training a task (adapter or full fine-tuning) or an audit."""

    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16))  # train | audit | compare
    method: Mapped[str | None] = mapped_column(String(16))  # adapter | full-finetune
    task_id: Mapped[int | None] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), index=True
    )
    comparison_id: Mapped[int | None] = mapped_column(ForeignKey("comparisons.id"))
    config: Mapped[dict[str, Any]]
    seed: Mapped[int | None]
    versions: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default="running")
    verdict: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None]
    heartbeat_at: Mapped[datetime | None]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    seconds: Mapped[float | None] = mapped_column(Float)
    examples: Mapped[int | None]
    examples_per_second: Mapped[float | None] = mapped_column(Float)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ArtifactRow(Base):
    """A file a run wrote under ``artifacts/``, with its checksum."""

    __tablename__ = "artifacts"
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))  # weights | config | logits
    path: Mapped[str] = mapped_column(String(4096))  # relative to the workspace
    sha256: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int]
    trainable_params: Mapped[int | None]
    backbone_params: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EvaluationRow(Base):
    """One evaluation of a task's split: metric values and digests of the logits."""

    __tablename__ = "evaluations"
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    after_task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"))
    kind: Mapped[str] = mapped_column(String(16))
    split: Mapped[str] = mapped_column(String(16), default="dev")
    metrics: Mapped[dict[str, Any]]
    primary_value: Mapped[float | None] = mapped_column(Float)
    example_count: Mapped[int]
    logits_sha256: Mapped[str | None] = mapped_column(String(64))
    predictions_sha256: Mapped[str | None] = mapped_column(String(64))
    identical: Mapped[bool | None] = mapped_column(Boolean)
    max_abs_diff: Mapped[float | None] = mapped_column(Float)
    findings: Mapped[list[Any] | None] = mapped_column(JSON)
    threads: Mapped[int | None]
    seconds: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event emit BEGIN itself (the driver's own handling would not).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _begin_immediate(conn: Any) -> None:
    # Every ledger transaction takes SQLite's write lock up front, so two workers that read the
    # same pending task cannot both claim it (and a reader never has to upgrade its lock).
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys, a busy timeout, immediate writes."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _begin_immediate)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _alembic_config(connection: Any = None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest schema revision this code knows."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {s.revision for s in ScriptDirectory.from_config(_alembic_config()).walk_revisions()}


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at (``None`` for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _table_names(engine: Engine) -> set[str]:
    """The database's tables; an SQLite file is read read-only, so nothing in it changes."""
    import sqlite3
    from contextlib import closing

    from .errors import SchemaError

    path = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    if not path or path == ":memory:" or not Path(path).is_file():
        from sqlalchemy import inspect

        return set(inspect(engine).get_table_names())
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            return {r[0] for r in rows}
    except sqlite3.DatabaseError as exc:
        raise SchemaError(f"{path} is not an SQLite database ({exc}): check --db") from exc


def refuse_foreign(engine: Engine) -> None:
    """Refuse a database that holds another program's tables and no contlearn schema."""
    from .errors import SchemaError

    tables = _table_names(engine)
    if tables and "alembic_version" not in tables:
        raise SchemaError(
            f"the database holds other tables ({', '.join(sorted(tables)[:5])}) and no "
            "contlearn schema: point --db at a contlearn ledger or an empty database"
        )


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the schema to head; refuse a database newer than this code. Returns (from, to)."""
    from alembic import command

    refuse_foreign(engine)  # before anything connects: connecting sets WAL on an SQLite file
    before = current_revision(engine)
    if before is not None and before not in known_revisions():
        from .errors import SchemaError

        raise SchemaError(
            f"the ledger's schema revision {before!r} is newer than this contlearn knows "
            f"(head {head_revision()!r}): upgrade contlearn to open it"
        )
    head = head_revision()
    if before != head:
        with engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "head")
    return before, head
