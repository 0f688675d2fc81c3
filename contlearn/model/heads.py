"""Task heads: what turns the backbone's hidden states into a task's outputs."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class TaskHead(nn.Module):
    """Classifier (or regressor) on the first token's final hidden state ([CLS] / <s>)."""

    def __init__(self, d: int, num_outputs: int, dropout: float):
        super().__init__()
        self.dense = nn.Linear(d, d)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(d, num_outputs)

    def forward(self, hidden: Tensor) -> Tensor:
        x = hidden[:, 0]  # [B, T, d] -> [B, d]
        x = self.dropout(torch.tanh(self.dense(x)))
        return self.out(x)  # [B, num_outputs]
