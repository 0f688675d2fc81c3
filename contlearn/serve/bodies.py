"""Request bodies, read and checked before anything is queued: JSON within the size limit,
rows within the row limit, each row holding its task's text fields as non-empty strings within
the text limit. Every refusal is a :class:`~contlearn.errors.BadRequest` naming the field or
the limit; a request's names (of tasks, of fields) are only ever looked up, never used as paths.
"""

from __future__ import annotations

import json
from typing import Any

from ..data.columns import text_value
from ..errors import BadRequest
from ..naming import AUTO
from .catalog import ServedTask, Snapshot
from .config import ServeConfig
from .worker import TASK_KEY

SHOWN_NAME = 64  # at most this many characters of a name a request sent come back in a message


def parse_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object (400 when it is not one), read as UTF-8 (RFC 8259). The
    message says what is wrong with the body, never what Python said about it."""
    try:
        doc = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"the body is not UTF-8 (byte {exc.start}): send JSON encoded as UTF-8", status=400
        ) from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise BadRequest(f"the body is not valid JSON: {exc.msg} at {where}", status=400) from None
    except RecursionError:
        raise BadRequest(
            "the body nests JSON too deeply: send a flat list of row objects", status=400
        ) from None
    except ValueError:  # an integer of more digits than Python converts
        raise BadRequest("the body holds a number too long to read", status=400) from None
    if not isinstance(doc, dict):
        raise BadRequest(f"the body is a JSON {kind_name(doc)}, not an object", status=400)
    return doc


def task_rows(doc: dict[str, Any], task: ServedTask, config: ServeConfig) -> list[dict[str, Any]]:
    """The rows of ``{"inputs": [...]}`` for one task."""
    inputs = _list(doc, "inputs", config)
    return [_row(item, f"inputs[{i}]", task, config) for i, item in enumerate(inputs)]


def mixed_rows(
    doc: dict[str, Any], snapshot: Snapshot, config: ServeConfig
) -> list[dict[str, Any]]:
    """The rows of ``{"items": [{"task": ..., ...}, ...]}``, each naming its task."""
    items = _list(doc, "items", config)
    rows = []
    for i, item in enumerate(items):
        where = f"items[{i}]"
        _require_object(item, where)
        name = item.get("task", AUTO)
        if name == AUTO:  # no task named: routing chooses it
            rows.append(auto_row(item, where, snapshot, config))
            continue
        if not isinstance(name, str) or not name:
            raise BadRequest(
                f"{where}.task: name the item's task (a string)", field=f"{where}.task"
            )
        require_unicode(name, f"{where}.task")
        rows.append(_row(item, where, served_task(snapshot, name, f"{where}.task"), config))
    return rows


def auto_rows(doc: dict[str, Any], snapshot: Snapshot, config: ServeConfig) -> list[dict]:
    """The rows of ``{"inputs": [...]}`` whose task routing chooses."""
    inputs = _list(doc, "inputs", config)
    return [auto_row(item, f"inputs[{i}]", snapshot, config) for i, item in enumerate(inputs)]


def auto_row(item: Any, where: str, snapshot: Snapshot, config: ServeConfig) -> dict[str, Any]:
    """A queued row whose task routing chooses: every text field of a served task the item
    holds (at least one task's), its id when given."""
    _require_object(item, where)
    row: dict[str, Any] = {TASK_KEY: AUTO}
    for task in snapshot.served.values():
        for name in task.text_fields:
            given, _ = text_value(item, name, task.aliases)
            if given in item and given not in row:
                row[given] = _text(item, given, f"{where}.{given}", task, config)
    if len(row) == 1:
        fields = sorted({f for t in snapshot.served.values() for f in t.text_fields})
        raise BadRequest(
            f"{where} holds no text field of a served task (they read "
            f"{', '.join(fields) or 'nothing: no task is served'}): name the item's task "
            "in 'task' or give one of those fields",
            field=where,
        )
    return _with_id(item, where, row)


def served_task(snapshot: Snapshot, name: str, where: str = "task") -> ServedTask:
    """The served task ``name``; 404 when no such task is served, 503 when it was refused."""
    task = snapshot.served.get(name)
    if task is not None:
        return task
    shown = short(name, SHOWN_NAME)
    if name in snapshot.refused:
        raise BadRequest(
            f"task {shown!r} is not served: its artifact does not match the ledger's sha256 "
            "(the server log says which file); restore it or retrain the task",
            status=503,
            field=where,
        )
    if name in snapshot.untrained:
        state = snapshot.untrained[name]
        raise BadRequest(
            f"task {shown!r} is {state}, not trained: it is served once it is trained",
            status=404,
            field=where,
        )
    raise BadRequest(
        f"no task {shown!r} is served: GET /v1/tasks lists the tasks", status=404, field=where
    )


def _list(doc: dict[str, Any], key: str, config: ServeConfig) -> list[Any]:
    if key not in doc:
        raise BadRequest(f"the body has no {key!r}: send {{{key!r}: [...]}}", field=key)
    value = doc[key]
    if not isinstance(value, list):
        raise BadRequest(f"{key} must be a list, not a {kind_name(value)}", field=key)
    if len(value) > config.max_rows:
        raise BadRequest(
            f"{key} holds {len(value)} rows; max_rows is {config.max_rows} per request: "
            "send them in several requests",
            field=key,
            limit="max_rows",
            allowed=config.max_rows,
        )
    return value


def _row(item: Any, where: str, task: ServedTask, config: ServeConfig) -> dict[str, Any]:
    """The queued row: the task's text fields, its id when given, and its task."""
    _require_object(item, where)
    row: dict[str, Any] = {TASK_KEY: task.name}
    for name in task.text_fields:  # a GLUE pair's fields also as sentence1/sentence2
        given, _ = text_value(item, name, task.aliases)
        row[name] = _text(item, given, f"{where}.{given}", task, config)
    return _with_id(item, where, row)


def _with_id(item: dict[str, Any], where: str, row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with the item's id when it has one (a string or an integer)."""
    if "id" in item:
        if not isinstance(item["id"], str | int) or isinstance(item["id"], bool):
            raise BadRequest(f"{where}.id must be a string or an integer", field=f"{where}.id")
        if isinstance(item["id"], str):
            require_unicode(item["id"], f"{where}.id")
        row["id"] = item["id"]
    return row


def _text(item: dict, name: str, where: str, task: ServedTask, config: ServeConfig) -> str:
    if name not in item:
        fields = ", ".join(task.text_fields)
        fields += f" (or {', '.join(task.aliases.values())})" if task.aliases else ""
        raise BadRequest(f"{where} is missing: task {task.name!r} reads {fields}", field=where)
    value = item[name]
    if not isinstance(value, str):
        raise BadRequest(f"{where} must be a string, not a {kind_name(value)}", field=where)
    if not value.strip():
        raise BadRequest(f"{where} is empty: give the text to label", field=where)
    require_unicode(value, where)
    if len(value) > config.max_text_chars:
        raise BadRequest(
            f"{where} holds {len(value)} characters; max_text_chars is {config.max_text_chars}",
            field=where,
            limit="max_text_chars",
            allowed=config.max_text_chars,
        )
    return value


def _require_object(item: Any, where: str) -> None:
    if not isinstance(item, dict):
        raise BadRequest(f"{where} must be an object, not a {kind_name(item)}", field=where)


def require_unicode(value: str, where: str) -> None:
    """Refuse a lone UTF-16 surrogate (``"\\ud800"`` in JSON): no tokenizer reads it and no
    answer could carry it back."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = f"U+{ord(value[exc.start]):04X}"
        raise BadRequest(
            f"{where} holds a lone UTF-16 surrogate ({code} at character {exc.start}): "
            "send valid Unicode text",
            field=where,
        ) from None


def kind_name(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
