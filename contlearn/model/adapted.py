"""A frozen, shared backbone with every task that can be activated on it.

:class:`AdaptedModel` resolves the backbone's family, wraps each site the registered methods use
(composition: the wrapper keeps the original sub-module as ``.base``), freezes the backbone and
holds one :class:`TaskModules` per task: the modules its method built and its head. The
backbone's weights are never edited; with no task active, or a head-only task, its forward is
exactly the original's.

A generation task (head type ``lm``) reads next-token logits through the backbone's own output
projection (:mod:`contlearn.model.output`), built once and shared; with no task active,
:meth:`AdaptedModel.lm_logits` is the original causal language model. Training and the
classification forward run the backbone without a key/value cache (``use_cache`` off, as the
model is built); only :mod:`contlearn.model.decoding` hands it a cache, through
:meth:`AdaptedModel.lm_hidden`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ArtifactError, ConfigError, UnsupportedArchitecture
from ..naming import check_task_name
from . import families
from .heads import LMHead, make_head
from .methods.base import Hook, MethodModules
from .methods.hooks import mixable
from .methods.registry import DEFAULT_METHOD, get_method
from .mixing import task_order
from .output import OutputProjection, OutputWeights
from .output import build as build_output
from .prefix import PrefixCache, first_trainable_layer
from .routing import LayerWrapper, Router, SiteWrapper

# The sites wrapped when a model is built (the default method's); the others are wrapped when a
# task's method first needs them, after every layer is checked for them.
BASE_KINDS = get_method(DEFAULT_METHOD).site_kinds


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters in ``module`` (shared tensors counted once)."""
    return sum(p.numel() for p in module.parameters())


class TaskModules(nn.Module):
    """One task's trainable state: its method's parts (in order), then its head.

    ``hooks`` maps (site kind, layer) to what that site's wrapper runs while the task is active.
    A head-only task (full fine-tuning) has no parts and no hooks.
    """

    def __init__(self, modules: MethodModules, head: nn.Module):
        super().__init__()
        for name, part in modules.parts.items():
            self.add_module(name, part)
        self.head = head
        self.hooks: dict[tuple[str, int], Hook] = modules.hooks


