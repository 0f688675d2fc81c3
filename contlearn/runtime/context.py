"""The model side of a workspace, for the use cases: the workspace's backbone loaded and checked
against the ledger, task artifacts loaded onto it, and task data read back and encoded.

One :class:`ModelContext` holds one backbone in memory and serves every task on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import devices
from ..artifacts import CONFIG, ArtifactStore
from ..config import TrainConfig, WorkspaceConfig
from ..data.task import TaskData, load_task_data
from ..errors import ArtifactError, BackboneError, BadData, ContlearnError
from ..kinds import kind_of
from ..ledger.records import ArtifactRecord, TaskRecord
from ..ledger.store import Ledger
from ..model import backbone as bb
from ..model.adapted import AdaptedModel
from ..model.families import uses_token_types
from ..model.methods.registry import UNNAMED, method_config
from ..model.resident import Residency
from ..train.batching import Encoded, encode, subsample
from ..train.world import SINGLE, World
from . import fusion
from .current import trained_artifacts


@dataclass
class Split:
    """A data split as the model takes it: token ids, and targets (class indices or floats)."""

    encoded: Encoded
    targets: list


@dataclass
class ModelContext:
    """One backbone (with its sites wrapped) on one device, serving the tasks loaded onto it."""

    ledger: Ledger
    store: ArtifactStore
    backbone: bb.LoadedBackbone
    model: AdaptedModel
    device: Any = None  # torch.device; the backbone, the task modules and every batch live there
    loaded: dict[str, str] = field(default_factory=dict)  # task -> weights sha256 in memory
    world: World = SINGLE  # the processes that train one task together (rank 0 records)
    # task -> digest of its tensors as loaded from the verified file (``tensor_digest``)
    digests: dict[str, str] = field(default_factory=dict)
    # encoded dev splits, by (data fingerprint, max length): read and tokenised once a process
    splits: dict[tuple[str, int], Split] = field(default_factory=dict)
    # the loaded tasks whose modules stay on the device (least recently used evicted)
    residency: Residency = field(default_factory=Residency)
    # on an accelerator, the CPU copy of an evicted task: (weights sha256, state, config)
    host: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = field(default_factory=dict)
    metas: dict[str, dict[str, Any]] = field(default_factory=dict)  # task -> its artifact config

    def precision(self, spec: str) -> str:
        """The training precision ``spec`` resolves to on this device, with this backbone."""
        return devices.resolve_precision(spec, self.device, self.backbone.dtype)

    def check_backbone(self) -> None:
        """The backbone in memory still matches the ledger (nothing trained it by accident)."""
        recorded = self.ledger.backbone()
        bb.check_same(recorded.fingerprint, bb.fingerprint(self.model.backbone), recorded.identity)

    def ensure(self, tasks: list[TaskRecord]) -> dict[str, dict[str, Any]]:
        """Every one of ``tasks`` built on the device (reusing what is resident, rebuilding an
        evicted one from its CPU copy or its verified files); returns each one's config."""
        metas = {}
        for task in tasks:
            if task.name in self.loaded:
                self.residency.use(task.name)
                metas[task.name] = self.metas[task.name]
            elif task.name in self.host:
                sha, state, meta = self.host.pop(task.name)
                metas[task.name] = self._build(task, state, meta, sha)
            else:
                metas[task.name] = self._load(task)
        self._evict(keep={t.name for t in tasks})
        return metas

    def task_config(self, task: TaskRecord) -> dict[str, Any]:
        """A trained task's artifact config (its method, training settings), without building
        its modules."""
        if task.name in self.metas:
            return self.metas[task.name]
        return self._read_config(task, trained_artifacts(self.ledger, task)["config"])

    def _read_config(self, task: TaskRecord, config: Any) -> dict[str, Any]:
        """The artifact config file, its checksum verified first and its shape checked."""
        self.store.verify(config.path, config.sha256, task.name)
        meta = self.store.load_json(config.path)
        if not isinstance(meta, dict) or not {"adapter", "train"} <= set(meta):
            raise ArtifactError(
                f"task {task.name!r}: {config.path} is not an adapter config: restore the original"
            )
        _task_settings(task, config.path, meta)  # a malformed one is refused here, by path
        return meta

    def _evict(self, keep: set[str]) -> None:
        for name in self.residency.over(keep):
            if name not in self.model.tasks:
                continue
            if self.device is not None and self.device.type != "cpu":
                self.host[name] = (self.loaded[name], self.model.task_state(name), self.metas[name])
            self._drop(name)

    def unload(self, name: str) -> None:
        """Forget task ``name``: its modules, its CPU copy, what was recorded of its load."""
        self.residency.forget(name)
        self.host.pop(name, None)
        self._drop(name)

    def _drop(self, name: str) -> None:
        if name in self.model.tasks:
            self.model.remove_task(name)
        for held in (self.loaded, self.digests, self.metas):
            held.pop(name, None)

    def load_task(self, task: TaskRecord) -> dict[str, Any]:
        """Load a trained task's artifact (checksums verified first); returns its config."""
        meta = self._load(task)
        self._evict(keep={task.name})
        return meta

    def _load(self, task: TaskRecord) -> dict[str, Any]:
        files = trained_artifacts(self.ledger, task)
        weights = files["weights"]
        meta = self._read_config(task, files["config"])
        self.store.verify(weights.path, weights.sha256, task.name)
        state = self.store.load_tensors(weights.path)
        return self._build(task, state, meta, weights.sha256)

    def _build(self, task: TaskRecord, state: dict, meta: dict[str, Any], sha: str) -> dict:
        """Task ``task``'s modules from ``state``, on the device, as its config ``meta`` (read
        and checked by ``_read_config``) says."""
        if task.name in self.model.tasks:
            self.model.remove_task(task.name)
        adapter, dropout = _task_settings(task, CONFIG, meta)
        self._check_family(task, meta)
        if adapter.method == fusion.METHOD:  # the tasks it reads, loaded first and checked
            self._load_fused(task, meta)
        self.model.load_task(
            task.name,
            state,
            num_outputs=kind_of(task).num_outputs(task.labels),
            adapter=adapter,
            dropout=dropout,
            head=kind_of(task).head,
        )
        self.loaded[task.name], self.metas[task.name] = sha, meta
        self.digests[task.name] = tensor_digest(state)
        self.residency.use(task.name)
        return meta

    def _load_fused(self, task: TaskRecord, meta: dict[str, Any]) -> None:
        """The tasks a fusion task reads, on the model, with the weights its artifact names."""
        for record in fusion.check_recorded(self.ledger, task, meta):
            if record.name not in self.model.tasks:
                self._load(record)
            if self.loaded[record.name] != meta["fused"][record.name]:
                raise ArtifactError(
                    f"task {task.name!r} fuses {record.name!r} weights "
                    f"{meta['fused'][record.name][:12]}, but {self.loaded[record.name][:12]} "
                    f"are loaded: retrain {task.name!r}"
                )

    def in_memory_digest(self, name: str) -> str:
        """The digest of task ``name``'s tensors as they are in memory now."""
        return tensor_digest(self.model.task_state(name))

    def dev_split(
        self,
        task: TaskRecord,
        max_length: int,
        data: TaskData | None = None,
        *,
        max_new_tokens: int | None = None,
    ) -> Split:
        """The task's dev split, encoded at ``max_length`` (a generation task's with the
        ``max_new_tokens`` its run records): read (and checked against its recorded
        fingerprint; ``data`` if the caller has read it) and tokenised the first time a process
        asks, then kept."""
        key = (task.data_fingerprint, max_length, kind_of(task).name, max_new_tokens)
        if key not in self.splits:
            data = data or read_task_data(task)
            self.splits[key] = self.encode(
                task, data.dev, max_length, max_new_tokens=max_new_tokens
            )
        return self.splits[key]

    def _check_family(self, task: TaskRecord, meta: dict[str, Any]) -> None:
        recorded = meta.get("family", self.model.family.name)  # release 0.1 recorded none
        if recorded != self.model.family.name:
            raise ArtifactError(
                f"task {task.name!r} was trained on backbone family {recorded!r}, but this "
                f"backbone is {self.model.family.name!r}: restore the original backbone"
            )

    def encode(
        self,
        task: TaskRecord,
        rows: Any,
        max_length: int,
        *,
        training: bool = False,
        max_new_tokens: int | None = None,
    ) -> Split:
        """Tokenize a data split's rows and map its labels to targets (``training``: a split
        the model learns from, whose encoding may depend on its targets; ``max_new_tokens``:
        a generation task's decoding budget, as its run records it)."""
        wanted = targets(task, rows.labels)
        kind = kind_of(task)
        encoded = kind.encode_split(
            self.backbone.tokenizer,
            rows.texts,
            self.capped(max_length),
            uses_token_types(self.backbone.model),
            wanted,
            training=training,
            max_new_tokens=max_new_tokens,
        )
        return Split(encoded, wanted)

    def capped(self, max_length: int) -> int:
        """``max_length``, never beyond the backbone's positions."""
        positions = self.backbone.positions
        return max_length if positions is None else min(max_length, positions)

    def encode_texts(
        self, texts: Any, max_length: int, *, kind: Any = None, max_new_tokens: int | None = None
    ) -> Encoded:
        """Token ids of ``texts`` (single texts or pairs, or what ``kind`` reads), truncated at
        ``max_length`` and never beyond the backbone's positions: a task recorded by release 0.2
        with a longer max length trained only on rows that fit (a longer one failed), so
        capping changes none of them. ``max_new_tokens``: a generation task's budget."""
        backbone = self.backbone
        max_length = self.capped(max_length)
        token_types = uses_token_types(backbone.model)
        if kind is None:
            return encode(backbone.tokenizer, texts, max_length, token_types=token_types)
        return kind.encode_split(
            backbone.tokenizer,
            texts,
            max_length,
            token_types,
            None,
            training=False,
            max_new_tokens=max_new_tokens,
        )


