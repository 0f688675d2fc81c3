"""STAND-IN until gen-model lands: greedy or sampled decoding without a cache."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Decoding:
    max_new_tokens: int
    stop_ids: tuple[int, ...]
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    use_cache: bool = True


@torch.no_grad()
def generate(
    model: Any, input_ids, attention_mask, decoding: Decoding, tasks: Sequence[str] | None = None
) -> torch.Tensor:
    """[B, max_new_tokens] generated ids, -1 after a row stopped (left-padded inputs)."""
    gen = torch.Generator().manual_seed(decoding.seed or 0)
    ids, mask = input_ids, attention_mask
    out = torch.full((len(ids), decoding.max_new_tokens), -1, dtype=torch.long)
    done = torch.zeros(len(ids), dtype=torch.bool)
    stops = torch.tensor(list(decoding.stop_ids) or [-2])
    for step in range(decoding.max_new_tokens):
        last = model.lm_logits(ids, mask)[:, -1].float().cpu()
        if decoding.temperature > 0:
            probs = torch.softmax(last / decoding.temperature, -1)
            nxt = torch.multinomial(probs, 1, generator=gen)[:, 0]
        else:
            nxt = last.argmax(-1)
        out[:, step] = nxt.masked_fill(done, -1)
        done |= torch.isin(nxt, stops)
        ids = torch.cat([ids, nxt[:, None].to(ids.device)], 1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
        if bool(done.all()):
            break
    return out
