"""Backbone families as data: where a family keeps its layers and, per layer, its sites.

A site is a sub-module a method attaches to, named by kind:

- ``attention_output``, ``ffn_output``: the output projections of the two sub-layers;
- ``attention_norm``, ``ffn_norm``: the norm that belongs to each sub-layer, after it (post-LN:
  BERT and its kin) or before it (pre-LN: GPT-2, Llama and the other decoders, ModernBERT);
- ``query``, ``key``, ``value``: the attention's input projections, or ``qkv`` where a family
  fuses them into one (GPT-2, ModernBERT, Phi-3: then ``qkv_split`` says how its output divides);
- ``ffn_intermediate``: the feed-forward block's input projection (Llama's ``up_proj``);
- ``layer``: the whole layer (path "").

Projections are ``nn.Linear`` or GPT-2's ``Conv1D``; norms are LayerNorm or RMSNorm (any norm
module, matched by class name; ModernBERT's first layer has an ``nn.Identity`` there). A family
also names its attention dropout (an ``nn.Dropout`` whose ``p`` the attention reads, or a float
attribute), how the head pools (the first token for encoders; the last real token for
decoders) and what its layers return. A new family is one entry in ``FAMILIES``.

A backbone is matched by its ``config.model_type``; one whose type no family lists is matched by
structure, the first family whose layer list it has. Either way every site a method uses is
checked in every layer before anything is changed: a layer that cannot be adapted is an error
naming the architecture, never a silent skip.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from ..errors import ConfigError, UnsupportedArchitecture

PROJECTIONS = ("attention_output", "ffn_output", "query", "key", "value", "qkv", "ffn_intermediate")
NORMS = ("attention_norm", "ffn_norm")
QKV = ("query", "key", "value")


def is_projection(module: nn.Module) -> bool:
    """An ``nn.Linear`` or a transformers ``Conv1D`` (GPT-2: weight [in, out])."""
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"


def is_norm(module: nn.Module) -> bool:
    name = type(module).__name__
    return isinstance(module, (nn.LayerNorm, nn.Identity)) or name.endswith(
        ("RMSNorm", "LayerNorm")
    )


def projection_shape(module: nn.Module) -> tuple[int, int]:
    """(inputs, outputs) of a projection."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    rows, cols = module.weight.shape  # Conv1D: [in, out]
    return rows, cols


SITE_CHECKS: Mapping[str, tuple[Callable[[nn.Module], bool], str]] = {
    **{kind: (is_projection, "an nn.Linear or Conv1D") for kind in PROJECTIONS},
    **{kind: (is_norm, "a LayerNorm or RMSNorm") for kind in NORMS},
    "layer": (lambda module: isinstance(module, nn.Module), "a module"),
}
SITE_KINDS = tuple(SITE_CHECKS)


def _equal_thirds(config: Any) -> tuple[int, int, int]:
    d = config.hidden_size
    return d, d, d


def _grouped(config: Any) -> tuple[int, int, int]:
    """Grouped-query sizes: all query heads, then the key and value heads."""
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    return heads * head_dim, kv * head_dim, kv * head_dim


@dataclass(frozen=True)
class Family:
    """name: how runs and artifacts record it; model_types: the ``config.model_type`` values it
    covers; layers: the layer list under the base model; sites: site kind -> path in a layer;
    attention_dropout: path in a layer of the attention-probability dropout (an ``nn.Dropout``
    whose ``p`` is read, or a float attribute), None if it has none; norms: "post" or "pre";
    pooling: which token the head reads, "first" or "last" (the last real one); layer_output:
    "tensor", or "tuple" (hidden states first); qkv_split: for a fused ``qkv`` site, the
    (query, key, value) output sizes from the config; refuse: why it cannot be adapted."""

    name: str
    model_types: tuple[str, ...]
    layers: str
    sites: Mapping[str, str]
    attention_dropout: str | None = None
    norms: str = "post"
    pooling: str = "first"
    layer_output: str = "tensor"
    qkv_split: Callable[[Any], tuple[int, int, int]] | None = None
    refuse: str | None = None

    def path(self, kind: str) -> str | None:
        """Where site ``kind`` is in a layer: None if this family has no such site."""
        return self.sites.get(kind)

    @property
    def fused_qkv(self) -> bool:
        return "qkv" in self.sites

    @property
    def causal(self) -> bool:
        """Whether it is a decoder (a causal language model): the families whose head reads the
        last real token, the only one that has seen the whole text."""
        return self.pooling == "last"


