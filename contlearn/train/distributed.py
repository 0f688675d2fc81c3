"""Data-parallel training of one task over several processes, with ``torch.distributed``.

The processes are started by ``torchrun`` (``contlearn train-next --nproc N`` starts it), which
gives each its rank in the environment. Every rank holds the frozen backbone and the task's
modules; each step, every rank runs its share of one global batch (the per-process batch x the
world size) and the task's trainable gradients, and nothing else, are summed across ranks in one
all-reduce. The frozen backbone has no gradients, so an adapter task sends a few hundred
thousand numbers per step where full fine-tuning would send the whole model. Rank 0 claims the
task, scores each epoch, writes the artifact, verifies and records; the others follow it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

import torch

from .world import World

# Seconds a collective waits for a rank that stopped answering (without dying: a rank that dies
# fails the others at once) before the run fails. The other ranks wait this long at most while
# rank 0 verifies every other trained task and records the run.
TIMEOUT = float(os.environ.get("CONTLEARN_DIST_TIMEOUT", "1800"))


def start(world: World, device: torch.device) -> World:
    """Join the process group (NCCL on CUDA, gloo elsewhere); returns the world with it."""
    if not world.distributed:
        return world
    import torch.distributed as dist

    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        options = {"device_id": device} if backend == "nccl" else {}
        dist.init_process_group(backend, timeout=timedelta(seconds=TIMEOUT), **options)
    return replace(world, backend=backend)


def rank_device(spec: str, world: World) -> str:
    """The device of this rank: its own GPU (``cuda:LOCAL_RANK``) when training on CUDA."""
    if not world.distributed or spec == "cpu":
        return spec
    if spec.startswith("cuda") or (spec == "auto" and torch.cuda.is_available()):
        return f"cuda:{world.local_rank}"
    return spec


def stop(world: World, together: bool = True) -> None:
    """Leave the process group. ``together`` (every rank got here): a barrier first, so that no
    rank tears its side of the connections down while another still uses them; after a failure
    the others may be gone, so no rank waits for them."""
    import torch.distributed as dist

    if world.distributed and dist.is_initialized():
        if together:
            dist.barrier()
        dist.destroy_process_group()


def share(world: World, value: Any) -> Any:
    """Rank 0's ``value``, on every rank."""
    if not world.distributed:
        return value
    import torch.distributed as dist

    box = [value if world.main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shard(world: World, global_batch: Sequence[int]) -> list[int]:
    """This rank's part of a global batch: every ``size``-th example from its rank on."""
    return list(global_batch[world.rank :: world.size])


def gradient_sum(
    world: World, params: Sequence[torch.nn.Parameter]
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A step callback that sums the gradients of ``params`` and the (weighted) loss over all
    ranks in one flat all-reduce; returns the global loss. Each rank's loss is its share of the
    global batch's mean, so the sums are exactly what one process would compute on the whole
    batch (up to the order of additions)."""
    import torch.distributed as dist

    def synchronise(loss: torch.Tensor) -> torch.Tensor:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads] + [loss.detach().reshape(1).to(grads[0])])
        dist.all_reduce(flat)
        offset = 0
        for p, g in zip(params, grads, strict=True):
            p.grad = flat[offset : offset + g.numel()].view_as(g)
            offset += g.numel()
        return flat[-1]

    return synchronise


def allreduce_bytes(params: Sequence[torch.nn.Parameter]) -> int:
    """Bytes one step sends through the all-reduce: every trainable gradient, and the loss."""
    return sum(p.numel() * p.element_size() for p in params) + 4
