"""Generation data (instruction tuning: a prompt in, a free-text response out): recognising its
layout, reading each row's prompt as a conversation and its response, and the closed label set.

A table (any format the folder readers take: jsonl, json, csv, tsv, parquet, a ``datasets``
folder) holds one of three layouts, its column names compared case-insensitively:

- ``prompt`` + ``response`` (or ``completion`` or ``output``): the prompt is the user's turn;
- Alpaca's ``instruction`` + optional ``input`` + ``output``: the prompt is the instruction, then
  two newlines and the input when the input is not empty (the Alpaca data's convention);
- chat: a ``messages`` column holding a list of ``{"role", "content"}`` turns per row (so not
  csv or tsv), roles among system, user and assistant; one system turn may come first, then
  user and assistant turns alternate, and the last turn, the assistant's, is the response.

``--text-fields`` / ``--label-field`` name other columns for the prompt and the response (a
column of turns given as the prompt reads as chat). Each row's prompt becomes a flattened
conversation ``(role1, content1, role2, content2, ...)`` that ends with a user turn, and its
label the response, stripped of surrounding whitespace. When the training responses take at
most 20 distinct values of at most 5 words each (``rules``; a sentiment, a topic name), they
form a closed label set and accuracy scores the task as well; a dev response outside that set
is allowed (it scores as wrong) and logged. :func:`conversation_prompt` and
:func:`alpaca_prompt` give the same prompts for rows to answer, which have no response.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import BadData
from . import rules
from .columns import by_lower_name, given_fields
from .labels import read_texts
from .messages import listing, show
from .tables import Table

log = logging.getLogger(__name__)

GENERATION = "generation"
ROLES = ("system", "user", "assistant")
_RESPONSE_NAMES = ("response", "completion", "output")
LAYOUTS = (
    "prompt + response (or completion / output) columns, Alpaca's instruction + optional "
    "input + output, or a messages column of {role, content} turns"
)
Turns = tuple[str, ...]  # a flattened conversation: role1, content1, role2, content2, ...


@dataclass(frozen=True)
class Layout:
    """Where a table holds each row's prompt and response. ``name``: "prompt" (a prompt column
    and a response column), "alpaca" (``prompt`` is the instruction column, ``input`` the
    optional input column) or "chat" (``prompt`` and ``response`` are both the turns column)."""

    name: str
    prompt: str
    response: str
    input: str | None = None

    @property
    def text_fields(self) -> tuple[str, ...]:
        return ("prompt",) if self.name == "alpaca" else (self.prompt,)

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns every split must have (Alpaca's input may be left out)."""
        return tuple(dict.fromkeys((self.prompt, self.response)))


def is_generation(table: Table, text_fields: Any, label_field: str | None) -> bool:
    """Whether the training ``table`` holds generation data: its columns fit a layout (a chat
    column holding lists), and the fields given, if any, are that layout's."""
    layout = _inferred_layout(table, label_field)
    if layout is None or not _agrees(layout, given_fields(text_fields), label_field):
        return False
    return layout.name != "chat" or _holds_lists(table, layout.prompt)


def generation_layout(table: Table, text_fields: Any, label_field: str | None) -> Layout:
    """The layout of the training ``table``: inferred from the column names, or the given
    columns (a prompt column, or a column of turns, and a response column)."""
    given = given_fields(text_fields)
    inferred = _inferred_layout(table, label_field)
    if inferred is not None and _agrees(inferred, given, label_field):
        return _distinct(inferred)
    if given is not None and len(given) != 1:
        raise BadData(
            f"a generation task reads one prompt column, not {len(given)} ({listing(given)}); "
            "pass --text-fields P"
        )
    prompt = given[0] if given else _named(table, "prompt")
    if prompt is not None and prompt in table.columns and _holds_lists(table, prompt):
        if label_field not in (None, prompt):
            raise BadData(
                f"column {prompt!r} of {table.file} holds conversations, whose last turn is the "
                "response; leave out --label-field"
            )
        return Layout("chat", prompt, prompt)
    response = label_field or _response_column(table)
    if prompt is None or response is None:
        raise BadData(
            f"{table.file} fits no generation layout (columns are {listing(table.columns)}); "
            f"write {LAYOUTS}, or pass --text-fields P --label-field R"
        )
    return _distinct(Layout("prompt", prompt, response))


