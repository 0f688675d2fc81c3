"""The HTTP application (Starlette): the endpoints, the bearer token, JSON errors for every
refusal, the request metrics, and the model's thread started and stopped with the app.

POST /v1/tasks/{task}/predict   {"inputs": [{field: text, ...}, ...]}
POST /v1/predict                {"items": [{"task": name, field: text, ...}, ...]}; an item
                                without a task (or "auto") is routed: its result adds
                                "confidence", and "task" is null for one like none of them
POST /v1/route                  {"inputs": [{field: text, ...}, ...]}: each input's task and
                                confidence, nothing predicted
GET  /v1/tasks                  the tasks served (and the names of those refused)
GET  /healthz                   liveness, the tasks served and refused (no token needed)
GET  /metrics                   Prometheus text
POST /v1/tasks/{task}/generate, /v1/chat/completions, /v1/completions, GET /v1/models:
                                generation tasks (:mod:`.completions`); the OpenAI routes
                                answer refusals in OpenAI's error shape

A request answered 408 or 413 (its body not wholly read) or framed twice closes its
connection; a client that goes away before its answer is counted as status 499 (nginx's
"client closed request"), apart from the server's own faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..errors import ArtifactError, BadRequest, ContlearnError, TaskNotFound, TaskNotTrained
from . import bodies, completions, openai, reading
from .worker import ModelWorker

log = logging.getLogger(__name__)
Handler = Callable[[Request], Awaitable[Response]]
PREDICT_ONE = "/v1/tasks/{task}/predict"
GENERATE_ONE = "/v1/tasks/{task}/generate"
OPENAI = ("/v1/chat/completions", "/v1/completions", "/v1/models")
ENDPOINTS = ("/v1/predict", "/v1/route", "/v1/tasks", "/healthz", "/metrics", *OPENAI)
CLIENT_CLOSED = 499  # the status a request whose client went away is counted under
CLOSING = (408, 413)  # refusals whose body was not (wholly) read: the connection ends with them


def build(worker: ModelWorker) -> Starlette:
    """The application around ``worker`` (started with the app unless it already runs)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(worker.start)
        yield
        await asyncio.to_thread(worker.stop)

    guard = functools.partial(_guarded, worker)
    shaped = functools.partial(_guarded, worker, shape=_openai_error)
    routes = [
        Route(PREDICT_ONE, guard(_predict_one), methods=["POST"]),
        Route(GENERATE_ONE, guard(completions.generate_one), methods=["POST"]),
        Route(OPENAI[0], shaped(completions.chat_completions), methods=["POST"]),
        Route(OPENAI[1], shaped(completions.completions), methods=["POST"]),
        Route(OPENAI[2], shaped(completions.list_models), methods=["GET"]),
        Route("/v1/predict", guard(_predict_mixed), methods=["POST"]),
        Route("/v1/route", guard(_route), methods=["POST"]),
        Route("/v1/tasks", guard(_tasks), methods=["GET"]),
        Route("/healthz", guard(_health, token=False), methods=["GET"]),
        Route("/metrics", guard(_metrics), methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http},
        middleware=[Middleware(_Timed, worker=worker), Middleware(_Framed)],
    )
    app.state.worker = worker
    return app


def _guarded(
    worker: ModelWorker,
    handler: Callable[[Request, ModelWorker], Awaitable[Response]],
    *,
    token: bool = True,
    shape: Callable[[BadRequest], JSONResponse] | None = None,
) -> Handler:
    """``handler`` behind the token check, with every refusal a JSON error (``shape``'s; by
    default :func:`error`'s)."""
    refuse = shape or error

    async def endpoint(request: Request) -> Response:
        try:
            if token:
                _authorize(request, worker.config.token)
            return await handler(request, worker)
        except BadRequest as exc:
            return refuse(exc)
        except ClientDisconnect:  # the client's doing: one line, counted apart (never sent)
            log.info("%s %s: the client left before its answer", request.method, _path(request))
            return Response(status_code=CLIENT_CLOSED)
        except ContlearnError as exc:
            return refuse(_refusal(exc))
        except Exception:  # a fault of the server, never of the request: logged, not shown
            log.exception("%s %s failed", request.method, _path(request))
            return refuse(BadRequest("the server failed to answer: see its log", status=500))

    return endpoint


def _authorize(request: Request, token: str | None) -> None:
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        raise BadRequest(
            "a valid bearer token is required: send 'Authorization: Bearer TOKEN'", status=401
        )


def _refusal(exc: ContlearnError) -> BadRequest:
    """What a library error raised while a request's rows ran means for that request."""
    if isinstance(exc, TaskNotFound | TaskNotTrained):
        return BadRequest(f"{exc}", status=404)
    if isinstance(exc, ArtifactError):
        return BadRequest(
            "a task's artifact no longer matches the ledger: it is not served", status=503
        )
    return BadRequest(str(exc), status=422)


