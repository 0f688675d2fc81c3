"""Houlsby bottleneck adapters on a frozen, shared transformer backbone, one adapter set per task.

This module owns the adapter layer, the per-task trainable state (adapters, LayerNorm copies and
a classification head) and the injection into the backbone. Injection is composition: each
attention and feed-forward output projection is replaced by a wrapper that keeps the original
``nn.Linear`` as ``.base`` and adds the active task's adapter after it; each LayerNorm that
follows is replaced by a wrapper that uses the active task's copy. The backbone's weights are
never edited, and with no task active (or a head-only task) its forward is exactly the original.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from transformers import PreTrainedModel

from .config import AdapterConfig, check_task_name
from .errors import ArtifactError, UnsupportedArchitecture

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "swish": nn.SiLU, "tanh": nn.Tanh}


@dataclass(frozen=True)
class Layout:
    """Where a family of encoders keeps its layers and, per layer, the two adapter sites.

    sites: (projection path, LayerNorm path) for the attention sub-layer, then the FFN one.
    attention_dropout: the dropout on the attention probabilities, whose ``p`` the attention
    passes to ``scaled_dot_product_attention``.
    """

    layers: str
    sites: tuple[tuple[str, str], tuple[str, str]]
    attention_dropout: str


LAYOUTS = (
    # BERT, MiniLM, RoBERTa, ELECTRA and any model with the same sub-layer structure
    Layout(
        "encoder.layer",
        (
            ("attention.output.dense", "attention.output.LayerNorm"),
            ("output.dense", "output.LayerNorm"),
        ),
        "attention.self.dropout",
    ),
    # DistilBERT
    Layout(
        "transformer.layer",
        (("attention.out_lin", "sa_layer_norm"), ("ffn.lin2", "output_layer_norm")),
        "attention.dropout",
    ),
)


def adapter_param_count(d: int, m: int) -> int:
    """Parameters of one adapter: down (d*m + m) plus up (m*d + d)."""
    return 2 * m * d + d + m


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters in ``module`` (shared tensors counted once)."""
    return sum(p.numel() for p in module.parameters())


class BottleneckAdapter(nn.Module):
    """h + up(act(down(h))): d -> m -> d with a residual; starts near the identity."""

    def __init__(self, d: int, config: AdapterConfig):
        super().__init__()
        self.down = nn.Linear(d, config.bottleneck)
        self.act = ACTIVATIONS[config.nonlinearity]()
        self.up = nn.Linear(config.bottleneck, d)
        std = config.init_std
        for linear in (self.down, self.up):
            nn.init.trunc_normal_(linear.weight, std=std, a=-2 * std, b=2 * std)
            nn.init.zeros_(linear.bias)

    def forward(self, h: Tensor) -> Tensor:
        return h + self.up(self.act(self.down(h)))  # [B, T, d]


class TaskHead(nn.Module):
    """Classifier on the first token's final hidden state ([CLS] / <s>)."""

    def __init__(self, d: int, num_outputs: int, dropout: float):
        super().__init__()
        self.dense = nn.Linear(d, d)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(d, num_outputs)

    def forward(self, hidden: Tensor) -> Tensor:
        x = hidden[:, 0]  # [B, T, d] -> [B, d]
        x = self.dropout(torch.tanh(self.dense(x)))
        return self.out(x)  # [B, num_outputs]


class TaskModules(nn.Module):
    """One task's trainable state. Slot ``2*i`` is layer i's attention site, ``2*i + 1`` its FFN.

    adapters / layer_norms are ``None`` for a head-only task (full fine-tuning).
    """

    def __init__(
        self,
        base_norms: list[nn.LayerNorm],
        num_outputs: int,
        adapter: AdapterConfig | None,
        dropout: float,
    ):
        super().__init__()
        d = base_norms[0].normalized_shape[-1]
        self.adapters = self.layer_norms = None
        if adapter is not None:
            self.adapters = nn.ModuleList(BottleneckAdapter(d, adapter) for _ in base_norms)
            # deep copies: same values as the backbone's, their own (trainable) storage
            self.layer_norms = nn.ModuleList(
                copy.deepcopy(ln).requires_grad_(True) for ln in base_norms
            )
        self.head = TaskHead(d, num_outputs, dropout)


