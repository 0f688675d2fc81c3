"""Task heads: what turns the backbone's hidden states into a task's outputs.

A task kind (``contlearn.kinds``) names its head type, which the artifact config records (as
AdapterHub's head types do): ``pooled`` (one output row per text, from one token's state),
``token`` (one output row per token) or ``lm`` (next-token logits over the vocabulary, from the
backbone's own output projection, shared by every task that has one: nothing of it is the
task's own, so nothing of it is saved with the task).
"""

from __future__ import annotations

from collections.abc import Callable

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


class LMHead(nn.Module):
    """Next-token logits [B, T, V] (float32) from every token's final hidden state, through the
    backbone's output projection (``shared``: :class:`~contlearn.model.output.OutputProjection`),
    held unregistered: the task's state dict and parameters hold nothing of it. ``num_outputs``
    and ``dropout`` are not used: the vocabulary is the backbone's, and its causal LM has no
    dropout before the projection."""

    shares_output = True  # make_head hands it the backbone's projection

    def __init__(
        self,
        d: int,
        num_outputs: int,
        dropout: float,
        pooling: str = "last",
        shared: nn.Module | None = None,
    ):
        super().__init__()
        if shared is None:
            raise ValueError("an lm head needs the backbone's output projection (shared=...)")
        self.__dict__["shared"] = shared

    def forward(self, hidden: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        return self.shared(hidden)  # [..., d] -> [..., V]


HEADS: dict[str, type[nn.Module]] = {"pooled": TaskHead, "token": TokenHead, "lm": LMHead}


def make_head(
    kind: str,
    d: int,
    num_outputs: int,
    dropout: float,
    pooling: str,
    shared: Callable[[], nn.Module] | None = None,
) -> nn.Module:
    """A new head of type ``kind`` (one of :data:`HEADS`); ``shared`` gives the backbone's
    output projection to a head that uses it (called only for such a head)."""
    try:
        head = HEADS[kind]
    except KeyError:
        raise ValueError(f"unknown head type {kind!r}; known: {', '.join(HEADS)}") from None
    if getattr(head, "shares_output", False):
        if shared is None:
            raise ValueError(f"a {kind} head needs the backbone's output projection")
        return head(d, num_outputs, dropout, pooling=pooling, shared=shared())
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
