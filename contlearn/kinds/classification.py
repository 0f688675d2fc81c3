"""``classification``: one class per text (or text pair), from a pooled hidden state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from .base import TaskKind


class Classification(TaskKind):
    name = "classification"

    def num_outputs(self, labels: Sequence[str] | None) -> int:
        return len(labels or ())

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets.long())  # targets: class indices

    def predictions(self, logits: torch.Tensor) -> list:
        return logits.argmax(dim=-1).tolist()

    def same_predictions(self, saved: torch.Tensor, now: torch.Tensor) -> torch.Tensor:
        return saved.argmax(-1) == now.argmax(-1)

    def num_classes(self, labels: Sequence[str] | None) -> int | None:
        return len(labels or ())

    def describe(self, prediction: Any, logits: torch.Tensor, labels: Sequence[str] | None):
        """The class's label and its softmax probability."""
        probability = float(torch.softmax(logits.float(), dim=-1)[prediction])
        return labels[prediction], probability
