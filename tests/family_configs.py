"""Tiny random configs of every built-in family (hidden 32, two layers), shared by the tests."""

from __future__ import annotations

from typing import Any

VOCAB = 120
SMALL = {"vocab_size": VOCAB, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4}
ENCODER = {**SMALL, "intermediate_size": 64}
TOKENS = {"pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3}
DECODER = {**ENCODER, "num_key_value_heads": 2, "max_position_embeddings": 128, **TOKENS}
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {  # label -> (model_type, config values)
    "bert": ("bert", ENCODER),
    "roberta": ("roberta", {**ENCODER, "pad_token_id": 1}),
    "xlm-roberta": ("xlm-roberta", {**ENCODER, "pad_token_id": 1}),
    "camembert": ("camembert", {**ENCODER, "pad_token_id": 1}),
    "electra": ("electra", {**ENCODER, "embedding_size": 16}),
    "distilbert": (
        "distilbert",
        {"vocab_size": VOCAB, "dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64},
    ),
    "deberta-v2": (
        "deberta-v2",
        {
            **ENCODER,
            "relative_attention": True,
            "pos_att_type": ["p2c", "c2p"],
            "max_relative_positions": 64,
        },
    ),
    "modernbert": (
        "modernbert",
        {
            **ENCODER,
            **TOKENS,
            "cls_token_id": 2,
            "sep_token_id": 3,
            "global_attn_every_n_layers": 2,
            "local_attention": 8,
        },
    ),
    "gpt2": (
        "gpt2",
        {"vocab_size": VOCAB, "n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 128}
        | {"bos_token_id": 2, "eos_token_id": 3},
    ),
    "llama": ("llama", DECODER),
    "mistral": ("mistral", DECODER),
    "qwen2": ("qwen2", DECODER),
    "qwen3": ("qwen3", {**DECODER, "head_dim": 8}),
    "gemma": ("gemma", {**DECODER, "head_dim": 8}),
    "gemma2": ("gemma2", {**DECODER, "head_dim": 8}),
    "phi3": ("phi3", DECODER),
}
FAMILY_OF = {
    "bert": "bert",
    "roberta": "roberta",
    "xlm-roberta": "roberta",
    "camembert": "roberta",
    "electra": "electra",
    "distilbert": "distilbert",
    "deberta-v2": "deberta-v2",
    "modernbert": "modernbert",
    "gpt2": "gpt2",
    "llama": "llama",
    "mistral": "llama",
    "qwen2": "llama",
    "qwen3": "llama",
    "gemma": "gemma",
    "gemma2": "gemma2",
    "phi3": "phi3",
}


def tiny_model(label: str, seed: int = 0):
    import torch
    from transformers import AutoConfig, AutoModel

    model_type, values = CONFIGS[label]
    torch.manual_seed(seed)
    return AutoModel.from_config(AutoConfig.for_model(model_type, **values))


def tiny_causal_lm(label: str, seed: int = 0):
    """A tiny random causal language model of decoder family ``label`` (its base model is
    what :func:`tiny_model` builds, plus the output projection: tied for GPT-2, untied for
    the Llama-like configs), in eval mode."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    model_type, values = CONFIGS[label]
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **values)).eval()
