"""Hugging Face peft's format, read from its save and load code: ``adapter_config.json`` (a
``LoraConfig`` or ``IA3Config`` with ``peft_type``) and ``adapter_model.safetensors`` with keys
``base_model.model.{module}.lora_A.weight`` (``lora_B``; (IA)3: ``{module}.ia3_l``, shaped
[1, in] on a feed-forward module's input, else [out, 1]); the head is saved whole as
``modules_to_save`` of the backbone's ``...ForSequenceClassification``, so that
``PeftModel.from_pretrained(AutoModelForSequenceClassification..., DIR)`` computes the task.

contlearn's head is dense, tanh, output on the first token: BERT's pooler plus its classifier,
and RoBERTa's classification head; other families' heads differ, and are refused. peft's
default ``modules_to_save`` for SEQ_CLS is the classifier alone: BERT's pooler then stays the
base model's, so an import takes it from the backbone, as ``PeftModel.from_pretrained`` does.

A tagging task's head (dropout, then one linear layer on every token) is the ``classifier`` of
the encoder families' ``...ForTokenClassification`` (BERT, RoBERTa, ELECTRA, DistilBERT,
DeBERTa-v2) and the ``score`` of Llama's, Gemma's and Gemma 2's, saved with ``task_type``
``TOKEN_CLS``. ModernBERT's adds a dense layer and a norm; GPT-2 (``Conv1D`` projections) and
Phi-3 (fused projections) are not matched to peft's: they are refused.

An extractive-QA task's head (a token head whose two outputs are the start and the end logit,
in that order, as transformers splits them) is the ``qa_outputs`` of ``...ForQuestionAnswering``
(the same encoder families, and the Llama family's model types that have one: Llama, Mistral,
Qwen2, Qwen3), saved with ``task_type`` ``QUESTION_ANS``. Those decoders' QA models keep their
base model under their own attribute (``transformer`` for Llama and Qwen), so the weights are
named as that class names them. Gemma and Gemma 2 have no QA model in transformers: refused.
"""

from __future__ import annotations

import re
from dataclasses import replace
from importlib import metadata
from typing import Any

from ..errors import InteropError
from ..model.methods.common import PROJECTIONS
from ..model.methods.ia3 import INPUT_SIDE
from .folder import Folder
from .names import Naming
from .parts import check_fit, check_head_type, check_layer, ordered_head, unmapped

PREFIX = "base_model.model."
# a kind's head role (contlearn.kinds) -> peft's task type (the transformers model class whose
# head it is)
HEAD_TYPES = {"pooled": "SEQ_CLS", "token": "TOKEN_CLS", "span": "QUESTION_ANS"}
MODEL_CLASSES = {
    "pooled": "sequence-classification",
    "token": "token-classification",
    "span": "question-answering",
}
TOKEN_HEAD = ({"out": "classifier"}, ["classifier"])
HEAD_MODULES = ("classifier", "score", "qa_outputs")  # heads' top-level modules, no base model
QA_HEAD = ({"out": "qa_outputs"}, ["qa_outputs"])  # peft's own modules_to_save for QUESTION_ANS
ENCODERS = ("bert", "roberta", "electra", "distilbert", "deberta-v2")
# role -> family -> (where contlearn's head layers are, modules_to_save)
HEADS = {
    "pooled": {
        "bert": (
            {"dense": "{prefix}.pooler.dense", "out": "classifier"},
            ["classifier", "pooler"],
        ),
        "roberta": (
            {"dense": "classifier.dense", "out": "classifier.out_proj"},
            ["classifier"],
        ),
    },
    "token": {family: TOKEN_HEAD for family in ENCODERS}
    | {family: ({"out": "score"}, ["score"]) for family in ("llama", "gemma", "gemma2")},
    "span": {family: QA_HEAD for family in (*ENCODERS, "llama")},
}
KINDS = {"lora": "LORA", "ia3": "IA3"}
LORA_PLAIN = {  # LoraConfig fields contlearn's LoRA has no counterpart for, at their neutral value
    "use_dora": False,
    "use_rslora": False,
    "fan_in_fan_out": False,
    "bias": "none",
    "lora_bias": False,
    "rank_pattern": {},
    "alpha_pattern": {},
    "layer_replication": None,
}


