"""The Python API: a workspace is a folder with ``tasks.toml``, the ledger and ``artifacts/``.

``Workspace`` is what both the CLI and Python users hold. Its methods are thin: each hands one
use case (``contlearn.ops``) the parts it uses, the ledger, the artifact store and the
configuration, importing it lazily so that opening a workspace never imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import config as cfg
from .artifacts import ArtifactStore
from .errors import WorkspaceExists, WorkspaceNotFound
from .ledger.connect import reachable
from .ledger.engine import make_engine, sqlite_path, upgrade
from .ledger.records import TaskRecord
from .ledger.store import Ledger
from .model.backbone import DEFAULT_BACKBONE
from .naming import check_task_name


def default_root() -> Path:
    return Path(os.environ.get("CONTLEARN_WORKSPACE") or ".")


def _require_workspace(root: Path) -> None:
    if not (root / cfg.CONFIG_FILE).is_file():
        raise WorkspaceNotFound(
            f"no contlearn workspace at {root.resolve()} (no {cfg.CONFIG_FILE}): "
            "run `contlearn init` there, or pass --workspace DIR"
        )


def _require_sqlite_file(url: str) -> None:
    """Opening never creates a ledger: a missing SQLite file is a wrong path, not a new ledger."""
    path = sqlite_path(url)
    if path is None or path.is_file():
        return
    problem = "is a folder, not a database file" if path.is_dir() else "does not exist"
    raise WorkspaceNotFound(
        f"ledger {path} {problem}: check --db, $CONTLEARN_DB or db in "
        f"{cfg.CONFIG_FILE} (`contlearn init` creates a workspace with its ledger)"
    )


def ledger_url(root: str | Path | None = None, db: str | None = None) -> str:
    """The ledger URL of the workspace at ``root`` (``db`` overrides its configuration)."""
    root = Path(root) if root is not None else default_root()
    _require_workspace(root)
    return cfg.database_url(root.resolve(), cfg.load_config(root.resolve()).db, db)


@dataclass
class Workspace:
    """An open workspace. ``Workspace.open(path)`` or ``Workspace.create(path)``."""

    root: Path
    config: cfg.WorkspaceConfig
    ledger: Ledger
    db_url: str
    note: str | None = None  # after create: how the backbone's family was found, if not by type

    @classmethod
    def open(cls, root: str | Path | None = None, *, db: str | None = None) -> Workspace:
        """Open an existing workspace; migrations are applied if the ledger is behind."""
        root = Path(root) if root is not None else default_root()
        _require_workspace(root)
        config = cfg.load_config(root.resolve())
        url = cfg.database_url(root, config.db, db)
        _require_sqlite_file(url)
        engine = make_engine(url)
        reachable(engine)
        upgrade(engine)
        return cls(root.resolve(), config, Ledger(engine), url)

    @classmethod
    def create(
        cls,
        root: str | Path | None = None,
        *,
        backbone: str | None = None,
        db: str | None = None,
        layout: dict[str, str] | None = None,
        backbone_dtype: str = "fp32",
    ) -> Workspace:
        """Create a workspace, loading the backbone once to fingerprint it. ``layout`` describes
        a backbone family contlearn does not know (the keys of ``[backbone.layout]``, README:
        Backbones); how the family was found is ``Workspace.note`` afterwards.
        ``backbone_dtype`` (fp32, bf16 or fp16) is what the backbone's weights are loaded in
        from now on, fixed for the workspace: its tasks compute in it."""
        from .ops.intake import create_workspace

        root = Path(root) if root is not None else default_root()
        if (root / cfg.CONFIG_FILE).exists():
            raise WorkspaceExists(
                f"{root.resolve()} is already a contlearn workspace: nothing changed "
                "(`contlearn status` shows it)"
            )
        note = create_workspace(root, backbone or DEFAULT_BACKBONE, db, layout, backbone_dtype)
        ws = cls.open(root, db=db)
        ws.note = note
        return ws

    # -- files ---------------------------------------------------------------------------------
    @property
    def store(self) -> ArtifactStore:
        return ArtifactStore(self.root)

    @property
    def artifacts_dir(self) -> Path:
        return self.store.folder

    def task_dir(self, name: str) -> Path:
        """The folder that holds every run's artifact of task ``name``."""
        return self.store.task_dir(check_task_name(name))

    def artifact_files(self, name: str) -> dict[str, Path]:
        """The files of task ``name``'s current run, by role: weights, config, logits."""
        from .runtime.context import trained_artifacts

        records = trained_artifacts(self.ledger, self.ledger.task(name))
        return {role: self.store.resolve(record.path) for role, record in records.items()}

    # -- the task sequence ---------------------------------------------------------------------
    def tasks(self) -> list[TaskRecord]:
        return self.ledger.tasks()

    def status(self, *, verbose: bool = False) -> list[dict[str, Any]]:
        """The sequence, one dict per task; ``verbose`` adds each task's current run."""
        from .ops.intake import status

        return status(self.ledger, verbose=verbose, default_method=self.config.adapter.method)

    def trained_after(self, names: Sequence[str]) -> list[str]:
        """The trained tasks that come after the tasks ``names`` in the sequence."""
        from .ops.intake import trained_after

        return trained_after(self.ledger, names)

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
        method: str | None = None,
        options: dict[str, Any] | None = None,
        position: int | None = None,
        kind: str | None = None,
        max_new_tokens: int | None = None,
        init_from: str | None = None,
    ) -> TaskRecord:
        """Register a task from a data folder (appended, or inserted before ``position``);
        ``method`` and its ``options`` (e.g. ``method="lora", options={"rank": 16}``) default
        to the workspace's ``[adapter]``; ``kind`` (``contlearn.kinds``) to the kind the data
        is recognised as; ``max_new_tokens``: a generation task's decoding budget (default
        ``[train] max_new_tokens``); ``init_from``: a trained task whose modules this one's
        start from when it trains, or ``"auto"`` (``runtime.init_from``)."""
        from .ops.intake import add_tasks

        entry = cfg.TaskEntry(
            name=check_task_name(name),
            data=str(Path(data).expanduser().resolve()),
            text_fields=tuple(text_fields) if text_fields else None,
            label_field=label_field,
            metric=metric,
            max_length=max_length,
            bottleneck=bottleneck,
            method=method,
            options=dict(options) if options else None,
            kind=kind,
            max_new_tokens=max_new_tokens,
            init_from=init_from,
        )
        add_tasks(self.ledger, self.config, [entry], position=position)
        return self.ledger.task(name)

    def sync(self) -> list[str]:
        """Register the tasks listed in ``tasks.toml`` that the ledger lacks, in order."""
        from .ops.intake import add_tasks, unregistered

        entries = unregistered(self.ledger, self.config)
        add_tasks(self.ledger, self.config, entries)
        return [e.name for e in entries]

    # -- training, checking, comparing ---------------------------------------------------------
    def train_next(
        self,
        *,
        all_tasks: bool = False,
        progress: bool = False,
        on_result: Any = None,
        on_estimate: Any = None,
        **options: Any,
    ) -> list[dict[str, Any]]:
        """Train the next pending task (or all of them) with adapters; returns run results.

        ``options``: training settings (``epochs``, ``lr``, ``max_train_examples`` ...; an
        unknown one raises ``TypeError``), and ``progress``, ``on_result``, ``on_estimate``."""
        from .ops.train_next import train_pending
        from .runtime.events import Events

        hear = None if on_result is None else (lambda result: on_result(result.as_dict()))
        events = Events(bars=progress, on_estimate=on_estimate, on_result=hear)
        results = train_pending(
            self.ledger, self.store, self.config, all_tasks=all_tasks, events=events, **options
        )
        return [result.as_dict() for result in results]

    def retrain(
        self, name: str, *, progress: bool = False, on_estimate: Any = None, **options: Any
    ) -> dict[str, Any]:
        """Train task ``name`` again, a new adapter from scratch; it becomes current only if it
        succeeds and every other trained task verifies identical (options as ``train_next``)."""
        from .ops.train_next import retrain
        from .runtime.events import Events

        events = Events(bars=progress, on_estimate=on_estimate)
        result = retrain(self.ledger, self.store, self.config, name, events=events, **options)
        return result.as_dict()

    def export(
        self, name: str, fmt: str, out: str | Path, *, include_norms: bool = False
    ) -> dict[str, Any]:
        """Write trained task ``name`` as an AdapterHub (``fmt="adapterhub"``) or peft folder
        at ``out``, with a provenance file; ``include_norms`` adds its LayerNorm copies."""
        from .ops.interop import export_task

        return export_task(
            self.ledger, self.store, name, fmt, Path(out), include_norms=include_norms
        )

    def import_adapter(
        self,
        name: str,
        source: str | Path,
        data: str | Path,
        *,
        progress: bool = False,
        **options: Any,
    ) -> dict[str, Any]:
        """Register task ``name`` from an AdapterHub or peft folder ``source`` and the data
        folder ``data``: evaluated, recorded and every earlier task verified. ``options``:
        ``fmt``, ``max_length``, ``device``, ``progress``."""
        from .ops.interop import import_adapter
        from .runtime.events import Events

        source, data, events = Path(source), Path(data), Events(bars=progress)
        return import_adapter(
            self.ledger, self.store, self.config, name, source, data, events=events, **options
        )

    def remove(self, name: str) -> dict[str, Any]:
        """Take task ``name`` out of the sequence; its runs and files stay as history."""
        from .ops.lifecycle import remove_task

        return remove_task(self.ledger, name)

    def gc(self, *, dry_run: bool = False) -> dict[str, Any]:
        """Delete the artifact files no task uses; returns what went and the bytes freed."""
        from .ops.lifecycle import collect_garbage

        return collect_garbage(self.ledger, self.store, dry_run=dry_run)

    def runs(self, task: str | None = None) -> list[dict[str, Any]]:
        """Every run (of task ``task``, or all), oldest first."""
        from .ops.history import run_rows

        return run_rows(self.ledger, task)

    def record_abandoned_runs(self, reason: str) -> list[int]:
        """Record failed, with ``reason``, every running training run of this host whose
        process is gone (its task pending again); returns their ids."""
        from .runtime.runs import fail_abandoned

        return fail_abandoned(self.ledger, reason)

    def comparisons(self) -> list[dict[str, Any]]:
        """Every comparison, oldest first."""
        from .ops.history import comparison_rows

        return comparison_rows(self.ledger)

    def audit(
        self,
        *,
        task: str | None = None,
        device: str | None = None,
        progress: bool = False,
        adopt_host: bool = False,
    ) -> dict[str, Any]:
        """Re-evaluate every trained task (or one) on ``device`` (default: the workspace's);
        ``["verdict"]`` is "clean" when all match. ``adopt_host``: record this host's logits
        as the reference of every task that passed under another recipe (``audit
        --adopt-host``)."""
        from .ops.audit import audit
        from .runtime.events import Events

        where = device or self.config.device
        return audit(
            self.ledger,
            self.store,
            task=task,
            device=where,
            events=Events(bars=progress),
            adopt_host=adopt_host,
            workspace=self.config,
        )

    def audit_history(self) -> list[dict[str, Any]]:
        """Past audits, oldest first."""
        from .ops.audit import history

        return history(self.ledger)

    def plan_comparison(
        self,
        *,
        methods: Sequence[str] = ("all",),
        device: str | None = None,
        **budget: Any,
    ) -> dict[str, Any]:
        """What ``compare`` would run: the tasks, the adapter runs it reuses and each task's
        full fine-tuning settings; nothing is trained or recorded."""
        from .ops.compare import plan

        where = device or self.config.device
        return plan(self.ledger, self.config.compare, tuple(methods), budget, where)

    def compare(
        self,
        *,
        methods: Sequence[str] = ("all",),
        progress: bool = False,
        on_estimate: Any = None,
        device: str | None = None,
        **budget: Any,
    ) -> dict[str, Any]:
        """Adapters vs the baselines on the task sequence (resumable): ``methods`` from
        adapter, sequential, ewc, replay, joint, separate, lora-merged (``all``: every one that
        fits).
        ``budget``: ``epochs``, ``max_train_examples``, ``batch_size``, ``max_length``,
        ``seed`` and ``lr`` (the baselines') override the settings taken from each task's
        adapter run."""
        from .ops.compare import compare
        from .runtime.events import Events

        return compare(
            self.ledger,
            self.store,
            self.config.compare,
            methods=tuple(methods),
            overrides=budget,
            events=Events(bars=progress, on_estimate=on_estimate),
            device=device or self.config.device,
        )

    def tradeoff(
        self,
        name: str,
        *,
        grid: str | None = None,
        device: str | None = None,
        progress: bool = False,
        on_point: Any = None,
        on_estimate: Any = None,
        **budget: Any,
    ) -> dict[str, Any]:
        """The parameter/performance trade-off on task ``name``: every point of ``grid``
        (``method[:key=value...]``, comma-separated; default: ``ops.tradeoff.DEFAULT_GRID``, the
        points that fit the backbone)
        trained as a ``tradeoff`` run, finished points reused. ``budget``: ``epochs``,
        ``max_train_examples``, ``batch_size``, ``max_length``, ``seed``, ``precision``."""
        from .ops.tradeoff import tradeoff
        from .runtime.events import Events

        return tradeoff(
            self.ledger,
            self.store,
            self.config,
            name,
            grid=grid,
            device=device,
            events=Events(bars=progress, on_estimate=on_estimate, on_point=on_point),
            **budget,
        )

    def write_tradeoff(self, result: dict[str, Any], out: Path) -> list[Path]:
        """Write a trade-off's tradeoff.json/md/html/png into ``out``; returns the paths."""
        from .report.tradeoff import write_tradeoff

        return write_tradeoff(result, Path(out))

    def write_report(self, results: dict[str, Any], out: Path | None = None) -> dict[str, Path]:
        """Write a comparison's report files (default: ``reports/<time>/``); returns them."""
        from .ops.reporting import write_comparison_report

        return write_comparison_report(self.ledger, self.root, results, out)

    def rebuild_report(
        self, comparison_id: int | None = None, out: Path | None = None
    ) -> tuple[dict[str, Any], dict[str, Path]]:
        """A finished comparison's results (the latest by default) and its report files."""
        from .ops.reporting import rebuild_report

        return rebuild_report(self.ledger, self.root, comparison_id, out)

    def generate(
        self,
        task: str,
        prompts: Sequence[str],
        *,
        max_new_tokens: int | None = None,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        device: str | None = None,
    ) -> list[dict[str, Any]]:
        """Answer ``prompts`` with the generation task ``task``: per prompt ``{"index",
        "prompt", "text", "tokens"}``. Greedy unless ``temperature`` > 0 (then sampled, top-p
        ``top_p``, reproducible with ``seed``); ``max_new_tokens`` defaults to the task's."""
        from .ops.generate import Sampling, generate

        sampling = Sampling(max_new_tokens, temperature, top_p, seed)
        return generate(
            self.ledger,
            self.store,
            task,
            prompts,
            sampling,
            device=device or self.config.device,
            workspace=self.config,
        )

    def predict(
        self,
        task: str | None,
        rows: Iterable[dict[str, Any]],
        *,
        progress: bool = False,
        on_note: Any = None,
        **kwargs: Any,
    ) -> list[dict]:
        """One result per row: the predicted label (or value) and the class probabilities.
        ``task`` None (without ``task_field``) or ``"auto"``: routing chooses each row's task,
        and each result adds its ``confidence`` (``task`` None: none of the trained tasks)."""
        from .ops.predict import predict
        from .runtime.events import Events

        if task is None and kwargs.get("task_field") is None:
            from .naming import AUTO

            task = AUTO
        kwargs["device"] = kwargs.get("device") or self.config.device
        events = Events(bars=progress, on_note=on_note)
        kwargs |= {"events": events, "workspace": self.config}
        return predict(self.ledger, self.store, task, rows, **kwargs)

    def route(self, rows: Iterable[dict[str, Any]], *, device: str | None = None) -> list[dict]:
        """Which trained task each row belongs to: per row ``{"index", "id"?, "task",
        "confidence"}`` (``task`` None, with the ``nearest`` one: none of these)."""
        from .ops.route import route

        where = device or self.config.device
        return route(self.ledger, self.store, rows, device=where, workspace=self.config)

    def route_stats(self, *, device: str | None = None) -> dict[str, Any]:
        """Record routing statistics for every trained task that has none (tasks trained before
        routing existed), each under a run of its own; their training runs stay untouched."""
        from .ops.route_stats import route_stats

        where = device or self.config.device
        return route_stats(self.ledger, self.store, device=where, workspace=self.config)

    def routing_report(self, *, device: str | None = None, max_rows: int = 1000) -> dict:
        """How routing decides over the trained tasks' dev inputs: the routing matrix after
        each task, "none of these" AUROC per held-out task, the end-to-end metric with routing
        and with the true task, and throughput with routing and with the task given."""
        from .ops.route_report import routing_report

        where = device or self.config.device
        return routing_report(
            self.ledger, self.store, device=where, workspace=self.config, max_rows=max_rows
        )