def tensor_digest(state: dict[str, Any]) -> str:
    """sha256 over a state dict's keys, dtypes, shapes and bytes, in key order."""
    import hashlib

    import torch

    digest = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().to("cpu").contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _task_settings(task: TaskRecord, path: str, meta: dict[str, Any]) -> tuple[Any, float]:
    """The method config and head dropout an artifact config records (release 0.1: houlsby)."""
    try:
        adapter = method_config(meta.get("method", UNNAMED), meta["adapter"])
        dropout = float(meta["train"]["dropout"])
    except (TypeError, KeyError, ValueError, ContlearnError) as exc:
        raise ArtifactError(f"task {task.name!r}: {path} is malformed: {exc}") from exc
    return adapter, dropout


def load_recorded_backbone(ledger: Ledger, root: Path) -> bb.LoadedBackbone:
    """Load the backbone the ledger records (a GGUF one from its copy converted into the
    workspace at ``root``), refused if its fingerprint differs."""
    recorded = ledger.backbone()
    if recorded is None:
        raise BackboneError("the ledger records no backbone: recreate the workspace with init")
    loaded = bb.load(recorded.identity, recorded.dtype, root)
    bb.check_same(recorded.fingerprint, loaded.fingerprint, recorded.identity)
    return loaded


def open_context(
    ledger: Ledger,
    store: ArtifactStore,
    device: str = "auto",
    world: World = SINGLE,
    workspace: WorkspaceConfig | None = None,
) -> ModelContext:
    """A fresh copy of the workspace's backbone, checked, with its sites wrapped, on ``device``
    (``auto``: CUDA if there is one, else MPS, else the CPU); one process of ``world``.
    ``workspace``: its ``tasks.toml`` as the caller read it (read here when not given)."""
    return build_context(
        ledger, store, devices.resolve(device), workspace or read_workspace(store), world
    )


