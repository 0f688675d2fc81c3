"""Elastic weight consolidation (Kirkpatrick et al. 2017), online variant (Schwarz et al. 2018):
after each task, the diagonal of the Fisher information of the backbone's weights is estimated
on that task's training examples (squared gradients of the log-likelihood, one example at a
time) and added to the decayed sum of the earlier tasks'; the weights are anchored where the
task left them. Training a later task then minimises its loss plus
``lambda / 2 * sum_i F_i * (w_i - anchor_i) ** 2``."""

from __future__ import annotations

from typing import Any

import torch

from ...config import CompareConfig, TrainConfig
from ...kinds import kind_of
from ...ledger.records import TaskRecord
from ...runtime.context import ModelContext
from ...train.batching import collate
from ...train.loop import StepHooks
from .base import Job
from .sequential import run_with

NAME = "ewc"


def run(job: Job) -> None:
    run_with(job, NAME, EWC(job.settings))


class EWC:
    """The online EWC state of one comparison: Fisher sums and anchors, per backbone weight."""

    def __init__(self, settings: CompareConfig):
        self.strength = settings.ewc_lambda
        self.decay = settings.ewc_decay
        self.examples = settings.fisher_examples
        self.fisher: dict[str, torch.Tensor] = {}
        self.anchor: dict[str, torch.Tensor] = {}

    def hooks(self, ctx: ModelContext, task: TaskRecord, config: TrainConfig) -> StepHooks:
        if not self.fisher:
            return StepHooks()  # the first task: nothing to consolidate yet
        weights = dict(ctx.model.backbone.named_parameters())

        def penalised(loss: torch.Tensor, _batch: int) -> torch.Tensor:
            total = sum(
                (self.fisher[n] * (weights[n] - self.anchor[n]).square()).sum() for n in self.fisher
            )
            return loss + 0.5 * self.strength * total

        return StepHooks(extra_loss=penalised)

    def after_task(self, ctx: ModelContext, task: TaskRecord, split: Any) -> None:
        current = fisher_diagonal(ctx, task, split, self.examples)
        for name, value in current.items():
            before = self.fisher.get(name)
            self.fisher[name] = value if before is None else self.decay * before + value
        self.anchor = {n: p.detach().clone() for n, p in ctx.model.backbone.named_parameters()}

    def state(self) -> dict[str, torch.Tensor]:
        out = {f"fisher.{n}": t for n, t in self.fisher.items()}
        return out | {f"anchor.{n}": t for n, t in self.anchor.items()}

    def load_state(self, ctx: ModelContext, state: dict[str, torch.Tensor]) -> None:
        device = ctx.device
        self.fisher = {k[7:]: v.to(device) for k, v in state.items() if k.startswith("fisher.")}
        self.anchor = {k[7:]: v.to(device) for k, v in state.items() if k.startswith("anchor.")}


def fisher_diagonal(
    ctx: ModelContext, task: TaskRecord, split: Any, limit: int
) -> dict[str, torch.Tensor]:
    """The empirical Fisher's diagonal for the backbone's weights: the mean, over the first
    ``limit`` training examples, of the squared gradient of each example's loss (the model in
    eval mode, so that dropout does not add noise)."""
    model, device = ctx.model, ctx.device
    weights = dict(model.backbone.named_parameters())
    sums = {n: torch.zeros_like(p) for n, p in weights.items()}
    count = min(limit, len(split.encoded))
    was_training = model.training
    model.eval()
    model.activate(task.name)
    model.backbone.requires_grad_(True)
    for i in range(count):
        batch = {k: v.to(device) for k, v in collate(split.encoded, [i]).items()}
        target = kind_of(task).batch_targets(split.targets, split.encoded, [i])
        model.zero_grad(set_to_none=True)
        kind_of(task).loss(model(**batch).float(), target.to(device)).backward()
        for n, p in weights.items():
            if p.grad is not None:
                sums[n] += p.grad.detach().square()
    model.zero_grad(set_to_none=True)
    model.backbone.requires_grad_(False)
    model.train(was_training)
    return {n: s / max(1, count) for n, s in sums.items()}
