"""Per-task routing: which task's modules the backbone's wrapped sites use.

One :class:`Router` is shared by every wrapper of a model. A wrapper keeps the original sub-module
as ``.base``; with no task active, or a task without a hook for its site, it runs ``base(x)``
alone, so the backbone computes exactly what the original model computes.
"""

from __future__ import annotations

from typing import Any, Protocol

from torch import Tensor, nn

from .methods.base import Hook
from .mixing import mixed_site


class Routed(Protocol):
    """What the router needs of a task: its hook for each (site kind, layer) it adapts."""

    hooks: dict[tuple[str, int], Hook]


class Router:
    """The active task. Plain Python (not an nn.Module) so that the wrappers do not register the
    task modules, or the model holding them, as their own children."""

    def __init__(self) -> None:
        self.name: str | None = None
        self.task: Routed | None = None
        self.prefix: Any = None  # a PrefixCache while a task trains with its prefix kept
        # A backbone loaded in low precision: what the sites hand on is in its dtype, whatever
        # the fp32 task modules computed (None: an fp32 backbone, nothing is cast).
        self.dtype: Any = None
        # A batch of several tasks' rows: (task, its rows [n]) per task present; None while
        # one task (or none) is active.
        self.groups: list[tuple[Routed, Any]] | None = None


class _Transparent(nn.Module):
    """A wrapper that answers for the module it wraps: attributes it lacks (a layer's
    ``attention_type``, a projection's ``weight``) are the wrapped module's."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base":
                raise
            return getattr(super().__getattr__("base"), name)


class SiteWrapper(_Transparent):
    """A backbone sub-module (a projection or a norm) and the active task's hook for it."""

    def __init__(self, base: nn.Module, kind: str, layer: int, router: Router):
        super().__init__()
        self.base = base
        self.site = (kind, layer)
        self.router = router

    def forward(self, x: Tensor) -> Tensor:
        if self.router.groups is not None:
            return self._mixed(x, self.router.groups)
        task = self.router.task
        hook = None if task is None else task.hooks.get(self.site)
        if hook is None:
            return self.base(x)
        out = hook(x, self.base)
        return out if self.router.dtype is None else out.to(self.router.dtype)

    def _mixed(self, x: Tensor, groups: list[tuple[Routed, Any]]) -> Tensor:
        hooked = [(task.hooks.get(self.site), rows) for task, rows in groups]
        if all(hook is None for hook, _ in hooked):
            return self.base(x)
        return mixed_site(x, self.base, hooked, self.router.dtype)


class LayerWrapper(_Transparent):
    """A whole backbone layer and the active task's hook for it, called as
    ``hook(base, args, kwargs)`` with the arguments the layer was called with."""

    def __init__(self, base: nn.Module, layer: int, router: Router):
        super().__init__()
        self.base = base
        self.site = ("layer", layer)
        self.router = router

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        prefix, index = self.router.prefix, self.site[1]
        if prefix is not None and index < prefix.start:
            return prefix.layer(index, self.base, args, kwargs)
        task = self.router.task
        if self.router.groups is not None:  # a mixed batch holds no task that replaces a layer
            task = None
        hook = None if task is None else task.hooks.get(self.site)
        return self.base(*args, **kwargs) if hook is None else hook(self.base, args, kwargs)
