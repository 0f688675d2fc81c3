"""Generation request bodies, read and checked before anything is queued: the task (a served
generation task), the prompts (a prompt string, a list of them, or chat messages), and the
decoding settings. Every refusal is a :class:`~contlearn.errors.BadRequest` (400 unless said
otherwise) naming the field, and the limit when there is one.

Settings, as OpenAI names them: ``max_tokens`` (``max_completion_tokens`` too; default the
task's recorded max new tokens, cut to the server's ``max_tokens``; more than that is
refused), ``temperature`` (>= 0; default 0, greedy, unlike OpenAI's 1: a task's canonical
answers are greedy), ``top_p`` in (0, 1], ``seed`` (an integer: sampling is then
reproducible), ``stream``; ``n`` must be 1 and ``stop`` absent (neither is supported); other
OpenAI fields are ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..data.generation import conversation_prompt
from ..errors import BadData, BadRequest, ConfigError
from ..ops.generate import Prompt, Sampling
from .bodies import SHOWN_NAME, kind_name, require_unicode, served_task, short
from .catalog import ServedTask, Snapshot
from .config import ServeConfig

SEEDS = (-(2**63), 2**64 - 1)  # what a torch generator takes
ROLE_ALIASES = {"developer": "system"}  # OpenAI's newer name for the system turn


@dataclass(frozen=True)
class GenerationRequest:
    """A checked generation request: its task, its prompts (answered in order) and settings."""

    task: str
    prompts: tuple[Prompt, ...]
    sampling: Sampling
    stream: bool = False
    include_usage: bool = False  # OpenAI's stream_options.include_usage


def native(
    doc: dict[str, Any], name: str, snapshot: Snapshot, config: ServeConfig
) -> GenerationRequest:
    """``POST /v1/tasks/{task}/generate``: ``{"prompt": str}`` or ``{"messages": [...]}``."""
    task = generation_task(snapshot, name, "task")
    if ("prompt" in doc) == ("messages" in doc):
        raise _bad(
            "give either 'prompt' (a string) or 'messages' (a list of {role, content} turns)",
            field="prompt",
        )
    if "messages" in doc:
        prompt: Prompt = messages_prompt(doc["messages"], config)
    else:
        prompt = text(doc["prompt"], "prompt", config)
    return _request(doc, task, (prompt,), config)


def chat(doc: dict[str, Any], snapshot: Snapshot, config: ServeConfig) -> GenerationRequest:
    """``POST /v1/chat/completions``: ``{"model": TASK, "messages": [...]}``."""
    task = generation_task(snapshot, model_name(doc), "model")
    if "messages" not in doc:
        raise _bad("the body has no 'messages': send the conversation", field="messages")
    prompt = messages_prompt(doc["messages"], config)
    return _request(doc, task, (prompt,), config)


def completion(doc: dict[str, Any], snapshot: Snapshot, config: ServeConfig) -> GenerationRequest:
    """``POST /v1/completions``: ``{"model": TASK, "prompt": str or [str, ...]}``; each prompt
    is the user's prompt of the task (its chat template applied, as ``contlearn generate``)."""
    task = generation_task(snapshot, model_name(doc), "model")
    if "prompt" not in doc:
        raise _bad("the body has no 'prompt': send a string or a list", field="prompt")
    given = doc["prompt"]
    if isinstance(given, str):
        prompts: tuple[Prompt, ...] = (text(given, "prompt", config),)
    elif isinstance(given, list) and given:
        _at_most_rows(len(given), "prompt", config)
        prompts = tuple(text(p, f"prompt[{i}]", config) for i, p in enumerate(given))
    else:
        raise _bad(
            f"prompt must be a string or a non-empty list of strings, not {_shown(given)}",
            field="prompt",
        )
    return _request(doc, task, prompts, config)


def model_name(doc: dict[str, Any]) -> str:
    name = doc.get("model")
    if not isinstance(name, str) or not name:
        raise _bad("name the task in 'model' (a string): GET /v1/models lists them", field="model")
    require_unicode(name, "model")
    return name


def generation_task(snapshot: Snapshot, name: str, where: str) -> ServedTask:
    """The served task ``name``, refused (400) unless it generates text."""
    task = served_task(snapshot, name, where)
    if not task.generates:
        shown = short(name, SHOWN_NAME)
        raise _bad(
            f"task {shown!r} is a {task.info['kind']} task, which generates no text: "
            f"use POST /v1/tasks/{shown}/predict, or name a generation task",
            field=where,
        )
    return task


def messages_prompt(value: Any, config: ServeConfig) -> tuple[str, ...]:
    """Chat messages as a flattened conversation ending with the user's turn; a message's
    content is a string or a list of OpenAI text parts (joined)."""
    if not isinstance(value, list) or not value:
        raise _bad(
            f"messages must be a non-empty list of {{role, content}} turns, not {_shown(value)}",
            field="messages",
        )
    _at_most_rows(len(value), "messages", config)
    turns = [_turn(turn, f"messages[{i}]", config) for i, turn in enumerate(value)]
    try:
        return conversation_prompt(turns, "messages")
    except BadData as exc:
        raise _bad(str(exc), field="messages") from None


