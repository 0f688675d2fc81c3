"""The training loop: one plain function, no database, returns a small result.

AdamW over the given parameters only (``optim``: the weight-decay rule, linear warm-up then
linear decay), gradient clipping, length-grouped batches, and the dev metric after each epoch;
the best epoch's weights are kept.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from ..config import TrainConfig
from ..devices import autocast, grad_scaler
from ..interrupts import interruptible
from ..kinds import TaskKind
from .batching import Encoded, collate, real_token_share, training_batches
from .distributed import gradient_sum, shard, share
from .optim import make_optimizer
from .seeding import seed_everything
from .world import SINGLE, World


@dataclass(frozen=True)
class TrainResult:
    best_epoch: int
    best_score: float
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    examples: int = 0
    real_token_share: float = 1.0

    @property
    def examples_per_second(self) -> float:
        return self.examples / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class StepHooks:
    """What a baseline changes in the loop. ``extra_loss(loss, batch_size)`` returns the loss to
    minimise (EWC adds its penalty; replay mixes in earlier examples); ``route(idx)`` makes the
    batch's task active and returns its kind (joint training over several tasks);
    ``batches(lengths, batch_size, seed)`` makes an epoch's batches (one task per batch)."""

    extra_loss: Callable[[torch.Tensor, int], torch.Tensor] | None = None
    route: Callable[[list[int]], TaskKind] | None = None
    batches: Callable[[Sequence[int], int, int], list[list[int]]] | None = None


def train(
    model: torch.nn.Module,
    params: Sequence[torch.nn.Parameter],
    encoded: Encoded,
    targets: Sequence,
    config: TrainConfig,
    *,
    kind: TaskKind,
    evaluate: Callable[[], float],
    device: torch.device | None = None,
    world: World = SINGLE,
    progress: bool = False,
    desc: str = "training",
    on_step: Callable[[], None] | None = None,
    prefix: Any = None,
    hooks: StepHooks | None = None,
) -> TrainResult:
    """Train ``params`` of ``model`` (on ``device``, default the CPU) on ``encoded``, in the
    config's precision; after each epoch score with ``evaluate`` (on rank 0 of ``world``,
    which shares the score), on the split the config's selection rule names.

    Over several processes each batch is a global one of ``batch_size`` x the world size,
    which every rank shares out (``distributed``). The weights of the best-scoring epoch are
    restored into ``params`` before returning. ``hooks`` let a baseline change what a step
    computes (an extra loss term, examples mixed in, the task of a batch) and how an epoch is
    batched, without a loop of its own.
    """
    seed_everything(config.seed)
    params = list(params)
    step = optimizer_step(
        model,
        params,
        encoded,
        targets,
        config,
        kind,
        device=device,
        world=world,
        prefix=prefix,
        hooks=hooks,
    )
    global_batch = config.batch_size * world.size
    best: tuple[float, int, list[torch.Tensor]] | None = None
    history, shares, start = [], [], time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        batcher = hooks.batches if hooks is not None and hooks.batches else training_batches
        batches = batcher(encoded.lengths, global_batch, config.seed + epoch)
        shares.append(real_token_share(encoded.lengths, batches))
        model.train()
        label = f"{desc} epoch {epoch}/{config.epochs}"
        began = time.perf_counter()
        with interruptible():  # SIGINT/SIGTERM stop a training at once, not after it
            loss = _epoch(batches, step, on_step=on_step, progress=progress, desc=label)
        seconds = time.perf_counter() - began
        score = share(world, evaluate() if world.main else None)
        picked_on = getattr(config, "selection", "dev")  # the split that picks the best epoch
        history.append({"epoch": epoch, "loss": loss, picked_on: score, "seconds": seconds})
        if progress:
            tqdm.write(f"{label}: loss {loss:.4f}, {picked_on} {score:.4f}")
        if best is None or score > best[0]:
            best = (score, epoch, [p.detach().clone() for p in params])
    with torch.no_grad():
        for p, saved in zip(params, best[2], strict=True):
            p.copy_(saved)
    seconds = time.perf_counter() - start
    return TrainResult(
        best_epoch=best[1],
        best_score=best[0],
        history=history,
        seconds=seconds,
        examples=len(encoded) * config.epochs,
        real_token_share=sum(shares) / len(shares),
    )


