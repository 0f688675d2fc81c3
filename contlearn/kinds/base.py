"""The interface every task kind implements (:mod:`contlearn.kinds`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


class TaskKind:
    """One kind of task. Subclasses set ``name`` and ``head`` and implement the methods; the
    defaults here fit kinds whose canonical output is one row of logits per example."""

    name: str = ""
    head: str = "pooled"  # the head type recorded in the artifact config

    def num_outputs(self, labels: Sequence[str] | None) -> int:
        """The width of the head's output for a task with these labels."""
        raise NotImplementedError

    def targets(self, values: Sequence[Any]) -> torch.Tensor:
        """The training targets of a split, one per example, as a tensor the loss reads."""
        return torch.tensor(list(values), dtype=torch.float64)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The mean loss of a batch: ``logits`` [B, C] float32, ``targets`` rows of
        :meth:`targets`."""
        raise NotImplementedError

    def predictions(self, logits: torch.Tensor) -> list:
        """What the model predicts for each row of ``logits`` [N, C]: what the canonical
        evaluation scores and digests."""
        raise NotImplementedError

    def agreement(self, saved: torch.Tensor, now: torch.Tensor) -> tuple[float, float]:
        """(share of identical predictions, max |logit change|) between two evaluations of the
        same rows under different recipes; (0, inf) when their shapes differ."""
        if saved.shape != now.shape:
            return 0.0, float("inf")
        if len(saved) == 0:
            return 1.0, 0.0
        same = self.same_predictions(saved, now)
        return float(same.float().mean()), float((saved - now).abs().max())

    def same_predictions(self, saved: torch.Tensor, now: torch.Tensor) -> torch.Tensor:
        """Per row of two [N, C] logit tensors: whether the prediction is the same."""
        raise NotImplementedError

    def metrics_agree(self, recorded: dict[str, float], now: dict[str, float]) -> bool:
        """Whether a replay under another recipe scored what was recorded."""
        return recorded == now

    def num_classes(self, labels: Sequence[str] | None) -> int | None:
        """What the metric functions take as ``num_classes`` (None: not classes)."""
        return None

    def describe(self, prediction: Any, logits: torch.Tensor, labels: Sequence[str] | None):
        """What ``predict`` prints for one row: ``(label, score)``."""
        raise NotImplementedError
