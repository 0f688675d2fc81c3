"""Liu et al. 2022 ((IA)^3): learned vectors that rescale the attention's keys and values and
the feed-forward block's inner activation, ones at init (exactly the backbone). As peft's
``IA3Config`` computes it: a projection is scaled after it (``base(x) * l``), or, if it is
among ``on_input`` (peft's ``feedforward_modules``), on its input (``base(x * l)``). State:
``scales.{site}.{layer}.weight``.

Generation's key/value cache: it keeps the rescaled keys and values, computed once per token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from ...validation import check, check_types
from .base import Hook, Method, MethodModules, Sites
from .common import (
    PROJECTIONS,
    SUB_LAYER_NORMS,
    as_tuple,
    both_norm_copies,
    check_choice,
    check_leave_out,
    check_norms,
    check_targets,
    kept_layers,
    norm_parameters,
    per_target,
    targeted_sites,
)
from .hooks import After, Before

if TYPE_CHECKING:
    from torch import nn

TARGETS = PROJECTIONS
# The projections whose input a vector may scale: never a fused one (its input is shared).
INPUT_SIDE = ("attention_output", "ffn_intermediate", "ffn_output")


@dataclass(frozen=True)
class IA3Config:
    """targets: the linear layers rescaled (default keys, values and the feed-forward output
    projection's input, the paper's choice); on_input: of the targets, those whose input is
    scaled (peft's ``feedforward_modules``), the others' output; default the feed-forward
    output projection alone (what release 0.2 computed, and what a config recorded without
    the key means); peft's default for BERT also scales ``attention_output``'s input;
    norms: "shared" or "task" (own copies of both LayerNorms of each adapted layer);
    leave_out: layers left as they are."""

    method: ClassVar[str] = "ia3"
    targets: tuple[str, ...] = ("key", "value", "ffn_output")
    on_input: tuple[str, ...] = ("ffn_output",)
    norms: str = "shared"
    leave_out: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check_types(self)
        check_targets(self, TARGETS)
        _check_on_input(self)
        check_norms(self.norms)
        check_leave_out(self)


def _check_on_input(config: IA3Config) -> None:
    sides = as_tuple(config, "on_input", str)
    for target in sides:
        check_choice("each on_input projection", target, INPUT_SIDE)
    check(len(set(sides)) == len(sides), f"on_input repeats a site: {list(sides)}")


def _size(sites: Sites, target: str, on_input: bool) -> int:
    """The vector's size: the projection's inputs (``on_input``) or outputs (its slice of a
    fused projection's)."""
    from ..families import projection_shape

    site, part = sites.projection(target)
    d_in, d_out = projection_shape(sites.base_modules(site)[0])
    if on_input:
        return d_in
    return d_out if part is None else part.stop - part.start


def added_parameters(config: IA3Config, sites: Sites) -> int:
    layers = kept_layers(config.leave_out, sites.num_layers)
    norms = norm_parameters(sites, SUB_LAYER_NORMS, layers) if config.norms == "task" else 0
    sizes = (_size(sites, t, t in config.on_input) for t in config.targets)
    return len(layers) * sum(sizes) + norms


def _scaled(scales: list[tuple[slice | None, nn.Module]], on_input: bool) -> Hook:
    """The output (or, ``on_input``, the input) times the vector; on a fused projection each
    vector scales its slice and the rest is left as it is."""
    import torch

    if on_input:
        ((_, scale),) = scales
        return Before(scale)
    if len(scales) == 1 and scales[0][0] is None:
        return After(scales[0][1])

    def scaled(out):
        factor = torch.ones(out.shape[-1], dtype=out.dtype, device=out.device)
        pieces, at = [], 0
        for part, scale in sorted(scales, key=lambda s: s[0].start):
            pieces += [factor[at : part.start], scale.weight.to(out.dtype)]
            at = part.stop
        return out * torch.cat([*pieces, factor[at:]])

    return After(scaled)


def build(config: IA3Config, sites: Sites) -> MethodModules:

    from ..layers import Scale

    layers = kept_layers(config.leave_out, sites.num_layers)
    scales, per_site = per_target(
        sites, config.targets, layers, lambda t: Scale(_size(sites, t, t in config.on_input))
    )
    hooks = {key: _scaled(found, key[0] in config.on_input) for key, found in per_site.items()}
    parts: dict[str, nn.Module] = {"scales": scales}
    if config.norms == "task":
        parts["layer_norms"], norm_hooks = both_norm_copies(sites, layers)
        hooks |= norm_hooks
    return MethodModules(parts, hooks)


METHOD = Method(
    name="ia3",
    config_cls=IA3Config,
    site_kinds=(*TARGETS, "qkv", "attention_norm", "ffn_norm"),
    sites_used=targeted_sites,
    build=build,
    added_parameters=added_parameters,
    summary="(IA)^3: learned scaling of keys, values and the feed-forward activation",
    tradeoff_lr=5e-3,  # scaling vectors around 1 want a higher rate than adapters
)
