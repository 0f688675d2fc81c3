"""The features routing reads: the frozen backbone's mean-pooled final hidden states (no task
active, so exactly the base model), computed by the canonical evaluation's batches (sorted by
length, then index) under its recipe (pinned kernels, a recorded thread count), so that the same
inputs give the same bytes on the same recipe."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..devices import recipe, reproducible
from ..train.batching import Encoded, canonical_batches, collate, encode
from .recipe import computes_in, torch_threads

ROUTING_MAX_LENGTH = 128  # tokens of each input routing reads (capped by the backbone)
ROUTING_BATCH_SIZE = 32


def encode_for_routing(
    tokenizer: Any, texts: Sequence[tuple[str, ...]], max_length: int, token_types: bool
) -> Encoded:
    """Routing texts (a text or a pair each, ``TaskKind.routing_text``) as token ids; rows of
    one and of two texts are encoded apart and put back in order."""
    singles = [i for i, t in enumerate(texts) if len(t) == 1]
    pairs = [i for i, t in enumerate(texts) if len(t) != 1]
    ids: list[list[int]] = [[] for _ in texts]
    types: list[list[int]] = [[] for _ in texts]
    has_types, pad = False, 0
    for where in (singles, pairs):
        if not where:
            continue
        part = encode(tokenizer, [texts[i] for i in where], max_length, token_types=token_types)
        has_types, pad = part.token_type_ids is not None, part.pad_id
        for j, i in enumerate(where):
            ids[i] = part.input_ids[j]
            types[i] = part.token_type_ids[j] if has_types else []
    return Encoded(ids, types if has_types else None, pad)


@torch.no_grad()
def routing_features(
    model: Any,
    encoded: Encoded,
    *,
    device: torch.device | None = None,
    threads: int | None = None,
    batch_size: int = ROUTING_BATCH_SIZE,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """[N, d] float32 features of every example, in original order, on the CPU, and the recipe
    they were computed under."""
    device = device or torch.device("cpu")
    was_training = model.training
    model.eval()
    out: torch.Tensor | None = None
    with torch_threads(threads) as used, reproducible(device) as pinned:
        for idx in canonical_batches(encoded.lengths, batch_size):
            batch = {k: v.to(device) for k, v in collate(encoded, idx).items()}
            pooled = model.base_features(**batch)  # [B, d]
            if out is None:
                out = torch.empty((len(encoded), pooled.shape[1]), dtype=torch.float32)
            out[torch.tensor(idx)] = pooled.float().cpu()
    if was_training:
        model.train()
    made = recipe(
        device, batch_size=batch_size, threads=used, pinned=pinned, dtype=computes_in(model)
    )
    width = getattr(model, "hidden_size", 0)
    return (out if out is not None else torch.empty((0, width))), made
