"""The model side of a workspace: the checked backbone with adapter injection, task artifacts
loaded onto it, and task data read back and encoded.

One :class:`ModelContext` holds one backbone in memory and serves every task on it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import artifacts as art
from . import backbone as bb
from .adapters import AdaptedModel
from .batching import Encoded, encode, uses_token_types
from .config import AdapterConfig, TrainConfig
from .data import TaskData, load_task_data
from .errors import ArtifactError, BackboneError, BadData, ContlearnError, TaskNotTrained
from .ledger import ArtifactRecord, TaskRecord

if TYPE_CHECKING:
    from .workspace import Workspace


@dataclass
class Split:
    encoded: Encoded
    targets: list


@dataclass
class ModelContext:
    ws: Workspace
    backbone: bb.LoadedBackbone
    model: AdaptedModel
    loaded: dict[str, str] = field(default_factory=dict)  # task -> weights sha256 in memory

    def check_backbone(self) -> None:
        """The backbone in memory still matches the ledger (nothing trained it by accident)."""
        recorded = self.ws.ledger.backbone()
        bb.check_same(recorded.fingerprint, bb.fingerprint(self.model.backbone), recorded.identity)

    def load_task(self, task: TaskRecord) -> dict[str, Any]:
        """Load a trained task's artifact (checksums verified first); returns its config."""
        files = trained_artifacts(self.ws, task)
        weights, config = files["weights"], files["config"]
        art.verify(self.ws.root / config.path, config.sha256, task.name)
        art.verify(self.ws.root / weights.path, weights.sha256, task.name)
        meta = art.load_json(self.ws.root / config.path)
        if not isinstance(meta, dict) or not {"adapter", "train"} <= set(meta):
            raise ArtifactError(
                f"task {task.name!r}: {config.path} is not an adapter config: restore the original"
            )
        state = art.load_tensors(self.ws.root / weights.path)
        if task.name in self.model.tasks:
            self.model.remove_task(task.name)
        try:
            adapter = AdapterConfig(**meta["adapter"])
            dropout = float(meta["train"]["dropout"])
        except (TypeError, KeyError, ValueError, ContlearnError) as exc:
            raise ArtifactError(f"task {task.name!r}: {config.path} is malformed: {exc}") from exc
        self.model.load_task(
            task.name, state, num_outputs=task.num_outputs, adapter=adapter, dropout=dropout
        )
        self.loaded[task.name] = weights.sha256
        return meta

    def encode(self, task: TaskRecord, rows: Any, max_length: int) -> Split:
        """Tokenize a data split's rows and map its labels to targets."""
        token_types = uses_token_types(self.backbone.model)
        encoded = encode(self.backbone.tokenizer, rows.texts, max_length, token_types=token_types)
        return Split(encoded, targets(task, rows.labels))


def open_context(ws: Workspace) -> ModelContext:
    """Load the workspace's backbone and refuse it if its fingerprint differs from the ledger."""
    recorded = ws.ledger.backbone()
    if recorded is None:
        raise BackboneError("the ledger records no backbone: recreate the workspace with init")
    loaded = bb.load(recorded.identity)
    bb.check_same(recorded.fingerprint, loaded.fingerprint, recorded.identity)
    return ModelContext(ws, loaded, AdaptedModel(loaded.model))


def trained_artifacts(ws: Workspace, task: TaskRecord) -> dict[str, ArtifactRecord]:
    run = ws.ledger.trained_run(task.id)
    if task.status != "trained" or run is None:
        raise TaskNotTrained(
            f"task {task.name!r} is {task.status}, not trained: run `contlearn train-next`"
        )
    return {a.role: a for a in ws.ledger.artifacts(run.id)}


def read_task_data(task: TaskRecord) -> TaskData:
    """Re-read a task's data as registered; refuse it if the files changed since."""
    data = load_task_data(
        task.data_source,
        text_fields=task.text_fields,
        label_field=task.label_field,
        metric=task.metric,
    )
    if data.fingerprint != task.data_fingerprint:
        raise BadData(
            f"task {task.name!r}: data files under {task.data_source} changed since registration "
            "(data drift): restore them, or register the new data as a new task"
        )
    return data


def targets(task: TaskRecord, labels: Any) -> list:
    """Labels as class indices (classification) or floats (regression)."""
    if task.labels is None:
        return [float(v) for v in labels]
    index = {name: i for i, name in enumerate(task.labels)}
    return [index[v] for v in labels]


def artifact_config(
    task: TaskRecord, adapter: AdapterConfig, train: TrainConfig, ctx: ModelContext
) -> dict[str, Any]:
    """What ``adapter_config.json`` holds."""
    return {
        "task": task.name,
        "adapter": asdict(adapter),
        "train": asdict(train),
        "labels": task.labels,
        "problem_type": task.problem_type,
        "text_fields": task.text_fields,
        "metrics": task.metrics,
        "num_outputs": task.num_outputs,
        "backbone": {"identity": ctx.backbone.identity, "fingerprint": ctx.backbone.fingerprint},
        "versions": bb.library_versions(),
    }


def artifact_paths(ws: Workspace, task: str) -> dict[str, Path]:
    folder = ws.task_dir(task)
    return {
        "weights": folder / art.WEIGHTS,
        "config": folder / art.CONFIG,
        "logits": folder / art.LOGITS,
    }
