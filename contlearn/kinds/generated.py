"""The canonical outputs of a ``generation`` task (layout: :mod:`.generation`'s docstring):
greedy decoding of each dev prompt, and the teacher-forced logits of its reference response
summarised so that a digest covers them all. Imported by the generation kind when it computes
(this module imports torch)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from ..train.batching import Encoded, canonical_batches, collate

HASH_CHUNKS = 16  # a sha256 as sixteen 16-bit numbers (exact in float32)
REFERENCE_STATS = 3  # per reference token: its logit, its row's log-sum-exp and max
NAN = float("nan")


@dataclass(frozen=True)
class Prompts(Encoded):
    """A generation split as the canonical evaluation takes it: ``input_ids`` the prompts;
    ``forced`` each example's teacher-forced row (prompt and reference response, as training
    encodes it) and ``starts`` where its response begins (at least 1); ``stop_ids`` and
    ``max_new_tokens`` the decoding rule; ``tokenizer`` turns generated ids into text."""

    forced: list[list[int]] | None = None
    starts: list[int] | None = None
    stop_ids: tuple[int, ...] = ()
    max_new_tokens: int = 32
    tokenizer: Any = None

    @property
    def width(self) -> int:
        """The longest reference response (tokens) of the split."""
        if not self.forced:
            return 0
        return max(len(row) - s for row, s in zip(self.forced, self.starts, strict=True))

    def rows(self, keep: Sequence[int]) -> Prompts:
        def pick(values: list | None) -> list | None:
            return None if values is None else [values[i] for i in keep]

        return Prompts(
            [self.input_ids[i] for i in keep],
            None,
            self.pad_id,
            forced=pick(self.forced),
            starts=pick(self.starts),
            stop_ids=self.stop_ids,
            max_new_tokens=self.max_new_tokens,
            tokenizer=self.tokenizer,
        )


@torch.no_grad()
def canonical_generation(
    model: Any,
    encoded: Prompts,
    *,
    batch_size: int,
    device: Any = None,
    progress: bool = False,
    desc: str = "evaluating",
    width: int | None = None,
) -> torch.Tensor:
    """[N, 1 + G + 16 + 3W] float32, original order, by canonical batches (sorted by prompt
    length): each batch's prompts decoded greedily (left padded), then its teacher-forced rows
    run once (right padded). ``width``: W, by default the split's longest reference."""
    from ..model.decoding import Decoding

    device = device or torch.device("cpu")
    wide = encoded.width if width is None else width
    slots = encoded.max_new_tokens
    decoding = Decoding(max_new_tokens=slots, stop_ids=tuple(encoded.stop_ids))
    out = torch.full((len(encoded), 1 + slots + HASH_CHUNKS + REFERENCE_STATS * wide), NAN)
    was_training = model.training
    if was_training:
        model.eval()
    for idx, made in decoded_batches(model, encoded, decoding, batch_size, device, progress, desc):
        rows = torch.tensor(idx)
        out[rows, 0] = float(slots)
        out[rows, 1 : 1 + slots] = made.float().masked_fill(made < 0, NAN)
        if encoded.forced is not None:  # rows to predict have no reference
            out[rows, 1 + slots :] = forced_columns(model, encoded, idx, wide, device)
    if was_training:
        model.train()
    return out


