"""The backbone's output projection: the causal language model's head, which ``AutoModel`` leaves
out, shared by every generation task and never saved per task.

A model whose config ties its word embeddings (GPT-2, SmolLM2, Gemma) projects onto its input
embedding matrix; an untied one (Llama, Mistral, Qwen2, Phi-3 as configured by default) keeps a
separate ``lm_head.weight`` in its checkpoint, read here from the backbone folder's safetensors
file(s) (never a pickle). The matrix is read when a generation task first needs it, so a
workspace that only classifies never holds it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import BackboneError

if TYPE_CHECKING:
    from collections.abc import Callable

WEIGHT, BIAS = "lm_head.weight", "lm_head.bias"
SINGLE, INDEX = "model.safetensors", "model.safetensors.index.json"


@dataclass(frozen=True)
class OutputWeights:
    """An untied output projection as its checkpoint stores it: weight [V, d], bias [V] or None."""

    weight: Tensor
    bias: Tensor | None = None


class OutputProjection(nn.Module):
    """hidden [..., d] -> logits [..., V] (float32): the backbone's own LM head.

    Tied: the input embedding module is held unregistered (its weight stays the backbone's, not
    counted twice); untied: the weight is a non-persistent buffer (moved with the model, never
    in a state dict). Gemma 2's final logit soft-capping is applied as its causal LM does.
    """

    def __init__(
        self, embeddings: nn.Module | None, weights: OutputWeights | None, softcap: float | None
    ):
        super().__init__()
        self.__dict__["embeddings"] = embeddings
        self.register_buffer("own_weight", None if weights is None else weights.weight, False)
        self.register_buffer("bias", None if weights is None else weights.bias, False)
        self.softcap = softcap

    @property
    def weight(self) -> Tensor:  # [V, d]
        return self.embeddings.weight if self.embeddings is not None else self.own_weight

    def forward(self, hidden: Tensor) -> Tensor:
        weight = self.weight
        logits = F.linear(hidden.to(weight.dtype), weight, self.bias).float()
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits


def build(
    backbone: Any, read: Callable[[], OutputWeights] | None, identity: str
) -> OutputProjection:
    """The projection of ``backbone`` (an ``AutoModel`` decoder): its input embeddings when its
    config ties them, else what ``read`` returns (refused in one line without it)."""
    config = backbone.config
    softcap = getattr(config, "final_logit_softcapping", None)
    if getattr(config, "tie_word_embeddings", False):
        return OutputProjection(backbone.get_input_embeddings(), None, softcap)
    if read is None:
        raise BackboneError(
            f"backbone {identity} unties its output projection (tie_word_embeddings = false) "
            "and none was handed over: load it with contlearn.model.backbone.load from a folder "
            "of its causal LM checkpoint"
        )
    weights = read()
    device = backbone.get_input_embeddings().weight.device
    moved = OutputWeights(weights.weight.to(device), _to(weights.bias, device))
    return OutputProjection(None, moved, softcap)


def _to(tensor: Tensor | None, device: torch.device) -> Tensor | None:
    return None if tensor is None else tensor.to(device)


def read_output_weights(source: str, dtype: str) -> OutputWeights:
    """``lm_head.weight`` (and its bias, if any) from the safetensors file(s) of ``source`` (a
    model folder, or a hub name already in the local cache), in ``dtype`` (torch's name);
    raises :class:`BackboneError` when they hold none."""
    from safetensors import safe_open

    folder = weights_folder(source)
    found = _file_with(folder, WEIGHT)
    if found is None:
        raise BackboneError(
            f"{folder} holds no {WEIGHT} in its safetensors files, and its config unties the "
            "output projection from the input embeddings: a generation task needs the causal "
            "LM checkpoint (saved from AutoModelForCausalLM), not the base model alone"
        )
    with safe_open(str(found), framework="pt") as handle:
        names = set(handle.keys())
        weight = handle.get_tensor(WEIGHT).to(getattr(torch, dtype))
        bias = handle.get_tensor(BIAS).to(weight.dtype) if BIAS in names else None
    return OutputWeights(weight, bias)


def weights_folder(source: str) -> Path:
    """The folder holding ``source``'s weight files: itself, or a hub model's cached snapshot
    (read from the cache only: loading the backbone put it there)."""
    if Path(source).is_dir():
        return Path(source)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(source, local_files_only=True))
    except Exception as exc:  # the hub library's errors have no common base here
        raise BackboneError(
            f"cannot find {source!r}'s weight files in the local cache ({type(exc).__name__}): "
            "give the backbone as a local model folder"
        ) from exc


def _file_with(folder: Path, key: str) -> Path | None:
    """The safetensors file of ``folder`` that stores ``key`` (sharded: as the index maps it)."""
    from safetensors import safe_open

    if (folder / INDEX).is_file():
        shard = json.loads((folder / INDEX).read_text(encoding="utf-8"))["weight_map"].get(key)
        return None if shard is None else folder / shard
    if not (folder / SINGLE).is_file():
        return None
    with safe_open(str(folder / SINGLE), framework="pt") as handle:
        names = set(handle.keys())
    return folder / SINGLE if key in names else None