def check_exportable(method: str, config: Any, naming: Naming, head: str) -> None:
    """``head``: the task's head type (its kind's)."""
    if method not in KINDS:
        raise InteropError(
            f"method {method!r} has no peft equivalent: export lora and ia3 tasks as peft "
            "(houlsby, pfeiffer and parallel as adapterhub)"
        )
    _head_paths(naming, "export", head)


def _head_paths(naming: Naming, verb: str, head: str) -> tuple[dict[str, str], list[str]]:
    """Where the head's layers are in the transformers model of role ``head``, and what peft
    saves whole (``modules_to_save``)."""
    families = HEADS[head]
    if naming.family.name not in families:
        raise InteropError(
            f"backbone family {naming.family.name!r}: its transformers {MODEL_CLASSES[head]} "
            f"model's head is not known to match contlearn's, so peft cannot {verb} the "
            f"task's head exactly (families: {', '.join(families)})"
        )
    model_naming(naming, verb, head)  # the model type has such a model
    paths, save = families[naming.family.name]
    return {k: v.format(prefix=naming.prefix) for k, v in paths.items()}, save


def model_naming(naming: Naming, verb: str, head: str) -> Naming:
    """The backbone's module names inside the transformers model of role ``head``: a QA model
    may keep its base model under another attribute than the bare model's prefix
    (``LlamaForQuestionAnswering``: ``transformer``); a model type without one is refused."""
    if head != "span":
        return naming
    import transformers
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES as QA_MODELS,
    )

    model = getattr(transformers, QA_MODELS.get(naming.model_type, ""), None)
    if model is None:
        raise InteropError(
            f"model type {naming.model_type!r} has no question-answering model in "
            f"transformers, so peft cannot {verb} a QUESTION_ANS head for it"
        )
    return replace(naming, prefix=model.base_model_prefix)


def export(
    state: dict[str, Any], config: Any, naming: Naming, meta: dict[str, Any]
) -> dict[str, Any]:
    """The folder's content (file name -> tensors dict or JSON object) for a task's ``state``.
    ``meta``: model_name, head (the task's head type)."""
    heads, _ = _head_paths(naming, "export", meta["head"])
    naming = model_naming(naming, "export", meta["head"])
    weights = {}
    for key, tensor in state.items():
        part, target, rest = key.split(".", 2)
        if part == "head":
            weights[f"{PREFIX}{heads[target]}.{rest}"] = tensor
        elif part == "lora":
            layer, inner = rest.split(".", 1)
            weights[f"{PREFIX}{naming.module(target, int(layer))}.{inner}"] = tensor
        elif part == "scales":
            shape = (1, -1) if target in config.on_input else (-1, 1)
            module = naming.module(target, int(rest.split(".")[0]))
            weights[f"{PREFIX}{module}.ia3_l"] = tensor.reshape(shape)
    return {
        "adapter_config.json": _config(config, naming, meta),
        "adapter_model.safetensors": weights,
    }


def _pattern(naming: Naming, targets: Any, layers: list[int]) -> str:
    """A regex peft fullmatches against module names: exactly these sites in these layers."""
    sites = "|".join(re.escape(naming.family.path(t)) for t in targets)
    index = "|".join(str(i) for i in layers)
    return rf"{re.escape(naming.prefix)}\.{re.escape(naming.family.layers)}\.({index})\.({sites})"