def _bert_like(name: str, model_types: tuple[str, ...], **overrides: str) -> Family:
    sites = {
        "attention_output": "attention.output.dense",
        "attention_norm": "attention.output.LayerNorm",
        "ffn_output": "output.dense",
        "ffn_norm": "output.LayerNorm",
        "query": "attention.self.query",
        "key": "attention.self.key",
        "value": "attention.self.value",
        "ffn_intermediate": "intermediate.dense",
        "layer": "",
    }
    return Family(
        name=name,
        model_types=model_types,
        layers="encoder.layer",
        sites=sites | overrides,
        attention_dropout="attention.self.dropout",
    )


def _llama_like(
    name: str, model_types: tuple[str, ...], without: tuple[str, ...] = (), **overrides: Any
) -> Family:
    sites = {
        "attention_output": "self_attn.o_proj",
        "attention_norm": "input_layernorm",
        "ffn_output": "mlp.down_proj",
        "ffn_norm": "post_attention_layernorm",
        "query": "self_attn.q_proj",
        "key": "self_attn.k_proj",
        "value": "self_attn.v_proj",
        "ffn_intermediate": "mlp.up_proj",
        "layer": "",
    }
    values = {
        "name": name,
        "model_types": model_types,
        "layers": "layers",
        "sites": {
            k: v for k, v in (sites | overrides.pop("sites", {})).items() if k not in without
        },
        "attention_dropout": "self_attn.attention_dropout",
        "norms": "pre",
        "pooling": "last",
    }
    return Family(**(values | overrides))


FAMILIES: tuple[Family, ...] = (
    _bert_like("bert", ("bert",)),  # BERT, MiniLM, BGE, E5, ...
    _bert_like("roberta", ("roberta", "xlm-roberta", "camembert")),
    _bert_like("electra", ("electra",)),
    Family(
        name="distilbert",
        model_types=("distilbert",),
        layers="transformer.layer",
        sites={
            "attention_output": "attention.out_lin",
            "attention_norm": "sa_layer_norm",
            "ffn_output": "ffn.lin2",
            "ffn_norm": "output_layer_norm",
            "query": "attention.q_lin",
            "key": "attention.k_lin",
            "value": "attention.v_lin",
            "ffn_intermediate": "ffn.lin1",
            "layer": "",
        },
        attention_dropout="attention.dropout",
    ),
    Family(
        name="deberta-v2",
        model_types=("deberta-v2",),
        layers="encoder.layer",
        sites=_bert_like("", ()).sites
        | {
            "query": "attention.self.query_proj",
            "key": "attention.self.key_proj",
            "value": "attention.self.value_proj",
        },
        attention_dropout="attention.self.dropout",
        layer_output="tuple",
    ),
    Family(
        name="modernbert",
        model_types=("modernbert",),
        layers="layers",
        sites={
            "attention_output": "attn.Wo",
            "attention_norm": "attn_norm",
            "ffn_output": "mlp.Wo",
            "ffn_norm": "mlp_norm",
            "qkv": "attn.Wqkv",
            "ffn_intermediate": "mlp.Wi",
            "layer": "",
        },
        attention_dropout="attn.attention_dropout",
        norms="pre",
        qkv_split=_equal_thirds,
    ),
    Family(
        name="gpt2",
        model_types=("gpt2",),
        layers="h",
        sites={
            "attention_output": "attn.c_proj",
            "attention_norm": "ln_1",
            "ffn_output": "mlp.c_proj",
            "ffn_norm": "ln_2",
            "qkv": "attn.c_attn",
            "ffn_intermediate": "mlp.c_fc",
            "layer": "",
        },
        attention_dropout="attn.attn_dropout",
        norms="pre",
        pooling="last",
        qkv_split=_equal_thirds,
    ),
    _llama_like("llama", ("llama", "mistral", "qwen2", "qwen3")),
    _llama_like("gemma", ("gemma",)),
    _llama_like("gemma2", ("gemma2",), sites={"ffn_norm": "pre_feedforward_layernorm"}),
    _llama_like(
        "phi3",
        ("phi3",),
        without=QKV,
        sites={"qkv": "self_attn.qkv_proj", "ffn_intermediate": "mlp.gate_up_proj"},
        qkv_split=_grouped,
    ),
    Family(
        name="albert",
        model_types=("albert",),
        layers="encoder.albert_layer_groups",
        sites={},
        refuse="ALBERT runs one shared layer module at every depth, so adapters per layer "
        "position cannot be attached without un-sharing its weights; use BERT, RoBERTa or "
        "DeBERTa-v3 (or describe a layout for a model whose layers are separate modules)",
    ),
)
BY_NAME = {f.name: f for f in FAMILIES}