def error(exc: BadRequest, *, close: bool = False) -> JSONResponse:
    """The JSON body of a refusal: the message, and the field or limit when there is one;
    ``close`` (or a status of CLOSING) ends the connection with it."""
    body: dict[str, Any] = {"error": str(exc), "status": exc.status}
    if exc.field is not None:
        body["field"] = exc.field
    if exc.limit is not None:
        body["limit"], body["allowed"] = exc.limit, exc.allowed
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
    if close or exc.status in CLOSING:
        headers["Connection"] = "close"
    return JSONResponse(body, status_code=exc.status, headers=headers)


def _openai_error(exc: BadRequest) -> JSONResponse:
    """A refusal in OpenAI's error shape (what its clients read), with :func:`error`'s
    headers."""
    plain = error(exc)
    headers = {k: v for k, v in plain.headers.items() if k in ("www-authenticate", "connection")}
    return JSONResponse(openai.error(exc), status_code=exc.status, headers=headers)


async def _http(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, wrong method) as JSON errors too."""
    status = getattr(exc, "status_code", 400)
    detail = {404: "no such endpoint", 405: "method not allowed for this endpoint"}
    return error(BadRequest(detail.get(status, str(getattr(exc, "detail", ""))), status=status))


# -- the endpoints ----------------------------------------------------------------------------
async def _predict_one(request: Request, worker: ModelWorker) -> Response:
    task = bodies.served_task(worker.snapshot, request.path_params["task"])
    doc = bodies.parse_json(await _body(request, worker))
    rows = bodies.task_rows(doc, task, worker.config)
    return JSONResponse({"task": task.name, "predictions": await _run(worker, rows)})


async def _predict_mixed(request: Request, worker: ModelWorker) -> Response:
    doc = bodies.parse_json(await _body(request, worker))
    rows = bodies.mixed_rows(doc, worker.snapshot, worker.config)
    return JSONResponse({"predictions": await _run(worker, rows)})


async def _route(request: Request, worker: ModelWorker) -> Response:
    doc = bodies.parse_json(await _body(request, worker))
    rows = bodies.auto_rows(doc, worker.snapshot, worker.config)
    if not rows:
        return JSONResponse({"routes": []})
    return JSONResponse({"routes": await worker.run(rows, worker.router_work(rows))})


async def _run(worker: ModelWorker, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return await worker.predict(rows) if rows else []


async def _tasks(request: Request, worker: ModelWorker) -> Response:
    snapshot = worker.snapshot
    served = [task.info for task in snapshot.served.values()]
    return JSONResponse({"tasks": served, "refused": sorted(snapshot.refused)})


async def _health(request: Request, worker: ModelWorker) -> Response:
    """200 while the model's thread runs: "ok", or "degraded" while a trained task is refused
    (the others are served; every replica shares the workspace, so a balancer taking this
    one out would gain nothing); 503 once it stopped."""
    if not worker.alive:
        return JSONResponse({"status": "stopped", "tasks": 0, "refused": 0}, status_code=503)
    snapshot = worker.snapshot
    state = "degraded" if snapshot.refused else "ok"
    return JSONResponse(
        {"status": state, "tasks": len(snapshot.served), "refused": len(snapshot.refused)}
    )


async def _metrics(request: Request, worker: ModelWorker) -> Response:
    return PlainTextResponse(worker.metrics.render(), media_type="text/plain; version=0.0.4")


async def _body(request: Request, worker: ModelWorker) -> bytes:
    return await reading.body(request.receive, request.headers, worker.config)


class _Framed:
    """ASGI middleware: a request framed by both Content-Length and Transfer-Encoding is
    refused (400) and its connection closed before any of it is read."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http":
            refusal = reading.ambiguous(Headers(scope=scope))
            if refusal is not None:
                return await error(refusal, close=True)(scope, receive, send)
        await self.app(scope, receive, send)


class _Timed:
    """ASGI middleware: counts each HTTP request by endpoint and status, and times it."""

    def __init__(self, app: Any, worker: ModelWorker) -> None:
        self.app, self.worker = app, worker

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            seconds = time.perf_counter() - start
            self.worker.metrics.request(_endpoint(scope["path"]), status[0], seconds)


def _path(request: Request) -> str:
    return _endpoint(request.url.path)


def _endpoint(path: str) -> str:
    """The route a path belongs to (never the path itself: its names are the client's)."""
    if path in ENDPOINTS:
        return path
    parts = path.split("/")
    if len(parts) == 5 and parts[:3] == ["", "v1", "tasks"] and parts[4] == "predict":
        return PREDICT_ONE
    if len(parts) == 5 and parts[:3] == ["", "v1", "tasks"] and parts[4] == "generate":
        return GENERATE_ONE
    return "other"