def _turn(turn: Any, where: str, config: ServeConfig) -> Any:
    if not isinstance(turn, dict):
        return turn  # conversation_prompt names what is wrong with it
    role, content = turn.get("role"), turn.get("content")
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        parts = [
            p.get("text") if isinstance(p, dict) and p.get("type") == "text" else None
            for p in content
        ]
        if not parts or any(not isinstance(p, str) for p in parts):
            raise _bad(f"{where}.content: only text parts are read", field=f"{where}.content")
        content = "".join(parts)
    if isinstance(content, str):
        text(content, f"{where}.content", config, empty_ok=True)
    if isinstance(role, str):
        role = ROLE_ALIASES.get(role, role)
    return {"role": role, "content": content}


def text(value: Any, where: str, config: ServeConfig, *, empty_ok: bool = False) -> str:
    """A prompt's text: a non-empty string of valid Unicode within ``max_text_chars``."""
    if not isinstance(value, str):
        raise _bad(f"{where} must be a string, not a {kind_name(value)}", field=where)
    if not empty_ok and not value.strip():
        raise _bad(f"{where} is empty: give the text to answer", field=where)
    require_unicode(value, where)
    if len(value) > config.max_text_chars:
        raise _bad(
            f"{where} holds {len(value)} characters; max_text_chars is {config.max_text_chars}",
            field=where,
            limit="max_text_chars",
            allowed=config.max_text_chars,
        )
    return value


def _request(
    doc: dict[str, Any], task: ServedTask, prompts: tuple[Prompt, ...], config: ServeConfig
) -> GenerationRequest:
    _unsupported(doc)
    stream = _flag(doc, "stream")
    options = doc.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _bad("stream_options must be an object", field="stream_options")
    usage = bool((options or {}).get("include_usage")) and stream
    return GenerationRequest(task.name, prompts, sampling(doc, config), stream, usage)


def sampling(doc: dict[str, Any], config: ServeConfig) -> Sampling:
    """The decoding settings of ``doc``, each checked (absent or null: the default)."""
    tokens = _max_tokens(doc, config)
    temperature = _number(doc, "temperature", 0.0)
    if temperature < 0:
        raise _bad(f"temperature must be >= 0 (0: greedy), got {temperature}", field="temperature")
    top_p = _number(doc, "top_p", 1.0)
    if not 0 < top_p <= 1:
        raise _bad(f"top_p must be in (0, 1], got {top_p}", field="top_p")
    seed = doc.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise _bad(f"seed must be an integer, not a {kind_name(seed)}", field="seed")
    if seed is not None and not SEEDS[0] <= seed <= SEEDS[1]:
        raise _bad(f"seed must be {SEEDS[0]} to {SEEDS[1]}", field="seed")
    try:
        return Sampling(tokens, temperature, top_p, seed)
    except ConfigError as exc:  # checked above; kept so that no setting reaches a 500
        raise _bad(str(exc)) from None


def _max_tokens(doc: dict[str, Any], config: ServeConfig) -> int | None:
    key = "max_completion_tokens" if doc.get("max_completion_tokens") is not None else "max_tokens"
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _bad(f"{key} must be an integer >= 1, got {_shown(value)}", field=key)
    if value > config.max_tokens:
        raise _bad(
            f"{key} is {value}; this server's max_tokens is {config.max_tokens}: ask for fewer",
            field=key,
            limit="max_tokens",
            allowed=config.max_tokens,
        )
    return value


def _number(doc: dict[str, Any], key: str, default: float) -> float:
    value = doc.get(key)
    if value is None:
        return default
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _bad(f"{key} must be a number, not {_shown(value)}", field=key)
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        number = math.inf
    if not math.isfinite(number):
        raise _bad(f"{key} must be a finite number, got {_shown(value)}", field=key)
    return number


def _flag(doc: dict[str, Any], key: str) -> bool:
    value = doc.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _bad(f"{key} must be true or false, not {_shown(value)}", field=key)
    return value


def _unsupported(doc: dict[str, Any]) -> None:
    if doc.get("n") not in (None, 1):
        raise _bad("n must be 1: one answer per prompt is generated", field="n")
    if doc.get("stop") not in (None, [], ""):
        raise _bad(
            "stop sequences are not supported: the task stops at its end-of-turn token",
            field="stop",
        )


def _at_most_rows(count: int, where: str, config: ServeConfig) -> None:
    if count > config.max_rows:
        raise _bad(
            f"{where} holds {count} items; max_rows is {config.max_rows} per request",
            field=where,
            limit="max_rows",
            allowed=config.max_rows,
        )


def _bad(message: str, **details: Any) -> BadRequest:
    """A refusal of what the request sent: 400, as OpenAI answers."""
    return BadRequest(message, status=400, **details)


def _shown(value: Any) -> str:
    return (
        f"a {kind_name(value)}"
        if isinstance(value, dict | list)
        else short(repr(value), SHOWN_NAME)
    )
