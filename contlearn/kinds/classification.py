"""``classification``: one class per text (or text pair), from a pooled hidden state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .base import TRAIN_MORE, TaskKind

if TYPE_CHECKING:
    import torch


class Classification(TaskKind):
    name = "classification"
    reads = "classification"
    predicts = "class"

    def num_outputs(self, labels: Sequence[str] | None) -> int:
        return len(labels or ())

    def encode_targets(self, values: Sequence[Any], labels: Sequence[str] | None) -> list:
        index = {name: i for i, name in enumerate(labels or ())}
        return [index[v] for v in values]

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        return F.cross_entropy(logits, targets.long())  # targets: class indices

    def predictions(self, logits: torch.Tensor) -> list:
        return logits.argmax(dim=-1).tolist()

    def same_predictions(self, saved: torch.Tensor, now: torch.Tensor) -> torch.Tensor:
        return saved.argmax(-1) == now.argmax(-1)

    def num_classes(self, labels: Sequence[str] | None) -> int | None:
        return len(labels or ())

    def chance_scores(
        self, metric: str, targets: Sequence[Any], labels: Sequence[str] | None
    ) -> float | None:
        """Always predicting the most frequent class."""
        from ..eval.metrics import majority_class_score

        return majority_class_score([metric], targets, len(labels or ()))[metric]

    def score_answers(
        self,
        metric: str,
        values: Sequence[Any],
        answers: Sequence[str | None],
        labels: Sequence[str] | None,
    ) -> float | None:
        """A label of this task's scores as that class (another task with the same labels
        can be right), anything else as a wrong class."""
        from ..eval.routing_measures import routed_classes

        targets = self.encode_targets(values, labels)
        preds = routed_classes(targets, list(labels or ()), answers)
        return self.score([metric], targets, preds, labels)[metric]

    def warnings(
        self, task: str, labels: Sequence[str] | None, targets: Sequence, logits: torch.Tensor
    ) -> list[str]:
        """Predictions (almost) all of one class: the task barely uses its input."""
        from ..eval.metrics import collapsed_class

        collapsed = collapsed_class(targets, self.predictions(logits)) if targets else None
        if collapsed is None:
            return []
        label, share = labels[collapsed[0]], collapsed[1]
        return [
            f"{share:.0%} of {task}'s dev predictions are {label!r}: the task barely uses "
            f"its input; {TRAIN_MORE}"
        ]

    def outputs(
        self,
        logits: torch.Tensor,
        labels: Sequence[str] | None,
        texts: Sequence[Sequence[str]] | None = None,
    ) -> list[dict[str, Any]]:
        """Each row's label and the softmax probability of every label."""
        import torch

        probs = torch.softmax(logits, dim=-1).tolist()
        return [
            {"label": labels[v], "probabilities": dict(zip(labels, p, strict=True))}
            for v, p in zip(self.predictions(logits), probs, strict=True)
        ]

    def describe_outputs(self, labels: Sequence[str] | None) -> str:
        return f"{len(labels or ())} labels"
