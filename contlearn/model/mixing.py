"""One site of a batch whose rows belong to several tasks.

The batch's rows are ordered by task first, so that each task's rows are one slice of it (a
view, nothing gathered). The site's original sub-module runs once on the whole batch (on the
inputs as the tasks' hooks prepare them); each task's own part then runs on its slice only, and
its result is written into that slice. Rows whose task has no hook at the site keep the original
output. What each hook shares and what is its own is its class's
(:mod:`contlearn.model.methods.hooks`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from .methods.hooks import After, Before, Instead, Peek, Plus

Hooked = Sequence[tuple[Any, slice]]  # (the task's hook at this site or None, its rows)


def mixed_site(x: Tensor, base: nn.Module, hooked: Hooked, dtype: Any) -> Tensor:
    """The site's output [B, ...] for a batch whose row groups each run their own hook;
    ``dtype``: what a low-precision backbone's sites hand on (None: the output's own)."""
    x_in = _prepared(x, hooked)
    shared = None
    if any(not isinstance(hook, Instead) for hook, _ in hooked):
        shared = base(x_in)
    out = None
    for hook, rows in hooked:
        own = _own(hook, x, x_in, shared, rows, base)
        if own is None:
            continue
        if out is None:  # a buffer of its own, written in place (the shared output stays)
            out = _buffer(shared, own, x.shape[0], dtype)
        out[rows] = own
    if out is None:
        return shared if dtype is None else shared.to(dtype)
    return out


def _buffer(shared: Tensor | None, own: Tensor, rows: int, dtype: Any) -> Tensor:
    """What the groups' rows are written into: the shared output's copy, or empty when every
    row computes its own."""
    if shared is not None:
        return shared.to(dtype or shared.dtype, copy=True)
    return own.new_empty((rows, *own.shape[1:]), dtype=dtype or own.dtype)


def _prepared(x: Tensor, hooked: Hooked) -> Tensor:
    """The batch as the site reads it: rows whose hook rescales the input rescaled, and the
    input shown to hooks that keep it."""
    x_in = x
    for hook, rows in hooked:
        if isinstance(hook, Before):
            if x_in is x:
                x_in = x.clone()
            x_in[rows] = hook.f(x[rows])
        elif isinstance(hook, Peek):
            hook.f(x[rows])
    return x_in


def _own(
    hook: Any, x: Tensor, x_in: Tensor, shared: Tensor | None, rows: slice, base: nn.Module
) -> Tensor | None:
    """A group's own output rows, or None where the shared output is already theirs."""
    if isinstance(hook, After):
        return hook.f(shared[rows])
    if isinstance(hook, Plus):
        return hook.add(x[rows], shared[rows])
    if isinstance(hook, Instead):
        return hook.f(x[rows], base)
    return None  # no hook, Before or Peek: base(x_in) is the output


def task_order(tasks: Sequence[str]) -> tuple[list[int], dict[str, slice]]:
    """The batch's rows ordered by task (tasks in order of appearance, rows in order within
    each), and each task's slice of that order."""
    where: dict[str, list[int]] = {}
    for i, task in enumerate(tasks):
        where.setdefault(task, []).append(i)
    order, slices = [], {}
    for task, rows in where.items():
        slices[task] = slice(len(order), len(order) + len(rows))
        order += rows
    return order, slices