class Router:
    """The active task, shared by every wrapper. Plain Python (not an nn.Module) so the wrappers
    do not register the task modules, or the AdaptedModel, as their own children."""

    def __init__(self) -> None:
        self.name: str | None = None
        self.task: TaskModules | None = None


class AdaptedProjection(nn.Module):
    """An output projection followed by the active task's adapter for this slot."""

    def __init__(self, base: nn.Linear, slot: int, router: Router):
        super().__init__()
        self.base = base
        self.slot = slot
        self.router = router

    def forward(self, x: Tensor) -> Tensor:
        h = self.base(x)  # [B, T, d]
        task = self.router.task
        if task is None or task.adapters is None:
            return h
        return task.adapters[self.slot](h)


class TaskLayerNorm(nn.Module):
    """A LayerNorm that uses the active task's copy when it has one, else the original."""

    def __init__(self, base: nn.LayerNorm, slot: int, router: Router):
        super().__init__()
        self.base = base
        self.slot = slot
        self.router = router

    def forward(self, x: Tensor) -> Tensor:
        task = self.router.task
        if task is None or task.layer_norms is None:
            return self.base(x)
        return task.layer_norms[self.slot](x)


def _layer_list(root: nn.Module, layout: Layout) -> nn.ModuleList | None:
    try:
        layers = root.get_submodule(layout.layers)
    except AttributeError:
        return None
    return layers if isinstance(layers, nn.ModuleList) and len(layers) > 0 else None


def _check_site(layer: nn.Module, path: str, kind: type[nn.Module]) -> str | None:
    """None if ``layer.<path>`` is a ``kind``, else a description of what is wrong."""
    try:
        found = layer.get_submodule(path)
    except AttributeError:
        return f"{path} is missing"
    if not isinstance(found, kind):
        return f"{path} is a {type(found).__name__}, not an nn.{kind.__name__}"
    return None


def _check_layer(layer: nn.Module, layout: Layout) -> str | None:
    """The first site of ``layer`` that is missing or of the wrong kind, or None."""
    for proj, norm in layout.sites:
        problem = _check_site(layer, proj, nn.Linear) or _check_site(layer, norm, nn.LayerNorm)
        if problem:
            return problem
    return None


def _find_layers(backbone: PreTrainedModel) -> tuple[nn.ModuleList, Layout]:
    """The backbone's layer list and layout, every site validated; raises before any change."""
    root = backbone.base_model
    model = f"{type(backbone).__name__} (model_type {backbone.config.model_type!r})"
    for layout in LAYOUTS:
        layers = _layer_list(root, layout)
        if layers is None:
            continue
        for i, layer in enumerate(layers):
            problem = _check_layer(layer, layout)
            if problem:
                raise UnsupportedArchitecture(
                    f"cannot inject adapters into {model}: layer {i}: {problem}"
                )
        return layers, layout
    paths = " or ".join(layout.layers for layout in LAYOUTS)
    raise UnsupportedArchitecture(
        f"cannot inject adapters into {model}: no {paths} list; "
        "supported are BERT-like encoders (BERT, MiniLM, RoBERTa, ELECTRA) and DistilBERT"
    )


def _attention_dropouts(layers: nn.ModuleList, layout: Layout) -> list[nn.Dropout]:
    """Each layer's attention-probability dropout, where the layer has one at the usual place."""
    found = []
    for layer in layers:
        if _check_site(layer, layout.attention_dropout, nn.Dropout) is None:
            found.append(layer.get_submodule(layout.attention_dropout))
    return found


