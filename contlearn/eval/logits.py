"""The model call behind the canonical evaluation: every example's logits, in original order,
by canonical batches (sorted by length, then index; padded per batch). The recipe around it
(threads, pinned kernels, digests) is :mod:`.recipe`; a task kind whose canonical outputs are
not the logits computes its own (:meth:`contlearn.kinds.TaskKind.canonical_outputs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from ..train.batching import Encoded, canonical_batches, collate

CANONICAL_BATCH_SIZE = 32  # recorded per run; audits replay the recorded size


@torch.no_grad()
def predict_logits(
    model: Any,
    encoded: Encoded,
    *,
    batch_size: int = CANONICAL_BATCH_SIZE,
    device: torch.device | None = None,
    progress: bool = False,
    desc: str = "evaluating",
    width: int | None = None,
) -> torch.Tensor:
    """Logits [N, C] for every example, in original order, by the canonical recipe (a batch size
    other than the canonical one changes the padding, so the bytes may differ in the last bit).
    With per-token outputs (``encoded.positions``): [N, W, C], row w of an example the logits at
    its w-th position, NaN past its last (``width``: W, by default the split's widest example).

    The batches run on ``device`` (the CPU by default) into a buffer there; the logits come back
    to the CPU once, at the end."""
    device = device or torch.device("cpu")
    was_training = model.training
    if was_training:  # switching visits every module: only when it is needed
        model.eval()
    out: torch.Tensor | None = None
    batches = canonical_batches(encoded.lengths, batch_size)
    for idx in tqdm(batches, desc=desc, unit="batch", disable=not progress, leave=False):
        batch = {k: v.to(device, non_blocking=True) for k, v in collate(encoded, idx).items()}
        logits = model(**batch).float()
        if encoded.positions is not None:
            wide = encoded.width if width is None else width
            logits = at_positions(logits, [encoded.positions[i] for i in idx], wide)
            if encoded.notes is not None:
                logits = torch.cat([logits, noted(encoded, idx, wide, device)], dim=-1)
        if out is None:
            shape = (len(encoded), *logits.shape[1:])
            out = torch.empty(shape, dtype=torch.float32, device=device)
        out[torch.tensor(idx, device=device)] = logits
    if was_training:
        model.train()
    return out.cpu() if out is not None else torch.empty((0, 0))


def at_positions(logits: torch.Tensor, positions: Sequence[Sequence[int]], width: int):
    """[B, T, C] per-token logits -> [B, width, C]: row w of example b the logits at
    ``positions[b][w]``; NaN where an example has no such position (past its last, or -1)."""
    index = torch.full((len(positions), width), -1, dtype=torch.long)
    for row, where in enumerate(positions):
        index[row, : len(where)] = torch.tensor(where, dtype=torch.long)
    index = index.to(logits.device)
    rows = torch.arange(len(positions), device=logits.device)[:, None]
    picked = logits[rows, index.clamp(min=0)]  # [B, width, C]
    return picked.masked_fill((index < 0)[..., None], float("nan"))


def noted(encoded: Encoded, idx: Sequence[int], width: int, device: Any) -> torch.Tensor:
    """[B, width, k] float32: each example's notes per position, NaN past its last."""
    k = len(encoded.notes[idx[0]][0]) if encoded.notes[idx[0]] else 0
    out = torch.full((len(idx), width, k), float("nan"), dtype=torch.float32)
    for row, i in enumerate(idx):
        if encoded.notes[i]:
            out[row, : len(encoded.notes[i])] = torch.tensor(encoded.notes[i], dtype=torch.float32)
    return out.to(device)