def _replace(layer: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, leaf = path.rpartition(".")
    setattr(layer.get_submodule(parent) if parent else layer, leaf, new)


class AdaptedModel(nn.Module):
    """A frozen backbone with wrapped sites, and the tasks that can be activated on it.

    ``family`` names the backbone family to use (as a run recorded it); None resolves it from the
    backbone's model type or structure. ``layout`` is a family the user described (tasks.toml's
    ``[backbone.layout]``), used instead of a built-in one. ``output_embeddings``: what reads
    an untied decoder's output projection (``LoadedBackbone.output_embeddings``), called when a
    generation task first needs it.
    """

    def __init__(
        self,
        backbone: Any,
        family: str | None = None,
        layout: families.Family | None = None,
        output_embeddings: Callable[[], OutputWeights] | None = None,
    ):
        super().__init__()
        if family is None:  # raises before anything is changed
            resolved = families.resolve(backbone, BASE_KINDS, layout)
        else:
            resolved = families.by_name(family, backbone, BASE_KINDS, layout)
        self.note = resolved.note  # how the family was found, when the model type did not say
        backbone.requires_grad_(False)
        if getattr(backbone.config, "use_cache", False):
            backbone.config.use_cache = False  # decoders: no key/value cache (nothing generates)
        self.backbone = backbone
        self.family = resolved.family
        self.router = Router()
        self.tasks = nn.ModuleDict()
        self.__dict__["_layers"] = resolved.layers  # the backbone's list, not registered twice
        self.num_layers = len(resolved.layers)
        self.attention_dropouts = _attention_dropouts(resolved.layers, self.family)
        # plain dict of lists: the wrappers are registered inside the backbone
        self.wrappers: dict[str, list[nn.Module]] = {}
        self.adapt(BASE_KINDS)
        self.dtype = next(backbone.parameters()).dtype  # the backbone's, as loaded
        self.router.dtype = None if self.dtype == torch.float32 else self.dtype
        self.hidden_size = families.projection_shape(self.base_modules("attention_output")[0])[1]
        self.read_output = output_embeddings
        self.lm_output: OutputProjection | None = None  # built when first needed

    def adapt(self, kinds: tuple[str, ...]) -> None:
        """Wrap the sites of ``kinds`` not wrapped yet, after checking every layer has them
        (raises :class:`UnsupportedArchitecture` before anything is changed)."""
        new = [k for k in kinds if k not in self.wrappers]
        layers = [self._layer(i) for i in range(self.num_layers)]
        families.check_layers(self.backbone, self.family, layers, new)
        for kind in new:
            self.wrappers[kind] = [self._wrap(kind, i) for i in range(self.num_layers)]

    def _layer(self, i: int) -> nn.Module:
        layer = self._layers[i]
        return layer.base if isinstance(layer, LayerWrapper) else layer

    def _wrap(self, kind: str, i: int) -> nn.Module:
        if kind == "layer":
            self._layers[i] = LayerWrapper(self._layers[i], i, self.router)
            return self._layers[i]
        layer, path = self._layer(i), self.family.path(kind)
        wrapper = SiteWrapper(layer.get_submodule(path), kind, i, self.router)
        _replace(layer, path, wrapper)
        return wrapper

    # -- the sites, as methods see them ------------------------------------------------------
    def base_modules(self, kind: str) -> list[nn.Module]:
        return [wrapper.base for wrapper in self.wrappers[kind]]

    def sub_layer_sizes(self) -> tuple[int, int]:
        return self.hidden_size, families.projection_shape(self.base_modules("ffn_output")[0])[0]

    def projection(self, kind: str) -> tuple[str, slice | None]:
        """Where a method's projection ``kind`` is: its own site, or for query, key or value
        of a family that fuses them, the ``qkv`` site and the slice of its output."""
        if kind not in families.QKV or not self.family.fused_qkv:
            return kind, None
        sizes = self.family.qkv_split(self.backbone.config)
        j = families.QKV.index(kind)
        start = sum(sizes[:j])
        return "qkv", slice(start, start + sizes[j])

    @property
    def norm_position(self) -> str:
        """ "post" (norms after each sub-layer and its residual) or "pre"."""
        return self.family.norms

    # -- tasks -------------------------------------------------------------------------------
    @property
    def active(self) -> str | None:
        return self.router.name

    def add_task(
        self,
        name: str,
        *,
        num_outputs: int,
        adapter: Any | None,
        dropout: float = 0.1,
        head: str = "pooled",
    ) -> TaskModules:
        """Build and register task ``name``'s modules. ``adapter`` is a method's config (its
        class names the method); ``None`` means head only. ``head``: the head type
        (``model.heads.HEADS``) its kind attaches."""
        check_task_name(name)
        if name in self.tasks:
            raise ValueError(f"task {name!r} already exists")
        modules = MethodModules()
        if adapter is not None:
            method = get_method(adapter.method)
            self.adapt(method.needs(adapter, self))
            modules = method.build(adapter, self)
        made = make_head(
            head,
            self.hidden_size,
            num_outputs,
            dropout,
            self.family.pooling,
            shared=self.output_projection,
        )
        task = TaskModules(modules, made)  # fp32, whatever the backbone's dtype (copies too)
        self.tasks[name] = task.to(next(self.backbone.parameters()).device, torch.float32)
        task.train(self.training)  # a task added to a model in eval mode evaluates (no dropout)
        return task

    def remove_task(self, name: str) -> None:
        self._task(name)
        if self.active == name:
            self.deactivate()
        del self.tasks[name]

    def activate(self, name: str) -> None:
        """Make the forward use task ``name``'s modules and head."""
        self.router.task = self._task(name)  # a TaskModules: what the wrappers route to
        self.router.name = name

    def deactivate(self) -> None:
        """No task active: the backbone runs exactly as the original model."""
        self.router.name = self.router.task = None

    @contextmanager
    def frozen_prefix(self, name: str, limit_bytes: int) -> Iterator[PrefixCache | None]:
        """Within the block, while task ``name`` trains: the backbone below its lowest adapted
        layer runs without dropout and its outputs are kept per example (``PrefixCache``);
        yields None when the task adapts the lowest layer (there is no prefix)."""
        start = first_trainable_layer(self._task(name).hooks, self.num_layers)
        if start == 0:
            yield None
            return
        self.adapt(("layer",))
        tuple_output = self.family.layer_output == "tuple"
        self.router.prefix = PrefixCache(start, limit_bytes, tuple_output)
        try:
            yield self.router.prefix
        finally:
            self.router.prefix = None

    def train(self, mode: bool = True) -> AdaptedModel:
        """As nn.Module's; with a frozen prefix kept, the prefix stays in eval mode (no
        dropout), so that what it computes is the same in every epoch."""
        super().train(mode)
        prefix = self.router.prefix
        if mode and prefix is not None:
            self.backbone.eval()
            for i in range(prefix.start, self.num_layers):
                self._layers[i].train()
        return self

    @contextmanager
    def backbone_attention_dropout(self, keep: bool) -> Iterator[None]:
        """Within the block, the backbone's attention-probability dropout is kept or switched off
        (p = 0, which lets PyTorch use its fused attention kernel); restored afterwards."""
        saved = [getattr(owner, attr) for owner, attr in self.attention_dropouts]
        if not keep:
            for owner, attr in self.attention_dropouts:
                setattr(owner, attr, 0.0)
        try:
            yield
        finally:
            for (owner, attr), p in zip(self.attention_dropouts, saved, strict=True):
                setattr(owner, attr, p)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> Tensor:
        """Logits [B, num_outputs] of the active task for input_ids [B, T] ([B, T,
        num_outputs] for a task with a per-token head; a generation task's are
        :meth:`lm_logits`, positions from the mask)."""
        if self.router.task is None:
            raise RuntimeError("no active task: call activate(name) first")
        if isinstance(self._task(self.router.name).head, LMHead):
            return self.lm_logits(input_ids, attention_mask)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:  # DistilBERT takes no token_type_ids
            inputs["token_type_ids"] = token_type_ids
        with self.low_precision(input_ids.device):
            hidden = self.backbone(**inputs).last_hidden_state  # [B, T, d]
        return self._task(self.router.name).head(hidden.float(), attention_mask)

    def base_features(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> Tensor:
        """[B, d] float32: the final hidden states of the backbone with no task active (exactly
        the base model), averaged over each row's real tokens: what routing reads. The active
        task is restored afterwards."""
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        saved = self.router.name, self.router.task
        self.router.name = self.router.task = None
        try:
            with self.low_precision(input_ids.device):
                hidden = self.backbone(**inputs).last_hidden_state.float()  # [B, T, d]
        finally:
            self.router.name, self.router.task = saved
        mask = attention_mask.to(hidden.dtype)[..., None]  # [B, T, 1]
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)

    def can_mix(self, name: str) -> bool:
        """Whether task ``name``'s rows can share a forward pass with other tasks' rows: each
        of its hooks splits into a part every row shares and its own (``topk``'s whole layers
        do not)."""
        return all(mixable(hook) for hook in self._task(name).hooks.values())

    def forward_mixed(
        self,
        tasks: Sequence[str],
        input_ids: Tensor,
        attention_mask: Tensor,
        token_type_ids: Tensor | None = None,
    ) -> list[tuple[str, Tensor, Tensor]]:
        """One forward pass for a batch whose row i belongs to task ``tasks[i]``: each site runs
        the backbone's module once and each task's own part on its rows, each row goes through
        its task's head. Returns (task, its rows [n], their logits [n, C]) per task present.
        Every task must be able to mix (``can_mix``)."""
        order, slices = task_order(tasks)
        perm = torch.tensor(order, device=input_ids.device)
        inputs = {"input_ids": input_ids[perm], "attention_mask": attention_mask[perm]}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids[perm]
        with self.mixed_rows(slices), self.low_precision(input_ids.device):
            hidden = self.backbone(**inputs).last_hidden_state.float()  # [B, T, d]
        mask = inputs["attention_mask"]
        return [
            (name, perm[rows], self._task(name).head(hidden[rows], mask[rows]))
            for name, rows in slices.items()
        ]

    @contextmanager
    def mixed_rows(self, slices: Mapping[str, slice]) -> Iterator[None]:
        """Within the block, the backbone serves a batch ordered by task: ``slices[name]`` are
        task ``name``'s rows. Every task must be able to mix (``can_mix``)."""
        stuck = [name for name in slices if not self.can_mix(name)]
        if stuck:
            raise ValueError(f"task {stuck[0]!r} cannot share a forward pass: group its rows")
        saved = self.router.name, self.router.task
        self.router.groups = [(self._task(name), rows) for name, rows in slices.items()]
        self.router.name = self.router.task = None
        try:
            yield
        finally:
            self.router.groups = None
            self.router.name, self.router.task = saved

    # -- language modelling (generation tasks) ---------------------------------------------
    def output_projection(self) -> OutputProjection:
        """The backbone's own LM head (built the first time; refused for an encoder, or an
        untied decoder whose projection was not handed over)."""
        if self.lm_output is None:
            if not self.family.causal:
                raise UnsupportedArchitecture(
                    f"cannot generate with {families.describe_model(self.backbone)}: an encoder "
                    "has no causal language model head; use a decoder backbone (Llama, Qwen2, "
                    "Mistral, Gemma, Phi-3, GPT-2) for generation tasks"
                )
            self.lm_output = build_output(
                self.backbone, self.read_output, families.describe_model(self.backbone)
            )
        return self.lm_output

    def lm_head(self, name: str | None) -> nn.Module:
        """What turns task ``name``'s final hidden states into next-token logits (its ``lm``
        head), or for None the base model's output projection."""
        if name is None:
            return self.output_projection()
        head = self._task(name).head
        if not isinstance(head, LMHead):
            raise ConfigError(
                f"task {name!r} has no language-model head (its kind's head is "
                f"{type(head).__name__}): only a generation task generates text"
            )
        return head

    def lm_logits(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Teacher-forced next-token logits [B, T, V] (float32) of the active task, or with no
        task active of the base causal language model; positions from the attention mask, so a
        left-padded row gets what it gets alone."""
        head = self.lm_head(self.active)
        return head(self.lm_hidden(input_ids, attention_mask, position_ids(attention_mask)))

    def lm_hidden(
        self, input_ids: Tensor, attention_mask: Tensor, positions: Tensor, cache: Any = None
    ) -> Tensor:
        """The backbone's final hidden states [B, t, d] (float32) for the ``t`` new tokens
        ``input_ids`` at ``positions`` [B, t]; ``attention_mask`` [B, past + t] covers the
        tokens ``cache`` (a transformers ``DynamicCache``, extended in place) holds too. Without
        a cache the backbone runs as in training: no key/value cache at all."""
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        inputs["position_ids"] = positions
        if cache is not None:
            inputs |= {"cache": cache, "use_cache": True}
        with self.low_precision(input_ids.device):
            return self.backbone(**inputs).last_hidden_state.float()

    def new_cache(self) -> Any:
        """An empty key/value cache for one generation with this backbone (its layer types:
        full or sliding-window attention)."""
        from transformers import DynamicCache

        return DynamicCache(config=self.backbone.config)

    @contextmanager
    def generating(self, slices: Mapping[str | None, slice]) -> Iterator[list]:
        """Within the block, the model serves one generation batch: eval mode (no dropout), no
        frozen prefix (a training-time cache whose rows are training examples), and the rows
        routed, ``slices`` mapping each task (None: the base model) to its rows of a batch
        ordered by task. Yields (its LM head, its rows) per task; restores everything after."""
        heads = [(self.lm_head(name), rows) for name, rows in slices.items()]
        modes = [(module, module.training) for module in self.modules()]
        prefix, saved = self.router.prefix, (self.router.name, self.router.task)
        self.router.prefix = None
        self.eval()
        try:
            if len(slices) > 1:
                with self.mixed_rows(slices):
                    yield heads
            else:
                (name,) = slices
                self.router.name = name
                self.router.task = None if name is None else self._task(name)
                yield heads
        finally:
            self.router.prefix = prefix
            self.router.name, self.router.task = saved
            for module, mode in modes:
                module.training = mode

    def upcast(self) -> None:
        """Make a low-precision backbone fp32, for a baseline that trains its weights (whose
        master copy must be fp32): it starts from the same values."""
        self.backbone.float()
        if self.lm_output is not None:
            self.lm_output.float()
        self.dtype, self.router.dtype = torch.float32, None

    def low_precision(self, device: torch.device) -> Any:
        """For a backbone loaded in bf16 or fp16: autocast in its dtype, so that the fp32 task
        modules meet it in its precision (nothing for an fp32 backbone)."""
        if self.router.dtype is None:
            return nullcontext()
        return torch.autocast(device.type, dtype=self.dtype)

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
        adapter: Any | None,
        dropout: float = 0.1,
        head: str = "pooled",
    ) -> None:
        """Build task ``name`` and load ``state`` into it strictly; raises ArtifactError on a
        missing or unexpected key or a shape mismatch (and leaves no task behind)."""
        task = self.add_task(
            name, num_outputs=num_outputs, adapter=adapter, dropout=dropout, head=head
        )
        problem = _state_mismatch(task.state_dict(), state)
        if problem:
            del self.tasks[name]
            raise ArtifactError(f"task {name!r}: saved state does not fit its config: {problem}")
        task.load_state_dict(state, strict=True)

    def _task(self, name: str) -> TaskModules:
        if name not in self.tasks:
            raise KeyError(f"no task {name!r}; known: {', '.join(self.tasks) or 'none'}")
        return self.tasks[name]


def position_ids(attention_mask: Tensor) -> Tensor:
    """Each token's position [B, T] from the mask (transformers' rule for generation): the
    count of real tokens before it, so a left-padded row's positions are what they are alone;
    pads get 1 (masked out, never read)."""
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.masked_fill(attention_mask == 0, 1)


def _attention_dropouts(layers: nn.ModuleList, family: families.Family) -> list[tuple[Any, str]]:
    """Each layer's attention-probability dropout as (owner, attribute): an ``nn.Dropout``'s
    ``p``, or a float attribute the attention passes on (decoders, ModernBERT)."""
    if family.attention_dropout is None:
        return []
    parent_path, _, leaf = family.attention_dropout.rpartition(".")
    found = []
    for layer in layers:
        try:
            owner = layer.get_submodule(parent_path) if parent_path else layer
        except AttributeError:
            continue
        value = getattr(owner, leaf, None)
        if isinstance(value, nn.Dropout):
            found.append((value, "p"))
        elif isinstance(value, float):
            found.append((owner, leaf))
    return found


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