def _distinct(layout: Layout) -> Layout:
    if layout.name != "chat" and layout.prompt == layout.response:
        raise BadData(
            f"column {layout.prompt!r} cannot be both the prompt and the response; pass "
            "--label-field R naming the response column"
        )
    return layout


def require_layout(table: Table, layout: Layout) -> None:
    """Refuse a split that lacks one of ``layout``'s columns, naming what it holds."""
    roles = {
        "chat": (("the conversations", "--text-fields C"),),
        "alpaca": (
            ("Alpaca's instruction", "--text-fields P"),
            ("the response", "--label-field R"),
        ),
        "prompt": (("the prompt", "--text-fields P"), ("the response", "--label-field R")),
    }[layout.name]
    for column, (what, option) in zip(layout.columns, roles, strict=True):
        if column not in table.columns:
            raise BadData(
                f"{table.file} has no column {column!r} ({what}); columns are "
                f"{listing(table.columns)}: add it, or name the column with {option}"
            )


def _agrees(layout: Layout, given: tuple[str, ...] | None, label_field: str | None) -> bool:
    """Whether the fields given (as a task records them, or typed) are ``layout``'s own
    (Alpaca's instruction column named as the prompt still reads with its input)."""
    prompts = (None, layout.text_fields, (layout.prompt,))
    return given in prompts and label_field in (None, layout.response)


def _inferred_layout(table: Table, label_field: str | None) -> Layout | None:
    """The layout the column names show (with the response column given, if it is), or None."""
    messages = _named(table, "messages")
    if messages is not None:
        return Layout("chat", messages, messages)
    prompt = _named(table, "prompt")
    if prompt is not None:
        response = label_field or _response_column(table)
        return Layout("prompt", prompt, response) if response is not None else None
    instruction, output = _named(table, "instruction"), label_field or _named(table, "output")
    if instruction is not None and output is not None:
        return Layout("alpaca", instruction, output, _named(table, "input"))
    return None


def _named(table: Table, name: str) -> str | None:
    """The column called ``name`` whatever its case, or None; two such columns are refused."""
    found = by_lower_name(table.columns).get(name, [])
    if len(found) > 1:
        raise BadData(f"{table.file} has the columns {listing(found)}; rename all but one")
    return found[0] if found else None


def _response_column(table: Table) -> str | None:
    found = [c for n in _RESPONSE_NAMES if (c := _named(table, n)) is not None]
    if len(found) > 1:
        raise BadData(
            f"{table.file} has several response columns ({listing(found)}); pass --label-field "
            "to say which holds the response"
        )
    return found[0] if found else None


def _holds_lists(table: Table, field: str) -> bool:
    first = next((v for v in table.column(field) if v is not None), None)
    return isinstance(first, (list, tuple))


def read_generation(table: Table, layout: Layout) -> tuple[tuple[Turns, ...], tuple[str, ...]]:
    """Each row's prompt, as a flattened conversation ending with a user turn, and response."""
    if layout.name == "chat":
        turns = table.column(layout.prompt)
        rows = [_chat_row(table, i, value, layout.prompt) for i, value in enumerate(turns)]
        return tuple(p for p, _ in rows), tuple(r for _, r in rows)
    if _holds_lists(table, layout.prompt):
        raise BadData(
            f"{table.file}: column {layout.prompt!r} holds lists, not prompt text; write a "
            "conversation as a messages column of {role, content} turns ending with the "
            "assistant's reply"
        )
    pairs = read_texts(table, (layout.prompt, layout.response))
    prompts = [p for p, _ in pairs]
    if layout.input is not None and layout.input in table.columns:
        inputs = table.column(layout.input)
        prompts = [_with_input(table, i, p, inputs[i], layout.input) for i, p in enumerate(prompts)]
    return tuple(("user", p) for p in prompts), tuple(r.strip() for _, r in pairs)


def _with_input(table: Table, i: int, instruction: str, value: Any, field: str) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
        value = str(value)
    if value is None or (isinstance(value, float) and value != value):  # a hole (NaN) in a table
        return instruction
    if not isinstance(value, str):
        raise BadData(
            f"{table.where(i)}: column {field!r} holds a {type(value).__name__}, not text; "
            "write the input as text, or leave it empty"
        )
    return alpaca_prompt(instruction, value)


def alpaca_prompt(instruction: str, input: str | None) -> str:
    """Alpaca's prompt: the instruction, then a blank line and the input when there is one."""
    return f"{instruction}\n\n{input}" if input and input.strip() else instruction


