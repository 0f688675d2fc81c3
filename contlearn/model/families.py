"""Backbone families as data: where a family keeps its layers and, per layer, its sites.

A site is a sub-module a method attaches to, named by kind: ``attention_output`` and
``ffn_output`` (the output projections of the two sub-layers, ``nn.Linear``),
``attention_norm`` and ``ffn_norm`` (the LayerNorm after each, post-LN), ``query``, ``key`` and
``value`` (the attention's input projections) and ``ffn_intermediate`` (the feed-forward block's
first projection); ``layer`` is the whole layer (path ""). A family also names its
attention-probability dropout and how the head pools (the first token). A new family is one
entry in ``FAMILIES``.

A backbone is matched by its ``config.model_type``; one whose type no family lists is matched by
structure, the first family whose layer list it has. Either way every site of every layer is
checked before anything is changed: a layer that cannot be adapted is an error naming the
architecture, never a silent skip.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..errors import UnsupportedArchitecture

SITE_TYPES: Mapping[str, type[nn.Module]] = {
    "attention_output": nn.Linear,
    "attention_norm": nn.LayerNorm,
    "ffn_output": nn.Linear,
    "ffn_norm": nn.LayerNorm,
    "query": nn.Linear,
    "key": nn.Linear,
    "value": nn.Linear,
    "ffn_intermediate": nn.Linear,
    "layer": nn.Module,
}


@dataclass(frozen=True)
class Family:
    """name: how runs and artifacts record it; model_types: the ``config.model_type`` values it
    covers; layers: the layer list under the base model; sites: site kind -> path in a layer;
    attention_dropout: path of the attention-probability dropout in a layer (its ``p`` reaches
    ``scaled_dot_product_attention``); norms: "post" (after the residual add) or "pre";
    pooling: which token the head reads ("first")."""

    name: str
    model_types: tuple[str, ...]
    layers: str
    sites: Mapping[str, str]
    attention_dropout: str
    norms: str = "post"
    pooling: str = "first"


def _bert_like(name: str, model_types: tuple[str, ...]) -> Family:
    return Family(
        name=name,
        model_types=model_types,
        layers="encoder.layer",
        sites={
            "attention_output": "attention.output.dense",
            "attention_norm": "attention.output.LayerNorm",
            "ffn_output": "output.dense",
            "ffn_norm": "output.LayerNorm",
            "query": "attention.self.query",
            "key": "attention.self.key",
            "value": "attention.self.value",
            "ffn_intermediate": "intermediate.dense",
            "layer": "",
        },
        attention_dropout="attention.self.dropout",
    )


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
)
BY_NAME = {f.name: f for f in FAMILIES}


@dataclass(frozen=True)
class Resolved:
    """A backbone's family and its layer list, every site checked."""

    family: Family
    layers: nn.ModuleList


def describe_model(backbone: Any) -> str:
    return f"{type(backbone).__name__} (model_type {backbone.config.model_type!r})"


def resolve(backbone: Any, kinds: tuple[str, ...]) -> Resolved:
    """The family of ``backbone`` with sites of ``kinds`` in every layer; raises
    :class:`UnsupportedArchitecture` before anything is changed."""
    root = backbone.base_model
    model_type = getattr(backbone.config, "model_type", None)
    listed = [f for f in FAMILIES if model_type in f.model_types]
    for family in listed or FAMILIES:
        layers = _layer_list(root, family.layers)
        if layers is None:
            continue
        check_layers(backbone, family, layers, kinds)
        return Resolved(family, layers)
    paths = " or ".join(dict.fromkeys(f.layers for f in FAMILIES))
    raise UnsupportedArchitecture(
        f"cannot inject adapters into {describe_model(backbone)}: no {paths} list; supported "
        f"are the families {', '.join(BY_NAME)} (BERT-like encoders and DistilBERT)"
    )


def by_name(name: str, backbone: Any, kinds: tuple[str, ...]) -> Resolved:
    """``backbone`` resolved with the family recorded as ``name`` (checked the same way)."""
    if name not in BY_NAME:
        raise UnsupportedArchitecture(
            f"unknown backbone family {name!r}: this contlearn knows {', '.join(BY_NAME)}"
        )
    family = BY_NAME[name]
    layers = _layer_list(backbone.base_model, family.layers)
    if layers is None:
        raise UnsupportedArchitecture(
            f"{describe_model(backbone)} has no {family.layers} list of family {name!r}"
        )
    check_layers(backbone, family, layers, kinds)
    return Resolved(family, layers)


def _layer_list(root: nn.Module, path: str) -> nn.ModuleList | None:
    try:
        layers = root.get_submodule(path)
    except AttributeError:
        return None
    return layers if isinstance(layers, nn.ModuleList) and len(layers) > 0 else None


def check_layers(backbone: Any, family: Family, layers: nn.ModuleList, kinds) -> None:
    """Every site of ``kinds`` in every layer; raises :class:`UnsupportedArchitecture` naming the
    first that is missing or of the wrong type."""
    for i, layer in enumerate(layers):
        for kind in kinds:
            problem = check_site(layer, family.sites[kind], SITE_TYPES[kind])
            if problem:
                raise UnsupportedArchitecture(
                    f"cannot inject adapters into {describe_model(backbone)}: layer {i}: {problem}"
                )


def check_site(layer: nn.Module, path: str, kind: type[nn.Module]) -> str | None:
    """None if ``layer.<path>`` is a ``kind``, else a description of what is wrong."""
    try:
        found = layer.get_submodule(path)
    except AttributeError:
        return f"{path} is missing"
    if not isinstance(found, kind):
        return f"{path} is a {type(found).__name__}, not an nn.{kind.__name__}"
    return None


def uses_token_types(model: Any) -> bool:
    """Whether a transformers model takes segment ids (RoBERTa has one type, DistilBERT none)."""
    import inspect

    accepts = "token_type_ids" in inspect.signature(model.forward).parameters
    return accepts and getattr(model.config, "type_vocab_size", 0) >= 2
