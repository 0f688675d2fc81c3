"""AdapterFusion (Pfeiffer et al. 2021): a task learns, per layer, an attention over the outputs
of earlier tasks' frozen Pfeiffer adapters and of its own new one.

Where a Pfeiffer adapter sits (after the feed-forward block), layer i computes each adapter's
output with its residual, ``o_j = h + core_j(h)`` (the earlier tasks' ``core_j`` frozen, the
task's own trained), and mixes them with an attention whose query reads ``h``:
``softmax_j(Q(h) . K(o_j)) V(o_j)`` [B, T, d], as AdapterHub's ``BertFusion`` does (no scaling,
the value projection starting as the identity, the query and key small). On a post-LN layer
``h = LN(s)`` and the layer hands on ``LN(s + fused - h)``, the Pfeiffer rule with the fused
output in place of one adapter's; on a pre-LN layer ``h`` is the block's output before the
residual add and ``fused`` replaces it.

The earlier tasks' adapters are read, never trained or saved here: the hooks call them with
detached weights, so no gradient reaches them, and they are not registered on this task (its
state holds only its own adapters and attention). Which tasks it reads is its config
(``fuse``); the artifact names their weights by sha256 and loading checks them
(``runtime.fusion``). A fused task must be a ``pfeiffer`` task with ``norms = "shared"`` (the
paper's adapters), loaded on the model before this one is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ...errors import ConfigError
from ...naming import check_task_name
from .base import Hook, Method, MethodModules, Sites
from .common import as_tuple, kept_layers
from .hooks import After, Instead
from .houlsby import adapter_param_count, check_bottleneck_fields

if TYPE_CHECKING:
    from torch import Tensor, nn

FUSABLE = "pfeiffer"  # the method whose adapters a fusion reads


@dataclass(frozen=True)
class FusionConfig:
    """fuse: the earlier tasks whose adapters the attention reads (empty: every trained
    pfeiffer task with shared norms, resolved when the task trains and recorded by name);
    bottleneck, nonlinearity, init_std, leave_out: the task's own Pfeiffer adapter's;
    the norms are the backbone's (``shared``), as the fused adapters' are."""

    method: ClassVar[str] = "fusion"
    fuse: tuple[str, ...] = ()
    bottleneck: int = 64
    nonlinearity: str = "relu"
    init_std: float = 1e-2
    norms: str = "shared"
    leave_out: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        names = as_tuple(self, "fuse", str)
        for name in names:
            check_task_name(name)
        if len(set(names)) != len(names):
            raise ConfigError(f"fuse repeats a task: {list(names)}")
        check_bottleneck_fields(self)
        if self.norms != "shared":
            raise ConfigError("fusion reads adapters on the backbone's norms: use norms=shared")


def _attention(d: int) -> nn.Module:
    """Q, K, V [d -> d]: Q and K from N(0, 0.02), V the identity (plus 1e-6 off the diagonal,
    as AdapterHub starts it), biases zero."""
    import torch
    from torch import nn

    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
            for linear in (self.query, self.key):
                nn.init.normal_(linear.weight, std=0.02)
            with torch.no_grad():
                self.value.weight.copy_(torch.full((d, d), 1e-6).fill_diagonal_(1.0))
            for linear in (self.query, self.key, self.value):
                nn.init.zeros_(linear.bias)

        def forward(self, h: Tensor, outs: Tensor) -> Tensor:
            """h [B, T, d], outs [B, T, n, d] -> [B, T, d]."""
            q = self.query(h).unsqueeze(2)  # [B, T, 1, d]
            scores = (q * self.key(outs)).sum(-1)  # [B, T, n]
            weights = torch.softmax(scores, dim=-1).unsqueeze(-1)  # [B, T, n, 1]
            return (weights * self.value(outs)).sum(2)

    return Attention()


def frozen(module: nn.Module, x: Tensor) -> Tensor:
    """``module(x)`` with its weights detached: gradients reach ``x``, never the weights."""
    from torch.func import functional_call

    params = {k: v.detach() for k, v in module.named_parameters()}
    return functional_call(module, params, (x,))


def _fused(h: Tensor, cores: list, own: nn.Module, attention: nn.Module) -> Tensor:
    """The attention over each adapter's output with its residual: [B, T, d]."""
    import torch

    outs = [h + frozen(core, h) for core in cores] + [h + own(h)]
    return attention(h, torch.stack(outs, dim=2))  # outs stacked: [B, T, n, d]


def _around(cores: list, own: nn.Module, attention: nn.Module) -> Hook:
    def hook(s, base):
        h = base(s)  # LN(s): [B, T, d]
        return base(s + _fused(h, cores, own, attention) - h)

    return Instead(hook)


def _after(cores: list, own: nn.Module, attention: nn.Module) -> Hook:
    return After(lambda y: _fused(y, cores, own, attention))  # y = base(x): [B, T, d]


def fused_adapters(config: FusionConfig, sites: Any) -> list[Any]:
    """Each fused task's adapters by layer (``{layer: module}``), read from the model the task
    is built on; a task missing, or not shaped as a Pfeiffer task with shared norms (one
    bottleneck per layer, no norm copies), is an error. Which method trained it is the
    ledger's to say (``runtime.fusion`` checks it before a fusion task trains)."""
    from ..layers import Bottleneck

    tasks = getattr(sites, "tasks", {})
    found = []
    for name in config.fuse:
        parts = dict(tasks[name].named_children()) if name in tasks else {}
        cores = list(parts["adapters"].values()) if "adapters" in parts else []
        if not cores or "layer_norms" in parts or any(type(c) is not Bottleneck for c in cores):
            raise ConfigError(
                f"fusion reads task {name!r}, which is not a loaded {FUSABLE} task with shared "
                "norms: fuse only such tasks"
            )
        found.append(dict(parts["adapters"].items()))
    return found


def build(config: FusionConfig, sites: Sites) -> MethodModules:
    """The task's own adapter and attention per kept layer, and a hook that fuses, at each,
    the fused tasks' adapters that layer has (a fused task may leave a layer out)."""
    from torch import nn

    from ..layers import Bottleneck

    d, _ = sites.sub_layer_sizes()
    layers = kept_layers(config.leave_out, sites.num_layers)
    shape = (d, config.bottleneck, config.nonlinearity, config.init_std)
    adapters = nn.ModuleDict({str(i): Bottleneck(*shape) for i in layers})
    fusion = nn.ModuleDict({str(i): _attention(d) for i in layers})
    earlier = fused_adapters(config, sites)
    pre = sites.norm_position == "pre"
    hooks = {}
    for i in layers:
        cores = [found[str(i)] for found in earlier if str(i) in found]
        make = _after if pre else _around
        site = ("ffn_output" if pre else "ffn_norm", i)
        hooks[site] = make(cores, adapters[str(i)], fusion[str(i)])
    return MethodModules({"adapters": adapters, "fusion": fusion}, hooks)


def added_parameters(config: FusionConfig, sites: Sites) -> int:
    """The own adapter and the attention's three d x d projections (with biases) per layer."""
    d, _ = sites.sub_layer_sizes()
    layers = kept_layers(config.leave_out, sites.num_layers)
    return len(layers) * (adapter_param_count(d, config.bottleneck) + 3 * (d * d + d))


METHOD = Method(
    name="fusion",
    config_cls=FusionConfig,
    site_kinds=("ffn_norm", "ffn_output"),
    build=build,
    added_parameters=added_parameters,
    summary="AdapterFusion: a new Pfeiffer adapter and, per layer, an attention over it and "
    "the frozen adapters of earlier pfeiffer tasks",
)
