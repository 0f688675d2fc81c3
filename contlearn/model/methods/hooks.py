"""The shapes a method's hook takes at a site, so that one forward can serve rows of several tasks.

A hook is called as ``hook(x, base)`` (``base`` the site's original sub-module) when one task is
active; what it computes then is exactly what the method defines. Each class below also says how
the hook splits into the part every row shares (one call of ``base`` on the whole batch) and the
part that is the task's own, so that a batch whose rows belong to different tasks runs ``base``
once and each task's part on its own rows (:mod:`contlearn.model.mixing`). A hook that is none of
these (a whole layer replaced, as ``topk`` does) cannot be mixed; its task's rows are grouped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor, nn


class After:
    """``f(base(x))``: the task's part reads the site's output (a sequential adapter, a scale
    of the output)."""

    def __init__(self, f: Callable[[Tensor], Tensor]):
        self.f = f

    def __call__(self, x: Tensor, base: nn.Module) -> Tensor:
        return self.f(base(x))


class Plus:
    """``base(x) + t1(x, out) + t2(x, out) + ...``, added in order: updates beside the site
    (LoRA, a parallel adapter); ``out`` is the site's output, which some terms need for its
    width."""

    def __init__(self, terms: Sequence[Callable[[Tensor, Tensor], Tensor]]):
        self.terms = list(terms)

    def __call__(self, x: Tensor, base: nn.Module) -> Tensor:
        return self.add(x, base(x))

    def add(self, x: Tensor, out: Tensor) -> Tensor:
        for term in self.terms:
            out = out + term(x, out)
        return out


class Before:
    """``base(f(x))``: the task's part rescales what the site reads."""

    def __init__(self, f: Callable[[Tensor], Tensor]):
        self.f = f

    def __call__(self, x: Tensor, base: nn.Module) -> Tensor:
        return base(self.f(x))


class Peek:
    """``base(x)``, after ``f(x)`` has seen the input (a parallel adapter keeps its block's
    input for the block's last projection)."""

    def __init__(self, f: Callable[[Tensor], None]):
        self.f = f

    def __call__(self, x: Tensor, base: nn.Module) -> Tensor:
        self.f(x)
        return base(x)


class Instead:
    """``f(x, base)``: the task computes the site itself (its own norm copy; a norm applied
    around an adapter)."""

    def __init__(self, f: Callable[[Tensor, nn.Module], Tensor]):
        self.f = f

    def __call__(self, x: Tensor, base: nn.Module) -> Tensor:
        return self.f(x, base)


MIXABLE = (After, Plus, Before, Peek, Instead)


def mixable(hook: object) -> bool:
    """Whether ``hook`` can serve its rows of a mixed-task batch."""
    return isinstance(hook, MIXABLE)
