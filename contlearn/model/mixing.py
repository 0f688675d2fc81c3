"""One site of a batch whose rows belong to several tasks.

The site's original sub-module runs once on the whole batch (on the inputs as the tasks' hooks
prepare them); each task's own part then runs on its rows only, and its result is written into
those rows. Rows whose task has no hook at the site keep the original output. What each hook
shares and what is its own is its class's (:mod:`contlearn.model.methods.hooks`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .methods.hooks import After, Before, Instead, Peek, Plus

Hooked = Sequence[tuple[Any, Tensor]]  # (the task's hook at this site or None, its rows [n])


def mixed_site(x: Tensor, base: nn.Module, hooked: Hooked, dtype: Any) -> Tensor:
    """The site's output [B, ...] for a batch whose row groups each run their own hook;
    ``dtype``: what a low-precision backbone's sites hand on (None: the output's own)."""
    x_in = _prepared(x, hooked)
    shared = None
    if any(not isinstance(hook, Instead) for hook, _ in hooked):
        shared = base(x_in)
    out = shared if shared is None or dtype is None else shared.to(dtype)
    for hook, rows in hooked:
        own = _own(hook, x, x_in, shared, rows, base)
        if own is None:
            continue
        if out is None:
            out = own.new_empty((x.shape[0], *own.shape[1:]), dtype=dtype or own.dtype)
        out = out.index_copy(0, rows, own.to(out.dtype))
    return out


def _prepared(x: Tensor, hooked: Hooked) -> Tensor:
    """The batch as the site reads it: rows whose hook rescales the input rescaled, and the
    input shown to hooks that keep it."""
    x_in = x
    for hook, rows in hooked:
        if isinstance(hook, Before):
            x_in = x_in.index_copy(0, rows, hook.f(x[rows]).to(x.dtype))
        elif isinstance(hook, Peek):
            hook.f(x[rows])
    return x_in


def _own(
    hook: Any, x: Tensor, x_in: Tensor, shared: Tensor | None, rows: Tensor, base: nn.Module
) -> Tensor | None:
    """A group's own output rows, or None where the shared output is already theirs."""
    if isinstance(hook, After):
        return hook.f(shared[rows])
    if isinstance(hook, Plus):
        return hook.add(x[rows], shared[rows])
    if isinstance(hook, Instead):
        return hook.f(x[rows], base)
    return None  # no hook, Before or Peek: base(x_in) is the output


def row_groups(tasks: Sequence[str], device: torch.device) -> dict[str, Tensor]:
    """Each task's rows of a batch, as index tensors on ``device``, in order of appearance."""
    where: dict[str, list[int]] = {}
    for i, task in enumerate(tasks):
        where.setdefault(task, []).append(i)
    return {task: torch.tensor(rows, device=device) for task, rows in where.items()}
