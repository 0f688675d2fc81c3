"""``regression``: one number per text (or text pair), from a pooled hidden state."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .base import TaskKind

if TYPE_CHECKING:
    import torch

# A regression task's prediction is its value: across machines a value within this relative
# tolerance (of max(1, |value|)) is the same prediction, and a metric within it the same value.
TOLERANCE = 1e-5


class Regression(TaskKind):
    name = "regression"
    reads = "regression"
    predicts = "value"

    def num_outputs(self, labels: Sequence[str] | None) -> int:
        return 1

    def encode_targets(self, values: Sequence[Any], labels: Sequence[str] | None) -> list:
        return [float(v) for v in values]

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        return F.mse_loss(logits[:, 0], targets.float())

    def predictions(self, logits: torch.Tensor) -> list:
        return logits[:, 0].tolist()

    def same_predictions(self, saved: torch.Tensor, now: torch.Tensor) -> torch.Tensor:
        within = (saved - now).abs() <= TOLERANCE * saved.abs().clamp(min=1.0)
        return within.all(dim=-1)

    def metrics_agree(self, recorded: dict[str, float], now: dict[str, float]) -> bool:
        if recorded.keys() != now.keys():
            return False
        return all(
            math.isclose(recorded[k], now[k], rel_tol=TOLERANCE, abs_tol=TOLERANCE)
            for k in recorded
        )

    def outputs(
        self,
        logits: torch.Tensor,
        labels: Sequence[str] | None,
        texts: Sequence[Sequence[str]] | None = None,
    ) -> list[dict[str, Any]]:
        """Each row's value; a regression has no probabilities."""
        return [{"label": v, "probabilities": None} for v in self.predictions(logits)]

    def describe_outputs(self, labels: Sequence[str] | None) -> str:
        return "a regression (1 output)"