@dataclass(frozen=True)
class Resolved:
    """A backbone's family and its layer list, every site checked; ``note`` says how the family
    was found when the model type did not name it (matched by structure, or inferred)."""

    family: Family
    layers: nn.ModuleList
    note: str | None = None


LAYOUT_HELP = "describe its layout under [backbone.layout] in tasks.toml (README: Backbones)"


def describe_model(backbone: Any) -> str:
    return f"{type(backbone).__name__} (model_type {backbone.config.model_type!r})"


def resolve(backbone: Any, kinds: tuple[str, ...], layout: Family | None = None) -> Resolved:
    """The family of ``backbone`` with sites of ``kinds`` in every layer: the user's ``layout``
    if given, else the built-in family of its model type, else a built-in family whose layer
    list it has, else one whose layers' shape it has under another layer list (inferred);
    raises :class:`UnsupportedArchitecture` before anything is changed."""
    if layout is not None:
        return _resolved(backbone, layout, kinds)
    model_type = getattr(backbone.config, "model_type", None)
    listed = [f for f in FAMILIES if model_type in f.model_types]
    if listed:
        return _resolved(backbone, listed[0], kinds)
    problems = []
    for family in (f for f in FAMILIES if f.refuse is None):
        if _layer_list(backbone.base_model, family.layers) is None:
            continue
        try:
            found = _resolved(backbone, family, kinds)
        except UnsupportedArchitecture as exc:
            problems.append(str(exc))
            continue
        return replace(found, note=f"matched by structure: family {family.name!r}")
    inferred = infer(backbone, kinds)
    if inferred is not None:
        return inferred
    seen = f" ({problems[0]})" if problems else ""
    raise UnsupportedArchitecture(
        f"cannot adapt {describe_model(backbone)}: it is not a built-in family and no layer "
        f"list with the sites of one was found{seen}; {LAYOUT_HELP}"
    )


def infer(backbone: Any, kinds: tuple[str, ...]) -> Resolved | None:
    """A built-in family's layer shape under another layer list of ``backbone`` (the first
    that fits every layer), named ``inferred:<family>@<path>`` so that it resolves again."""
    for path, module in backbone.base_model.named_modules():
        if not (isinstance(module, nn.ModuleList) and len(module) > 0 and path):
            continue
        for family in (f for f in FAMILIES if f.refuse is None):
            candidate = replace(family, name=f"inferred:{family.name}@{path}", layers=path)
            try:
                check_layers(backbone, candidate, module, kinds)
            except UnsupportedArchitecture:
                continue
            note = f"inferred the layout of family {family.name!r} with its layers at {path!r}"
            return Resolved(candidate, module, note)
    return None


def by_name(
    name: str, backbone: Any, kinds: tuple[str, ...], layout: Family | None = None
) -> Resolved:
    """``backbone`` resolved with the family recorded as ``name`` (checked the same way)."""
    if name == LAYOUT:
        if layout is None:
            raise UnsupportedArchitecture(
                "this workspace's tasks were trained with a described layout, and tasks.toml "
                "has no [backbone.layout]: restore it"
            )
        return _resolved(backbone, layout, kinds)
    if name.startswith("inferred:"):
        base, _, path = name.removeprefix("inferred:").partition("@")
        if base in BY_NAME:
            return _resolved(backbone, replace(BY_NAME[base], name=name, layers=path), kinds)
    if name not in BY_NAME:
        raise UnsupportedArchitecture(
            f"unknown backbone family {name!r}: this contlearn knows {', '.join(BY_NAME)}"
        )
    return _resolved(backbone, BY_NAME[name], kinds)


def _resolved(backbone: Any, family: Family, kinds: tuple[str, ...]) -> Resolved:
    _refuse(backbone, family)
    layers = _layer_list(backbone.base_model, family.layers)
    if layers is None:
        raise UnsupportedArchitecture(
            f"{describe_model(backbone)} has no layer list {family.layers!r} "
            f"(family {family.name!r}); {LAYOUT_HELP}"
        )
    check_layers(backbone, family, layers, kinds)
    return Resolved(family, layers)


