"""What a training run hands back, typed: its result and each verification of an earlier task
in it. They cross module boundaries as frozen dataclasses and are serialised only at the edges
(the ledger's ``result`` column, the Python API's dicts, ``--json``), by :meth:`as_dict`, whose
keys keep the field order."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Verification:
    """One earlier task proven unchanged (or not) after a run: its recorded and current
    metrics (its primary metric, and those a table shows), the current logits' sha256 (None
    for a probe), whether it passed, its outcome (identical, equivalent or changed), the mode
    (full or probe) and the examples re-run."""

    task: str
    recorded: dict[str, float]
    now: dict[str, float]
    metric: str  # the task's primary metric
    shown: list[str]  # the metrics a table shows (tagging, QA: the primary one)
    logits_sha256: str | None
    identical: bool | None
    outcome: str | None
    mode: str | None
    examples_rerun: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunResult:
    """A finished training run: the task and run, its canonical dev metrics and logits sha256,
    its trainable parameters (and their share of the backbone's), the training (best epoch,
    history, seconds, speed, real-token share), what the user should know, the data-parallel
    world and bytes summed per step, the frozen prefix cache's summary, the verifications of
    the other trained tasks, the run a retrain replaces, the seconds verification took and the
    check of the base model (None: the workspace records no base reference)."""

    task: str
    run_id: int
    metrics: dict[str, float]
    metric: str
    logits_sha256: str
    trainable_params: int
    trainable_pct: float
    best_epoch: int
    history: list[dict[str, float]]
    seconds: float
    examples_per_second: float
    real_token_share: float
    warnings: list[str]
    world_size: int
    allreduce_bytes_per_step: int
    prefix_cache: dict[str, Any] | None
    verifications: tuple[Verification, ...]
    supersedes: int | None
    verification_seconds: float
    base: dict[str, Any] | None = None  # the base model checked (runtime.base_reference)

    def as_dict(self) -> dict[str, Any]:
        """The result as the ledger records it and ``--json`` prints it."""
        return asdict(self) | {"verifications": [v.as_dict() for v in self.verifications]}