def build_context(
    ledger: Ledger,
    store: ArtifactStore,
    target: Any,
    workspace: WorkspaceConfig,
    world: World = SINGLE,
) -> ModelContext:
    """:func:`open_context` on the ``torch.device`` ``target`` its caller resolved, with the
    ``[backbone.layout]`` and ``[workspace] resident_tasks`` of ``workspace``."""
    from ..model.families import from_layout

    devices.prepare(target)
    recorded = ledger.backbone()
    if recorded is not None:  # a low-precision backbone needs a device that computes in it
        devices.check_backbone_dtype(devices.short_dtype(recorded.dtype), target)
    loaded = load_recorded_backbone(ledger, store.root)
    layout = from_layout(workspace.layout) if workspace.layout else None
    model = AdaptedModel(
        loaded.model, layout=layout, output_embeddings=loaded.output_embeddings
    ).to(target)
    ctx = ModelContext(ledger, store, loaded, model, target, world=world)
    ctx.residency.limit = workspace.resident_tasks
    return ctx


def read_workspace(store: ArtifactStore) -> WorkspaceConfig:
    """The workspace's ``tasks.toml`` (its defaults without one)."""
    from ..config import CONFIG_FILE, load_config

    if not (store.root / CONFIG_FILE).is_file():
        return WorkspaceConfig(root=store.root)
    return load_config(store.root)