# -- user-described layouts ------------------------------------------------------------------

LAYOUT = "layout"  # the family name runs record for a described layout
REQUIRED = ("layers", "attention_output", "attention_norm", "ffn_output", "ffn_norm")
OPTIONAL_SITES = ("query", "key", "value", "qkv", "ffn_intermediate")
CHOICES = {
    "norms": ("post", "pre"),
    "pooling": ("first", "last"),
    "layer_output": ("tensor", "tuple"),
}
LAYOUT_KEYS = (*REQUIRED, *OPTIONAL_SITES, *CHOICES, "attention_dropout")


def from_layout(values: Mapping[str, Any]) -> Family:
    """A family from a ``[backbone.layout]`` table: paths (relative to the base model for
    ``layers``, to a layer for the sites) and the choices; raises :class:`ConfigError` naming
    the key and the fix."""
    where = "tasks.toml: [backbone.layout]"
    unknown = sorted(set(values) - set(LAYOUT_KEYS))
    if unknown:
        raise ConfigError(
            f"{where} unknown key {unknown[0]!r}: the keys are {', '.join(LAYOUT_KEYS)}"
        )
    missing = [k for k in REQUIRED if k not in values]
    if missing:
        raise ConfigError(f"{where} needs {', '.join(missing)} (a module path each)")
    for key, value in values.items():
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where} {key} must be a non-empty string, got {value!r}")
        if key in CHOICES and value not in CHOICES[key]:
            raise ConfigError(
                f"{where} {key} must be one of {', '.join(CHOICES[key])}, got {value!r}"
            )
    if "qkv" in values and any(k in values for k in QKV):
        raise ConfigError(f"{where} gives qkv and separate query/key/value: give one or the other")
    sites = {k: values[k] for k in (*REQUIRED[1:], *OPTIONAL_SITES) if k in values} | {"layer": ""}
    choices = {k: values[k] for k in CHOICES if k in values}
    return Family(
        name=LAYOUT,
        model_types=(),
        layers=values["layers"],
        sites=sites,
        attention_dropout=values.get("attention_dropout"),
        qkv_split=_grouped if "qkv" in values else None,
        **choices,
    )


def _refuse(backbone: Any, family: Family) -> None:
    if family.refuse is not None:
        raise UnsupportedArchitecture(f"cannot adapt {describe_model(backbone)}: {family.refuse}")


def _layer_list(root: nn.Module, path: str) -> nn.ModuleList | None:
    try:
        layers = root.get_submodule(path)
    except AttributeError:
        return None
    return layers if isinstance(layers, nn.ModuleList) and len(layers) > 0 else None


def check_layers(backbone: Any, family: Family, layers, kinds) -> None:
    """Every site of ``kinds`` in every layer; raises :class:`UnsupportedArchitecture` naming the
    first that is missing or of the wrong type."""
    for kind in kinds:
        if family.path(kind) is None:
            raise UnsupportedArchitecture(
                f"cannot adapt {describe_model(backbone)} this way: family {family.name!r} has no "
                f"{kind} site{_fused_hint(family, kind)}"
            )
    for i, layer in enumerate(layers):
        for kind in kinds:
            problem = check_site(layer, family.path(kind), *SITE_CHECKS[kind])
            if problem:
                raise UnsupportedArchitecture(
                    f"cannot inject adapters into {describe_model(backbone)}: layer {i}: {problem}"
                )


def _fused_hint(family: Family, kind: str) -> str:
    if kind in QKV and family.fused_qkv:
        return f" (its query, key and value are one projection, {family.path('qkv')})"
    return ""


def check_site(
    layer: nn.Module, path: str, test: Callable[[nn.Module], bool], what: str
) -> str | None:
    """None if ``layer.<path>`` passes ``test``, else a description of what is wrong."""
    try:
        found = layer.get_submodule(path)
    except AttributeError:
        return f"{path} is missing"
    if not test(found):
        return f"{path} is a {type(found).__name__}, not {what}"
    return None


def uses_token_types(model: Any) -> bool:
    """Whether a transformers model takes segment ids (RoBERTa has one type, DistilBERT none;
    GPT-2 would embed them as words, and has no type vocabulary)."""
    import inspect

    accepts = "token_type_ids" in inspect.signature(model.forward).parameters
    return accepts and getattr(model.config, "type_vocab_size", 0) >= 2
