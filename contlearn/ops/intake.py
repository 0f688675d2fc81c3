"""Use cases that set a workspace up and fill its task sequence: init, add-task, sync, status.

Nothing is written unless everything succeeded: data folders are read and validated before the
one ledger transaction that registers them, and ``init`` loads the backbone before it writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import config as cfg
from ..artifacts import FOLDER as ARTIFACTS_FOLDER
from ..data.task import TaskData, load_task_data
from ..errors import ContlearnError, TaskExists
from ..files import atomic_write
from ..ledger.engine import make_engine, sqlite_path, upgrade
from ..ledger.records import BackboneRecord
from ..ledger.store import Ledger


def create_workspace(root: Path, backbone: str, db: str | None) -> None:
    """Load and fingerprint the backbone, create the ledger, then write ``tasks.toml``."""
    from ..model import backbone as bb
    from ..model.adapted import AdaptedModel

    loaded = bb.load(backbone)
    AdaptedModel(loaded.model)  # refuses an architecture it cannot adapt, before writing
    identity = backbone if backbone == bb.DEFAULT_BACKBONE else bb.resolve(backbone)
    loaded.identity = identity
    root.mkdir(parents=True, exist_ok=True)
    url = cfg.database_url(root.resolve(), db)
    db_file = sqlite_path(url)
    existed = db_file is not None and db_file.exists()
    try:
        engine = make_engine(url)
        upgrade(engine)
        ledger = Ledger(engine)
        if ledger.backbone() is None:
            ledger.set_backbone(BackboneRecord(**bb.describe(loaded)))
        engine.dispose()
        atomic_write(root / cfg.CONFIG_FILE, cfg.render_config(identity, db).encode())
    except BaseException:
        if db_file is not None and not existed:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db_file}{suffix}").unlink(missing_ok=True)
        raise
    (root / ARTIFACTS_FOLDER).mkdir(exist_ok=True)


def task_spec(entry: cfg.TaskEntry, data: TaskData) -> dict[str, Any]:
    """The ledger's fields for a task registered from ``data``."""
    settings = {
        key: getattr(entry, key)
        for key in ("max_length", "bottleneck")
        if getattr(entry, key) is not None
    }
    return {
        "name": entry.name,
        "data_source": str(data.source),
        "data_format": data.format,
        "glue_task": data.glue_task,
        "data_files": list(data.files),
        "data_fingerprint": data.fingerprint,
        "train_rows": len(data.train.labels),
        "dev_rows": len(data.dev.labels),
        "text_fields": list(data.text_fields),
        "label_field": data.label_field,
        "problem_type": data.problem_type,
        "labels": None if data.labels is None else list(data.labels),
        "metric": data.metric,
        "metrics": list(data.metrics),
        "settings": settings,
    }


def read_entry(config: cfg.WorkspaceConfig, entry: cfg.TaskEntry) -> TaskData:
    """Read and validate a task's data as its entry describes it."""
    return load_task_data(
        config.resolve(entry.data),
        text_fields=entry.text_fields,
        label_field=entry.label_field,
        metric=entry.metric,
    )


def add_tasks(
    ledger: Ledger,
    config: cfg.WorkspaceConfig,
    entries: Sequence[cfg.TaskEntry],
    position: int | None = None,
) -> None:
    """Validate every entry's data, then register all of them in one transaction."""
    known = {t.name for t in ledger.tasks()}
    for entry in entries:
        if entry.name in known:
            raise TaskExists(
                f"task {entry.name!r} is already registered: choose another name "
                "(`contlearn status` lists the tasks)"
            )
    if position is not None and position < 1:
        raise ContlearnError(f"--position must be >= 1, got {position}")
    specs = [task_spec(entry, read_entry(config, entry)) for entry in entries]
    ledger.add_tasks(specs, position=position)


def unregistered(ledger: Ledger, config: cfg.WorkspaceConfig) -> list[cfg.TaskEntry]:
    """The ``[[task]]`` entries of ``tasks.toml`` the ledger lacks, in order."""
    known = {t.name for t in ledger.tasks()}
    return [e for e in config.tasks if e.name not in known]


def status(ledger: Ledger) -> list[dict[str, Any]]:
    """One dict per task, in sequence order, with its best recorded dev score once trained."""
    scores = ledger.post_train_scores()
    rows = []
    for task in ledger.tasks():
        score = scores.get(task.id) if task.status == "trained" else None
        rows.append(
            {
                "position": task.position,
                "name": task.name,
                "status": task.status,
                "train_rows": task.train_rows,
                "dev_rows": task.dev_rows,
                "labels": task.labels,
                "problem_type": task.problem_type,
                "metric": task.metric,
                "score": score,
                "data": task.data_source,
            }
        )
    return rows