def read_task_data(task: TaskRecord) -> TaskData:
    """Re-read a task's data as registered; refuse it if the files changed since."""
    data = load_task_data(
        task.data_source,
        text_fields=task.text_fields,
        label_field=task.label_field,
        metric=task.metric,
        kind=task.kind,
    )
    if data.fingerprint != task.data_fingerprint:
        raise BadData(
            f"task {task.name!r}: data files under {task.data_source} changed since registration "
            "(data drift): restore them, or register the new data as a new task"
        )
    return data


def targets(task: TaskRecord, labels: Any) -> list:
    """A split's labels as the task's kind trains on them (class indices, floats...)."""
    return kind_of(task).encode_targets(labels, task.labels)


HOLDOUT_SHARE, HOLDOUT_MAX = 0.1, 1000


def training_rows(rows: Any, train_cfg: TrainConfig) -> tuple[Any, Any | None]:
    """What a run trains on, and what picks its best epoch: with the ``holdout`` rule a seeded
    slice of the training split (10%, at most 1,000 rows, at least one), taken out before the
    ``max_train_examples`` subsample of the rest; with ``dev``, None (the dev split picks)."""
    count = len(rows.labels)
    if train_cfg.selection == "dev" or count < 2:
        return subsampled(rows, train_cfg), None
    size = min(HOLDOUT_MAX, max(1, round(HOLDOUT_SHARE * count)))
    held = set(subsample(count, size, train_cfg.seed + 1))
    rest = [i for i in range(count) if i not in held]
    return subsampled(_rows(rows, rest), train_cfg), _rows(rows, sorted(held))


def _rows(rows: Any, keep: list[int]) -> Any:
    return replace(
        rows,
        texts=tuple(rows.texts[i] for i in keep),
        labels=tuple(rows.labels[i] for i in keep),
    )


def subsampled(rows: Any, train_cfg: TrainConfig) -> Any:
    """The deterministic training subset that ``max_train_examples`` asks for."""
    keep = subsample(len(rows.labels), train_cfg.max_train_examples, train_cfg.seed)
    if len(keep) == len(rows.labels):
        return rows
    return _rows(rows, keep)


def write_record(
    store: ArtifactStore, path: Path, blob: bytes, *, run_id: int, task_id: int, role: str, **params
) -> ArtifactRecord:
    """Write ``blob`` to ``path`` (atomically) and return its ledger record (``params``: the
    weights' parameter counts)."""
    from .. import files

    store.write(path, blob)
    return ArtifactRecord(
        run_id=run_id,
        task_id=task_id,
        role=role,
        path=store.relative(path),
        sha256=files.sha256_bytes(blob),
        bytes=len(blob),
        **params,
    )
