"""Hu et al. 2021 (LoRA): a low-rank update ``B A x * alpha / r`` added to chosen linear layers
(default the attention's query and value projections), ``B`` zero at init so that a new task is
exactly the backbone. Computes what peft's ``LoraConfig`` computes for the same weights (its
default initialisation: ``A`` Kaiming-uniform, ``B`` zero). State:
``lora.{site}.{layer}.lora_A.weight`` and ``.lora_B.weight``; with ``norms = "task"`` also
``layer_norms.{slot}`` (slot ``2*i`` and ``2*i + 1`` for layer i's two norms).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from ...validation import check, check_types
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
    linear = sites.base_modules(target)[0]
    return linear.in_features, linear.out_features


def added_parameters(config: LoraConfig, sites: Sites) -> int:
    """r * (in + out) per adapted linear layer, plus the norm copies."""
    d, _ = sites.sub_layer_sizes()
    layers = len(kept_layers(config.leave_out, sites.num_layers))
    per_layer = sum(config.rank * sum(_shape(sites, t)) for t in config.targets)
    norms = norm_parameters(d, 2 * layers) if config.norms == "task" else 0
    return layers * per_layer + norms


def _plus(update: nn.Module) -> Hook:
    return lambda x, base: base(x) + update(x)


def build(config: LoraConfig, sites: Sites) -> MethodModules:
    from torch import nn

    from ..layers import LowRank

    layers = kept_layers(config.leave_out, sites.num_layers)
    lora, hooks = nn.ModuleDict(), {}
    for target in config.targets:
        d_in, d_out = _shape(sites, target)
        updates = nn.ModuleDict(
            {
                str(i): LowRank(d_in, d_out, config.rank, config.alpha, config.dropout)
                for i in layers
            }
        )
        lora[target] = updates
        hooks |= {(target, i): _plus(updates[str(i)]) for i in layers}
    parts: dict[str, nn.Module] = {"lora": lora}
    if config.norms == "task":
        kinds = ("attention_norm", "ffn_norm")
        slots = [(kind, i, str(2 * i + j)) for i in layers for j, kind in enumerate(kinds)]
        parts["layer_norms"], norm_hooks = norm_copies(sites, slots)
        hooks |= norm_hooks
    return MethodModules(parts, hooks)


METHOD = Method(
    name="lora",
    config_cls=LoraConfig,
    site_kinds=(*TARGETS, "attention_norm", "ffn_norm"),
    build=build,
    added_parameters=added_parameters,
    summary="LoRA: low-rank updates of the query and value projections (targets configurable)",
)
