"""The selection split scored after each epoch, and what a task's kind chooses on it.

The training loop scores the split that picks the best epoch after every epoch: the held-out
rows of the training split (the ``holdout`` rule), or the dev split (``dev``). Held-out rows
also calibrate: once training has restored the best epoch's weights, the task's kind chooses
from that epoch's logits (``TaskKind.calibrate``: SQuAD v2's no-answer threshold). The dev split
never does: under the ``dev`` rule nothing is chosen, and the task answers by its kind's
defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..eval.recipe import EvalResult
from ..kinds import kind_of
from ..ledger.records import TaskRecord
from .context import ModelContext, Split
from .evaluate import evaluate_task


@dataclass
class Selection:
    """The loop's ``evaluate`` for one task: its selection split's primary metric now, each
    epoch's evaluation kept when the split is held out (``held_out``)."""

    ctx: ModelContext
    task: TaskRecord
    split: Split
    held_out: bool
    scored: list[EvalResult] = field(default_factory=list)

    def __call__(self) -> float:
        result = evaluate_task(self.ctx, self.task, self.split)
        if self.held_out:
            self.scored.append(result)
        return result.primary_value

    def chosen(self, best_epoch: int) -> dict[str, Any] | None:
        """What the task's kind chooses on the held-out evaluation of ``best_epoch`` (1-based:
        the weights the model holds after training); None under the dev rule, or for a kind
        that chooses nothing."""
        if not self.scored:
            return None
        best, task = self.scored[best_epoch - 1], self.task
        return kind_of(task).calibrate(best.logits, self.split.targets, task.labels, task.metric)
