"""Task heads: what turns the backbone's hidden states into a task's outputs.

A task kind (``contlearn.kinds``) names its head type, which the artifact config records (as
AdapterHub's head types do): ``pooled`` (one output row per text, from one token's state) or
``token`` (one output row per token).
"""

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


class TokenHead(nn.Module):
    """A linear layer on every token's final hidden state (after dropout): the token
    classification head of BERT-style models, AdapterHub's ``tagging`` head with one layer."""

    def __init__(self, d: int, num_outputs: int, dropout: float, pooling: str = "first"):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(d, num_outputs)

    def forward(self, hidden: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        return self.out(self.dropout(hidden))  # [B, T, num_outputs]


HEADS: dict[str, type[nn.Module]] = {"pooled": TaskHead, "token": TokenHead}


def make_head(kind: str, d: int, num_outputs: int, dropout: float, pooling: str) -> nn.Module:
    """A new head of type ``kind`` (one of :data:`HEADS`)."""
    try:
        head = HEADS[kind]
    except KeyError:
        raise ValueError(f"unknown head type {kind!r}; known: {', '.join(HEADS)}") from None
    return head(d, num_outputs, dropout, pooling=pooling)


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
