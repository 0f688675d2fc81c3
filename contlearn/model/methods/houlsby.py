"""Houlsby et al. 2019: a bottleneck adapter after the attention output projection and after the
feed-forward output projection of every layer (before the residual add and LayerNorm), plus the
task's own copies of those LayerNorms (``norms = "task"``, the paper's choice).

AdapterHub calls this preset ``DoubleSeqBnConfig``. The state of a task keeps the layout of
release 0.1: ``adapters.{slot}`` and ``layer_norms.{slot}`` with slot ``2*i`` for layer i's
attention site and ``2*i + 1`` for its feed-forward site.

Generation's key/value cache (:mod:`contlearn.model.decoding`): the adapters and norm copies
act on each token's state alone, so the keys and values the cache keeps are the task's, and
each step runs them on the new token only.
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
    norm_parameters,
)
from .hooks import After

if TYPE_CHECKING:
    from torch import nn

# (projection site, the norm after it) per sub-layer, in slot order within a layer
SUB_LAYERS = (("attention_output", "attention_norm"), ("ffn_output", "ffn_norm"))


@dataclass(frozen=True)
class HoulsbyConfig:
    """bottleneck: m, the adapter's inner size (d -> m -> d).
    nonlinearity: applied between the down and up projections.
    init_std: std of the truncated-normal init (truncated at 2 std); biases start at zero.
    norms: "task" (own LayerNorm copies, trained) or "shared" (the backbone's, frozen).
    leave_out: layers without adapters (AdapterDrop: the lowest ones stop the backward early).
    """

    method: ClassVar[str] = "houlsby"
    bottleneck: int = 64
    nonlinearity: str = "gelu"
    init_std: float = 1e-2
    norms: str = "task"
    leave_out: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check_bottleneck_fields(self)


def check_bottleneck_fields(config) -> None:
    """The fields every bottleneck method shares."""
    check_types(config)
    check(
        config.bottleneck >= 1,
        f"adapter bottleneck must be a positive integer, got {config.bottleneck!r}",
    )
    check_choice("adapter nonlinearity", config.nonlinearity, NONLINEARITIES)
    check(config.init_std > 0, f"adapter init_std must be > 0, got {config.init_std!r}")
    check_norms(config.norms)
    check_leave_out(config)


def adapter_param_count(d: int, m: int) -> int:
    """Parameters of one adapter: down (d*m + m) plus up (m*d + d)."""
    return 2 * m * d + d + m


def added_parameters(config: HoulsbyConfig, sites: Sites) -> int:
    """Two adapters per adapted layer, and two LayerNorm copies with ``norms = "task"``."""
    d, _ = sites.sub_layer_sizes()
    layers = kept_layers(config.leave_out, sites.num_layers)
    kinds = [norm for _, norm in SUB_LAYERS]
    norms = norm_parameters(sites, kinds, layers) if config.norms == "task" else 0
    return 2 * len(layers) * adapter_param_count(d, config.bottleneck) + norms


def _after(adapter: nn.Module) -> Hook:
    return After(adapter)  # adapter(base(x)): [B, T, d]


def build(config: HoulsbyConfig, sites: Sites) -> MethodModules:
    """The adapters, in slot order, then copies of the norms (same values, own storage)."""
    from torch import nn

    from ..layers import BottleneckAdapter

    d, _ = sites.sub_layer_sizes()
    shape = (d, config.bottleneck, config.nonlinearity, config.init_std)
    adapters, hooks = nn.ModuleDict(), {}
    slots = []
    for i in kept_layers(config.leave_out, sites.num_layers):
        for j, (projection, norm) in enumerate(SUB_LAYERS):
            slot = str(2 * i + j)
            adapters[slot] = BottleneckAdapter(*shape)
            hooks[(projection, i)] = _after(adapters[slot])
            slots.append((norm, i, slot))
    parts = {"adapters": adapters}
    if config.norms == "task":
        parts["layer_norms"], norm_hooks = norm_copies(sites, slots)
        hooks |= norm_hooks
    return MethodModules(parts, hooks)


METHOD = Method(
    name="houlsby",
    config_cls=HoulsbyConfig,
    site_kinds=tuple(kind for pair in SUB_LAYERS for kind in pair),
    build=build,
    added_parameters=added_parameters,
    summary="Houlsby adapters: a bottleneck after the attention and feed-forward outputs of "
    "every layer, and per-task LayerNorm copies",
)
