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

from ..devices import recipe, reproducible
from ..kinds import TaskKind
from ..train.batching import Encoded
from .digests import logits_digest, predictions_digest
from .logits import CANONICAL_BATCH_SIZE, predict_logits


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
