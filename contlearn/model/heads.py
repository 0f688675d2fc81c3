"""Task heads: what turns the backbone's hidden states into a task's outputs."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class TaskHead(nn.Module):
    """Classifier (or regressor) on one token's final hidden state: the first ([CLS] / <s>) for
    encoders, the last real one for decoders (whatever the padding side)."""

    def __init__(self, d: int, num_outputs: int, dropout: float, pooling: str = "first"):
        super().__init__()
        self.dense = nn.Linear(d, d)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(d, num_outputs)
        self.pooling = pooling

    def forward(self, hidden: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        x = pool(hidden, attention_mask, self.pooling)  # [B, T, d] -> [B, d]
        x = self.dropout(torch.tanh(self.dense(x)))
        return self.out(x)  # [B, num_outputs]


def pool(hidden: Tensor, attention_mask: Tensor | None, pooling: str) -> Tensor:
    """The first token's state, or the last real token's (the last 1 of the mask in each row:
    right padding and left padding alike)."""
    if pooling == "first":
        return hidden[:, 0]
    width = hidden.shape[1]
    if attention_mask is None:
        return hidden[:, width - 1]
    last = width - 1 - attention_mask.flip(1).argmax(dim=1)  # [B]
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
