"""Validating texts and labels: classes or regression values, the label vocabulary, and the
metrics that fit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from ..config import (
    CLASSIFICATION_METRICS,
    GENERATION_METRICS,
    METRICS,
    OPEN_GENERATION_METRICS,
    QA_METRICS,
    REGRESSION_METRICS,
    TAGGING_METRICS,
)
from ..errors import BadData
from . import rules
from .glue import Glue
from .messages import listing, show
from .tables import Folder, Table

_INT = re.compile(r"[+-]?\d{1,18}", re.ASCII)  # longer runs of digits sort as strings


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)


_NAN = re.compile(r"[+-]?nan", re.ASCII | re.IGNORECASE)  # how str() and numpy write a hole


_INF = re.compile(r"[+-]?inf(inity)?", re.ASCII | re.IGNORECASE)


def read_texts(table: Table, fields: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    return tuple(zip(*(_text_column(table, f) for f in fields), strict=True))


def _text_column(table: Table, field: str) -> list[str]:
    texts = []
    for i, value in enumerate(table.column(field)):
        if _missing(value):
            raise BadData(
                f"{table.where(i)}: empty text in column {field!r}; fill it in or drop the row"
            )
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise BadData(
                f"{table.where(i)}: column {field!r} holds a {type(value).__name__}, not text; "
                "pass text columns with --text-fields a,b"
            )
        texts.append(value)
    return texts


def _missing(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, float) and math.isnan(value))


def _raw_labels(table: Table, field: str) -> list[Any]:
    values = table.column(field)
    for i, value in enumerate(values):
        if _missing(value) or (isinstance(value, str) and _NAN.fullmatch(value.strip())):
            raise BadData(
                f"{table.where(i)}: missing label in column {field!r}; fill it in or drop the row"
            )
        if not isinstance(value, (str, int, float)):
            raise BadData(
                f"{table.where(i)}: the label in column {field!r} is a {type(value).__name__}, "
                "not one value; pass a label column with --label-field L"
            )
    return values


def read_labels(folder: Folder, field: str) -> tuple[tuple[str, ...] | None, tuple, tuple]:
    """(vocabulary, train labels, dev labels); the vocabulary is None for regression."""
    train_raw, dev_raw = _raw_labels(folder.train, field), _raw_labels(folder.dev, field)
    if folder.glue_task == "stsb" or _continuous(train_raw):
        return None, _float_labels(folder.train, train_raw), _float_labels(folder.dev, dev_raw)
    train = tuple(_label_text(v) for v in train_raw)
    vocab = _vocabulary(train)
    return vocab, train, _dev_classes(folder.dev, dev_raw, vocab)


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or None if it is not a number (bools are not)."""
    if isinstance(value, str):
        if not _NUMBER.fullmatch(value.strip()):
            return None
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range
        return None
    return number if math.isfinite(number) else None


def _continuous(values: Sequence[Any]) -> bool:
    """Regression labels: all numbers, and not all whole (0/1 or 1-5 labels are classes). An
    infinity counts as a number here, so that _float_labels refuses it instead of it becoming a
    class of its own."""
    numbers = [_number(v) for v in values]
    if not all(n is not None or _infinite(v) for n, v in zip(numbers, values, strict=True)):
        return False
    return any(n is not None and not n.is_integer() for n in numbers)


def _infinite(value: Any) -> bool:
    if isinstance(value, str):
        return bool(_INF.fullmatch(value.strip()))
    return isinstance(value, float) and math.isinf(value)


def _float_labels(table: Table, values: Sequence[Any]) -> tuple[float, ...]:
    labels = []
    for i, value in enumerate(values):
        number = _number(value)
        if number is None:
            raise BadData(
                f"{table.where(i)}: label {show(value)} is not a finite number, and this task is "
                "regression; fix the label"
            )
        labels.append(number)
    return tuple(labels)


def _label_text(value: str | int | float) -> str:
    """A class label as a string: 1 and 1.0 from typed files both read "1"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value.strip() if isinstance(value, str) else str(value)


def _vocabulary(labels: Sequence[str]) -> tuple[str, ...]:
    """The training labels in a stable order: numeric if all are integers, else sorted."""
    unique = set(labels)
    if all(_INT.fullmatch(label) for label in unique):
        return tuple(sorted(unique, key=lambda label: (int(label), label)))
    return tuple(sorted(unique))


def _dev_classes(table: Table, values: Sequence[Any], vocab: tuple[str, ...]) -> tuple[str, ...]:
    labels = tuple(_label_text(v) for v in values)
    known = set(vocab)
    for i, label in enumerate(labels):
        if label not in known:
            raise BadData(
                f"{table.where(i)}: label {show(label)} never appears in the training split "
                f"(labels: {listing(vocab)}); fix it or add training rows with it"
            )
    return labels


# What each problem type (TaskData.problem_type) may be scored by, and by default. Generation
# data with a closed set of responses is scored as "closed generation" (accuracy fits it).
_FITTING = {
    "classification": CLASSIFICATION_METRICS,
    "regression": REGRESSION_METRICS,
    "tagging": TAGGING_METRICS,
    "extractive-qa": QA_METRICS,
    "generation": OPEN_GENERATION_METRICS,
    "closed generation": GENERATION_METRICS,
}
_DEFAULTS = {
    "classification": ("accuracy",),
    "regression": REGRESSION_METRICS,
    "tagging": TAGGING_METRICS,
    "extractive-qa": QA_METRICS,
    "generation": OPEN_GENERATION_METRICS,
    "closed generation": GENERATION_METRICS,
}
_LABELS_ARE = {
    "classification": "classes",
    "regression": "numbers (regression)",
    "tagging": "one tag per word (tagging)",
    "extractive-qa": "answer spans (extractive QA)",
    "generation": (
        f"free text, not a closed set (at most {rules.MAX_CLOSED_LABELS} distinct training "
        f"responses of at most {rules.MAX_LABEL_WORDS} words)"
    ),
    "closed generation": "responses from a closed set (generation)",
}
_GENERATION = ("generation", "closed generation")


def choose_metrics(
    glue: Glue | None, problem: str, metric: str | None, *, closed: bool = False
) -> tuple[str, ...]:
    """GLUE's metrics for its task, else the usual ones for the ``problem`` type
    (classification, regression, tagging, extractive-qa or generation); an explicit ``metric``
    goes first. ``closed``, for generation only: the training responses form a closed label
    set, so accuracy (the share answering the right label) fits as well."""
    if problem == "generation" and closed:
        problem = "closed generation"
    fits, defaults = _FITTING[problem], _DEFAULTS[problem]
    if glue and glue.metrics[0] in fits:
        defaults = glue.metrics
    if metric is None:
        return defaults
    if metric not in METRICS:
        choices = fits if problem in _GENERATION else METRICS
        raise BadData(f"unknown metric {metric!r}; use one of {', '.join(choices)}")
    if metric not in fits:
        raise BadData(
            f"metric {metric!r} does not fit this task, whose labels are {_LABELS_ARE[problem]}; "
            f"use one of {', '.join(fits)}"
        )
    return (metric, *(m for m in defaults if m != metric))
