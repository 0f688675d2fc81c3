"""Hu et al. 2021 (LoRA): a low-rank update ``B A x * alpha / r`` added to chosen linear layers
(default the attention's query and value projections), ``B`` zero at init so that a new task is
exactly the backbone. Computes what peft's ``LoraConfig`` computes for the same weights (its
default initialisation: ``A`` Kaiming-uniform, ``B`` zero). State:
``lora.{site}.{layer}.lora_A.weight`` and ``.lora_B.weight``; with ``norms = "task"`` also
``layer_norms.{slot}`` (slot ``2*i`` and ``2*i + 1`` for layer i's two norms).

Generation's key/value cache: with the key or value projection targeted, the cache keeps the
updated keys and values, computed once per token as every step's recomputation would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ...validation import check, check_types
from .base import Hook, Method, MethodModules, Sites
from .common import (
    PROJECTIONS,
    SUB_LAYER_NORMS,
    both_norm_copies,
    check_leave_out,
    check_norms,
    check_targets,
    kept_layers,
    norm_parameters,
    per_target,
    targeted_sites,
)
from .hooks import Plus

if TYPE_CHECKING:
    from torch import nn

TARGETS = PROJECTIONS


@dataclass(frozen=True)
class LoraConfig:
    """rank: r; alpha: the update is scaled by alpha / r; dropout: on the update's input;
    targets: the linear layers adapted, of query, key, value, attention_output,
    ffn_intermediate, ffn_output; norms: "shared" (peft's way) or "task" (own copies of both
    LayerNorms of each adapted layer); leave_out: layers left as they are."""

    method: ClassVar[str] = "lora"
    rank: int = 8
    alpha: float = 8.0
    dropout: float = 0.0
    targets: tuple[str, ...] = ("query", "value")
    norms: str = "shared"
    leave_out: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check_types(self)
        check(self.rank >= 1, f"rank must be a positive integer, got {self.rank!r}")
        check(self.alpha > 0, f"alpha must be > 0, got {self.alpha!r}")
        check(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout!r}")
        check_targets(self, TARGETS)
        check_norms(self.norms)
        check_leave_out(self)


def _shape(sites: Sites, target: str) -> tuple[int, int]:
    """(inputs, outputs) of a target: its projection's, or its slice of a fused one."""
    from ..families import projection_shape

    site, part = sites.projection(target)
    d_in, d_out = projection_shape(sites.base_modules(site)[0])
    return d_in, d_out if part is None else part.stop - part.start


def added_parameters(config: LoraConfig, sites: Sites) -> int:
    """r * (in + out) per adapted projection (or slice of a fused one), plus the norm copies."""
    layers = kept_layers(config.leave_out, sites.num_layers)
    per_layer = sum(config.rank * sum(_shape(sites, t)) for t in config.targets)
    norms = norm_parameters(sites, SUB_LAYER_NORMS, layers) if config.norms == "task" else 0
    return len(layers) * per_layer + norms


def _plus(updates: list[tuple[slice | None, nn.Module]]) -> Hook:
    """base(x) plus each update, on the whole output or on its slice of a fused output."""
    return Plus([_term(part, update) for part, update in updates])


def _term(part: slice | None, update: nn.Module):
    import torch.nn.functional as F

    if part is None:
        return lambda x, out: update(x)
    return lambda x, out: F.pad(update(x), (part.start, out.shape[-1] - part.stop))


def build(config: LoraConfig, sites: Sites) -> MethodModules:

    from ..layers import LowRank

    layers = kept_layers(config.leave_out, sites.num_layers)

    def make(target: str) -> nn.Module:
        return LowRank(*_shape(sites, target), config.rank, config.alpha, config.dropout)

    lora, per_site = per_target(sites, config.targets, layers, make)
    hooks: dict[tuple[str, int], Hook] = {key: _plus(found) for key, found in per_site.items()}
    parts: dict[str, nn.Module] = {"lora": lora}
    if config.norms == "task":
        parts["layer_norms"], norm_hooks = both_norm_copies(sites, layers)
        hooks |= norm_hooks
    return MethodModules(parts, hooks)


METHOD = Method(
    name="lora",
    config_cls=LoraConfig,
    site_kinds=(*TARGETS, "qkv", "attention_norm", "ffn_norm"),
    sites_used=targeted_sites,
    build=build,
    added_parameters=added_parameters,
    summary="LoRA: low-rank updates of the query and value projections (targets configurable)",
)


def merge(model: Any, name: str) -> None:
    """Add task ``name``'s LoRA updates into the weights of ``model``'s backbone (``model``: an
    ``AdaptedModel``): each adapted projection's ``W += alpha / r * B @ A`` ([out, in]; its
    rows of a fused projection; a Conv1D's transposed layout). The task's LoRA modules are left
    as they are: remove them, or its forward adds the update twice."""
    import torch

    lora = model.tasks[name].lora  # {target: {layer: LowRank}}
    with torch.no_grad():
        for target, per_layer in lora.items():
            site, part = model.projection(target)
            bases = model.base_modules(site)
            for layer, update in per_layer.items():
                delta = update.scaling * (update.lora_B.weight @ update.lora_A.weight)
                _add_to(bases[int(layer)], delta, part)


def _add_to(base: nn.Module, delta: Any, part: slice | None) -> None:
    """``base.weight`` += ``delta`` [out, in] (on the output rows ``part`` when given)."""
    from torch import nn

    rows = slice(None) if part is None else part
    weight = base.weight
    if isinstance(base, nn.Linear):  # [out, in]
        weight[rows] += delta.to(weight.dtype)
    else:  # GPT-2's Conv1D: [in, out]
        weight[:, rows] += delta.T.to(weight.dtype)
