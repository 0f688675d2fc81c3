"""A workspace: a folder with ``tasks.toml``, the ledger and ``artifacts/``; the Python API.

``Workspace`` is what both the CLI and Python users hold. Its methods are thin: each calls one
use-case function (imported lazily, so opening a workspace never imports torch).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import config as cfg
from .db import make_engine, upgrade
from .errors import WorkspaceExists, WorkspaceNotFound
from .ledger import Ledger, TaskRecord

ARTIFACTS_DIR = "artifacts"


def default_root() -> Path:
    return Path(os.environ.get("CONTLEARN_WORKSPACE") or ".")


def _require_sqlite_file(url: str) -> None:
    """Opening never creates a ledger: a missing SQLite file is a wrong path, not a new ledger."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return
    path = Path(url[len(prefix) :])
    if path.is_file():
        return
    problem = "is a folder, not a database file" if path.is_dir() else "does not exist"
    raise WorkspaceNotFound(
        f"ledger {path} {problem}: check --db, $CONTLEARN_DB or db in "
        f"{cfg.CONFIG_FILE} (`contlearn init` creates a workspace with its ledger)"
    )


@dataclass
class Workspace:
    """An open workspace. ``Workspace.open(path)`` or ``Workspace.create(path)``."""

    root: Path
    config: cfg.WorkspaceConfig
    ledger: Ledger
    db_url: str

    @classmethod
    def open(cls, root: str | Path | None = None, *, db: str | None = None) -> Workspace:
        """Open an existing workspace; migrations are applied if the ledger is behind."""
        root = Path(root) if root is not None else default_root()
        if not (root / cfg.CONFIG_FILE).is_file():
            raise WorkspaceNotFound(
                f"no contlearn workspace at {root.resolve()} (no {cfg.CONFIG_FILE}): "
                "run `contlearn init` there, or pass --workspace DIR"
            )
        config = cfg.load_config(root.resolve())
        url = cfg.database_url(root, config.db, db)
        _require_sqlite_file(url)
        engine = make_engine(url)
        upgrade(engine)
        return cls(root.resolve(), config, Ledger(engine), url)

    @classmethod
    def create(
        cls,
        root: str | Path | None = None,
        *,
        backbone: str | None = None,
        db: str | None = None,
    ) -> Workspace:
        """Create a workspace, loading the backbone once to fingerprint it."""
        from .intake import create_workspace

        root = Path(root) if root is not None else default_root()
        if (root / cfg.CONFIG_FILE).exists():
            raise WorkspaceExists(
                f"{root.resolve()} is already a contlearn workspace: nothing changed "
                "(`contlearn status` shows it)"
            )
        create_workspace(root, backbone or cfg.DEFAULT_BACKBONE, db)
        return cls.open(root, db=db)

    # -- paths -------------------------------------------------------------------------------
    @property
    def artifacts_dir(self) -> Path:
        return self.root / ARTIFACTS_DIR

    def task_dir(self, name: str) -> Path:
        return self.artifacts_dir / cfg.check_task_name(name)

    # -- use cases ---------------------------------------------------------------------------
    def tasks(self) -> list[TaskRecord]:
        return self.ledger.tasks()

    def status(self) -> list[dict[str, Any]]:
        from .intake import status

        return status(self)

    def add_task(
        self,
        name: str,
        data: str | Path,
        *,
        text_fields: Sequence[str] | None = None,
        label_field: str | None = None,
        metric: str | None = None,
        max_length: int | None = None,
        bottleneck: int | None = None,
        position: int | None = None,
    ) -> TaskRecord:
        """Register a task from a data folder (appended, or inserted before ``position``)."""
        from .intake import add_tasks

        entry = cfg.TaskEntry(
            name=cfg.check_task_name(name),
            data=str(Path(data).expanduser().resolve()),
            text_fields=tuple(text_fields) if text_fields else None,
            label_field=label_field,
            metric=metric,
            max_length=max_length,
            bottleneck=bottleneck,
        )
        add_tasks(self, [entry], position=position)
        return self.ledger.task(name)

    def sync(self) -> list[str]:
        """Register the tasks listed in ``tasks.toml`` that the ledger lacks, in order."""
        from .intake import add_tasks

        known = {t.name for t in self.ledger.tasks()}
        entries = [e for e in self.config.tasks if e.name not in known]
        add_tasks(self, entries)
        return [e.name for e in entries]

    def train_next(self, *, all_tasks: bool = False, **overrides: Any) -> list[dict[str, Any]]:
        """Train the next pending task (or all of them) with adapters; returns run results."""
        from .runner import train_pending

        return train_pending(self, all_tasks=all_tasks, **overrides)

    def audit(self, *, task: str | None = None, progress: bool = False) -> dict[str, Any]:
        from .auditing import audit

        return audit(self, task=task, progress=progress)

    def compare(
        self, *, methods: Sequence[str] = ("adapter", "full-finetune"), progress: bool = False
    ) -> dict[str, Any]:
        """Adapters vs sequential full fine-tuning on the task sequence (resumable)."""
        from .comparison import compare

        return compare(self, methods=tuple(methods), progress=progress)

    def predict(self, task: str, rows: Iterable[dict[str, Any]], **kwargs: Any) -> list[dict]:
        from .prediction import predict

        return predict(self, task, rows, **kwargs)
