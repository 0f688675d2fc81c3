"""The frozen prefix of a task's training: the backbone layers below the task's lowest trainable
module. Nothing there needs a backward pass; run without dropout, their output for an example is
the same in every epoch, so it is computed once, kept (up to a byte limit), and later batches
whose examples are all kept skip the prefix. The layers above it run as usual.
It is a training-time cache only: it is switched off while a batch generates
(``AdaptedModel.generating``), whose rows are not training examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor


class PrefixCache:
    """The hidden states entering layer ``start``, per training example (unpadded), up to
    ``limit_bytes``; examples beyond the limit are recomputed in every epoch."""

    def __init__(self, start: int, limit_bytes: int, tuple_output: bool = False):
        self.start = start
        self.tuple_output = tuple_output  # layers return (hidden states, ...), as DeBERTa's
        self.limit_bytes = limit_bytes
        self.rows: dict[int, Tensor] = {}
        self.bytes = 0
        self.full = False  # the limit was reached: nothing more is kept
        self.hits = self.misses = 0  # batches served from the cache / computed
        self._batch: tuple[list[int], list[int]] | None = None
        self._cached: Tensor | None = None

    def begin(self, indices: Sequence[int], lengths: Sequence[int]) -> None:
        """The next forward is of these examples (with these unpadded lengths)."""
        self._batch = (list(indices), list(lengths))
        if all(i in self.rows for i in indices):
            self._cached = self._padded(indices, max(lengths))
            self.hits += 1
        else:
            self._cached = None
            self.misses += 1

    def end(self) -> None:
        self._batch = self._cached = None

    def _padded(self, indices: Sequence[int], width: int) -> Tensor:
        first = self.rows[indices[0]]
        out = first.new_zeros((len(indices), width, first.shape[-1]))
        for row, i in enumerate(indices):
            out[row, : len(self.rows[i])] = self.rows[i]
        return out

    def layer(self, index: int, base: Any, args: tuple, kwargs: dict) -> Any:
        """What prefix layer ``index`` returns: its input unchanged while the batch is served
        from the cache (the last prefix layer returns the kept states), else its output (the
        last one's kept for the examples that fit)."""
        last = index == self.start - 1
        if self._cached is not None:
            hidden = self._cached if last else (args[0] if args else kwargs["hidden_states"])
            return (hidden, None) if self.tuple_output else hidden
        out = base(*args, **kwargs)
        if last and self._batch is not None:
            self._keep(out[0] if self.tuple_output else out)
        return out

    def _keep(self, hidden: Tensor) -> None:  # [B, T, d]
        indices, lengths = self._batch
        for row, (i, length) in enumerate(zip(indices, lengths, strict=True)):
            if self.full or i in self.rows:
                continue
            size = length * hidden.shape[-1] * hidden.element_size()
            if self.bytes + size > self.limit_bytes:
                self.full = True
                continue
            self.rows[i] = hidden[row, :length].detach().clone()
            self.bytes += size

    def summary(self) -> dict[str, Any]:
        """What a run records about its cache."""
        return {
            "start_layer": self.start,
            "examples_kept": len(self.rows),
            "bytes": self.bytes,
            "limit_reached": self.full,
            "batches_from_cache": self.hits,
            "batches_computed": self.misses,
        }


def first_trainable_layer(hooks: dict[tuple[str, int], Any], num_layers: int) -> int:
    """The lowest layer a task's hooks touch (``num_layers`` for a head-only task)."""
    return min((layer for _, layer in hooks), default=num_layers)
