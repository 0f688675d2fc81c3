"""The task ledger: what the rest of contlearn asks of the database.

Each public method is one transaction and returns plain frozen dataclasses, never ORM rows, so
nothing outside this module holds a session. Database errors become :class:`LedgerError` (a
locked, full or unreachable ledger its named kind, :mod:`contlearn.faults`). A signal that
arrives during a transaction waits until it has committed or rolled back; a ledger server that
cannot be reached is retried with backoff (``connect``) before a transaction begins.
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

from .. import interrupts
from ..errors import (
    ContlearnError,
    LedgerError,
    TaskBusy,
    TaskExists,
    TaskNotFound,
    TaskNotTrained,
)
from ..naming import AUTO
from .connect import connected, describe, fault
from .records import ArtifactRecord, BackboneRecord, EvaluationRecord, RunRecord, TaskRecord
from .schema import (
    HOST_LOGITS,
    HOST_REFERENCE,
    ROUTING_ROLES,
    ArtifactRow,
    BackboneRow,
    ComparisonRow,
    EvaluationRow,
    RunRow,
    TaskRow,
    utcnow,
)


def _compared_runs(s: Session) -> set[int]:
    """The adapter runs that some comparison used (recorded in its config)."""
    configs = s.scalars(select(ComparisonRow.config))
    return {int(i) for c in configs for i in (c or {}).get("adapter_runs", {}).values()}


def _record(cls: type, row: Any) -> Any:
    return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})


class Ledger:
    """The task ledger over one SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: commit on success, roll back on any error; a signal that arrives
        meanwhile waits for the next checkpoint."""
        session = self._sessions()
        try:
            connected(session, self.engine)
            with interrupts.held():
                yield session
                session.commit()
        except SQLAlchemyError as exc:
            _rollback(session)
            named = fault(exc, self.engine)
            if named is not None:
                raise named from exc
            raise LedgerError(f"ledger error: {exc.__class__.__name__}: {exc.args[0]}") from exc
        except BaseException:
            _rollback(session)
            raise
        finally:
            session.close()

    def __str__(self) -> str:
        return describe(self.engine)

    # -- backbone -----------------------------------------------------------------------------
    def backbone(self) -> BackboneRecord | None:
        with self.session() as s:
            row = s.scalars(select(BackboneRow).order_by(BackboneRow.id)).first()
            return None if row is None else _record(BackboneRecord, row)

    def set_backbone(self, record: BackboneRecord) -> None:
        with self.session() as s:
            s.add(BackboneRow(**{f.name: getattr(record, f.name) for f in fields(record)}))

    # -- tasks --------------------------------------------------------------------------------
    def tasks(self, *, removed: bool = False) -> list[TaskRecord]:
        """The task sequence in order; with ``removed``, the removed tasks instead (oldest
        removal first)."""
        with self.session() as s:
            query = select(TaskRow).where(TaskRow.removed_at.is_(None)).order_by(TaskRow.position)
            if removed:
                query = (
                    select(TaskRow)
                    .where(TaskRow.removed_at.is_not(None))
                    .order_by(TaskRow.removed_at, TaskRow.id)
                )
            return [_record(TaskRecord, r) for r in s.scalars(query)]

    def task(self, name: str) -> TaskRecord:
        """The task in the sequence named ``name``."""
        with self.session() as s:
            return _record(TaskRecord, self._task_row(s, name))

    def task_by_id(self, task_id: int) -> TaskRecord:
        with self.session() as s:
            return _record(TaskRecord, s.get(TaskRow, task_id))

    @staticmethod
    def _task_row(s: Session, name: str) -> TaskRow:
        active = select(TaskRow).where(TaskRow.name == name, TaskRow.removed_at.is_(None))
        row = s.scalars(active).first()
        if row is None:
            if name == AUTO:  # a task name where routing is not offered
                raise TaskNotFound(
                    f"{AUTO!r} names no task: routing chooses tasks only in predict, route and "
                    "serve; name a task here (`contlearn status` lists them)"
                )
            raise TaskNotFound(f"no task named {name!r}: `contlearn status` lists the tasks")
        return row

    def add_tasks(self, specs: Sequence[dict[str, Any]], position: int | None = None) -> None:
        """Register tasks in one transaction, appended or inserted before ``position`` (1-based)."""
        with self.session() as s:
            for offset, spec in enumerate(specs):
                at = None if position is None else position + offset
                self._insert_task(s, spec, at)

    def _insert_task(self, s: Session, spec: dict[str, Any], position: int | None) -> None:
        named = select(TaskRow.id).where(TaskRow.name == spec["name"])
        if s.scalars(named.where(TaskRow.removed_at.is_(None))).first():
            raise TaskExists(
                f"task {spec['name']!r} is already registered: choose another name "
                "(`contlearn status` lists the tasks)"
            )
        count = self._count(s)
        if position is None:
            position = count + 1
        elif position > count + 1:
            raise ContlearnError(
                f"position {position} is beyond the end of the sequence ({count} tasks): "
                f"give 1 to {count + 1}, or no position to append"
            )
        _shift(s, TaskRow.position >= position, +1)
        s.add(TaskRow(position=position, status="pending", **spec))
        s.flush()

    @staticmethod
    def _count(s: Session) -> int:
        active = select(func.count()).select_from(TaskRow).where(TaskRow.removed_at.is_(None))
        return s.scalar(active) or 0

    def remove_task(
        self, name: str, is_abandoned: Callable[[RunRecord], bool] = lambda run: False
    ) -> TaskRecord:
        """Take a task out of the sequence in one transaction: it keeps its row, runs,
        evaluations and artifacts as history; later tasks move up a position. Refused while a
        live run trains it."""
        with self.session() as s:
            self._release_abandoned(s, is_abandoned)
            row = self._task_row(s, name)
            if self._live_train_run(s, row.id) is not None or row.status == "training":
                raise TaskBusy(
                    f"task {name!r} is being trained right now: wait for the run to finish "
                    f"(`contlearn runs {name}` shows it), then remove it"
                )
            position, row.position, row.removed_at = row.position, None, utcnow()
            s.flush()
            _shift(s, TaskRow.position > position, -1)
            return _record(TaskRecord, row)

    @staticmethod
    def _live_train_run(s: Session, task_id: int) -> RunRow | None:
        return s.scalars(
            select(RunRow)
            .where(RunRow.task_id == task_id, RunRow.purpose == "train")
            .where(RunRow.status == "running")
        ).first()

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
                .where(TaskRow.status == "pending", TaskRow.removed_at.is_(None))
                .order_by(TaskRow.position)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return None
            return _open_training(s, row, run_values)

    def add_claimed_task(
        self, spec: dict[str, Any], run_values: dict[str, Any]
    ) -> tuple[TaskRecord, int]:
        """Register a task at the end of the sequence already marked training, with its run
        open, in one transaction (an imported adapter: no worker may claim it meanwhile)."""
        with self.session() as s:
            self._insert_task(s, spec, None)
            return _open_training(s, self._task_row(s, spec["name"]), run_values)

    def claim_retrain(
        self,
        name: str,
        run_values: dict[str, Any],
        is_abandoned: Callable[[RunRecord], bool] = lambda run: False,
    ) -> tuple[TaskRecord, int, int]:
        """Open a run that trains a trained task again, in one transaction; returns the task,
        the new run and the run it would supersede. The task stays trained (its current run
        serves it) until the new run succeeds. Refused while another run trains it."""
        with self.session() as s:
            self._release_abandoned(s, is_abandoned)
            row = self._task_row(s, name)
            current = self._trained_run_row(s, row.id)
            if row.status != "trained" or current is None:
                raise TaskNotTrained(
                    f"task {name!r} is {row.status}, not trained yet: "
                    "`contlearn train-next` trains it the first time"
                )
            if self._live_train_run(s, row.id) is not None:
                raise TaskBusy(f"task {name!r} is being trained right now: wait for that run")
            run = RunRow(status="running", purpose="train", task_id=row.id, **run_values)
            run.heartbeat_at = utcnow()
            s.add(run)
            s.flush()
            return _record(TaskRecord, row), run.id, current.id

    @staticmethod
    def _release_abandoned(s: Session, is_abandoned: Callable[[RunRecord], bool]) -> None:
        rows = s.execute(
            select(TaskRow, RunRow)
            .join(RunRow, RunRow.task_id == TaskRow.id)
            .where(RunRow.status == "running", RunRow.purpose == "train")
            .with_for_update(skip_locked=True)
        ).all()
        for task, run in rows:
            if is_abandoned(_record(RunRecord, run)):
                run.status, run.finished_at = "failed", utcnow()
                run.error = f"abandoned: process {run.pid} on {run.host} stopped without finishing"
                if task.status == "training":  # a retrain leaves its task trained
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

    def finished_comparison_runs(
        self, comparison_id: int, methods: set[str] | None = None
    ) -> dict[int, RunRecord]:
        """The comparison's succeeded training runs (of ``methods``, if given), by task id (the
        last one per task)."""
        with self.session() as s:
            query = (
                select(RunRow)
                .where(RunRow.purpose == "compare", RunRow.comparison_id == comparison_id)
                .where(RunRow.status == "succeeded")
                .order_by(RunRow.id)
            )
            if methods is not None:
                query = query.where(RunRow.method.in_(sorted(methods)))
            return {r.task_id: _record(RunRecord, r) for r in s.scalars(query)}

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

    def task_artifacts(self, task_id: int, roles: Sequence[str]) -> list[ArtifactRecord]:
        """The task's artifacts of these roles whose files gc has not deleted, oldest first."""
        with self.session() as s:
            rows = s.scalars(
                select(ArtifactRow)
                .where(ArtifactRow.task_id == task_id, ArtifactRow.role.in_(list(roles)))
                .where(ArtifactRow.deleted_at.is_(None))
                .order_by(ArtifactRow.id)
            )
            return [_record(ArtifactRecord, r) for r in rows]

    def current_records(
        self, task_ids: Sequence[int]
    ) -> dict[int, tuple[RunRecord, list[ArtifactRecord], list[EvaluationRecord]]]:
        """For each of these tasks with a current run (``trained_run``): that run, its
        artifacts and its post-train evaluations, read in three queries for all of them."""
        with self.session() as s:
            runs: dict[int, RunRow] = {}
            for row in s.scalars(
                select(RunRow)
                .where(RunRow.task_id.in_(list(task_ids)), RunRow.purpose == "train")
                .where(RunRow.method == "adapter", RunRow.status == "succeeded")
                .order_by(RunRow.id)
            ):
                runs[row.task_id] = row  # the latest wins
            ids = [row.id for row in runs.values()]
            files = s.scalars(select(ArtifactRow).where(ArtifactRow.run_id.in_(ids))).all()
            posts = s.scalars(
                select(EvaluationRow)
                .where(EvaluationRow.run_id.in_(ids), EvaluationRow.kind == "post-train")
                .order_by(EvaluationRow.id)
            ).all()
            return {
                task_id: (
                    _record(RunRecord, row),
                    [_record(ArtifactRecord, a) for a in files if a.run_id == row.id],
                    [
                        _record(EvaluationRecord, e)
                        for e in posts
                        if e.run_id == row.id and e.task_id == task_id
                    ],
                )
                for task_id, row in runs.items()
            }

    def host_references(
        self, task_ids: Sequence[int]
    ) -> dict[int, list[tuple[EvaluationRecord, ArtifactRecord]]]:
        """For each of these tasks, the host references ``audit --adopt-host`` recorded (oldest
        first), each with the file of its logits, read in two queries for all of them. Which of
        them still count (those after the task's current post-train evaluation) is the
        caller's to decide."""
        with self.session() as s:
            refs = s.scalars(
                select(EvaluationRow)
                .where(EvaluationRow.task_id.in_(list(task_ids)))
                .where(EvaluationRow.kind == HOST_REFERENCE)
                .order_by(EvaluationRow.id)
            ).all()
            files = s.scalars(
                select(ArtifactRow)
                .where(ArtifactRow.run_id.in_({r.run_id for r in refs}))
                .where(ArtifactRow.role == HOST_LOGITS)
            ).all()
            by_key = {(a.run_id, a.task_id): _record(ArtifactRecord, a) for a in files}
            found: dict[int, list[tuple[EvaluationRecord, ArtifactRecord]]] = {}
            for r in refs:
                if (r.run_id, r.task_id) in by_key:
                    pair = (_record(EvaluationRecord, r), by_key[(r.run_id, r.task_id)])
                    found.setdefault(r.task_id, []).append(pair)
            return found

    def trained_run(self, task_id: int) -> RunRecord | None:
        """The task's current run: its latest successful adapter training run (a retrain that
        fails leaves the one before current)."""
        with self.session() as s:
            row = self._trained_run_row(s, task_id)
            return None if row is None else _record(RunRecord, row)

    @staticmethod
    def _trained_run_row(s: Session, task_id: int) -> RunRow | None:
        return s.scalars(
            select(RunRow)
            .where(RunRow.task_id == task_id, RunRow.purpose == "train")
            .where(RunRow.method == "adapter", RunRow.status == "succeeded")
            .order_by(RunRow.id.desc())
        ).first()

    def garbage_artifacts(self) -> list[ArtifactRecord]:
        """Artifacts whose files are still on disk but that no task uses: those of superseded
        runs and of removed tasks, except the dev logits of an adapter run a comparison used
        (its report's confidence intervals are computed from them)."""
        with self.session() as s:
            current = [
                self._trained_run_row(s, task_id)
                for task_id in s.scalars(select(TaskRow.id).where(TaskRow.removed_at.is_(None)))
            ]
            keep = [r.id for r in current if r is not None]
            compared = ArtifactRow.run_id.in_(_compared_runs(s)) & (ArtifactRow.role == "logits")
            since = {r.task_id: r.id for r in current if r is not None}
            rows = s.scalars(
                select(ArtifactRow)
                .where(ArtifactRow.deleted_at.is_(None), ArtifactRow.run_id.not_in(keep))
                .where(~compared)
                .order_by(ArtifactRow.id)
            )
            return [_record(ArtifactRecord, r) for r in rows if not _live_reference(r, since)]

    def artifacts_on_disk(self) -> list[ArtifactRecord]:
        """Every artifact whose file gc has not deleted."""
        with self.session() as s:
            rows = s.scalars(select(ArtifactRow).where(ArtifactRow.deleted_at.is_(None)))
            return [_record(ArtifactRecord, r) for r in rows]

    def mark_deleted(self, artifact_ids: Sequence[int]) -> None:
        """Record, in one transaction, that gc deleted these artifacts' files."""
        with self.session() as s:
            s.execute(
                update(ArtifactRow)
                .where(ArtifactRow.id.in_(list(artifact_ids)))
                .values(deleted_at=utcnow())
            )

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

    def current_methods(self) -> dict[int, str | None]:
        """Each trained task's method as its current run recorded it (None: a run from before
        methods had names)."""
        with self.session() as s:
            rows = s.execute(
                select(RunRow.task_id, RunRow.config)
                .where(RunRow.purpose == "train", RunRow.method == "adapter")
                .where(RunRow.status == "succeeded")
                .order_by(RunRow.id)
            )
            return {task_id: (config or {}).get("method") for task_id, config in rows}

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


