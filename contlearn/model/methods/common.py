"""What several methods share: the ``norms`` and ``leave_out`` options, per-task copies of the
backbone's LayerNorms, and the checks of a config's fields."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError
from ...validation import check
from .base import Hook, Sites
from .hooks import Instead

if TYPE_CHECKING:
    from torch import nn

NORMS = ("task", "shared")  # the task's own LayerNorm copies (the paper), or the backbone's
NONLINEARITIES = ("gelu", "relu", "swish", "tanh")


def as_tuple(config: Any, name: str, kind: type) -> tuple:
    """Field ``name`` of a frozen config as a tuple of ``kind`` (TOML and JSON give lists; a
    single value is a list of one); stored back on the config."""
    value = getattr(config, name)
    if isinstance(value, kind) and not isinstance(value, bool):
        value = (value,)
    check(
        isinstance(value, (list, tuple))
        and all(isinstance(v, kind) and not isinstance(v, bool) for v in value),
        f"{name} must be a list of {kind.__name__}s, got {value!r}",
    )
    value = tuple(value)
    object.__setattr__(config, name, value)
    return value


def check_norms(norms: str) -> None:
    check(norms in NORMS, f"norms must be one of {', '.join(NORMS)}, got {norms!r}")


def check_leave_out(config: Any) -> None:
    layers = as_tuple(config, "leave_out", int)
    check(all(i >= 0 for i in layers), f"leave_out layers must be >= 0, got {list(layers)}")
    check(len(set(layers)) == len(layers), f"leave_out repeats a layer: {list(layers)}")


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    check(value in choices, f"{name} must be one of {', '.join(choices)}, got {value!r}")


def check_targets(config: Any, allowed: Sequence[str]) -> None:
    targets = as_tuple(config, "targets", str)
    check(bool(targets), f"targets must name at least one of {', '.join(allowed)}")
    for target in targets:
        check_choice("each target", target, allowed)
    check(len(set(targets)) == len(targets), f"targets repeats a site: {list(targets)}")


def kept_layers(leave_out: Iterable[int], num_layers: int) -> list[int]:
    """The layers a method adapts: all but ``leave_out``; an index the backbone lacks is an
    error (a config written for a deeper backbone), not a silent no-op."""
    left = sorted(set(leave_out))
    if left and left[-1] >= num_layers:
        raise ConfigError(
            f"leave_out names layer {left[-1]}, but the backbone has {num_layers} layers "
            f"(0 to {num_layers - 1})"
        )
    kept = [i for i in range(num_layers) if i not in left]
    if not kept:
        raise ConfigError(f"leave_out leaves out all {num_layers} layers: keep at least one")
    return kept


def check_depth(config: Any, num_layers: int) -> None:
    """A config's layer options fit a backbone of ``num_layers`` layers (``leave_out`` names
    layers it has, ``k`` at most its depth); raises :class:`ConfigError` naming the fix."""
    if hasattr(config, "leave_out"):
        kept_layers(config.leave_out, num_layers)
    k = getattr(config, "k", None)
    if k is not None and k > num_layers:
        raise ConfigError(
            f"{config.method} k={k}, but the backbone has {num_layers} layers: "
            f"use k from 1 to {num_layers}"
        )


def norm_copies(
    sites: Sites, slots: Sequence[tuple[str, int, str]]
) -> tuple[nn.ModuleDict, dict[tuple[str, int], Hook]]:
    """Trainable copies (same values, own storage) of the norms at ``(kind, layer, key)``, and
    the hooks that run each copy instead of the backbone's norm."""
    from torch import nn

    copies = nn.ModuleDict()
    hooks: dict[tuple[str, int], Hook] = {}
    for kind, layer, key in slots:
        norm = copy.deepcopy(sites.base_modules(kind)[layer]).requires_grad_(True)
        copies[key] = norm
        hooks[(kind, layer)] = _instead(norm)
    return copies, hooks


def _instead(norm: nn.Module) -> Hook:
    return Instead(lambda x, base: norm(x))


def norm_parameters(sites: Sites, kinds: Sequence[str], layers: Sequence[int]) -> int:
    """What copies of the norms of ``kinds`` in ``layers`` hold (a LayerNorm: weight and bias;
    an RMSNorm: its weight)."""
    return sum(
        p.numel()
        for kind in kinds
        for i in layers
        for p in sites.base_modules(kind)[i].parameters()
    )


# The linear projections of a layer that LoRA and (IA)3 can target.
PROJECTIONS = ("query", "key", "value", "attention_output", "ffn_intermediate", "ffn_output")
SUB_LAYER_NORMS = ("attention_norm", "ffn_norm")


def both_norm_copies(
    sites: Sites, layers: Sequence[int]
) -> tuple[nn.ModuleDict, dict[tuple[str, int], Hook]]:
    """Copies of both norms of each layer in ``layers``, keyed by slot ``2*i`` (attention) and
    ``2*i + 1`` (feed-forward), as Houlsby's copies are."""
    slots = [(kind, i, str(2 * i + j)) for i in layers for j, kind in enumerate(SUB_LAYER_NORMS)]
    return norm_copies(sites, slots)


def targeted_sites(config: Any, sites: Sites) -> tuple[str, ...]:
    """The sites a config with ``targets`` (and ``norms``) attaches to on this backbone: a
    fused family's ``qkv`` for its query, key or value."""
    found = tuple(dict.fromkeys(sites.projection(t)[0] for t in config.targets))
    return found + (SUB_LAYER_NORMS if config.norms == "task" else ())


def per_target(
    sites: Sites, targets: Sequence[str], layers: Sequence[int], make: Any
) -> tuple[nn.ModuleDict, dict[tuple[str, int], list]]:
    """For each target a module per layer (``make(target)``), as ``{target: {layer: module}}``,
    and for each (site, layer) the (slice or None, module) pairs that act there: a fused
    family's query, key and value share its ``qkv`` site."""
    from torch import nn

    modules = nn.ModuleDict()
    per_site: dict[tuple[str, int], list] = {}
    for target in targets:
        site, part = sites.projection(target)
        modules[target] = nn.ModuleDict({str(i): make(target) for i in layers})
        for i in layers:
            per_site.setdefault((site, i), []).append((part, modules[target][str(i)]))
    return modules, per_site
