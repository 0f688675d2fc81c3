"""AdamW with the run's weight-decay rule, and the learning-rate schedule.

The rule is a recorded training setting (``decay_norms_and_biases``). Off, weight decay applies
to weight matrices only and not to LayerNorm weights or any bias, the usual practice (Hugging
Face's Trainer, nanoGPT). Which parameters are which is read from their shape (a parameter with
fewer than two dimensions is a norm weight or a bias), never from their names. On, every
trainable parameter decays, as every run before the setting existed did.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..config import TrainConfig


def parameter_groups(params: Sequence[torch.nn.Parameter], config: TrainConfig) -> list[Any]:
    """What AdamW is given: the parameters themselves (one group decaying everything), or a
    decayed group of matrices and an undecayed group of norm weights and biases."""
    if config.decay_norms_and_biases:
        return list(params)
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def linear_schedule(total_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    """LR multiplier: linear warm-up over the first ``warmup_ratio`` of steps, then to zero."""
    warmup = max(1, math.ceil(total_steps * warmup_ratio)) if warmup_ratio > 0 else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def make_optimizer(
    params: Sequence[torch.nn.Parameter], config: TrainConfig, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over ``params`` by the run's weight-decay rule, and its warm-up/decay schedule."""
    groups = parameter_groups(params, config)
    optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    factor = linear_schedule(total_steps, config.warmup_ratio)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
