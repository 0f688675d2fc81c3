"""The generation endpoints: a generation task's answers, whole or streamed as server-sent
events, through the model's thread (each request a job of its own between the batches).

POST /v1/tasks/{task}/generate  {"prompt": str | "messages": [...], settings}
POST /v1/chat/completions       OpenAI's chat completions, ``model`` naming the task
POST /v1/completions            OpenAI's completions, ``prompt`` a string or a list of them
GET  /v1/models                 the generation tasks, in OpenAI's model list

A streamed answer (``"stream": true``) is ``data: {chunk}`` per text piece
(:mod:`contlearn.kinds.pieces` says how tokens become pieces), a last chunk with the finish
reason, then ``data: [DONE]``. The response starts once the first piece is generated (or the
answer ends), so a request refused before any text still gets its status code; a failure after
that is an ``{"error": ...}`` event. A client that goes away stops its generation at the next
piece.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import threading
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from ..errors import BadRequest, ContlearnError
from ..kinds.generation import DEFAULT_MAX_NEW_TOKENS
from ..ops.generate import Answer, answer, generation_task
from . import bodies, generating, openai, reading
from .generating import GenerationRequest
from .worker import TASK_KEY, ModelWorker

CLIENT_CLOSED = 499
END = object()  # the stream's last item: the answers are ready (or failed)
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


# -- the endpoints ----------------------------------------------------------------------------
async def generate_one(request: Request, worker: ModelWorker) -> Response:
    doc = await _doc(request, worker)
    req = generating.native(doc, request.path_params["task"], worker.snapshot, worker.config)
    return await _answer(worker, req, _Native(req.task))


async def chat_completions(request: Request, worker: ModelWorker) -> Response:
    req = generating.chat(await _doc(request, worker), worker.snapshot, worker.config)
    return await _answer(worker, req, _Chat(req.task, req.include_usage))


async def completions(request: Request, worker: ModelWorker) -> Response:
    req = generating.completion(await _doc(request, worker), worker.snapshot, worker.config)
    return await _answer(worker, req, _Text(req.task, req.include_usage))


async def list_models(request: Request, worker: ModelWorker) -> Response:
    served = worker.snapshot.served.values()
    names = sorted(t.name for t in served if t.generates)
    created = {t.name: _created(t.info.get("trained_at")) for t in served}
    return JSONResponse(openai.models(names, created))


async def _doc(request: Request, worker: ModelWorker) -> dict[str, Any]:
    raw = await reading.body(request.receive, request.headers, worker.config)
    return bodies.parse_json(raw)


def _created(stamp: str | None) -> int:
    return int(datetime.fromisoformat(stamp).timestamp()) if stamp else 0


# -- running a request ------------------------------------------------------------------------
async def _answer(worker: ModelWorker, req: GenerationRequest, frames: Any) -> Response:
    if not req.stream:
        answers = await worker.run(_rows(req), _work(req, worker.config.max_tokens, None))
        return JSONResponse(frames.whole(answers))
    stream = _Stream(worker, req)
    try:
        first = await stream.next()
    except BaseException:
        stream.closed.set()
        raise
    return StreamingResponse(
        _events(stream, first, frames), media_type="text/event-stream", headers=STREAM_HEADERS
    )


def _rows(req: GenerationRequest) -> list[dict[str, Any]]:
    """One queued row per prompt: what the queue's bound counts."""
    return [{TASK_KEY: req.task} for _ in req.prompts]


def _work(
    req: GenerationRequest, limit: int, heard: Callable[[int, str], None] | None
) -> Callable[[Any], list[Answer]]:
    """What the model's thread runs: each prompt answered alone, in order; without a
    max_tokens, as many as the task's recorded budget, at most the server's ``limit``."""

    def work(ctx: Any) -> list[Answer]:
        record = generation_task(ctx.ledger, req.task)
        sampling = req.sampling
        if sampling.max_new_tokens is None:
            budget = ctx.task_config(record)["train"].get("max_new_tokens")
            tokens = min(budget or DEFAULT_MAX_NEW_TOKENS, limit)
            sampling = dataclasses.replace(sampling, max_new_tokens=tokens)
        told = (lambda i: None) if heard is None else (lambda i: functools.partial(heard, i))
        return [
            answer(ctx, record, prompt, sampling, told(i)) for i, prompt in enumerate(req.prompts)
        ]

    return work


