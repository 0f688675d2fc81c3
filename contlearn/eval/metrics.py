"""Task metrics as pure functions over labels and predictions.

Classification metrics take class indices in ``[0, num_classes)``; regression metrics take
floats. Every metric returns a Python float, and empty or mismatched input raises ``ValueError``
(these are programming errors, not user-fixable ones, so they do not use ``contlearn.errors``).

Where a statistic is undefined (a precision with no predicted positives, a correlation with a
constant side, an MCC with a zero denominator) the value is ``0.0``, as scikit-learn does for
F1 and MCC. For the correlations this departs from scipy's ``nan`` on purpose: a constant
prediction carries no association, and a finite value keeps scores storable in the ledger and
usable in the accuracy matrix, which rejects NaN (see ``contlearn.forgetting``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

NEEDS_NUM_CLASSES = frozenset({"f1", "matthews"})
CLASSIFICATION_METRICS = NEEDS_NUM_CLASSES | {"accuracy"}


def accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Fraction of predictions equal to the label."""
    true, pred = _pair(y_true, y_pred)
    return float(np.mean(true == pred))


def f1(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> float:
    """F1 of class 1 when ``num_classes == 2``, else macro-F1.

    Per class, F1 = 2 TP / (2 TP + FP + FN), and 0.0 when that denominator is 0 (equivalent to
    the harmonic mean of precision and recall, with 0.0 where either is undefined). The macro
    average runs over the classes that occur in ``y_true`` or ``y_pred`` (scikit-learn's
    default): a class absent from both says nothing about the model.
    """
    confusion = _confusion(y_true, y_pred, num_classes)
    if num_classes == 2:
        return _class_f1(confusion, 1)
    present = np.flatnonzero(confusion.sum(axis=0) + confusion.sum(axis=1))
    return float(np.mean([_class_f1(confusion, k) for k in present]))


def matthews(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> float:
    """Matthews correlation coefficient, multiclass (Gorodkin 2004, as scikit-learn).

    With confusion matrix C (rows true, columns predicted), c = trace(C), s = sum(C),
    t_k = row sums and p_k = column sums:
    MCC = (c s - sum_k p_k t_k) / sqrt((s^2 - sum_k p_k^2) (s^2 - sum_k t_k^2)),
    and 0.0 when the denominator is 0 (one side predicts or holds a single class).
    """
    confusion = _confusion(y_true, y_pred, num_classes).astype(float)
    t, p = confusion.sum(axis=1), confusion.sum(axis=0)
    s, c = confusion.sum(), np.trace(confusion)
    denominator = np.sqrt((s**2 - p @ p) * (s**2 - t @ t))
    if denominator == 0:
        return 0.0
    return float((c * s - p @ t) / denominator)


def pearson(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Pearson correlation; 0.0 when either side is constant (see the module docstring)."""
    true, pred = _pair(y_true, y_pred)
    return _correlation(_finite(true, "y_true"), _finite(pred, "y_pred"))


def spearman(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Spearman correlation: Pearson of the ranks, tied values sharing their mean rank."""
    true, pred = _pair(y_true, y_pred)
    true, pred = _finite(true, "y_true"), _finite(pred, "y_pred")
    return _correlation(_average_ranks(true), _average_ranks(pred))


METRIC_FUNCTIONS: dict[str, Callable[..., float]] = {
    "accuracy": accuracy,
    "f1": f1,
    "matthews": matthews,
    "pearson": pearson,
    "spearman": spearman,
}


def compute_metrics(
    names: Sequence[str],
    *,
    y_true: Sequence[int] | Sequence[float],
    y_pred: Sequence[int] | Sequence[float],
    num_classes: int | None,
) -> dict[str, float]:
    """Return ``{name: value}`` in the order of ``names``.

    ``num_classes`` is None for regression, where only pearson and spearman apply.
    """
    _pair(y_true, y_pred)
    _check_names(names, num_classes)
    return {name: _apply(name, y_true, y_pred, num_classes) for name in names}


def majority_class_score(
    names: Sequence[str], y_true: Sequence[int], num_classes: int
) -> dict[str, float]:
    """The metrics of always predicting the most frequent class of ``y_true`` (ties: lowest)."""
    labels = _labels(_flat(y_true, "y_true"), num_classes, "y_true")
    majority = int(np.bincount(labels, minlength=num_classes).argmax())
    y_pred = [majority] * len(labels)
    return compute_metrics(names, y_true=y_true, y_pred=y_pred, num_classes=num_classes)


COLLAPSED_SHARE = 0.95  # predictions this concentrated on one class ...
COLLAPSED_MARGIN = 0.10  # ... that the labels are not: the model (nearly) ignores its input


def collapsed_class(y_true: Sequence[int], y_pred: Sequence[int]) -> tuple[int, float] | None:
    """(class, share of predictions) when the predictions are (almost) all one class and the
    labels are not, else None. A model that nearly always predicts one class scores the
    majority baseline at best (F1 can still look good on a skewed binary task)."""
    true, pred = _pair(y_true, y_pred)
    values, counts = np.unique(pred, return_counts=True)
    top = int(values[counts.argmax()])
    share = float(counts.max() / len(pred))
    true_share = float(np.mean(true == top))
    if share >= COLLAPSED_SHARE and share - true_share >= COLLAPSED_MARGIN:
        return top, share
    return None


def _apply(name: str, y_true, y_pred, num_classes: int | None) -> float:
    if name in NEEDS_NUM_CLASSES:
        return METRIC_FUNCTIONS[name](y_true, y_pred, num_classes)
    return METRIC_FUNCTIONS[name](y_true, y_pred)


def _check_names(names: Sequence[str], num_classes: int | None) -> None:
    unknown = [name for name in names if name not in METRIC_FUNCTIONS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {sorted(METRIC_FUNCTIONS)}")
    needing = [name for name in names if name in CLASSIFICATION_METRICS]
    if needing and num_classes is None:
        raise ValueError(f"metrics {needing} need num_classes (a classification task)")


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """Both sides as 1-D arrays of one non-zero length."""
    true, pred = _flat(y_true, "y_true"), _flat(y_pred, "y_pred")
    if len(true) != len(pred):
        raise ValueError(f"y_true has {len(true)} values but y_pred has {len(pred)}")
    return true, pred


def _flat(values, side: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{side} must be a flat sequence, got shape {array.shape}")
    if len(array) == 0:
        raise ValueError(f"cannot compute a metric over no examples ({side} is empty)")
    return array


def _labels(values: np.ndarray, num_classes: int, side: str) -> np.ndarray:
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    if not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"{side} must hold integer class indices, got dtype {values.dtype}")
    if values.min() < 0 or values.max() >= num_classes:
        raise ValueError(f"{side} holds a class index outside [0, {num_classes})")
    return values


def _confusion(y_true, y_pred, num_classes: int) -> np.ndarray:
    """Counts, shape (num_classes, num_classes): rows are true classes, columns predicted."""
    true, pred = _pair(y_true, y_pred)
    true, pred = _labels(true, num_classes, "y_true"), _labels(pred, num_classes, "y_pred")
    counts = np.bincount(true * num_classes + pred, minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes)


def _class_f1(confusion: np.ndarray, k: int) -> float:
    tp = confusion[k, k]
    fp = confusion[:, k].sum() - tp
    fn = confusion[k, :].sum() - tp
    denominator = 2 * tp + fp + fn
    return float(2 * tp / denominator) if denominator else 0.0


def _finite(values: np.ndarray, side: str) -> np.ndarray:
    values = values.astype(float)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{side} holds NaN or infinite values")
    return values


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    # Test constancy exactly: centring a constant like [0.1] * 3 can leave ~1e-17 residues.
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    dx, dy = x - x.mean(), y - y.mean()
    r = (dx @ dy) / np.sqrt((dx @ dx) * (dy @ dy))
    return float(np.clip(r, -1.0, 1.0))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks; a group of tied values gets the mean of the ranks it spans."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    last_rank = np.cumsum(counts)
    return (last_rank - (counts - 1) / 2)[inverse]
