"""A request's rows as a task reads them: each row's text fields, checked, in the task's order
(shared by ``predict`` and ``route``)."""

from __future__ import annotations

from typing import Any

from ..data.columns import text_aliases, text_value
from ..errors import BadData
from ..kinds import kind_of
from ..ledger.records import TaskRecord


def row_texts(row: Any, i: int, task: TaskRecord) -> tuple[str, ...]:
    """The row's text fields, in the task's order (a GLUE pair also as sentence1/sentence2);
    every one a non-empty string."""
    require_mapping(row, i)
    aliases = text_aliases(task.glue_task, task.text_fields)
    texts = []
    for field in task.text_fields:
        name, value = text_value(row, field, aliases)
        if name not in row:
            also = f" (or {aliases[field]!r})" if field in aliases else ""
            raise BadData(
                f"row {i + 1} has no column {field!r}{also} (task {task.name!r} reads "
                f"{', '.join(task.text_fields)}); the input's columns are "
                f"{', '.join(map(str, row)) or 'none'}: rename the column to {field!r}{also}"
            )
        if value is None or (isinstance(value, str) and not value.strip()):
            raise BadData(
                f"row {i + 1}: no text in field {name!r} (task {task.name!r} reads "
                f"{', '.join(task.text_fields)}); fill it in or drop the row"
            )
        if not isinstance(value, str):
            texts += _structured(task, value, i, name)
            continue
        texts.append(value)
    return tuple(texts)


def _structured(task: TaskRecord, value: Any, i: int, name: str) -> tuple[str, ...]:
    """A prompt a task that generates text is given as chat turns (a list of ``{role,
    content}`` ending with the user's): the flattened conversation; any other non-text value
    is refused."""
    from ..data.generation import conversation_prompt

    if kind_of(task).generates and isinstance(value, (list, tuple)):
        return conversation_prompt(value, f"row {i + 1}", name)
    raise BadData(
        f"row {i + 1}: field {name!r} holds a {type(value).__name__}, not text; "
        "pass the text as a string"
    )


def require_mapping(row: Any, i: int) -> None:
    if not isinstance(row, dict):
        raise BadData(f"row {i + 1} is a {type(row).__name__}, not an object with named fields")
