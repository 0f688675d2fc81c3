"""Use cases that set a workspace up and fill its task sequence: init, add-task, sync, status.

Nothing is written unless everything succeeded: data folders are read and validated before the
one ledger transaction that registers them, and ``init`` loads the backbone before it writes.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .. import config as cfg
from .. import kinds
from ..artifacts import FOLDER as ARTIFACTS_FOLDER
from ..data.task import TaskData, load_task_data
from ..errors import ConfigError, ContlearnError, TaskExists
from ..faults import guarded, require_space
from ..files import atomic_write, file_mode, sha256_file
from ..interrupts import checkpoint
from ..kinds.generation import check_max_new_tokens
from ..ledger.engine import make_engine, sqlite_path, upgrade
from ..ledger.records import BackboneRecord, TaskRecord
from ..ledger.store import Ledger
from ..model.backbone import positions_of
from ..model.methods.registry import DEFAULT_METHOD, UNNAMED
from ..runtime.runs import is_abandoned
from ..runtime.settings import check_max_length


def create_workspace(
    root: Path,
    backbone: str,
    db: str | None,
    layout: dict[str, str] | None = None,
    dtype: str = "fp32",
) -> str | None:
    """Load and fingerprint the backbone (its weights in ``dtype``: fp32, bf16 or fp16, which
    this machine's device (auto) must compute in; a GGUF file converted once into the
    workspace first), create the ledger, then write ``tasks.toml``; returns how the backbone's
    family was found when its model type did not say (else None)."""
    from .. import devices
    from ..model import backbone as bb
    from ..model.adapted import AdaptedModel
    from ..model.families import from_layout

    described = from_layout(layout) if layout else None
    dtype = devices.check_backbone_dtype(dtype, devices.resolve("auto"))
    with converted_backbone(root, backbone) as source:
        loaded = bb.load(backbone, dtype, root)
        note = AdaptedModel(loaded.model, layout=described).note  # refused before writing
        identity = backbone if backbone == bb.DEFAULT_BACKBONE else bb.resolve(backbone)
        loaded.identity = identity
        root.mkdir(parents=True, exist_ok=True)
        record = BackboneRecord(**bb.describe(loaded, source))
        _write_workspace(root, db, record, cfg.render_config(identity, db, layout))
    (root / ARTIFACTS_FOLDER).mkdir(exist_ok=True)
    return note


def _write_workspace(root: Path, db: str | None, record: BackboneRecord, config: str) -> None:
    """Create (or upgrade) the ledger and record the backbone, then write ``tasks.toml``; a
    ledger file this call created is removed again if that fails."""
    url = cfg.database_url(root.resolve(), db)
    db_file = sqlite_path(url)
    existed = db_file is not None and db_file.exists()
    try:
        engine = make_engine(url)
        upgrade(engine)
        ledger = Ledger(engine)
        if ledger.backbone() is None:
            ledger.set_backbone(record)
        engine.dispose()
        atomic_write(root / cfg.CONFIG_FILE, config.encode())
    except BaseException:
        if db_file is not None and not existed:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db_file}{suffix}").unlink(missing_ok=True)
        raise


@contextmanager
def converted_backbone(root: Path, backbone: str) -> Iterator[dict[str, Any] | None]:
    """A GGUF ``backbone`` converted into the workspace's backbone folder (yields where it came
    from, for the ledger; None for any other backbone, which is loaded as given). If the block
    fails, the folder goes again, and so does ``root`` if this made it and it is empty."""
    from ..model import converted

    if not converted.is_gguf(backbone):
        yield None
        return
    path = Path(backbone).expanduser()
    converted.check_file(path)
    target = root / converted.FOLDER
    if target.exists():
        raise ConfigError(f"{target} already exists: init the workspace in another folder")
    source = converted.read_source(path, sha256_file(path))
    require_space(root, 4 * source.parameters, "the converted backbone (fp32)")
    made = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    try:
        with guarded("writing", target):
            converted.convert(source, target)
        for file in target.iterdir():  # readable by whoever shares the workspace
            file.chmod(file_mode())
        yield source.record()
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        if made and not any(root.iterdir()):
            root.rmdir()
        raise


def task_spec(
    entry: cfg.TaskEntry, data: TaskData, backbone: BackboneRecord | None = None
) -> dict[str, Any]:
    """The ledger's fields for a task registered from ``data`` (of the entry's kind, which
    must fit the data and the workspace's ``backbone``, or the kind the data was recognised
    as)."""
    kind = kinds.get(entry.kind or data.kind)
    kind.check_data(entry.name, data.problem_type)
    if backbone is not None:
        check_backbone_fits(entry.name, kind, backbone)
    settings = {
        key: getattr(entry, key)
        for key in ("max_length", "bottleneck", "method", "options", "max_new_tokens", "init_from")
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
        "kind": kind.name,
        "labels": data.labels and list(data.labels),  # None: the kind has no label set
        "metric": data.metric,
        "metrics": list(data.metrics),
        "settings": settings,
    }


def check_backbone_fits(name: str, kind: kinds.TaskKind, backbone: BackboneRecord) -> None:
    """Refuse a kind the backbone cannot learn: generation on an encoder (a backbone whose
    family reads no last token: BERT and its kin)."""
    from ..model.families import FAMILIES

    decoder = any(backbone.model_type in f.model_types and f.causal for f in FAMILIES)
    if kind.needs_decoder and not decoder:
        raise ConfigError(
            f"task {name!r}: a {kind.name} task needs a decoder backbone (a causal LM such as "
            f"Llama, Qwen2 or GPT-2), but this workspace's is {backbone.model_type!r}: "
            "init a workspace on a decoder"
        )


def read_entry(config: cfg.WorkspaceConfig, entry: cfg.TaskEntry) -> TaskData:
    """Read and validate a task's data as its entry describes it."""
    return load_task_data(
        config.resolve(entry.data),
        text_fields=entry.text_fields,
        label_field=entry.label_field,
        metric=entry.metric,
        kind=entry.kind,
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
    if position is not None and position > len(known) + 1:  # before reading any data
        raise ContlearnError(
            f"position {position} is beyond the end of the sequence ({len(known)} tasks): "
            f"give 1 to {len(known) + 1}, or no position to append"
        )
    layers, identity = ledger.backbone().num_layers, ledger.backbone().identity
    limit = positions_of(identity, config.root)
    for entry in entries:  # the method, its options and max length, before any data is read
        _check_method(config, entry, layers)
        check_max_length(entry.max_length, limit, identity, "give --max-length")
        if entry.max_new_tokens is not None:
            check_max_new_tokens(entry.max_new_tokens)
    backbone = ledger.backbone()
    specs = [task_spec(entry, read_entry(config, entry), backbone) for entry in entries]
    checkpoint()  # a signal while the data was read: stop before registering anything
    ledger.add_tasks(specs, position=position)


def _check_method(config: cfg.WorkspaceConfig, entry: cfg.TaskEntry, layers: int) -> None:
    from ..model.methods.common import check_depth
    from ..runtime.settings import method_config

    settings = {"method": entry.method, "options": entry.options, "bottleneck": entry.bottleneck}
    try:
        chosen = method_config(
            config.adapter, {k: v for k, v in settings.items() if v is not None}, {}
        )
        check_depth(chosen, layers)
    except ConfigError as exc:
        raise ConfigError(f"task {entry.name!r}: {exc}") from exc


def trained_after(ledger: Ledger, names: Sequence[str]) -> list[str]:
    """The trained tasks that come after the newly added ``names`` in the sequence."""
    tasks = ledger.tasks()
    first = min((t.position for t in tasks if t.name in names), default=None)
    if first is None:
        return []
    return [t.name for t in tasks if t.position > first and t.status == "trained"]


def unregistered(ledger: Ledger, config: cfg.WorkspaceConfig) -> list[cfg.TaskEntry]:
    """The ``[[task]]`` entries of ``tasks.toml`` the ledger lacks, in order."""
    known = {t.name for t in ledger.tasks()}
    return [e for e in config.tasks if e.name not in known]


def status(
    ledger: Ledger, *, verbose: bool = False, default_method: str = DEFAULT_METHOD
) -> list[dict[str, Any]]:
    """One dict per task, in sequence order, with its method (its current run's once trained,
    else the one it will train with) and its current run's dev score once trained; ``verbose``
    adds that run (settings, time, warnings)."""
    scores = ledger.post_train_scores()
    trained_with = ledger.current_methods()
    rows = []
    for task in ledger.tasks():
        method = task.settings.get("method") or default_method
        if task.id in trained_with:
            method = trained_with[task.id] or UNNAMED
        row = {
            "position": task.position,
            "name": task.name,
            "method": method,
            "status": _task_status(ledger, task),
            "train_rows": task.train_rows,
            "dev_rows": task.dev_rows,
            "labels": task.labels,
            "problem_type": task.problem_type,
            "kind": task.kind,
            "metric": task.metric,
            "score": scores.get(task.id) if task.status == "trained" else None,
            "text_fields": task.text_fields,
            "label_field": task.label_field,
            "data": task.data_source,
        }
        if verbose:
            row["run"] = _current_run(ledger, task)
        rows.append(row)
    return rows


def _task_status(ledger: Ledger, task: TaskRecord) -> str:
    """The task's status, or "abandoned (process N gone)" for a training whose process died
    (the next worker takes it over)."""
    if task.status != "training":
        return task.status
    for run in ledger.runs(purpose="train", task_id=task.id):
        if run.status == "running" and is_abandoned(run):
            return f"abandoned (process {run.pid} gone)"
    return task.status


def _current_run(ledger: Ledger, task: TaskRecord) -> dict[str, Any] | None:
    run = ledger.trained_run(task.id)
    if run is None:
        return None
    train = run.config.get("train", {})
    result = run.result or {}
    return {
        "id": run.id,
        "finished_at": run.finished_at,
        "seconds": run.seconds,
        "method": run.config.get("method", UNNAMED),
        "settings": {k: train.get(k) for k in ("epochs", "lr", "batch_size", "max_length")},
        "max_train_examples": train.get("max_train_examples"),
        "metrics": result.get("metrics"),
        "warnings": result.get("warnings", []),
    }
