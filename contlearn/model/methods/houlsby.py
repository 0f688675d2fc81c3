"""Houlsby et al. 2019: a bottleneck adapter after the attention output projection and after the
feed-forward output projection of every layer (before the residual add and LayerNorm), plus the
task's own copies of those LayerNorms.

AdapterHub calls this preset ``DoubleSeqBnConfig``. The state of a task keeps the layout of
release 0.1: ``adapters.{slot}`` and ``layer_norms.{slot}`` with slot ``2*i`` for layer i's
attention site and ``2*i + 1`` for its feed-forward site.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from ...validation import check, check_types
from .base import Hook, Method, MethodModules, Sites

if TYPE_CHECKING:
    from torch import nn

NONLINEARITIES = ("gelu", "relu", "swish", "tanh")
# (projection site, the norm after it) per sub-layer, in slot order within a layer
SUB_LAYERS = (("attention_output", "attention_norm"), ("ffn_output", "ffn_norm"))


@dataclass(frozen=True)
class HoulsbyConfig:
    """bottleneck: m, the adapter's inner size (d -> m -> d).
    nonlinearity: applied between the down and up projections.
    init_std: std of the truncated-normal init (truncated at 2 std); biases start at zero.
    """

    method: ClassVar[str] = "houlsby"
    bottleneck: int = 64
    nonlinearity: str = "gelu"
    init_std: float = 1e-2

    def __post_init__(self) -> None:
        check_types(self)
        check(
            self.bottleneck >= 1,
            f"adapter bottleneck must be a positive integer, got {self.bottleneck!r}",
        )
        check(
            self.nonlinearity in NONLINEARITIES,
            f"adapter nonlinearity must be one of {', '.join(NONLINEARITIES)}, "
            f"got {self.nonlinearity!r}",
        )
        check(self.init_std > 0, f"adapter init_std must be > 0, got {self.init_std!r}")


def adapter_param_count(d: int, m: int) -> int:
    """Parameters of one adapter: down (d*m + m) plus up (m*d + d)."""
    return 2 * m * d + d + m


def added_parameters(config: HoulsbyConfig, sites: Sites) -> int:
    """Two adapters and two LayerNorm copies (weight and bias) per layer."""
    d, slots = sites.hidden_size, 2 * sites.num_layers
    return slots * (adapter_param_count(d, config.bottleneck) + 2 * d)


def _after(adapter: nn.Module) -> Hook:
    return lambda x, base: adapter(base(x))  # [B, T, d]


def _instead(norm: nn.Module) -> Hook:
    return lambda x, base: norm(x)


def build(config: HoulsbyConfig, sites: Sites) -> MethodModules:
    """The adapters, in slot order, then deep copies of the norms (same values, own storage)."""
    from torch import nn

    from ..layers import BottleneckAdapter

    norms = [sites.base_modules(kind) for _, kind in SUB_LAYERS]
    base_norms = [norms[j][i] for i in range(sites.num_layers) for j in range(len(SUB_LAYERS))]
    d = sites.hidden_size
    shape = (d, config.bottleneck, config.nonlinearity, config.init_std)
    adapters = nn.ModuleList(BottleneckAdapter(*shape) for _ in base_norms)
    layer_norms = nn.ModuleList(copy.deepcopy(ln).requires_grad_(True) for ln in base_norms)
    hooks: dict[tuple[str, int], Hook] = {}
    for i in range(sites.num_layers):
        for j, (projection, norm) in enumerate(SUB_LAYERS):
            hooks[(projection, i)] = _after(adapters[2 * i + j])
            hooks[(norm, i)] = _instead(layer_norms[2 * i + j])
    return MethodModules({"adapters": adapters, "layer_norms": layer_norms}, hooks)


METHOD = Method(
    name="houlsby",
    config_cls=HoulsbyConfig,
    site_kinds=tuple(kind for pair in SUB_LAYERS for kind in pair),
    build=build,
    added_parameters=added_parameters,
    summary="Houlsby adapters: a bottleneck after the attention and feed-forward outputs of "
    "every layer, and per-task LayerNorm copies",
)
