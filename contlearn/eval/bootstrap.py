"""Seeded bootstrap confidence intervals over dev examples, as pure functions on numbers.

The method is the percentile bootstrap: each task's dev examples are resampled with
replacement ``resamples`` times, every quantity is recomputed on each resample, and the interval
is the central ``level`` share of those values (the (1-level)/2 and (1+level)/2 percentiles).

Resampling is over examples, task by task (each task keeps its own size), and paired: the b-th
resample of task j uses the same example indices for every quantity, so the final score, the
score right after training and their difference (BWT) move together, and ACC and BWT of resample
b combine the b-th resample of every task. A method whose scores do not change therefore gets a
BWT interval of exactly [0, 0]. The indices come from ``numpy.random.default_rng(seed)``, drawn
task by task in order, so the same seed gives the same intervals.

Point estimates are the scores on the full (unresampled) dev data, not bootstrap means.

A metric that is a function of per-example counts summed over the examples (entity F1 from each
sentence's true-positive, predicted and gold entity counts; a mean of per-question scores) may
come with an :class:`Additive` form: each resample's score is then computed from the counts
weighted by how often the resample drew each example, the same value the metric gives on the
resampled rows (up to the order of float additions) without re-running it a thousand times.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Metric = Callable[[Sequence, Sequence], float]


@dataclass(frozen=True)
class Additive:
    """A metric as counts per example: ``parts(y_true, y_pred)`` [n, k] floats, and
    ``combine(sums)`` turning summed counts [..., k] into scores [...]."""

    parts: Callable[[Sequence, Sequence], np.ndarray]
    combine: Callable[[np.ndarray], np.ndarray]


def resample_indices(sizes: Sequence[int], resamples: int, seed: int) -> list[np.ndarray]:
    """For each task j, an int array [resamples, sizes[j]] of indices drawn with replacement."""
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if any(size < 1 for size in sizes):
        raise ValueError(f"every task needs at least one example, got sizes {list(sizes)}")
    rng = np.random.default_rng(seed)
    return [rng.integers(0, size, size=(resamples, size)) for size in sizes]


def interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """The percentile interval: the (1-level)/2 and (1+level)/2 percentiles of ``values``."""
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    if len(values) == 0:
        raise ValueError("no bootstrap values")
    lower, upper = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(lower), float(upper)


def bootstrap_summary(
    final: Sequence[Sequence],
    diagonal: Sequence[Sequence | None] | None,
    targets: Sequence[Sequence],
    metric: Sequence[Metric],
    *,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    additive: Sequence[Additive | None] | None = None,
) -> dict:
    """Per-task scores, ACC and BWT with paired percentile-bootstrap intervals.

    ``final[j]``: predictions on task j's dev examples after the last task; ``diagonal[j]``: the
    predictions right after task j was trained (None, or None entries, when the method has no
    sequence); ``targets[j]``: the labels; ``metric[j]``: ``(y_true, y_pred) -> float``.
    ACC = mean_j final_j; BWT = mean_{j<T-1} (final_j - diagonal_j), None when T == 1 or a
    diagonal is missing. ``additive[j]``: task j's metric as counts per example, or None (the
    metric is then run on every resample).
    """
    size = len(targets)
    _check_lengths(final, diagonal, targets, metric)
    indices = resample_indices([len(t) for t in targets], resamples, seed)
    additive = list(additive) if additive is not None else [None] * size
    scores = _scores(final, targets, metric, additive, indices)
    tasks = [_estimate(point, spread, level) for point, spread in scores]
    acc = _mean_estimate(scores, level)
    earlier = range(size - 1)
    bwt = None
    if size > 1 and diagonal is not None and all(diagonal[j] is not None for j in earlier):
        before = _scores(diagonal[: size - 1], targets, metric, additive, indices)
        changes = [(scores[j][0] - before[j][0], scores[j][1] - before[j][1]) for j in earlier]
        bwt = _mean_estimate(changes, level)
    return {
        "tasks": [{"score": t["value"], "ci": t["ci"]} for t in tasks],
        "acc": acc,
        "bwt": bwt,
        "resamples": resamples,
        "seed": seed,
        "level": level,
    }


def _scores(predictions, targets, metric, additive, indices) -> list[tuple[float, np.ndarray]]:
    """Per task: (score on all examples, array of scores on each resample)."""
    result = []
    for pred, true, score, counts, idx in zip(
        predictions, targets, metric, additive, indices, strict=False
    ):
        pred, true = _rows(pred), _rows(true)
        result.append((float(score(true, pred)), _resampled(score, counts, true, pred, idx)))
    return result


def _resampled(score: Metric, additive: Additive | None, true, pred, idx) -> np.ndarray:
    """The score on each resample (rows of ``idx``): from the per-example counts weighted by
    how often each example was drawn, or by running the metric on the resampled rows."""
    if additive is None:
        return np.array([score(true[rows], pred[rows]) for rows in idx], dtype=float)
    parts = np.asarray(additive.parts(true, pred), dtype=float)  # [n, k]
    drawn = np.stack([np.bincount(rows, minlength=len(true)) for rows in idx])  # [R, n]
    return np.asarray(additive.combine(drawn @ parts), dtype=float)


def _rows(values) -> np.ndarray:
    """One entry per example: a number, or (a tagging task's) a sequence kept whole."""
    values = list(values)
    if not values or not isinstance(values[0], list | tuple):
        return np.asarray(values)
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        out[i] = tuple(value)
    return out


def _mean_estimate(scores: list[tuple[float, np.ndarray]], level: float) -> dict:
    """The mean over tasks of the full-data scores, and of the scores on each resample."""
    points = [point for point, _ in scores]
    return _estimate(np.mean(points), np.mean([spread for _, spread in scores], axis=0), level)


def _estimate(point: float, spread: np.ndarray, level: float) -> dict:
    return {"value": float(point), "ci": list(interval(spread, level))}


def _check_lengths(final, diagonal, targets, metric) -> None:
    size = len(targets)
    if size == 0:
        raise ValueError("no tasks")
    if (
        len(final) != size
        or len(metric) != size
        or (diagonal is not None and len(diagonal) != size)
    ):
        raise ValueError("final, diagonal, targets and metric need one entry per task")
    for j, true in enumerate(targets):
        preds = [final[j]] + (
            [diagonal[j]] if diagonal is not None and diagonal[j] is not None else []
        )
        if any(len(pred) != len(true) for pred in preds):
            raise ValueError(f"task {j}: predictions and targets differ in length")
