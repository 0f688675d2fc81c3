"""Pfeiffer et al. 2021 (AdapterFusion): one bottleneck adapter per layer, after the
feed-forward block. As AdapterHub's ``SeqBnConfig`` computes it on a post-LN layer: with ``s``
the norm's input (the block's output plus its residual) and ``LN`` the norm,
``LN(s + up(act(down(LN(s)))))``: the adapter reads the normalised output, and the same norm
is applied again after it. On a pre-LN layer (the norm before the block) the adapter, with its
residual, acts on the block's output before the residual add. State: ``adapters.{layer}`` and,
with ``norms = "task"``, ``layer_norms.{layer}``.

Generation's key/value cache: the adapter acts on each token's state alone (after the
attention), so the cache keeps the task's keys and values; each step adapts the new token only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from .base import Hook, Method, MethodModules, Sites
from .common import kept_layers, norm_copies, norm_parameters
from .hooks import After, Instead
from .houlsby import adapter_param_count, check_bottleneck_fields

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class PfeifferConfig:
    """bottleneck: m (d -> m -> d); nonlinearity: between the projections (AdapterHub's
    default, relu); init_std: truncated-normal std of both projections, biases zero;
    norms: "shared" (AdapterHub's default: the backbone's, frozen) or "task" (own copies);
    leave_out: layers without an adapter."""

    method: ClassVar[str] = "pfeiffer"
    bottleneck: int = 64
    nonlinearity: str = "relu"
    init_std: float = 1e-2
    norms: str = "shared"
    leave_out: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check_bottleneck_fields(self)


def one_adapter_per_layer(config, sites: Sites) -> int:
    """One adapter per kept layer, and a copy of its feed-forward norm with ``norms = "task"``
    (Pfeiffer's and the parallel adapter's)."""
    d, _ = sites.sub_layer_sizes()
    layers = kept_layers(config.leave_out, sites.num_layers)
    norms = norm_parameters(sites, ["ffn_norm"], layers) if config.norms == "task" else 0
    return len(layers) * adapter_param_count(d, config.bottleneck) + norms


def _around(core: nn.Module, norm: nn.Module | None) -> Hook:
    def hook(s, base):
        ln = base if norm is None else norm
        return ln(s + core(ln(s)))  # [B, T, d]

    return Instead(hook)


def _after(adapter: nn.Module) -> Hook:
    return After(lambda y: y + adapter(y))  # y = base(x): [B, T, d]


def build(config: PfeifferConfig, sites: Sites) -> MethodModules:
    """Post-LN: around the feed-forward norm, as above. Pre-LN (the norm comes before the
    block): the adapter, with its residual, on the block's output before the residual add."""
    from torch import nn

    from ..layers import Bottleneck

    d, _ = sites.sub_layer_sizes()
    layers = kept_layers(config.leave_out, sites.num_layers)
    shape = (d, config.bottleneck, config.nonlinearity, config.init_std)
    adapters = nn.ModuleDict({str(i): Bottleneck(*shape) for i in layers})
    parts: dict[str, nn.Module] = {"adapters": adapters}
    norms: dict[str, nn.Module] = {}
    norm_hooks: dict = {}
    if config.norms == "task":
        slots = [("ffn_norm", i, str(i)) for i in layers]
        parts["layer_norms"], norm_hooks = norm_copies(sites, slots)
        norms = dict(parts["layer_norms"].items())
    if sites.norm_position == "pre":
        hooks = {("ffn_output", i): _after(adapters[str(i)]) for i in layers} | norm_hooks
    else:
        hooks = {("ffn_norm", i): _around(adapters[str(i)], norms.get(str(i))) for i in layers}
    return MethodModules(parts, hooks)


METHOD = Method(
    name="pfeiffer",
    config_cls=PfeifferConfig,
    site_kinds=("ffn_norm", "ffn_output"),
    build=build,
    added_parameters=one_adapter_per_layer,
    summary="Pfeiffer adapters: one bottleneck per layer, after the feed-forward block",
)
