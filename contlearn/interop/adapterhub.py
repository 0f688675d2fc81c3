"""AdapterHub's ``adapters`` format (1.x), read from its save and load code: a folder with
``adapter_config.json`` (the adapter's full ``BnConfig`` under ``config``, plus
``hidden_size``, ``model_class``, ``model_name``, ``model_type``, ``name``, ``version``),
``adapter.safetensors`` with keys ``{prefix}.encoder.layer.{i}.{owner}.adapters.{name}.
adapter_down.0.weight`` (and ``adapter_up``), and the head as ``head_config.json`` and
``model_head.safetensors`` (a classification head: ``heads.{name}.1`` dense, tanh,
``heads.{name}.4`` output; a tagging head of one layer: dropout, ``heads.{name}.1`` output on
every token; a question-answering head of one layer: the same, its two outputs the start and
the end logit, as its ``QuestionAnsweringHead`` splits them).

contlearn's bottleneck methods are AdapterHub presets: houlsby is ``DoubleSeqBnConfig``,
pfeiffer ``SeqBnConfig``, parallel ``ParBnConfig`` (post-LN families, head on the first token).
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

from ..errors import InteropError
from .folder import Folder
from .names import Naming
from .parts import check_fit, check_head_type, check_layer, ordered_head, unmapped

VERSION = "adapters.1.3.0"  # the release whose format this writes
FAMILIES = ("bert", "roberta", "electra")  # post-LN, AdapterHub adapts their output modules
BASE: dict[str, Any] = {  # BnConfig's fields as adapters 1.3 writes them
    "adapter_residual_before_ln": False,
    "cross_adapter": False,
    "dropout": 0.0,
    "factorized_phm_W": True,
    "factorized_phm_rule": False,
    "hypercomplex_nonlinearity": "glorot-uniform",
    "init_weights": "bert",
    "init_weights_seed": None,
    "inv_adapter": None,
    "inv_adapter_reduction_factor": None,
    "is_parallel": False,
    "learn_phm": True,
    "leave_out": [],
    "ln_after": False,
    "ln_before": False,
    "mh_adapter": False,
    "non_linearity": "relu",
    "original_ln_after": True,
    "original_ln_before": False,
    "output_adapter": True,
    "phm_bias": True,
    "phm_c_init": "normal",
    "phm_dim": 4,
    "phm_init_range": 0.0001,
    "phm_layer": False,
    "phm_rank": 1,
    "reduction_factor": 16,
    "residual_before_ln": True,
    "scaling": 1.0,
    "shared_W_phm": False,
    "shared_phm_rule": True,
    "stochastic_depth": 0.0,
    "use_gating": False,
}
PRESETS = {  # method -> what its AdapterHub preset sets on BASE
    "houlsby": {"mh_adapter": True},
    "pfeiffer": {"original_ln_before": True},
    "parallel": {"is_parallel": True, "init_weights": "mam_adapter"},
}
# The fields that change what an adapter computes (the others only shape training).
COMPUTES = (
    "mh_adapter",
    "output_adapter",
    "original_ln_before",
    "original_ln_after",
    "is_parallel",
    "ln_before",
    "ln_after",
    "use_gating",
    "phm_layer",
    "inv_adapter",
    "cross_adapter",
    "adapter_residual_before_ln",
)
SITES = {"houlsby": ("attention_output", "ffn_output")}  # the others: ffn_output alone
ACTIVATIONS = {"gelu": "gelu", "relu": "relu", "swish": "swish", "silu": "swish", "tanh": "tanh"}
# a kind's head role (contlearn.kinds) -> AdapterHub's head type; its layers -> their index in
# AdapterHub's head (a Sequential: per layer a Dropout, then a Linear and, but for the last,
# the activation)
HEAD_TYPES = {"pooled": "classification", "token": "tagging", "span": "question_answering"}
HEAD = {"pooled": {"dense": "1", "out": "4"}, "token": {"out": "1"}, "span": {"out": "1"}}
# what AdapterHub's head of that type must be to compute contlearn's (its head_config.json)
HEAD_SHAPE = {
    "pooled": {
        "layers": 2,
        "activation_function": "tanh",
        "use_pooler": False,
        "bias": True,
    },
    "token": {"layers": 1, "bias": True},
    "span": {"layers": 1, "num_labels": 2},
}
HEAD_WORDS = {
    "pooled": "a 2-layer tanh classification head on the first token (no pooler)",
    "token": "a 1-layer tagging head (one linear layer on every token)",
    "span": "a 1-layer question-answering head (start and end logits on every token)",
}


def check_exportable(method: str, config: Any, naming: Naming, head: str) -> None:
    """``head``: the task's head role (AdapterHub's classification, tagging and
    question-answering heads are the same on each of its families)."""
    if method not in PRESETS:
        raise InteropError(
            f"method {method!r} has no AdapterHub preset: export houlsby, pfeiffer or parallel "
            "tasks as adapterhub (lora and ia3 as peft)"
        )
    if naming.family.name not in FAMILIES:
        raise InteropError(
            f"backbone family {naming.family.name!r} is not one whose AdapterHub adapters "
            f"contlearn matches exactly ({', '.join(FAMILIES)}): export is refused"
        )
    reduction_factor(config.bottleneck, naming.hidden_size)


def reduction_factor(bottleneck: int, hidden: int) -> float | int:
    """AdapterHub's ``reduction_factor``: its adapter is ``int(hidden // factor)`` wide."""
    factor = hidden // bottleneck if hidden % bottleneck == 0 else hidden / bottleneck
    if int(hidden // factor) != bottleneck:
        raise InteropError(
            f"bottleneck {bottleneck} is no exact AdapterHub reduction factor of hidden size "
            f"{hidden}: export a task whose bottleneck divides {hidden}"
        )
    return factor


def _slot_site(method: str, slot: int) -> tuple[str, int]:
    if method == "houlsby":
        return SITES["houlsby"][slot % 2], slot // 2
    return "ffn_output", slot


def export(
    state: dict[str, Any], config: Any, naming: Naming, name: str, meta: dict[str, Any]
) -> dict[str, Any]:
    """The folder's content (file name -> tensors dict or JSON object) for a task's ``state``.
    ``meta``: model_name, labels (None: regression), dropout, head (the task's head type)."""
    method = config.method
    weights, head = {}, {}
    for key, tensor in state.items():
        part, slot, rest = key.split(".", 2) if key.count(".") >= 2 else (key, "", "")
        if part == "adapters":
            kind, layer = _slot_site(method, int(slot))
            proj, param = rest.split(".")
            inner = "adapter_down.0" if proj == "down" else "adapter_up"
            weights[f"{naming.owner(kind, layer)}.adapters.{name}.{inner}.{param}"] = tensor
        elif part == "head":
            head[f"heads.{name}.{HEAD[meta['head']][slot]}.{rest}"] = tensor
    return {
        "adapter_config.json": _about(_config(config, naming), naming, name, meta),
        "adapter.safetensors": weights,
        "head_config.json": _about(_head_config(meta), naming, name, meta),
        "model_head.safetensors": head,
    }


def _config(config: Any, naming: Naming) -> dict[str, Any]:
    options = asdict(config)
    values = BASE | PRESETS[config.method]
    values |= {
        "non_linearity": options["nonlinearity"],
        "reduction_factor": reduction_factor(config.bottleneck, naming.hidden_size),
        "leave_out": list(config.leave_out),
    }
    if config.method == "parallel":
        values["scaling"] = float(config.scaling)
    return values


def _head_config(meta: dict[str, Any]) -> dict[str, Any]:
    labels = meta["labels"] or ["LABEL_0"]
    if meta["head"] == "span":  # QuestionAnsweringHead's arguments; it names no outputs
        return {
            "activation_function": "tanh",  # unused with one layer; its default
            "dropout_prob": meta["dropout"],
            "head_type": "question_answering",
            "label2id": None,
            "layers": 1,
            "num_labels": 2,
        }
    if meta["head"] == "token":  # exactly TaggingHead's arguments: its config is passed as them
        return {
            "activation_function": "tanh",  # unused with one layer; TaggingHead's default
            "dropout_prob": meta["dropout"],
            "head_type": "tagging",
            "label2id": {label: i for i, label in enumerate(labels)},
            "layers": 1,
            "num_labels": len(labels),
        }
    return {
        "activation_function": "tanh",
        "bias": True,
        "dropout_prob": meta["dropout"],
        "head_type": "classification",
        "label2id": {label: i for i, label in enumerate(labels)},
        "layers": 2,
        "num_labels": len(labels),
        "use_pooler": False,
    }


def _about(config: dict[str, Any], naming: Naming, name: str, meta: dict[str, Any]) -> dict:
    model_class = naming.model_class.removesuffix("Model") + "AdapterModel"
    return {
        "config": config,
        "hidden_size": naming.hidden_size,
        "model_class": model_class,
        "model_name": meta["model_name"],
        "model_type": naming.model_type,
        "name": name,
        "version": VERSION,
    }


# -- import -----------------------------------------------------------------------------------
def to_contlearn(
    folder: Folder, naming: Naming, labels: list[str] | None, backbone: Any, kind: Any
) -> dict[str, Any]:
    """The method, its options and the task state a folder holds, plus what it records
    (``backbone`` unused: AdapterHub's head carries all its layers; ``kind``: the task's)."""
    where = f"AdapterHub adapter {folder.path}"
    about = folder.config
    check_fit(naming, about.get("hidden_size"), about.get("model_type"), where)
    config = about["config"]
    method = _method(config, where)
    name = str(about.get("name", ""))
    state, layers, width = _adapter_state(folder.weights, method, name, naming)
    options = _options(config, method, width, naming, layers, where)
    state |= _head_state(folder, labels, where, kind)
    return {
        "method": method,
        "options": options,
        "state": state,
        "base_model": about.get("model_name"),
        "from_backbone": [],
    }


def _method(config: dict[str, Any], where: str) -> str:
    for method, preset in PRESETS.items():
        expected = BASE | preset
        if all(config.get(key, BASE[key]) == expected[key] for key in COMPUTES):
            return method
    seq = BASE | PRESETS["houlsby"]
    differs = next(k for k in COMPUTES if config.get(k, BASE[k]) != seq[k])
    raise InteropError(
        f"{where} is a bottleneck config contlearn has no method for ({differs} = "
        f"{config.get(differs)!r}): import DoubleSeqBnConfig, SeqBnConfig or ParBnConfig adapters"
    )


def _options(config, method, width, naming, layers, where) -> dict[str, Any]:
    act = ACTIVATIONS.get(str(config.get("non_linearity")).lower())
    if act is None:
        raise InteropError(
            f"{where} uses non_linearity {config.get('non_linearity')!r}: contlearn's adapters "
            f"use {', '.join(sorted(set(ACTIVATIONS.values())))}"
        )
    scaling = config.get("scaling", 1.0)
    if method != "parallel" and scaling != 1.0:
        raise InteropError(f"{where} scales its output by {scaling}: contlearn's {method} does not")
    leave_out = [i for i in range(naming.num_layers) if i not in layers]
    options = {"bottleneck": width, "nonlinearity": act, "norms": "shared", "leave_out": leave_out}
    return options | ({"scaling": float(scaling)} if method == "parallel" else {})


def _adapter_state(weights, method, name, naming) -> tuple[dict[str, Any], set[int], int]:
    sites = SITES.get(method, ("ffn_output",))
    pattern = re.compile(
        rf"(.+)\.adapters\.{re.escape(name)}\.(adapter_down\.0|adapter_up)\.(weight|bias)"
    )
    owners = {naming.owner(k, 0).replace(f"{naming.layer(0)}.", "", 1): k for k in sites}
    state, layers = {}, set()
    for key, tensor in weights.items():
        found = pattern.fullmatch(key)
        layer_path = found and re.fullmatch(
            rf"{re.escape(naming.prefix)}\.{re.escape(naming.family.layers)}\.(\d+)\.(.+)",
            found.group(1),
        )
        if not layer_path or layer_path.group(2) not in owners:
            raise unmapped(key, f"an AdapterHub {method} adapter named {name!r} on this backbone")
        layer, kind = int(layer_path.group(1)), owners[layer_path.group(2)]
        check_layer(layer, naming, key)
        slot = 2 * layer + sites.index(kind) if method == "houlsby" else layer
        proj = "down" if found.group(2).startswith("adapter_down") else "up"
        state[f"adapters.{slot}.{proj}.{found.group(3)}"] = tensor
        layers.add(layer)
    widths = {t.shape[0] for k, t in state.items() if k.endswith("down.weight")}
    if len(widths) != 1:
        raise InteropError(
            f"the adapter's layers have bottleneck sizes {sorted(widths)}: contlearn needs one"
        )
    return state, layers, widths.pop()


def _head_state(folder: Folder, labels: list[str] | None, where: str, kind: Any) -> dict[str, Any]:
    if folder.head is None or folder.head_config is None:
        raise InteropError(
            f"{where} has no prediction head (head_config.json, model_head.safetensors): save it "
            "with model.save_adapter(DIR, NAME, with_head=True, use_safetensors=True)"
        )
    config = folder.head_config.get("config", {})
    check_head_type(config.get("head_type"), HEAD_TYPES, kind, where)
    for key, value in HEAD_SHAPE[kind.role].items():
        if config.get(key, value) != value:
            raise InteropError(
                f"{where}'s head has {key} = {config.get(key)!r}: contlearn's {kind.name} head "
                f"is {HEAD_WORDS[kind.role]}"
            )
    name = str(folder.head_config.get("name", ""))
    index = {v: k for k, v in HEAD[kind.role].items()}
    state = {}
    for key, tensor in folder.head.items():
        found = re.fullmatch(rf"heads\.{re.escape(name)}\.(\d+)\.(weight|bias)", key)
        if not found or found.group(1) not in index:
            raise unmapped(key, f"AdapterHub's {HEAD_TYPES[kind.role]} head")
        state[f"head.{index[found.group(1)]}.{found.group(2)}"] = tensor
    theirs = config.get("label2id")
    names = sorted(theirs, key=theirs.get) if isinstance(theirs, dict) else None
    return ordered_head(state, names, labels, where, kind)
