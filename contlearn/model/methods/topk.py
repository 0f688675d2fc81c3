"""Fine-tuning only the top k layers (the Houlsby paper's section 3.4 baseline): the task gets
its own trainable copies of the top k layers and runs them instead of the backbone's; the
layers below stay frozen and shared, and the backward pass stops at the first copy. State:
``layers.{index}.<the layer's own parameter names>``.

Generation's key/value cache: a copy keeps its layer's index and is called with the layer's
own arguments (the cache among them), so the cache's slots for the top k layers hold the
copies' keys and values; its rows never share a forward pass with other tasks' rows.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ...validation import check, check_types
from .base import Method, MethodModules, Sites
from .common import check_depth

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class TopKConfig:
    """k: how many of the top layers the task copies and trains (1 to the number of layers)."""

    method: ClassVar[str] = "topk"
    k: int = 1

    def __post_init__(self) -> None:
        check_types(self)
        check(self.k >= 1, f"k must be a positive integer, got {self.k!r}")


def top_layers(config: TopKConfig, sites: Sites) -> list[int]:
    check_depth(config, sites.num_layers)
    return list(range(sites.num_layers - config.k, sites.num_layers))


def added_parameters(config: TopKConfig, sites: Sites) -> int:
    """What the copied layers hold: every parameter of the backbone's top k layers."""
    layers = sites.base_modules("layer")
    return sum(p.numel() for i in top_layers(config, sites) for p in layers[i].parameters())


def own_copy(layer: nn.Module, router: Any) -> nn.Module:
    """A trainable copy of ``layer`` with its own storage, the site wrappers inside replaced by
    the modules they wrap (the copy routes nothing; the router is shared, not copied)."""
    twin = copy.deepcopy(layer, {id(router): router})
    for name, module in list(twin.named_modules()):
        base = getattr(module, "base", None)
        if name and base is not None and getattr(module, "router", None) is router:
            parent, _, leaf = name.rpartition(".")
            setattr(twin.get_submodule(parent) if parent else twin, leaf, base)
    return twin.requires_grad_(True)


def _instead(twin: nn.Module):
    return lambda base, args, kwargs: twin(*args, **kwargs)


def build(config: TopKConfig, sites: Sites) -> MethodModules:
    from torch import nn

    layers = sites.base_modules("layer")
    copies = nn.ModuleDict(
        {str(i): own_copy(layers[i], sites.router) for i in top_layers(config, sites)}
    )
    hooks = {("layer", int(i)): _instead(twin) for i, twin in copies.items()}
    return MethodModules({"layers": copies}, hooks)


METHOD = Method(
    name="topk",
    config_cls=TopKConfig,
    site_kinds=("layer",),
    build=build,
    added_parameters=added_parameters,
    summary="fine-tune the top k layers: own copies of them, the rest frozen and shared",
    mixes=False,  # whole layers of its own: its rows run in batches of their own
    tradeoff_lr=1e-4,  # fine-tuned layers want a far lower rate than adapters
)
