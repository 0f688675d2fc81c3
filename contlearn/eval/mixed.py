"""Logits for rows of several tasks, run together: batches sorted by length whatever the task,
each batch one forward pass of the model's mixed path (``AdaptedModel.forward_mixed``).

A row's logits agree with its own task's canonical ones to float rounding (the batch around it
differs), and its prediction is the same; the canonical recipe, not this, is what verification
compares bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from ..train.batching import Encoded, canonical_batches, collate


@torch.no_grad()
def predict_mixed(
    model: Any,
    encoded: Encoded,
    tasks: Sequence[str],
    *,
    batch_size: int,
    device: torch.device | None = None,
    progress: bool = False,
    prepare: Callable[[list[str]], Any] | None = None,
) -> list[torch.Tensor]:
    """Each row's logits [C of its task], in input order; row i belongs to ``tasks[i]``.
    ``prepare`` is called with each batch's tasks before it runs (to have their modules
    built on the device)."""
    device = device or torch.device("cpu")
    was_training = model.training
    if was_training:
        model.eval()
    out: list[torch.Tensor | None] = [None] * len(encoded)
    batches = canonical_batches(encoded.lengths, batch_size)
    for idx in tqdm(batches, desc="predicting", unit="batch", disable=not progress, leave=False):
        batch = {k: v.to(device, non_blocking=True) for k, v in collate(encoded, idx).items()}
        if prepare is not None:
            prepare(list(dict.fromkeys(tasks[i] for i in idx)))
        for _, rows, logits in model.forward_mixed([tasks[i] for i in idx], **batch):
            for row, values in zip(rows.tolist(), logits.float().cpu(), strict=True):
                out[idx[row]] = values
    if was_training:
        model.train()
    return out