def _config(config: Any, naming: Naming, meta: dict[str, Any]) -> dict[str, Any]:
    """``naming``: as inside the model of the task's head (:func:`model_naming`)."""
    from ..model.methods.common import kept_layers

    layers = kept_layers(config.leave_out, naming.num_layers)
    common = {
        "peft_type": KINDS[config.method],
        "task_type": HEAD_TYPES[meta["head"]],
        "base_model_name_or_path": meta["model_name"],
        "target_modules": _pattern(naming, config.targets, layers),
        "modules_to_save": _head_paths(naming, "export", meta["head"])[1],
        "inference_mode": True,
        "fan_in_fan_out": False,
        "revision": None,
        "peft_version": _peft_version(),
    }
    if config.method == "ia3":
        on_input = [t for t in config.targets if t in config.on_input]
        forward = _pattern(naming, on_input, layers) if on_input else []
        return common | {"feedforward_modules": forward, "init_ia3_weights": True}
    return (
        common
        | LORA_PLAIN
        | {
            "r": config.rank,
            "lora_alpha": config.alpha,
            "lora_dropout": config.dropout,
            "init_lora_weights": True,
            "layers_to_transform": None,
            "layers_pattern": None,
        }
    )


def _peft_version() -> str | None:
    try:
        return metadata.version("peft")
    except metadata.PackageNotFoundError:
        return None


# -- import -----------------------------------------------------------------------------------
def to_contlearn(
    folder: Folder, naming: Naming, labels: list[str] | None, backbone: Any, task_kind: Any
) -> dict[str, Any]:
    """The method, its options and the task state a folder holds, plus what it records; the
    head's layers the folder leaves to the base model are read from ``backbone``
    (``task_kind``: the task's kind)."""
    where = f"peft adapter {folder.path}"
    config = folder.config
    kind = config.get("peft_type")
    method = {v: k for k, v in KINDS.items()}.get(kind)
    if method is None:
        raise InteropError(
            f"{where} is a {kind} adapter: contlearn imports peft's LORA and IA3 adapters"
        )
    check_head_type(config.get("task_type"), HEAD_TYPES, task_kind, where)
    heads, _ = _head_paths(naming, "import", task_kind.role)
    naming = model_naming(naming, "import", task_kind.role)
    own, head = _split(folder.weights, heads, naming, where)
    borrowed = _from_backbone(head, heads, naming, backbone)
    if method == "lora":
        options, state = _lora(config, own, naming, where)
    else:
        options, state = _ia3(own, naming, where)
    state |= ordered_head(head, _labels(folder), labels, where, task_kind)
    return {
        "method": method,
        "options": options,
        "state": state,
        "base_model": config.get("base_model_name_or_path"),
        "from_backbone": borrowed,
    }


def _labels(folder: Folder) -> list[str] | None:
    """The head's labels in output order: contlearn's provenance file's, else ``id2label`` of a
    transformers ``config.json`` saved beside the adapter; None when neither names them."""
    recorded = (folder.provenance or {}).get("labels")
    if recorded is not None:
        return recorded
    id2label = (folder.model_config or {}).get("id2label")
    if not isinstance(id2label, dict):
        return None
    try:
        return [str(id2label[key]) for key in sorted(id2label, key=int)]
    except (TypeError, ValueError):  # keys that are not output indices: not a label map
        return None


def _from_backbone(head: dict[str, Any], heads: dict[str, str], naming, backbone) -> list[str]:
    """Head layers of the base model (BERT's pooler) the folder does not carry, taken from the
    backbone into ``head``; their module paths. A layer the backbone lacks stays missing."""
    taken = []
    for part, path in heads.items():
        inside = path.removeprefix(f"{naming.prefix}.")
        if inside == path or any(k.startswith(f"head.{part}.") for k in head):
            continue
        try:
            module = backbone.get_submodule(inside)
        except AttributeError:
            continue
        for param, tensor in module.named_parameters(recurse=False):
            head[f"head.{part}.{param}"] = tensor.detach().clone()
        taken.append(path)
    return taken