def _chat_row(table: Table, i: int, value: Any, field: str) -> tuple[Turns, str]:
    where = table.where(i)
    turns = _turns(where, value, field)
    _check_order(where, [role for role, _ in turns], "assistant")
    return tuple(part for turn in turns[:-1] for part in turn), turns[-1][1].strip()


def conversation_prompt(value: Any, where: str, field: str = "messages") -> Turns:
    """A prompt given as a list of ``{role, content}`` turns (a row to answer, as ``predict``
    or a server gets it), checked and flattened: one system turn may come first, then user and
    assistant turns alternate, ending with the user's. ``where`` names the row in messages."""
    turns = _turns(where, value, field)
    _check_order(where, [role for role, _ in turns], "user")
    return tuple(part for turn in turns for part in turn)


def _turns(where: str, value: Any, field: str) -> list[tuple[str, str]]:
    if not isinstance(value, (list, tuple)):
        raise BadData(
            f"{where}: column {field!r} holds {show(value)}, not a list of {{role, content}} "
            "turns; write chat data as jsonl, json, parquet or a datasets folder"
        )
    if not value:
        raise BadData(f"{where}: an empty conversation in column {field!r}; drop the row")
    last = len(value) - 1
    return [_turn(f"{where} turn {j + 1}", turn, j == last) for j, turn in enumerate(value)]


def _turn(where: str, turn: Any, last: bool) -> tuple[str, str]:
    role = turn.get("role") if isinstance(turn, dict) else None
    content = turn.get("content") if isinstance(turn, dict) else None
    if not isinstance(role, str) or not isinstance(content, str):
        raise BadData(
            f"{where}: {show(turn)} is not a {{role, content}} turn; write each turn as "
            '{"role": "user", "content": "..."}'
        )
    if role not in ROLES:
        raise BadData(f"{where}: unknown role {show(role)}; use {', '.join(ROLES)}")
    if not content.strip():
        what = "response" if last and role == "assistant" else f"{role} message"
        raise BadData(f"{where}: empty {what}; write it or drop the row")
    return role, content


def _check_order(where: str, roles: Sequence[str], last: str) -> None:
    """One system turn may come first; then user and assistant turns alternate, from a user
    turn to a ``last`` one (the assistant's reply to learn, or the user's message of a prompt):
    what chat templates accept."""
    if "system" in roles[1:]:
        turn = roles.index("system", 1) + 1
        raise BadData(f"{where} turn {turn}: a system turn after the first; put it first, once")
    if roles[-1] != last:
        fix = (
            "end it with the assistant's reply (the response to learn)"
            if last == "assistant"
            else "a prompt ends with the user's message, which the model answers"
        )
        raise BadData(
            f"{where}: the conversation ends with the {roles[-1]}'s turn, not the {last}'s; {fix}"
        )
    if "user" not in roles:
        raise BadData(f"{where}: no user turn; add the user's message before the assistant's")
    start = 1 if roles[0] == "system" else 0
    for j, role in enumerate(roles[start:], start):
        expected = ("user", "assistant")[(j - start) % 2]
        if role != expected:
            problem = f"two {role} turns in a row" if j > start else f"a first {role} turn"
            raise BadData(
                f"{where} turn {j + 1}: {problem}; user and assistant turns alternate, from "
                "the user's"
            )


def closed_labels(responses: Sequence[str]) -> tuple[str, ...] | None:
    """The sorted distinct training responses when they form a closed label set (at most
    ``rules.MAX_CLOSED_LABELS`` of them, each of at most ``rules.MAX_LABEL_WORDS`` words), else
    None."""
    distinct = set(responses)
    if len(distinct) > rules.MAX_CLOSED_LABELS:
        return None
    if any(len(r.split()) > rules.MAX_LABEL_WORDS for r in distinct):
        return None
    return tuple(sorted(distinct))


def note_unseen_responses(table: Table, responses: Sequence[str], labels: Sequence[str]) -> None:
    """Log dev responses outside the closed label set: allowed (no prediction can name them, so
    they score as wrong), but not silently."""
    known = set(labels)
    unseen = [i for i, r in enumerate(responses) if r not in known]
    if unseen:
        log.warning(
            "%s: %d of %d responses are outside the training responses' label set (%s), "
            "first at %s: %s; they score as wrong",
            table.file,
            len(unseen),
            len(responses),
            listing(labels),
            table.where(unseen[0]),
            show(responses[unseen[0]]),
        )
