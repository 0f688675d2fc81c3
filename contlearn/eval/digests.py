"""Digests of what an evaluation produced: the bit-identical promise is checked on these.

The logits digest is a sha256 over the shape and the float32 little-endian bytes, so a later
process that reproduces the logits reproduces the digest; the predictions digest covers the
predictions alone (what the task's kind predicts: classes, values...), to tell a last-bit
change from a changed prediction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch


def logits_digest(logits: torch.Tensor) -> str:
    """sha256 over the shape and the float32 little-endian bytes of ``logits``."""
    array = logits.detach().to(torch.float32).contiguous().cpu().numpy()
    digest = hashlib.sha256(f"{tuple(array.shape)}|float32<\n".encode())
    digest.update(array.astype("<f4", copy=False).tobytes())
    return digest.hexdigest()


def predictions_digest(preds: Sequence) -> str:
    return hashlib.sha256(repr(list(preds)).encode()).hexdigest()


def bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two tensors hold the same bytes: same dtype and shape, and every element the
    same bit pattern (a NaN marking no output equals itself; -0.0 differs from 0.0)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return bool((a.contiguous().view(torch.uint8) == b.contiguous().view(torch.uint8)).all())