def _live_reference(row: ArtifactRow, current_runs: dict[int, int]) -> bool:
    """Whether ``row`` is a host reference's logits or a task's routing statistics recorded
    after its task's current run (one recorded before it, or for a removed task, refers to
    weights no longer served)."""
    later = row.run_id > current_runs.get(row.task_id, row.run_id)
    return row.role in (HOST_LOGITS, *ROUTING_ROLES) and later


def _rollback(session: Session) -> None:
    """Roll back, tolerating a connection that is already gone (the server went away)."""
    try:
        session.rollback()
    except SQLAlchemyError:
        session.invalidate()


def _open_training(s: Session, row: TaskRow, run_values: dict[str, Any]) -> tuple[TaskRecord, int]:
    """Mark the task training and open its run (inside the caller's transaction)."""
    row.status = "training"
    run = RunRow(status="running", purpose="train", task_id=row.id, **run_values)
    run.heartbeat_at = utcnow()
    s.add(run)
    s.flush()
    return _record(TaskRecord, row), run.id


def _shift(s: Session, which: Any, by: int) -> None:
    """Move the positions of the tasks ``which`` selects by ``by``, in two steps so that the
    unique index on position never sees a duplicate."""
    s.execute(update(TaskRow).where(which).values(position=-TaskRow.position - by))
    s.execute(update(TaskRow).where(TaskRow.position < 0).values(position=-TaskRow.position))


def _values(record: Any, **extra: Any) -> dict[str, Any]:
    values = {f.name: getattr(record, f.name) for f in fields(record)}
    values.update(extra)
    return {k: v for k, v in values.items() if not (k in ("created_at", "id") and v is None)}


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