def optimizer_step(
    model,
    params,
    encoded,
    targets,
    config,
    kind,
    *,
    device=None,
    world=SINGLE,
    prefix=None,
    hooks=None,
):
    """A closure doing one AdamW step on a (global) batch of example indices; returns its loss
    as a float64 tensor on the device (reading it needs no synchronisation per step).

    The forward runs under autocast in the config's precision (fp16 with a gradient scaler);
    the parameters, their gradients and the optimizer state stay fp32. Over several processes
    each rank computes its share of the batch and the gradients are summed across ranks. With
    a ``prefix`` cache (``model.frozen_prefix``) a batch whose examples are all kept skips the
    frozen layers."""
    device = device or torch.device("cpu")
    batches_per_epoch = math.ceil(len(encoded) / (config.batch_size * world.size))
    optimizer, scheduler = make_optimizer(params, config, batches_per_epoch * config.epochs)
    precision = getattr(config, "precision", "fp32")
    scaler = grad_scaler(device, precision)
    synchronise = gradient_sum(world, params) if world.distributed else None

    def mean_loss(idx: list[int]) -> torch.Tensor:
        routed = kind if hooks is None or hooks.route is None else hooks.route(idx)
        batch = {k: v.to(device, non_blocking=True) for k, v in collate(encoded, idx).items()}
        if prefix is not None:  # a PrefixCache: the batch's kept prefix outputs, if all are
            prefix.begin(idx, [len(encoded.input_ids[i]) for i in idx])
        try:
            with autocast(device, precision):
                logits = model(**batch)
        finally:
            if prefix is not None:
                prefix.end()
        wanted = routed.batch_targets(targets, encoded, idx)
        return routed.loss(logits.float(), wanted.to(device))

    def step(idx: list[int]) -> torch.Tensor:
        if synchronise is None:
            loss = mean_loss(idx)
            if hooks is not None and hooks.extra_loss is not None:
                loss = hooks.extra_loss(loss, len(idx))
        else:  # this rank's share of the global batch's mean (none: it adds nothing)
            mine = shard(world, idx)
            loss = (
                mean_loss(mine) * (len(mine) / len(idx)) if mine else torch.zeros((), device=device)
            )
        optimizer.zero_grad(set_to_none=True)
        loss = _backward_and_step(loss, params, optimizer, scaler, config.grad_clip, synchronise)
        scheduler.step()
        return loss.detach().double()

    return step


def _backward_and_step(loss, params, optimizer, scaler, grad_clip: float, synchronise=None):
    """Backward, the sum of gradients across ranks (if any), gradient clipping and the
    optimizer step (through the scaler for fp16); returns the (global) loss."""
    if loss.requires_grad:
        (loss if scaler is None else scaler.scale(loss)).backward()
    if synchronise is not None:
        loss = synchronise(loss)
    if scaler is not None:
        scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(params, grad_clip)
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)
        scaler.update()
    return loss


POSTFIX_EVERY = 10  # steps between progress-bar loss updates (each reads the device)


def _epoch(
    batches: Sequence[list[int]],
    step: Callable[[list[int]], torch.Tensor],
    *,
    on_step: Callable[[], None] | None,
    progress: bool,
    desc: str,
) -> float:
    """One pass over ``batches``; returns the mean training loss (summed in float64)."""
    bar = tqdm(batches, desc=desc, unit="batch", disable=not progress, leave=False)
    total: torch.Tensor | float = 0.0
    for count, idx in enumerate(bar, start=1):
        total = total + step(idx)
        if on_step is not None:
            on_step()
        if progress and (count % POSTFIX_EVERY == 0 or count == len(batches)):
            bar.set_postfix(loss=f"{float(total) / count:.4f}")
    return float(total) / max(1, len(batches))
