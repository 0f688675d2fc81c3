"""Text -> token ids, and batches: length-grouped for training, canonical for evaluation.

Padding is per batch. Training batches are grouped by length (sorted inside shuffled mega-batches)
so most computed tokens are real; evaluation batches follow one fixed rule (sorted by length, then
index, fixed size) so that the same inputs always produce the same bytes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

MEGABATCH_FACTOR = 50


@dataclass(frozen=True)
class Encoded:
    """Token ids per example (unpadded), and token type ids where the model uses them.

    ``positions``: for a kind whose outputs are per token (``tagging``), each example's token
    positions whose outputs it reads (the first sub-token of each word kept); None for one
    output per example. ``notes``: per example, per position, numbers the kind reads back with
    the logits (an extractive-QA window's character offsets and example), appended to them in
    the canonical output; ``targets``: per example, what the loss wants when the kind derives
    it from the encoding (a QA window's answer tokens)."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    pad_id: int
    positions: list[list[int]] | None = None
    notes: list[list[tuple[float, ...]]] | None = None
    targets: list[Any] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]

    @property
    def width(self) -> int | None:
        """The most output rows one example has (per-token outputs), None for one per example."""
        if self.positions is None:
            return None
        return max((len(p) for p in self.positions), default=0)

    def rows(self, keep: Sequence[int]) -> Encoded:
        """The examples ``keep``, in that order."""

        def pick(values: list | None) -> list | None:
            return None if values is None else [values[i] for i in keep]

        return Encoded(
            [self.input_ids[i] for i in keep],
            pick(self.token_type_ids),
            self.pad_id,
            pick(self.positions),
            pick(self.notes),
            pick(self.targets),
        )


def encode(
    tokenizer: Any,
    texts: Sequence[Sequence[str]],
    max_length: int,
    *,
    token_types: bool = True,
    chunk: int = 2048,
) -> Encoded:
    """Tokenize single texts or pairs with truncation, no padding."""
    ids: list[list[int]] = []
    types: list[list[int]] | None = [] if token_types else None
    for start in range(0, len(texts), chunk):
        part = texts[start : start + chunk]
        first = [t[0] for t in part]
        second = [t[1] for t in part] if part and len(part[0]) > 1 else None
        out = tokenizer(first, second, truncation=True, max_length=max_length, padding=False)
        ids += out["input_ids"]
        if types is not None and "token_type_ids" in out:
            types += out["token_type_ids"]
        else:
            types = None
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return Encoded(ids, types, pad)


def encode_words(
    tokenizer: Any,
    words: Sequence[Sequence[str]],
    max_length: int,
    *,
    token_types: bool = True,
    chunk: int = 2048,
) -> Encoded:
    """Tokenize texts given as words (a fast tokenizer's ``is_split_into_words``), truncated at
    ``max_length``; ``positions`` holds each example's first sub-token of each word that fits
    (a word cut off by the truncation has none)."""
    ids: list[list[int]] = []
    types: list[list[int]] | None = [] if token_types else None
    positions: list[list[int]] = []
    for start in range(0, len(words), chunk):
        part = [list(w) for w in words[start : start + chunk]]
        out = tokenizer(
            part, is_split_into_words=True, truncation=True, max_length=max_length, padding=False
        )
        ids += out["input_ids"]
        if types is not None and "token_type_ids" in out:
            types += out["token_type_ids"]
        else:
            types = None
        positions += [first_pieces(out.word_ids(i)) for i in range(len(part))]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return Encoded(ids, types, pad, positions)


def first_pieces(word_ids: Sequence[int | None]) -> list[int]:
    """The position of each word's first sub-token, in word order, up to the last word with a
    sub-token; -1 for a word the tokenizer made no sub-token of (a zero-width character)."""
    found: dict[int, int] = {}
    for position, word in enumerate(word_ids):
        if word is not None and word not in found:
            found[word] = position
    return [found.get(word, -1) for word in range(max(found, default=-1) + 1)]


def collate(encoded: Encoded, indices: Sequence[int]) -> dict[str, torch.Tensor]:
    """Pad the chosen examples to the longest of them: input_ids, attention_mask [B, L]."""
    width = max(len(encoded.input_ids[i]) for i in indices)
    ids = torch.full((len(indices), width), encoded.pad_id, dtype=torch.long)
    mask = torch.zeros((len(indices), width), dtype=torch.long)
    for row, i in enumerate(indices):
        seq = encoded.input_ids[i]
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    batch = {"input_ids": ids, "attention_mask": mask}
    if encoded.token_type_ids is not None:
        types = torch.zeros((len(indices), width), dtype=torch.long)
        for row, i in enumerate(indices):
            seq = encoded.token_type_ids[i]
            types[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        batch["token_type_ids"] = types
    return batch


def training_batches(lengths: Sequence[int], batch_size: int, seed: int) -> list[list[int]]:
    """Shuffled, length-grouped batches: sort within mega-batches, then shuffle batch order."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    size = batch_size * MEGABATCH_FACTOR
    batches = []
    for start in range(0, len(order), size):
        mega = sorted(order[start : start + size], key=lambda i: -lengths[i])
        batches += [mega[k : k + batch_size] for k in range(0, len(mega), batch_size)]
    rng.shuffle(batches)
    return batches


def canonical_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """The evaluation rule: sort by (length, index), fixed-size chunks."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    return [order[k : k + batch_size] for k in range(0, len(order), batch_size)]


def real_token_share(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Real tokens over computed (padded) tokens for a batching."""
    real = sum(lengths)
    computed = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return real / computed if computed else 1.0


def subsample(count: int, limit: int, seed: int) -> list[int]:
    """A deterministic subset of ``limit`` indices (all when ``limit`` is 0 or large enough)."""
    if limit <= 0 or limit >= count:
        return list(range(count))
    return sorted(random.Random(seed).sample(range(count), limit))