def _split(weights, heads, naming, where) -> tuple[dict[tuple, Any], dict[str, Any]]:
    """The method's tensors by (site, layer, inner name), and the head's in contlearn's keys."""
    by_path = {path: part for part, path in heads.items()}
    own, head = {}, {}
    for key, tensor in weights.items():
        module, _, param = key.removeprefix(PREFIX).rpartition(".")
        if key.startswith(PREFIX) and module in by_path:
            head[f"head.{by_path[module]}.{param}"] = tensor
            continue
        inner = "ia3_l" if param == "ia3_l" else module.rpartition(".")[2] + f".{param}"
        path = module if param == "ia3_l" else module.rpartition(".")[0]
        site = naming.site_of(path, PROJECTIONS) if key.startswith(PREFIX) else None
        if site is None or inner not in ("ia3_l", "lora_A.weight", "lora_B.weight"):
            _foreign(key, naming, where)
            raise unmapped(key, "a LoRA or (IA)3 weight, or the head, on this backbone")
        check_layer(site[1], naming, key)
        own[(*site, inner)] = tensor
    if "head.dense.weight" in head:
        check_fit(naming, head["head.dense.weight"].shape[1], None, where)
    return own, head


def _foreign(key: str, naming: Naming, where: str) -> None:
    """A key of another model's base (``roberta.`` on a BERT workspace) says so."""
    base = key.removeprefix(PREFIX).split(".")[0]
    if key.startswith(PREFIX) and base != naming.prefix and base not in HEAD_MODULES:
        raise InteropError(
            f"{where} was made for a model whose base is {base!r}, but this workspace's "
            f"backbone is {naming.model_type!r} ({naming.prefix!r}): import it into a "
            "workspace on its base model"
        )


def _grid(own: dict[tuple, Any], where: str) -> tuple[list[str], list[int]]:
    """The targets and layers; every target must be adapted in every adapted layer."""
    targets = sorted({t for t, _, _ in own}, key=PROJECTIONS.index)
    layers = sorted({i for _, i, _ in own})
    for t in targets:
        missing = [i for i in layers if not any(k[:2] == (t, i) for k in own)]
        if missing:
            raise InteropError(
                f"{where} adapts {t} in some layers but not in {missing}: contlearn adapts each "
                "target in the same layers"
            )
    return targets, layers


def _leave_out(layers: list[int], naming: Naming) -> list[int]:
    return [i for i in range(naming.num_layers) if i not in layers]


def _lora(config, own, naming, where) -> tuple[dict[str, Any], dict[str, Any]]:
    for key, neutral in LORA_PLAIN.items():
        if config.get(key, neutral) not in (neutral, None) or (
            isinstance(neutral, dict) and config.get(key)
        ):
            raise InteropError(
                f"{where} sets {key} = {config.get(key)!r}: contlearn's LoRA has no such option; "
                f"import adapters saved with {key} = {neutral!r}"
            )
    targets, layers = _grid(own, where)
    ranks = {t.shape[0] for (_, _, inner), t in own.items() if inner == "lora_A.weight"}
    if len(ranks) != 1:
        raise InteropError(f"{where} has ranks {sorted(ranks)}: contlearn's LoRA has one rank")
    state = {f"lora.{t}.{i}.{inner}": v for (t, i, inner), v in own.items()}
    options = {
        "rank": ranks.pop(),
        "alpha": float(config.get("lora_alpha", 8)),
        "dropout": float(config.get("lora_dropout", 0.0)),
        "targets": targets,
        "norms": "shared",
        "leave_out": _leave_out(layers, naming),
    }
    return options, state


def _ia3(own, naming, where) -> tuple[dict[str, Any], dict[str, Any]]:
    targets, layers = _grid(own, where)
    state, sides = {}, {}
    for (target, layer, _), tensor in own.items():
        on_input = tensor.dim() == 2 and tensor.shape[0] == 1 and tensor.shape[1] != 1
        if sides.setdefault(target, on_input) != on_input:
            raise InteropError(
                f"{where} scales {target}'s input in some layers and its output in others: "
                "contlearn scales one side of a target in every layer"
            )
        if on_input and target not in INPUT_SIDE:
            raise InteropError(
                f"{where} scales {target}'s input: contlearn's (IA)3 scales the input of "
                f"{', '.join(INPUT_SIDE)} only (feedforward_modules), the output of the others"
            )
        state[f"scales.{target}.{layer}.weight"] = tensor.reshape(-1)
    options = {
        "targets": targets,
        "on_input": [t for t in targets if sides[t]],
        "norms": "shared",
        "leave_out": _leave_out(layers, naming),
    }
    return options, state