def _replace(layer: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, leaf = path.rpartition(".")
    setattr(layer.get_submodule(parent) if parent else layer, leaf, new)


class AdaptedModel(nn.Module):
    """A frozen backbone with wrapped adapter sites, and the tasks that can be activated on it."""

    def __init__(self, backbone: PreTrainedModel):
        super().__init__()
        layers, layout = _find_layers(backbone)  # raises before anything is changed
        backbone.requires_grad_(False)
        self.backbone = backbone
        self.router = Router()
        self.tasks = nn.ModuleDict()
        self.norms: list[TaskLayerNorm] = []  # plain list: already registered inside backbone
        for i, layer in enumerate(layers):
            for j, (proj, norm) in enumerate(layout.sites):
                slot = 2 * i + j
                _replace(
                    layer, proj, AdaptedProjection(layer.get_submodule(proj), slot, self.router)
                )
                wrapper = TaskLayerNorm(layer.get_submodule(norm), slot, self.router)
                _replace(layer, norm, wrapper)
                self.norms.append(wrapper)
        self.attention_dropouts = _attention_dropouts(layers, layout)
        self.num_layers = len(layers)
        self.hidden_size = layers[0].get_submodule(layout.sites[0][0]).base.out_features

    @property
    def active(self) -> str | None:
        return self.router.name

    def add_task(
        self, name: str, *, num_outputs: int, adapter: AdapterConfig | None, dropout: float = 0.1
    ) -> TaskModules:
        """Build and register task ``name``'s modules; ``adapter=None`` means head only."""
        check_task_name(name)
        if name in self.tasks:
            raise ValueError(f"task {name!r} already exists")
        base_norms = [wrapper.base for wrapper in self.norms]
        task = TaskModules(base_norms, num_outputs, adapter, dropout)
        self.tasks[name] = task.to(self.backbone.device)
        return task

    def remove_task(self, name: str) -> None:
        self._task(name)
        if self.active == name:
            self.deactivate()
        del self.tasks[name]

    def activate(self, name: str) -> None:
        """Make the forward use task ``name``'s adapters, LayerNorm copies and head."""
        self.router.task = self._task(name)
        self.router.name = name

    def deactivate(self) -> None:
        """No task active: the backbone runs exactly as the original model."""
        self.router.name = self.router.task = None

    @contextmanager
    def backbone_attention_dropout(self, keep: bool) -> Iterator[None]:
        """Within the block, the backbone's attention-probability dropout is kept or switched off
        (p = 0, which lets PyTorch use its fused attention kernel); restored afterwards."""
        saved = [d.p for d in self.attention_dropouts]
        if not keep:
            for d in self.attention_dropouts:
                d.p = 0.0
        try:
            yield
        finally:
            for d, p in zip(self.attention_dropouts, saved, strict=True):
                d.p = p

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> Tensor:
        """Logits [B, num_outputs] of the active task for input_ids [B, T]."""
        if self.router.task is None:
            raise RuntimeError("no active task: call activate(name) first")
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:  # DistilBERT takes no token_type_ids
            inputs["token_type_ids"] = token_type_ids
        hidden = self.backbone(**inputs).last_hidden_state  # [B, T, d]
        return self.router.task.head(hidden)

    def trainable_parameters(self, name: str) -> list[nn.Parameter]:
        """Task ``name``'s parameters, found by visiting its TaskModules (never by name)."""
        return list(self._task(name).parameters())

    def task_state(self, name: str) -> dict[str, Tensor]:
        """Task ``name``'s state dict (keys relative to its TaskModules), contiguous CPU clones."""
        state = self._task(name).state_dict()
        return {key: t.detach().to("cpu", copy=True).contiguous() for key, t in state.items()}

    def load_task(
        self,
        name: str,
        state: dict[str, Tensor],
        *,
        num_outputs: int,
        adapter: AdapterConfig | None,
        dropout: float = 0.1,
    ) -> None:
        """Build task ``name`` and load ``state`` into it strictly; raises ArtifactError on a
        missing or unexpected key or a shape mismatch (and leaves no task behind)."""
        task = self.add_task(name, num_outputs=num_outputs, adapter=adapter, dropout=dropout)
        problem = _state_mismatch(task.state_dict(), state)
        if problem:
            del self.tasks[name]
            raise ArtifactError(f"task {name!r}: saved state does not fit its config: {problem}")
        task.load_state_dict(state, strict=True)

    def _task(self, name: str) -> TaskModules:
        if name not in self.tasks:
            raise KeyError(f"no task {name!r}; known: {', '.join(self.tasks) or 'none'}")
        return self.tasks[name]


def _state_mismatch(expected: dict[str, Tensor], state: dict[str, Tensor]) -> str | None:
    """What keeps ``state`` from loading into a module whose state dict is ``expected``."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        return f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}"
    for key, t in expected.items():
        if state[key].shape != t.shape:
            return f"{key} has shape {tuple(state[key].shape)}, expected {tuple(t.shape)}"
    return None
