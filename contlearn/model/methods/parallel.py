"""He et al. 2022 ("Towards a Unified View of Parameter-Efficient Transfer Learning"): a scaled
bottleneck in parallel with the feed-forward block, reading the block's input and adding
``scaling * up(act(down(x)))`` to its output before the residual add and LayerNorm (AdapterHub's
``ParBnConfig``). ``up`` starts at zero, so a new task computes exactly what the backbone does.
State: ``adapters.{layer}`` and, with ``norms = "task"``, ``layer_norms.{layer}``.

Generation's key/value cache: the block input kept for the adapter is the current forward's,
the new token's alone in a cached step; the cache keeps the task's keys and values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from ...validation import check, check_types
from .base import Hook, Method, MethodModules, Sites
from .common import (
    NONLINEARITIES,
    check_choice,
    check_leave_out,
    check_norms,
    kept_layers,
    norm_copies,
)
from .hooks import Peek, Plus
from .pfeiffer import one_adapter_per_layer

if TYPE_CHECKING:
    from torch import Tensor, nn


@dataclass(frozen=True)
class ParallelConfig:
    """bottleneck: m (d -> m -> d); scaling: the factor on the adapter's output (AdapterHub's
    default 4); nonlinearity: between the projections; norms: "shared" (the backbone's, frozen)
    or "task" (own copies of the feed-forward norm); leave_out: layers without an adapter."""

    method: ClassVar[str] = "parallel"
    bottleneck: int = 64
    scaling: float = 4.0
    nonlinearity: str = "relu"
    norms: str = "shared"
    leave_out: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check_types(self)
        check(self.bottleneck >= 1, f"bottleneck must be >= 1, got {self.bottleneck!r}")
        check(self.scaling > 0, f"scaling must be > 0, got {self.scaling!r}")
        check_choice("nonlinearity", self.nonlinearity, NONLINEARITIES)
        check_norms(self.norms)
        check_leave_out(self)


def _hooks(adapter: nn.Module, scaling: float) -> tuple[Hook, Hook]:
    """The block's first projection keeps its input; the last adds the adapter's output on
    it. Within one forward a layer's first projection always runs before its last."""
    kept: list[Tensor] = []

    def keep(x):
        kept[:] = [x]

    def added(x, out):
        (inputs,) = kept
        kept.clear()
        return scaling * adapter(inputs)  # [B, T, d]

    return Peek(keep), Plus([added])


def build(config: ParallelConfig, sites: Sites) -> MethodModules:
    from torch import nn

    from ..layers import Bottleneck

    d, _ = sites.sub_layer_sizes()
    layers = kept_layers(config.leave_out, sites.num_layers)
    adapters = nn.ModuleDict(
        {str(i): Bottleneck(d, config.bottleneck, config.nonlinearity, None) for i in layers}
    )
    hooks: dict[tuple[str, int], Hook] = {}
    for i in layers:
        first, last = _hooks(adapters[str(i)], config.scaling)
        hooks[("ffn_intermediate", i)], hooks[("ffn_output", i)] = first, last
    parts: dict[str, nn.Module] = {"adapters": adapters}
    if config.norms == "task":
        parts["layer_norms"], norm_hooks = norm_copies(
            sites, [("ffn_norm", i, str(i)) for i in layers]
        )
        hooks |= norm_hooks
    return MethodModules(parts, hooks)


METHOD = Method(
    name="parallel",
    config_cls=ParallelConfig,
    site_kinds=("ffn_intermediate", "ffn_output", "ffn_norm"),
    build=build,
    added_parameters=one_adapter_per_layer,
    summary="parallel adapters: a scaled bottleneck beside each feed-forward block",
)
