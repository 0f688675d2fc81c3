"""OpenAI's response shapes, built from answers: a chat completion and its chunks, a text
completion and its chunks, the model list, an error; and server-sent events framing.

As multi-LoRA servers (vLLM, LoRAX) do, ``model`` names the task. ``usage`` counts the
prompt's tokens as the model read them and the generated ones (a stop token included).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

from ..errors import BadRequest
from ..ops.generate import Answer

OWNER = "contlearn"
DONE = b"data: [DONE]\n\n"
ERROR_TYPES = {401: "authentication_error", 503: "server_error", 500: "server_error"}


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


def event(doc: dict[str, Any]) -> bytes:
    """One server-sent event carrying ``doc`` as JSON."""
    return b"data: " + json.dumps(doc, separators=(",", ":")).encode() + b"\n\n"


def usage(answers: Sequence[Answer]) -> dict[str, int]:
    prompt = sum(a.prompt_tokens for a in answers)
    made = sum(a.tokens for a in answers)
    return {"prompt_tokens": prompt, "completion_tokens": made, "total_tokens": prompt + made}


def chat_completion(ident: str, created: int, model: str, answer: Answer) -> dict[str, Any]:
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": answer.text},
        "logprobs": None,
        "finish_reason": answer.finish_reason,
    }
    return {
        "id": ident,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": usage([answer]),
    }


def chat_chunk(
    ident: str, created: int, model: str, delta: dict[str, str], finish: str | None = None
) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [choice],
    }


def text_completion(
    ident: str, created: int, model: str, answers: Sequence[Answer]
) -> dict[str, Any]:
    choices = [_text_choice(i, a.text, a.finish_reason) for i, a in enumerate(answers)]
    return {
        "id": ident,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage(answers),
    }


def text_chunk(
    ident: str, created: int, model: str, index: int, text: str, finish: str | None = None
) -> dict[str, Any]:
    return {
        "id": ident,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [_text_choice(index, text, finish)],
    }


def usage_chunk(ident: str, created: int, model: str, obj: str, answers: Sequence[Answer]) -> dict:
    """The last chunk when ``stream_options.include_usage``: no choices, the usage."""
    return {
        "id": ident,
        "object": obj,
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage(answers),
    }


def models(names: Sequence[str], created: dict[str, int]) -> dict[str, Any]:
    """``GET /v1/models``: each generation task as a model."""
    data = [
        {"id": name, "object": "model", "created": created.get(name, 0), "owned_by": OWNER}
        for name in names
    ]
    return {"object": "list", "data": data}


def error(exc: BadRequest) -> dict[str, Any]:
    """OpenAI's error body for a refusal."""
    status = exc.status
    code = exc.limit or ("model_not_found" if status == 404 and exc.field == "model" else None)
    return {
        "error": {
            "message": str(exc),
            "type": ERROR_TYPES.get(status, "invalid_request_error"),
            "param": exc.field,
            "code": code,
        }
    }


def _text_choice(index: int, text: str, finish: str | None) -> dict[str, Any]:
    return {"index": index, "text": text, "logprobs": None, "finish_reason": finish}