class _Stream:
    """A request's text pieces ``(prompt index, piece)``, handed from the model's thread to
    the event loop as they are generated; then END, once its answers are ready."""

    def __init__(self, worker: ModelWorker, req: GenerationRequest) -> None:
        loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.closed = threading.Event()  # set when nobody reads on: the generation stops

        def heard(index: int, piece: str) -> None:  # on the model's thread
            if self.closed.is_set():
                raise BadRequest("the client left before its answer", status=CLIENT_CLOSED)
            loop.call_soon_threadsafe(self.queue.put_nowait, (index, piece))

        work = _work(req, worker.config.max_tokens, heard)
        self.task = asyncio.ensure_future(worker.run(_rows(req), work))
        # called after every piece's put (call_soon_threadsafe keeps their order)
        self.task.add_done_callback(lambda _: self.queue.put_nowait(END))

    async def next(self) -> Any:
        """The next piece, or END; raises what stopped the answers."""
        item = await self.queue.get()
        if item is END:
            self.task.result()
        return item

    @property
    def answers(self) -> list[Answer]:
        return self.task.result()


async def _events(stream: _Stream, first: Any, frames: Any) -> AsyncIterator[bytes]:
    """The event stream, from the first item on; nothing read on once the client left."""
    try:
        for doc in frames.start():
            yield openai.event(doc)
        item = first
        while item is not END:
            yield openai.event(frames.piece(*item))
            item = await stream.next()
        for doc in frames.end(stream.answers):
            yield openai.event(doc)
        yield openai.DONE
    except ContlearnError as exc:  # after the status went out: an error event ends the stream
        refusal = exc if isinstance(exc, BadRequest) else BadRequest(str(exc))
        yield openai.event(frames.error(refusal))
    finally:
        stream.closed.set()


# -- the shapes of each endpoint's answers ------------------------------------------------------
class _Native:
    """``/v1/tasks/{task}/generate``: ``{"task", "text", "tokens", "prompt_tokens",
    "finish_reason"}``; streamed, ``{"text": piece}`` events, then one with the rest."""

    def __init__(self, task: str) -> None:
        self.task = task

    def whole(self, answers: list[Answer]) -> dict[str, Any]:
        return {"task": self.task, **_fields(answers[0])}

    def start(self) -> list[dict[str, Any]]:
        return []

    def piece(self, index: int, text: str) -> dict[str, Any]:
        return {"text": text}

    def end(self, answers: list[Answer]) -> list[dict[str, Any]]:
        return [{**_fields(answers[0]), "text": ""}]

    def error(self, exc: BadRequest) -> dict[str, Any]:
        return {"error": str(exc), "status": exc.status}


def _fields(a: Answer) -> dict[str, Any]:
    return {
        "text": a.text,
        "tokens": a.tokens,
        "prompt_tokens": a.prompt_tokens,
        "finish_reason": a.finish_reason,
    }


class _OpenAI:
    """What OpenAI's two shapes share: an id and a creation time per request, its model."""

    def __init__(self, task: str, include_usage: bool, prefix: str) -> None:
        self.model, self.include_usage = task, include_usage
        self.id, self.created = openai.new_id(prefix), openai.now()

    def error(self, exc: BadRequest) -> dict[str, Any]:
        return openai.error(exc)

    def start(self) -> list[dict[str, Any]]:
        return []

    def _usage(self, answers: list[Answer], obj: str) -> list[dict[str, Any]]:
        if not self.include_usage:
            return []
        return [openai.usage_chunk(self.id, self.created, self.model, obj, answers)]


class _Chat(_OpenAI):
    def __init__(self, task: str, include_usage: bool) -> None:
        super().__init__(task, include_usage, "chatcmpl")

    def whole(self, answers: list[Answer]) -> dict[str, Any]:
        return openai.chat_completion(self.id, self.created, self.model, answers[0])

    def start(self) -> list[dict[str, Any]]:
        return [self._chunk({"role": "assistant", "content": ""})]

    def piece(self, index: int, text: str) -> dict[str, Any]:
        return self._chunk({"content": text})

    def end(self, answers: list[Answer]) -> list[dict[str, Any]]:
        last = [self._chunk({}, answers[0].finish_reason)]
        return last + self._usage(answers, "chat.completion.chunk")

    def _chunk(self, delta: dict[str, str], finish: str | None = None) -> dict[str, Any]:
        return openai.chat_chunk(self.id, self.created, self.model, delta, finish)


class _Text(_OpenAI):
    def __init__(self, task: str, include_usage: bool) -> None:
        super().__init__(task, include_usage, "cmpl")

    def whole(self, answers: list[Answer]) -> dict[str, Any]:
        return openai.text_completion(self.id, self.created, self.model, answers)

    def piece(self, index: int, text: str) -> dict[str, Any]:
        return openai.text_chunk(self.id, self.created, self.model, index, text)

    def end(self, answers: list[Answer]) -> list[dict[str, Any]]:
        ends = [
            openai.text_chunk(self.id, self.created, self.model, i, "", a.finish_reason)
            for i, a in enumerate(answers)
        ]
        return ends + self._usage(answers, "text_completion")
