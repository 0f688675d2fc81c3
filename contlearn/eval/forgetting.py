"""Forgetting measures over an accuracy matrix, as pure functions.

The matrix R is T x T: ``R[i][j]`` is task j's dev metric after training task i (0-based, in
training order). Only the lower triangle (j <= i) is needed; entries above it may be None (task
not yet trained, so not evaluated) and are ignored. Measures that compare against an earlier
score return None when T == 1: there is no baseline, and a fake 0 would claim "no forgetting".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real

Matrix = Sequence[Sequence[float | None]]


def validate_matrix(R: Matrix) -> None:
    """Raise ValueError if R is empty, not square, or an entry with j <= i is None or not finite."""
    _lower_triangle(R)


def final_average(R: Matrix) -> float:
    """ACC = (1/T) sum_j R[T-1][j]: the mean score over all tasks after the last one."""
    return _mean(_lower_triangle(R)[-1])


def backward_transfer(R: Matrix) -> float | None:
    """BWT (Lopez-Paz & Ranzato 2017) = (1/(T-1)) sum_{j<T-1} (R[T-1][j] - R[j][j]).

    Negative when training later tasks lowered earlier ones; None when T == 1.
    """
    rows = _lower_triangle(R)
    last = rows[-1]
    changes = [last[j] - rows[j][j] for j in range(len(rows) - 1)]
    return _mean(changes) if changes else None


def forgetting(R: Matrix) -> float | None:
    """Average forgetting (Chaudhry et al. 2018).

    F = (1/(T-1)) sum_{j<T-1} (max_{j<=l<T-1} R[l][j] - R[T-1][j]): how far each earlier task
    ended below its best score before the last task. Unlike -BWT it measures from the best
    score, not the score right after training. Negative if every task ended above its best so
    far; None when T == 1.
    """
    rows = _lower_triangle(R)
    last = rows[-1]
    drops = [_best_before_last(rows, j) - last[j] for j in range(len(rows) - 1)]
    return _mean(drops) if drops else None


def average_incremental_accuracy(R: Matrix) -> float:
    """(1/T) sum_i ((1/(i+1)) sum_{j<=i} R[i][j]).

    The mean, over training steps, of the mean score on the tasks seen so far.
    """
    return _mean([_mean(row) for row in _lower_triangle(R)])


def forgetting_avalanche(R: Matrix) -> float | None:
    """Avalanche's forgetting = (1/(T-1)) sum_{j<T-1} (R[j][j] - R[T-1][j]).

    The score right after training task j minus its final score. For a full (lower-triangular)
    matrix this equals -BWT; it differs from Chaudhry's :func:`forgetting`, which measures from
    the best score before the last task. None when T == 1.
    """
    rows = _lower_triangle(R)
    last = rows[-1]
    drops = [rows[j][j] - last[j] for j in range(len(rows) - 1)]
    return _mean(drops) if drops else None


def forward_transfer(R: Matrix, reference: Sequence[float]) -> float | None:
    """FWT against a reference = (1/(T-1)) sum_{j>=1} (R[j][j] - reference[j]).

    The "reference" variant, for when no evaluation of a task before its own training exists:
    ``reference[j]`` is a stated score for task j (a model fine-tuned on task j alone, or the
    majority-class score), compared with task j's score right after sequential training.
    Positive when earlier tasks helped. ``reference[0]`` is checked but unused; None when T == 1.
    Raises ValueError if ``len(reference) != T`` or an entry is not a finite number.
    """
    rows = _lower_triangle(R)
    ref = _per_task(reference, len(rows), "reference")
    gains = [rows[j][j] - ref[j] for j in range(1, len(rows))]
    return _mean(gains) if gains else None


def intransigence(R: Matrix, joint: Sequence[float]) -> float:
    """Intransigence (Chaudhry et al. 2018) = (1/T) sum_j (joint[j] - R[j][j]).

    How far each task's score right after its own training falls short of the multi-task
    (joint) model's score ``joint[j]``: the inability to learn new tasks. Raises ValueError if
    ``len(joint) != T`` or an entry is not a finite number.
    """
    rows = _lower_triangle(R)
    ref = _per_task(joint, len(rows), "joint")
    return _mean([ref[j] - rows[j][j] for j in range(len(rows))])


def summarize(
    R: Matrix,
    reference: Sequence[float] | None = None,
    joint: Sequence[float] | None = None,
) -> dict[str, float | None]:
    """All measures by name: acc, bwt, forgetting, avg_incremental_acc, forgetting_avalanche,
    and fwt / intransigence (None unless ``reference`` / ``joint`` is given)."""
    return {
        "acc": final_average(R),
        "bwt": backward_transfer(R),
        "forgetting": forgetting(R),
        "avg_incremental_acc": average_incremental_accuracy(R),
        "forgetting_avalanche": forgetting_avalanche(R),
        "fwt": None if reference is None else forward_transfer(R, reference),
        "intransigence": None if joint is None else intransigence(R, joint),
    }


def _best_before_last(rows: list[list[float]], j: int) -> float:
    """max_{j<=l<T-1} R[l][j]: task j's best score from its own training up to the last task."""
    return max(rows[step][j] for step in range(j, len(rows) - 1))


def _lower_triangle(R: Matrix) -> list[list[float]]:
    """Row i as ``[R[i][0], ..., R[i][i]]`` in floats, after checking R's shape and entries."""
    size = len(R)
    if size == 0:
        raise ValueError("the accuracy matrix is empty")
    for i, row in enumerate(R):
        if len(row) != size:
            raise ValueError(f"the accuracy matrix is not square: row {i} has {len(row)} of {size}")
    return [[_entry(R, i, j) for j in range(i + 1)] for i in range(size)]


def _entry(R: Matrix, i: int, j: int) -> float:
    return _finite(R[i][j], f"R[{i}][{j}]")


def _per_task(values: Sequence[float], size: int, name: str) -> list[float]:
    """``values`` as floats, after checking there is one finite number per task."""
    if len(values) != size:
        raise ValueError(f"{name} has {len(values)} scores for {size} tasks")
    return [_finite(value, f"{name}[{j}]") for j, value in enumerate(values)]


def _finite(value: object, name: str) -> float:
    if not isinstance(value, Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)
