"""The ledger's schema: SQLAlchemy 2.x typed ORM classes, one per table.

Alembic revisions under ``migrations/`` create this schema; a test checks that autogenerate
finds no difference between the two. Only :mod:`contlearn.ledger.store` reads and writes rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

TASK_STATUSES = ("pending", "training", "trained", "failed")
RUN_STATUSES = ("running", "succeeded", "failed", "interrupted")
EVALUATION_KINDS = ("post-train", "verification", "audit", "comparison", "host-reference")
# A replay's outcome: the logits bit for bit; or, on another machine or device, every
# prediction and metric value the same with the weights proven unchanged; or neither.
OUTCOMES = ("identical", "equivalent", "changed")
# ``audit --adopt-host``: this host's reference logits of a task (an evaluation of this kind,
# and an artifact of this role holding the logits), so that later replays here are bit for bit.
HOST_REFERENCE = "host-reference"
HOST_LOGITS = "host-logits"
# A task's routing statistics (safetensors) and how they were computed (JSON): written by its
# training run, or later by ``route-stats`` for a task trained before routing existed.
ROUTING = "routing"
ROUTING_META = "routing-meta"
ROUTING_ROLES = (ROUTING, ROUTING_META)

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
    dtype: Mapped[str] = mapped_column(String(16), default="float32", server_default="float32")
    source: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # a converted backbone's origin


ACTIVE = "removed_at IS NULL"


class TaskRow(Base):
    """A task, its place in the sequence, where its data lives and what it looks like.

    A removed task keeps its row (and its runs, evaluations and artifacts) as history, with
    ``removed_at`` set and no position; its name is free for a new task.
    """

    __tablename__ = "tasks"
    __table_args__ = (
        Index(
            "ux_tasks_active_name",
            "name",
            unique=True,
            sqlite_where=text(ACTIVE),
            postgresql_where=text(ACTIVE),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    position: Mapped[int | None] = mapped_column(Integer, unique=True)
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
    removed_at: Mapped[datetime | None]
    # the task kind (contlearn.kinds); tasks registered before revision 0008 read as their
    # problem_type (classification or regression)
    kind: Mapped[str] = mapped_column(
        String(32), default="classification", server_default="classification"
    )


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
    role: Mapped[str] = mapped_column(String(16))  # weights | config | logits | host-logits...
    path: Mapped[str] = mapped_column(String(4096))  # relative to the workspace
    sha256: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int]
    trainable_params: Mapped[int | None]
    backbone_params: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None]  # set by gc when the file is deleted


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
    # device class and model, library versions, batch size, threads (None before revision 0004)
    recipe: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # how a verification re-ran the task: "full" or "probe" (None before revision 0006: full)
    mode: Mapped[str | None] = mapped_column(String(8))
    # identical | equivalent | changed (None before revision 0007: ``identical`` says if it passed)
    outcome: Mapped[str | None] = mapped_column(String(16))
