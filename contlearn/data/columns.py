"""Choosing a task's text and label columns: given, from the GLUE task, or inferred from the
usual names.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from ..errors import BadData
from .glue import Glue
from .messages import listing, show
from .tables import Table

# Inference: known text pairs win over single text columns; names compare case-insensitively.
_TEXT_PAIRS = (
    ("sentence1", "sentence2"),
    ("question", "sentence"),
    ("question1", "question2"),
    ("premise", "hypothesis"),
    ("#1 string", "#2 string"),
)


# GLUE's pair tasks keep their own column names (MRPC: "#1 String", "#2 String"); a row to label
# may also name the pair sentence1/sentence2, as RTE, MNLI and most copies of GLUE do.
PAIR_ALIASES = ("sentence1", "sentence2")


_TEXT_SINGLES = ("sentence", "text", "question", "review", "content", "document")


_LABEL_NAMES = (
    "label",
    "labels",
    "gold_label",
    "score",
    "quality",
    "is_duplicate",
    "target",
    "class",
    "category",
    "sentiment",
)


def choose_fields(
    table: Table,
    glue: Glue | None,
    text_fields: Sequence[str] | str | None,
    label_field: str | None,
) -> tuple[tuple[str, ...], str]:
    texts = given_fields(text_fields)
    texts = texts or (glue.text_fields if glue else _infer_texts(table))
    label = label_field or (glue.label_field if glue else _infer_label(table))
    if label in texts:
        raise BadData(f"column {label!r} cannot be both a text field and the label field")
    return texts, label


def given_fields(text_fields: Sequence[str] | str | None) -> tuple[str, ...] | None:
    if text_fields is None:
        return None
    if isinstance(text_fields, str):  # "a,b" as typed after --text-fields
        text_fields = text_fields.split(",")
    fields = tuple(f.strip() for f in text_fields)
    if not fields or not all(fields):
        raise BadData(f"text fields {fields!r} must name columns; pass --text-fields a,b")
    return fields


def _infer_texts(table: Table) -> tuple[str, ...]:
    by_name = by_lower_name(table.columns)
    options = [
        (x, y) for a, b in _TEXT_PAIRS for x in by_name.get(a, []) for y in by_name.get(b, [])
    ]
    options = options or [(x,) for n in _TEXT_SINGLES for x in by_name.get(n, [])]
    if len(options) != 1:
        raise BadData(
            f"cannot tell which column(s) hold the text in {table.file} "
            f"({_candidates(options)}); columns are {listing(table.columns)}: "
            "pass --text-fields a,b"
        )
    return options[0]


def _infer_label(table: Table) -> str:
    by_name = by_lower_name(table.columns)
    options = [x for n in _LABEL_NAMES for x in by_name.get(n, [])]
    if len(options) != 1:
        raise BadData(
            f"cannot tell which column holds the label in {table.file} "
            f"({_candidates(options)}); columns are {listing(table.columns)}: "
            "pass --label-field L"
        )
    return options[0]


def by_lower_name(columns: Sequence[str]) -> dict[str, list[str]]:
    """Each lower-cased column name -> the columns of that name, for case-insensitive lookup."""
    by_name: dict[str, list[str]] = {}
    for column in columns:
        by_name.setdefault(column.lower(), []).append(column)
    return by_name


def _candidates(options: Sequence[Any]) -> str:
    if not options:
        return "no column has a usual name"
    return f"several fit: {listing([str(o) for o in options])}"


def text_aliases(glue_task: str | None, text_fields: Sequence[str]) -> dict[str, str]:
    """The other name a row to label may give each of a GLUE pair task's text fields."""
    if glue_task is None or len(text_fields) != 2:
        return {}
    return {f: a for f, a in zip(text_fields, PAIR_ALIASES, strict=True) if f != a}


def text_value(row: dict[str, Any], field: str, aliases: dict[str, str]) -> tuple[str, Any]:
    """The name under which ``row`` holds ``field`` (its own name first, else its alias) and
    the value there; the name is ``field`` and the value None when it holds neither."""
    for name in (field, aliases.get(field)):
        if name is not None and name in row:
            return name, row[name]
    return field, None


def require_columns(table: Table, fields: Sequence[str]) -> None:
    missing = [f for f in fields if f not in table.columns]
    if missing:
        raise BadData(
            f"{table.file} has no column {show(missing[0])}; columns are "
            f"{listing(table.columns)}: pass --text-fields a,b / --label-field L that exist"
        )


def require_unique(name: str, columns: Sequence[str]) -> None:
    twice = [c for c, n in Counter(columns).items() if n > 1]
    if twice:
        raise BadData(f"{name} has the column {show(twice[0])} twice; rename one of them")
