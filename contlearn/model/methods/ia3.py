"""Liu et al. 2022 ((IA)^3): learned vectors that rescale the attention's keys and values and
the feed-forward block's inner activation, ones at init (exactly the backbone). As peft's
``IA3Config`` computes it: an output projection is scaled after it (``base(x) * l``), the
feed-forward output projection on its input (``base(x * l)``). State:
``scales.{site}.{layer}.weight``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from ...validation import check_types
from .base import Hook, Method, MethodModules, Sites
from .common import (
    check_leave_out,
    check_norms,
    check_targets,
    kept_layers,
    norm_copies,
    norm_parameters,
)

if TYPE_CHECKING:
    from torch import nn

TARGETS = ("query", "key", "value", "attention_output", "ffn_intermediate", "ffn_output")
ON_INPUT = ("ffn_output",)  # feed-forward projections: the vector scales what they read


@dataclass(frozen=True)
class IA3Config:
    """targets: the linear layers rescaled (default keys, values and the feed-forward output
    projection's input, the paper's choice); norms: "shared" or "task" (own copies of both
    LayerNorms of each adapted layer); leave_out: layers left as they are."""

    method: ClassVar[str] = "ia3"
    targets: tuple[str, ...] = ("key", "value", "ffn_output")
    norms: str = "shared"
    leave_out: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check_types(self)
        check_targets(self, TARGETS)
        check_norms(self.norms)
        check_leave_out(self)


def _size(sites: Sites, target: str) -> int:
    linear = sites.base_modules(target)[0]
    return linear.in_features if target in ON_INPUT else linear.out_features


def added_parameters(config: IA3Config, sites: Sites) -> int:
    d, _ = sites.sub_layer_sizes()
    layers = len(kept_layers(config.leave_out, sites.num_layers))
    norms = norm_parameters(d, 2 * layers) if config.norms == "task" else 0
    return layers * sum(_size(sites, t) for t in config.targets) + norms


def _scaled(scale: nn.Module, on_input: bool) -> Hook:
    if on_input:
        return lambda x, base: base(scale(x))
    return lambda x, base: scale(base(x))


def build(config: IA3Config, sites: Sites) -> MethodModules:
    from torch import nn

    from ..layers import Scale

    layers = kept_layers(config.leave_out, sites.num_layers)
    scales, hooks = nn.ModuleDict(), {}
    for target in config.targets:
        vectors = nn.ModuleDict({str(i): Scale(_size(sites, target)) for i in layers})
        scales[target] = vectors
        on_input = target in ON_INPUT
        hooks |= {(target, i): _scaled(vectors[str(i)], on_input) for i in layers}
    parts: dict[str, nn.Module] = {"scales": scales}
    if config.norms == "task":
        kinds = ("attention_norm", "ffn_norm")
        slots = [(kind, i, str(2 * i + j)) for i in layers for j, kind in enumerate(kinds)]
        parts["layer_norms"], norm_hooks = norm_copies(sites, slots)
        hooks |= norm_hooks
    return MethodModules(parts, hooks)


METHOD = Method(
    name="ia3",
    config_cls=IA3Config,
    site_kinds=(*TARGETS, "attention_norm", "ffn_norm"),
    build=build,
    added_parameters=added_parameters,
    summary="(IA)^3: learned scaling of keys, values and the feed-forward activation",
)
