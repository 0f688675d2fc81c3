"""The canonical evaluation recipe.

Canonical: eval mode, fp32 (or the low precision the backbone was loaded in), no autograd,
batches of ``CANONICAL_BATCH_SIZE`` examples sorted by (length, index) and padded to the longest
in the batch, on one device with the kernels that make it reproducible there pinned
(``devices.reproducible``), a recorded torch thread count on the CPU. Logits come back in the
data's original order, with their digests (``digests``) and the recipe they ran under
(``devices.recipe``): a later process that runs the same recipe reproduces the digest.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from ..devices import recipe, reproducible
from ..kinds import TaskKind
from ..train.batching import Encoded, canonical_batches, collate
from .digests import logits_digest, predictions_digest

CANONICAL_BATCH_SIZE = 32  # recorded per run; audits replay the recorded size


@dataclass(frozen=True)
class EvalResult:
    logits: torch.Tensor  # [N, C] float32, original order (the kind's canonical outputs)
    metrics: dict[str, float]
    primary: str
    example_count: int
    logits_sha256: str
    predictions_sha256: str
    threads: int
    seconds: float
    recipe: dict[str, Any] = field(default_factory=dict)  # what it ran under (devices.recipe)

    @property
    def primary_value(self) -> float:
        return self.metrics[self.primary]

    @property
    def examples_per_second(self) -> float:
        return self.example_count / self.seconds if self.seconds > 0 else 0.0


@contextmanager
def torch_threads(count: int | None) -> Iterator[int]:
    """Run with ``count`` intra-op threads (the current count when ``None``), then restore."""
    before = torch.get_num_threads()
    count = count or before
    torch.set_num_threads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(before)


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


def evaluate_rows(
    model: Any,
    encoded: Encoded,
    rows: Sequence[int],
    *,
    threads: int | None,
    batch_size: int,
    device: torch.device | None = None,
    kind: TaskKind | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Outputs [n, ...] of one canonical batch (``rows``, as ``canonical_batches`` ordered
    them) computed exactly as the whole split's evaluation computes that batch (by ``kind``'s
    canonical outputs; the logits when none is given), and the recipe."""
    device = device or torch.device("cpu")
    batch = encoded.rows(rows)
    run = predict_logits if kind is None else kind.canonical_outputs
    with torch_threads(threads) as used, reproducible(device) as pinned:
        logits = run(model, batch, batch_size=batch_size, device=device, width=encoded.width)
    made = recipe(
        device, batch_size=batch_size, threads=used, pinned=pinned, dtype=computes_in(model)
    )
    return logits, made


def computes_in(model: Any) -> str:
    """The dtype ``model`` computes in: float32, or its backbone's low precision."""
    return str(getattr(model, "dtype", torch.float32)).removeprefix("torch.")


def evaluate(
    model: Any,
    encoded: Encoded,
    targets: Sequence,
    *,
    metrics: Sequence[str],
    kind: TaskKind,
    labels: Sequence[str] | None,
    threads: int | None = None,
    batch_size: int = CANONICAL_BATCH_SIZE,
    device: torch.device | None = None,
    progress: bool = False,
    desc: str = "evaluating",
) -> EvalResult:
    """Run the canonical recipe on one split (on ``device``, default the CPU) and score it;
    the result records the recipe it ran under."""
    device = device or torch.device("cpu")
    start = time.perf_counter()
    with torch_threads(threads) as used, reproducible(device) as pinned:
        logits = kind.canonical_outputs(
            model, encoded, batch_size=batch_size, device=device, progress=progress, desc=desc
        )
    preds = kind.read(logits, encoded)
    values = kind.score(metrics, list(targets), preds, labels)
    return EvalResult(
        logits=logits,
        metrics=values,
        primary=metrics[0],
        example_count=len(encoded),
        logits_sha256=logits_digest(logits),
        predictions_sha256=predictions_digest(preds),
        threads=used,
        seconds=time.perf_counter() - start,
        recipe=recipe(
            device, batch_size=batch_size, threads=used, pinned=pinned, dtype=computes_in(model)
        ),
    )
