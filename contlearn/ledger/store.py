"""The task ledger: what the rest of contlearn asks of the database.

Each public method is one transaction and returns plain frozen dataclasses, never ORM rows, so
nothing outside this module holds a session. Database errors become :class:`LedgerError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ..errors import LedgerError, TaskExists, TaskNotFound
from .records import ArtifactRecord, BackboneRecord, EvaluationRecord, RunRecord, TaskRecord
from .schema import ArtifactRow, BackboneRow, ComparisonRow, EvaluationRow, RunRow, TaskRow, utcnow


def _record(cls: type, row: Any) -> Any:
    return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})


class Ledger:
    """The task ledger over one SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: commit on success, roll back on any error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except SQLAlchemyError as exc:
            session.rollback()
            raise LedgerError(f"ledger error: {exc.__class__.__name__}: {exc.args[0]}") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    # -- backbone -----------------------------------------------------------------------------
    def backbone(self) -> BackboneRecord | None:
        with self.session() as s:
            row = s.scalars(select(BackboneRow).order_by(BackboneRow.id)).first()
            return None if row is None else _record(BackboneRecord, row)

    def set_backbone(self, record: BackboneRecord) -> None:
        with self.session() as s:
            s.add(BackboneRow(**{f.name: getattr(record, f.name) for f in fields(record)}))

    # -- tasks --------------------------------------------------------------------------------
    def tasks(self) -> list[TaskRecord]:
        with self.session() as s:
            rows = s.scalars(select(TaskRow).order_by(TaskRow.position))
            return [_record(TaskRecord, r) for r in rows]

    def task(self, name: str) -> TaskRecord:
        with self.session() as s:
            return _record(TaskRecord, self._task_row(s, name))

    def task_by_id(self, task_id: int) -> TaskRecord:
        with self.session() as s:
            return _record(TaskRecord, s.get(TaskRow, task_id))

    @staticmethod
    def _task_row(s: Session, name: str) -> TaskRow:
        row = s.scalars(select(TaskRow).where(TaskRow.name == name)).first()
        if row is None:
            raise TaskNotFound(f"no task named {name!r}: `contlearn status` lists the tasks")
        return row

    def add_tasks(self, specs: Sequence[dict[str, Any]], position: int | None = None) -> None:
        """Register tasks in one transaction, appended or inserted before ``position`` (1-based)."""
        with self.session() as s:
            for offset, spec in enumerate(specs):
                at = None if position is None else position + offset
                self._insert_task(s, spec, at)

    def _insert_task(self, s: Session, spec: dict[str, Any], position: int | None) -> None:
        if s.scalars(select(TaskRow.id).where(TaskRow.name == spec["name"])).first():
            raise TaskExists(
                f"task {spec['name']!r} is already registered: choose another name "
                "(`contlearn status` lists the tasks)"
            )
        count = s.scalar(select(func.count()).select_from(TaskRow)) or 0
        if position is None or position > count:
            position = count + 1
        # Shift in two steps so the unique index on position never sees a duplicate.
        s.execute(
            update(TaskRow)
            .where(TaskRow.position >= position)
            .values(position=-TaskRow.position - 1)
        )
        s.execute(update(TaskRow).where(TaskRow.position < 0).values(position=-TaskRow.position))
        s.add(TaskRow(position=position, status="pending", **spec))
        s.flush()

    # -- runs ---------------------------------------------------------------------------------
    def start_run(self, **values: Any) -> int:
        return self._insert(RunRow(status="running", **values))

    def _insert(self, row: Any) -> int:
        with self.session() as s:
            s.add(row)
            s.flush()
            return row.id

    def claim_next_pending(
        self,
        run_values: dict[str, Any],
        is_abandoned: Callable[[RunRecord], bool] = lambda run: False,
    ) -> tuple[TaskRecord, int] | None:
        """Mark the first pending task training and open its run, in one transaction.

        Tasks left training by a run that ``is_abandoned`` (its process died) go back to
        pending first, with that run marked failed. PostgreSQL skips rows other workers hold
        (``FOR UPDATE SKIP LOCKED``); SQLite transactions already hold the write lock.
        """
        with self.session() as s:
            self._release_abandoned(s, is_abandoned)
            row = s.scalars(
                select(TaskRow)
                .where(TaskRow.status == "pending")
                .order_by(TaskRow.position)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return None
            row.status = "training"
            run = RunRow(status="running", purpose="train", task_id=row.id, **run_values)
            run.heartbeat_at = utcnow()
            s.add(run)
            s.flush()
            return _record(TaskRecord, row), run.id

    @staticmethod
    def _release_abandoned(s: Session, is_abandoned: Callable[[RunRecord], bool]) -> None:
        rows = s.execute(
            select(TaskRow, RunRow)
            .join(RunRow, RunRow.task_id == TaskRow.id)
            .where(TaskRow.status == "training", RunRow.status == "running")
            .where(RunRow.purpose == "train")
            .with_for_update(skip_locked=True)
        ).all()
        for task, run in rows:
            if is_abandoned(_record(RunRecord, run)):
                run.status, run.finished_at = "failed", utcnow()
                run.error = f"abandoned: process {run.pid} on {run.host} stopped without finishing"
                task.status = "pending"
        s.flush()

    def heartbeat(self, run_id: int) -> None:
        with self.session() as s:
            s.get(RunRow, run_id).heartbeat_at = utcnow()

    def update_run(self, run_id: int, **values: Any) -> None:
        with self.session() as s:
            run = s.get(RunRow, run_id)
            for key, value in values.items():
                setattr(run, key, value)

    def run(self, run_id: int) -> RunRecord:
        with self.session() as s:
            return _record(RunRecord, s.get(RunRow, run_id))

    def runs(self, purpose: str | None = None, task_id: int | None = None) -> list[RunRecord]:
        with self.session() as s:
            query = select(RunRow).order_by(RunRow.id)
            if purpose is not None:
                query = query.where(RunRow.purpose == purpose)
            if task_id is not None:
                query = query.where(RunRow.task_id == task_id)
            return [_record(RunRecord, r) for r in s.scalars(query)]

    def finished_comparison_runs(self, comparison_id: int) -> dict[int, RunRecord]:
        """The comparison's succeeded training runs, by task id (the last one per task)."""
        with self.session() as s:
            rows = s.scalars(
                select(RunRow)
                .where(RunRow.purpose == "compare", RunRow.comparison_id == comparison_id)
                .where(RunRow.status == "succeeded")
                .order_by(RunRow.id)
            )
            return {r.task_id: _record(RunRecord, r) for r in rows}

    def finish_run(
        self,
        run_id: int,
        *,
        status: str,
        task_status: str | None = None,
        artifacts: Sequence[ArtifactRecord] = (),
        evaluations: Sequence[EvaluationRecord] = (),
        **values: Any,
    ) -> None:
        """Close a run with its artifacts, evaluations and task status, in one transaction."""
        with self.session() as s:
            run = s.get(RunRow, run_id)
            for key, value in {"status": status, "finished_at": utcnow(), **values}.items():
                setattr(run, key, value)
            s.add_all(ArtifactRow(**_values(a)) for a in artifacts)
            s.add_all(EvaluationRow(**_values(e, run_id=run_id)) for e in evaluations)
            if task_status is not None and run.task_id is not None:
                task = s.get(TaskRow, run.task_id)
                task.status = task_status
                if task_status == "trained":
                    task.trained_at = utcnow()

    # -- comparisons --------------------------------------------------------------------------
    def start_comparison(self, **values: Any) -> int:
        return self._insert(ComparisonRow(status="running", **values))

    def comparisons(self, status: str | None = None) -> list[dict[str, Any]]:
        with self.session() as s:
            query = select(ComparisonRow).order_by(ComparisonRow.id)
            if status is not None:
                query = query.where(ComparisonRow.status == status)
            return [_comparison(r) for r in s.scalars(query)]

    def comparison(self, comparison_id: int) -> dict[str, Any]:
        with self.session() as s:
            return _comparison(s.get(ComparisonRow, comparison_id))

    def finish_comparison(
        self, comparison_id: int, results: dict[str, Any], report_path: str | None = None
    ) -> None:
        with self.session() as s:
            row = s.get(ComparisonRow, comparison_id)
            row.status, row.results, row.finished_at = "done", results, utcnow()
            if report_path is not None:
                row.report_path = report_path

    def set_report_path(self, comparison_id: int, report_path: str) -> None:
        with self.session() as s:
            s.get(ComparisonRow, comparison_id).report_path = report_path

    # -- artifacts and evaluations ------------------------------------------------------------
    def artifacts(self, run_id: int) -> list[ArtifactRecord]:
        with self.session() as s:
            rows = s.scalars(select(ArtifactRow).where(ArtifactRow.run_id == run_id))
            return [_record(ArtifactRecord, r) for r in rows]

    def trained_run(self, task_id: int) -> RunRecord | None:
        """The adapter run that trained the task (the latest successful one)."""
        with self.session() as s:
            row = s.scalars(
                select(RunRow)
                .where(RunRow.task_id == task_id, RunRow.purpose == "train")
                .where(RunRow.method == "adapter", RunRow.status == "succeeded")
                .order_by(RunRow.id.desc())
            ).first()
            return None if row is None else _record(RunRecord, row)

    def post_train_scores(self) -> dict[int, float | None]:
        """Each task's primary dev score from its latest successful adapter training run."""
        with self.session() as s:
            rows = s.execute(
                select(EvaluationRow.task_id, EvaluationRow.primary_value)
                .join(RunRow, RunRow.id == EvaluationRow.run_id)
                .where(EvaluationRow.kind == "post-train", RunRow.status == "succeeded")
                .where(RunRow.method == "adapter")
                .order_by(EvaluationRow.id)
            )
            return {task_id: value for task_id, value in rows}

    def evaluations(
        self,
        *,
        run_id: int | None = None,
        task_id: int | None = None,
        kind: str | None = None,
    ) -> list[EvaluationRecord]:
        with self.session() as s:
            query = select(EvaluationRow).order_by(EvaluationRow.id)
            for column, value in (
                (EvaluationRow.run_id, run_id),
                (EvaluationRow.task_id, task_id),
                (EvaluationRow.kind, kind),
            ):
                if value is not None:
                    query = query.where(column == value)
            return [_record(EvaluationRecord, r) for r in s.scalars(query)]


def _values(record: Any, **extra: Any) -> dict[str, Any]:
    values = {f.name: getattr(record, f.name) for f in fields(record)}
    values.update(extra)
    return {k: v for k, v in values.items() if not (k == "created_at" and v is None)}


def _comparison(row: ComparisonRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": row.status,
        "methods": row.methods,
        "task_names": row.task_names,
        "config": row.config,
        "results": row.results,
        "report_path": row.report_path,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
    }