def decoded_batches(
    model: Any,
    encoded: Encoded,
    decoding: Any,
    batch_size: int,
    device: Any,
    progress: bool = False,
    desc: str = "generating",
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """Per canonical batch of ``encoded``'s prompts (sorted by length): its rows and their
    generated ids [B, G] (-1 after a row stopped), decoded by ``decoding`` (a
    ``model.decoding.Decoding``) with the active task, left padded."""
    from ..model.decoding import generate

    batches = canonical_batches(encoded.lengths, batch_size)
    for idx in tqdm(batches, desc=desc, unit="batch", disable=not progress, leave=False):
        ids, mask = left_padded([encoded.input_ids[i] for i in idx], encoded.pad_id)
        with torch.no_grad():
            yield idx, generate(model, ids.to(device), mask.to(device), decoding).cpu()


def left_padded(rows: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids and attention_mask [B, L], each row's ids at its end (decoding's padding)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, row in enumerate(rows):
        if row:
            ids[b, width - len(row) :] = torch.tensor(list(row), dtype=torch.long)
            mask[b, width - len(row) :] = 1
    return ids, mask


def forced_columns(
    model: Any, encoded: Prompts, idx: Sequence[int], width: int, device: Any
) -> torch.Tensor:
    """[B, 16 + 3 * width]: per example the hash chunks of its teacher-forced logits at the
    reference positions [R, V], then (logit, log-sum-exp, max) per reference token, NaN after."""
    forced = Encoded(encoded.forced, None, encoded.pad_id)
    batch = {k: v.to(device) for k, v in collate(forced, idx).items()}
    logits = model.lm_logits(batch["input_ids"], batch["attention_mask"]).float()  # [B, T, V]
    out = torch.full((len(idx), HASH_CHUNKS + REFERENCE_STATS * width), NAN)
    for b, i in enumerate(idx):
        row, start = encoded.forced[i], encoded.starts[i]
        at = logits[b, start - 1 : len(row) - 1].cpu()  # [R, V]: each predicts the next token
        wanted = torch.tensor(row[start:], dtype=torch.long)
        stats = torch.stack(
            [at.gather(1, wanted[:, None])[:, 0], at.logsumexp(-1), at.max(-1).values], -1
        )
        out[b, :HASH_CHUNKS] = hash_chunks(at)
        out[b, HASH_CHUNKS : HASH_CHUNKS + stats.numel()] = stats.reshape(-1)
    return out


def hash_chunks(values: torch.Tensor) -> torch.Tensor:
    """The sha256 of ``values``' float32 little-endian bytes as sixteen 16-bit numbers."""
    data = values.contiguous().to(torch.float32).numpy().astype("<f4", copy=False).tobytes()
    digest = hashlib.sha256(data).digest()
    chunks = [int.from_bytes(digest[k : k + 2], "big") for k in range(0, 32, 2)]
    return torch.tensor(chunks, dtype=torch.float32)


def slots(logits: torch.Tensor) -> int:
    """G, the generated slots of a canonical output (0 for an empty one)."""
    return int(logits[0, 0]) if logits.numel() else 0


def generated(logits: torch.Tensor) -> torch.Tensor:
    """[N, G] the generated ids as floats, NaN after a row stopped."""
    return logits[:, 1 : 1 + slots(logits)]


def generated_ids(logits: torch.Tensor) -> list[tuple[int, ...]]:
    """Per row, its generated ids (the stop token kept, nothing after it)."""
    made = generated(logits)
    return [tuple(int(v) for v in row[~row.isnan()].tolist()) for row in made]


def answer_lengths(logits: torch.Tensor) -> list[int]:
    """Per row, the tokens generated before its stop token (all G when it never stopped)."""
    made = generated(logits)
    count = (~made.isnan()).sum(-1)
    stopped = count < made.shape[1]
    return (count - stopped.long()).tolist()


def same_generated(saved: torch.Tensor, now: torch.Tensor) -> torch.Tensor:
    """Per row: whether every generated token (and where the row stopped) is the same."""
    a, b = generated(saved), generated(now)
    return ((a == b) | (a.isnan() & b.isnan())).all(-1)


def agreement(saved: torch.Tensor, now: torch.Tensor) -> tuple[float, float]:
    """(share of identical generated tokens over the slots where either generated one, the
    largest change of a reference token's logit, log-sum-exp or max); (0, inf) when the
    shapes differ."""
    if saved.shape != now.shape:
        return 0.0, float("inf")
    if len(saved) == 0:
        return 1.0, 0.0
    a, b = generated(saved), generated(now)
    either = ~(a.isnan() & b.isnan())
    same = float(((a == b) & either).sum() / either.sum()) if bool(either.any()) else 1.0
    start = 1 + slots(saved) + HASH_CHUNKS
    change = (saved[:, start:] - now[:, start:]).abs().nan_to_num()
    return same, float(change.max()) if change.numel() else 0.0
