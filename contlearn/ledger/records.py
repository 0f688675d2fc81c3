"""The plain, frozen records the ledger hands out: never ORM rows, so nothing outside the
store holds a session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class BackboneRecord:
    identity: str
    model_type: str
    fingerprint: str
    hidden_size: int
    num_layers: int
    num_parameters: int
    versions: dict[str, Any]
    dtype: str = "float32"  # what the weights are loaded in (ledgers before 0005: float32)
    # the file a converted backbone came from (a GGUF: path, sha256, quantisation); else None
    source: dict[str, Any] | None = None


@dataclass(frozen=True)
class TaskRecord:
    id: int
    name: str
    position: int | None  # None once removed
    data_source: str
    data_format: str
    glue_task: str | None
    data_files: list[str]
    data_fingerprint: str
    train_rows: int
    dev_rows: int
    text_fields: list[str]
    label_field: str
    problem_type: str
    labels: list[str] | None
    metric: str
    metrics: list[str]
    settings: dict[str, Any]
    status: str
    created_at: datetime
    trained_at: datetime | None
    removed_at: datetime | None = None
    kind: str = "classification"  # the task kind (contlearn.kinds); before 0008: problem_type


@dataclass(frozen=True)
class RunRecord:
    id: int
    purpose: str
    method: str | None
    task_id: int | None
    comparison_id: int | None
    config: dict[str, Any]
    status: str
    verdict: str | None
    error: str | None
    host: str | None
    pid: int | None
    heartbeat_at: datetime | None
    started_at: datetime
    finished_at: datetime | None
    seconds: float | None
    examples: int | None
    examples_per_second: float | None
    result: dict[str, Any] | None
    versions: dict[str, Any] | None = None


@dataclass(frozen=True)
class ArtifactRecord:
    run_id: int
    task_id: int
    role: str
    path: str
    sha256: str
    bytes: int
    trainable_params: int | None = None
    backbone_params: int | None = None
    id: int | None = None
    deleted_at: datetime | None = None


@dataclass(frozen=True)
class EvaluationRecord:
    task_id: int
    kind: str
    metrics: dict[str, float]
    primary_value: float | None
    example_count: int
    logits_sha256: str | None
    predictions_sha256: str | None = None
    after_task_id: int | None = None
    identical: bool | None = None
    max_abs_diff: float | None = None
    findings: list[str] | None = None
    threads: int | None = None
    seconds: float | None = None
    split: str = "dev"
    run_id: int | None = None
    created_at: datetime | None = None
    recipe: dict[str, Any] | None = None
    mode: str | None = None  # a verification's: "full" or "probe" (None: recorded before, full)
    outcome: str | None = None  # identical | equivalent | changed (None: recorded before 0007)
    id: int | None = None
