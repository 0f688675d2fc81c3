"""contlearn serve: a real server on loopback and a real HTTP client. Answers equal
`contlearn predict`; tasks trained while it runs are served; a modified artifact is refused
while the others keep serving; the token, each limit and each bad request get a JSON error
(never a 500); concurrent clients get every answer right, batched together; SIGTERM stops it
cleanly."""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from contlearn import serve
from contlearn.api import Workspace
from contlearn.errors import BadRequest, ConfigError
from contlearn.eval.recipe import torch_threads
from contlearn.ops.predict import predict
from contlearn.runtime.context import open_context
from contlearn.serve import bodies
from contlearn.serve.batching import Batcher, Job
from contlearn.serve.config import ServeConfig, read_token
from contlearn.serve.transport import hide_query, protocol
from tests.conftest import invoke, write_keyword_task
from tests.fixtures_data import write_glue_task

REPO = Path(__file__).resolve().parent.parent
TOKEN = "s3cret-token"
LIMITS = {"max_rows": 12, "max_text_chars": 200, "max_body_bytes": 4096}
GUARDS = {"header_timeout": 2, "body_timeout": 3, "max_connections": 12}
TEXTS = ["good movie", "bad film", "the cat", "very good", "dog news", "awful", "it is bad"]
PAIRS = [("the cat chased a song", "a child found the river"), ("good", "bad"), ("a", "the dog")]


# ---------------------------------------------------------------------------------------------
# Servers and a client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(
    base: str, method: str, path: str, body: Any = None, *, token: str | None = TOKEN
) -> tuple[int, Any]:
    """(status, parsed JSON or text); ``body`` as bytes is sent as it is, else as JSON."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, raw, kind = response.status, response.read(), response.headers["content-type"]
    except urllib.error.HTTPError as exc:
        status, raw, kind = exc.code, exc.read(), exc.headers["content-type"]
    return status, json.loads(raw) if kind.startswith("application/json") else raw.decode()


def wait_until(check, timeout: float = 60.0, what: str = "the server") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not get there within {timeout} s")


def answers(base: str) -> bool:
    try:
        return call(base, "GET", "/healthz")[0] == 200
    except OSError:
        return False


@contextlib.contextmanager
def cli_server(root: Path, log: Path, *args: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """``python -m contlearn.cli serve`` as a subprocess on a free loopback port."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "contlearn.cli", "serve", "-w", str(root), "--port", str(port)]
    with open(log, "wb") as out:
        proc = subprocess.Popen([*command, *args], stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: proc.poll() is not None or answers(base))
        assert proc.poll() is None, log.read_text()
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)


@contextlib.contextmanager
def thread_server(ws: Workspace, **settings: Any) -> Iterator[str]:
    """``contlearn.serve.app(workspace)`` under uvicorn in a thread of this process."""
    import torch
    import uvicorn

    # this process's thread count unless given: its predict() is then bit-identical to the server
    settings.setdefault("threads", torch.get_num_threads())
    config = ServeConfig(port=free_port(), poll_seconds=0.2, **settings)
    app = serve.app(ws.root, config)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=config.host, port=config.port, log_level="warning", http=protocol(config)
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive())
        assert server.started
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(30)


# ---------------------------------------------------------------------------------------------
# One workspace and one server (a subprocess, with a token and small limits) for reading tests


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Workspace:
    """Trained: "a" (neg/pos), "b" (x/y/z), "stsb" (text pairs, regression). Pending: "c"."""
    tmp = tmp_path_factory.mktemp("serve")
    ws = Workspace.create(tmp / "ws", backbone=str(tiny_backbone))
    ws.add_task("a", write_keyword_task(tmp / "a", n_train=48, n_dev=16, seed=1))
    b_keywords = {"x": "cat", "y": "dog", "z": "news"}
    ws.add_task(
        "b", write_keyword_task(tmp / "b", n_train=48, n_dev=16, seed=2, keywords=b_keywords)
    )
    ws.add_task("stsb", write_glue_task(tmp, "stsb", n_train=24, n_dev=8))
    ws.train_next(all_tasks=True, epochs=1, max_length=24)
    ws.add_task("c", write_keyword_task(tmp / "c", n_train=8, n_dev=4, seed=3))
    return ws


@pytest.fixture(scope="module")
def server_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module server's folder: its token, and its log (server.log)."""
    return tmp_path_factory.mktemp("server")


@pytest.fixture(scope="module")
def server(ws: Workspace, server_dir: Path) -> Iterator[str]:
    folder = server_dir
    (folder / "token").write_text(TOKEN + "\n")
    limits = [f"--{k.replace('_', '-')}={v}" for k, v in {**LIMITS, **GUARDS}.items()]
    args = ["--token-file", str(folder / "token"), "--max-wait-ms", "20", "--threads", "1", *limits]
    with cli_server(ws.root, folder / "server.log", *args) as (base, _proc):
        yield base


def cli_predict(ws: Workspace, rows: list[dict], *args: str) -> list[dict]:
    """What `contlearn predict` prints for ``rows``, computing with the server's one thread
    (the thread count is part of what makes two computations bit-identical)."""
    stdin = "".join(json.dumps(row) + "\n" for row in rows)
    with torch_threads(1):
        result = invoke(ws, "predict", *args, "--input", "-", "-q", stdin=stdin)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def rows_of(task: str) -> list[dict]:
    if task == "stsb":
        return [{"sentence1": s1, "sentence2": s2} for s1, s2 in PAIRS]
    return [{"id": f"r{i}", "text": text} for i, text in enumerate(TEXTS)]


# ---------------------------------------------------------------------------------------------
# Answers


@pytest.mark.parametrize("task", ["a", "b", "stsb"])
def test_one_task_answers_equal_contlearn_predict(ws: Workspace, server: str, task: str) -> None:
    status, body = call(server, "POST", f"/v1/tasks/{task}/predict", {"inputs": rows_of(task)})
    assert status == 200, body
    assert body == {"task": task, "predictions": cli_predict(ws, rows_of(task), task)}


def test_mixed_answers_equal_contlearn_predict(ws: Workspace, server: str) -> None:
    items = [{"task": "ab"[i % 2], "text": t, "id": i} for i, t in enumerate(TEXTS)]
    items += [{"task": "stsb", "sentence1": s1, "sentence2": s2} for s1, s2 in PAIRS]
    status, body = call(server, "POST", "/v1/predict", {"items": items})
    assert status == 200, body
    assert body["predictions"] == cli_predict(ws, items, "--task-field", "task")
    assert [p["task"] for p in body["predictions"]] == [i["task"] for i in items]


def test_tasks_lists_what_is_served(ws: Workspace, server: str) -> None:
    status, body = call(server, "GET", "/v1/tasks")
    assert status == 200 and body["refused"] == []
    tasks = {t["name"]: t for t in body["tasks"]}
    assert sorted(tasks) == ["a", "b", "stsb"]  # "c" is pending: not served
    assert tasks["b"]["labels"] == ["x", "y", "z"] and tasks["b"]["regression"] is False
    assert tasks["stsb"]["regression"] is True and tasks["stsb"]["labels"] is None
    scores = {row["name"]: row["score"] for row in ws.status()}
    for name, task in tasks.items():
        assert task["method"] == "houlsby" and task["score"] == scores[name]
        assert task["trained_at"] == ws.ledger.task(name).trained_at.isoformat()
    assert tasks["stsb"]["text_fields"] == ["sentence1", "sentence2"]
    status, body = call(server, "POST", "/v1/tasks/c/predict", {"inputs": [{"text": "good"}]})
    assert status == 404 and "pending, not trained" in body["error"]


def test_health_and_metrics(server: str) -> None:
    ok = {"status": "ok", "tasks": 3, "refused": 0}
    assert call(server, "GET", "/healthz", token=None) == (200, ok)
    call(server, "POST", "/v1/tasks/a/predict", {"inputs": [{"text": "good"}]})
    status, text = call(server, "GET", "/metrics")
    assert status == 200
    assert (
        'contlearn_serve_requests_total{endpoint="/v1/tasks/{task}/predict",status="200"}' in text
    )
    assert 'contlearn_serve_request_seconds_bucket{endpoint="/healthz",le="+Inf"}' in text
    assert "contlearn_serve_batch_rows_count" in text and "contlearn_serve_batch_tasks_sum" in text
    assert "\ncontlearn_serve_tasks_loaded 3\n" in text
    assert "\ncontlearn_serve_tasks_refused 0\n" in text


# ---------------------------------------------------------------------------------------------
# Refusals: the token, the limits, bad requests


def test_the_token_is_required_except_for_health(server: str) -> None:
    body = {"inputs": [{"text": "good"}]}
    for token in (None, "wrong", TOKEN + "x", ""):
        status, answer = call(server, "POST", "/v1/tasks/a/predict", body, token=token)
        assert status == 401 and "bearer token" in answer["error"]
    for path in ("/v1/tasks", "/metrics"):
        assert call(server, "GET", path, token=None)[0] == 401
    assert call(server, "POST", "/v1/tasks/a/predict", body)[0] == 200
    assert call(server, "GET", "/healthz", token=None)[0] == 200


@pytest.mark.parametrize(
    ("path", "body", "status", "limit"),
    [
        ("/v1/tasks/a/predict", {"inputs": [{"text": "good"}] * 13}, 422, "max_rows"),
        ("/v1/predict", {"items": [{"task": "a", "text": "good"}] * 13}, 422, "max_rows"),
        ("/v1/tasks/a/predict", {"inputs": [{"text": "good " * 41}]}, 422, "max_text_chars"),
        ("/v1/tasks/a/predict", {"inputs": [{"text": "good " * 200}] * 5}, 413, "max_body_bytes"),
    ],
)
def test_each_limit_is_named(server: str, path: str, body: dict, status: int, limit: str) -> None:
    got, answer = call(server, "POST", path, body)
    assert (got, answer["limit"], answer["allowed"]) == (status, limit, LIMITS[limit])
    assert limit in answer["error"]


def test_a_chunked_body_over_the_limit_is_refused_while_it_streams(server: str) -> None:
    host, port = server.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    chunks = (b'{"inputs": [' + b'{"text": "good"},' * 100 for _ in range(3))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    conn.request("POST", "/v1/tasks/a/predict", body=chunks, headers=headers, encode_chunked=True)
    response = conn.getresponse()
    assert response.status == 413 and json.loads(response.read())["limit"] == "max_body_bytes"
    conn.close()


BAD = [
    ("POST", "/v1/tasks/a/predict", b"{bad", 400, None),
    ("POST", "/v1/tasks/a/predict", b"", 400, None),
    ("POST", "/v1/tasks/a/predict", b"\xff\xfe{}", 400, None),
    ("POST", "/v1/tasks/a/predict", b"[" * 3000, 400, None),
    ("POST", "/v1/tasks/a/predict", b"[1, 2]", 400, None),
    ("POST", "/v1/tasks/a/predict", {"rows": []}, 422, "inputs"),
    ("POST", "/v1/tasks/a/predict", {"inputs": {"text": "good"}}, 422, "inputs"),
    ("POST", "/v1/tasks/a/predict", {"inputs": ["good"]}, 422, "inputs[0]"),
    ("POST", "/v1/tasks/a/predict", {"inputs": [{"txt": "good"}]}, 422, "inputs[0].text"),
    ("POST", "/v1/tasks/a/predict", {"inputs": [{"text": 5}]}, 422, "inputs[0].text"),
    ("POST", "/v1/tasks/a/predict", {"inputs": [{"text": "  "}]}, 422, "inputs[0].text"),
    ("POST", "/v1/tasks/a/predict", {"inputs": [{"text": "ok", "id": [1]}]}, 422, "inputs[0].id"),
    ("POST", "/v1/tasks/a/predict", {"inputs": [{"text": "bad \ud800 x"}]}, 422, "inputs[0].text"),
    (
        "POST",
        "/v1/tasks/a/predict",
        {"inputs": [{"text": "ok", "id": "\udfff"}]},
        422,
        "inputs[0].id",
    ),
    ("POST", "/v1/predict", {"items": [{"task": "a\ud800", "text": "ok"}]}, 422, "items[0].task"),
    (
        "POST",
        "/v1/tasks/stsb/predict",
        {"inputs": [{"sentence1": "a"}]},
        422,
        "inputs[0].sentence2",
    ),
    ("POST", "/v1/predict", {"inputs": []}, 422, "items"),
    ("POST", "/v1/predict", {"items": [{"task": "", "text": "good"}]}, 422, "items[0].task"),
    ("POST", "/v1/predict", {"items": [{"task": 3, "text": "good"}]}, 422, "items[0].task"),
    ("POST", "/v1/predict", {"items": [{"task": "a"}]}, 422, "items[0].text"),
    ("POST", "/v1/predict", {"items": [{"task": "zz", "text": "good"}]}, 404, "items[0].task"),
    ("POST", "/v1/tasks/zz/predict", {"inputs": [{"text": "good"}]}, 404, "task"),
    ("POST", "/v1/tasks/..%2F..%2Fetc%2Fpasswd/predict", {"inputs": []}, 404, None),
    ("POST", "/v1/tasks/%2e%2e/predict", {"inputs": [{"text": "good"}]}, 404, "task"),
    ("GET", "/v1/tasks/a/predict", None, 405, None),
    ("GET", "/v1/nothing", None, 404, None),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "field"), BAD)
def test_bad_requests_get_a_json_error_naming_the_field(
    server: str, method: str, path: str, body: Any, status: int, field: str | None
) -> None:
    got, answer = call(server, method, path, body)
    assert (got, answer.get("field")) == (status, field), answer
    assert answer["status"] == status and answer["error"] and "Traceback" not in answer["error"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"[" * 3000, "nests JSON too deeply"),
        (b"\xff\xfe{}", "not UTF-8 (byte 0)"),
        (b'{"inputs": [{"text": "\xed\xa0\x80"}]}', "not UTF-8 (byte 22)"),
        (b'{"inputs": [}', "not valid JSON: Expecting value at line 1 column 13"),
    ],
)
def test_a_malformed_body_is_described_without_python_internals(
    server: str, body: bytes, words: str
) -> None:
    status, answer = call(server, "POST", "/v1/tasks/a/predict", body)
    assert status == 400 and words in answer["error"], answer
    for internal in ("recursion", "sys.", "codec", "(char"):
        assert internal not in answer["error"]


def test_a_number_too_long_for_python_is_described_without_its_advice() -> None:
    with pytest.raises(BadRequest, match="number too long") as refused:
        bodies.parse_json(b'{"inputs": [{"text": "a", "id": ' + b"9" * 5000 + b"}]}")
    assert refused.value.status == 400 and "sys." not in str(refused.value)


def test_a_lone_surrogate_is_named_with_its_place(server: str) -> None:
    body = b'{"inputs": [{"text": "good"}, {"text": "bad \\ud800 text"}]}'
    status, answer = call(server, "POST", "/v1/tasks/a/predict", body)
    assert (status, answer["field"]) == (422, "inputs[1].text")
    assert "lone UTF-16 surrogate (U+D800 at character 4)" in answer["error"]


# ---------------------------------------------------------------------------------------------
# Hostile connections: raw sockets, byte for byte


def address(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").split(":")
    return host, int(port)


def until_closed(sock: socket.socket) -> bytes:
    """All the server sends on ``sock`` until it closes it (a socket timeout if it never does)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def post_head(length: int, *extra: str) -> bytes:
    lines = [
        "POST /v1/tasks/a/predict HTTP/1.1",
        "Host: test",
        f"Authorization: Bearer {TOKEN}",
        f"Content-Length: {length}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_body_of_megabytes_is_refused_with_a_413_the_client_can_read(server: str) -> None:
    body = b'{"inputs": [{"text": "' + b"x" * 15_000_000 + b'"}]}'
    status, answer = call(server, "POST", "/v1/tasks/a/predict", body)  # urllib: sends it all
    assert (status, answer["limit"]) == (413, "max_body_bytes")


def test_a_length_framed_twice_is_refused_and_its_connection_closed(server: str) -> None:
    body = b'{"inputs": [{"text": "good"}]}'
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    behind = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"  # what a proxy may take for a body
    with socket.create_connection(address(server), timeout=10) as sock:
        sock.sendall(post_head(len(body), "Transfer-Encoding: chunked") + chunked + behind)
        answer = until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 400 ") and b"connection: close" in answer
    assert b"both Content-Length and Transfer-Encoding" in answer
    assert answer.count(b"HTTP/1.1 ") == 1  # nothing behind it was answered


def test_a_slow_head_or_body_is_answered_408_and_closed(server: str) -> None:
    slow_head = socket.create_connection(address(server), timeout=10)
    slow_body = socket.create_connection(address(server), timeout=10)
    start = time.monotonic()
    slow_head.sendall(b"GET /healthz HTTP/1.1\r\nHo")
    slow_body.sendall(post_head(100) + b'{"inputs": [')
    with slow_head, slow_body:
        head, body = until_closed(slow_head), until_closed(slow_body)
    assert time.monotonic() - start < GUARDS["body_timeout"] + 3
    assert head.startswith(b"HTTP/1.1 408 ") and b"header_timeout (2 s)" in head
    assert body.startswith(b"HTTP/1.1 408 ") and b'"limit":"body_timeout"' in body


def test_connections_beyond_max_connections_are_answered_503(server: str) -> None:
    idle = [socket.create_connection(address(server)) for _ in range(GUARDS["max_connections"])]
    try:
        status, answer = call(server, "GET", "/healthz", token=None)
        assert status == 503 and "max_connections (12)" in answer["error"]
    finally:
        for sock in idle:
            sock.close()
    wait_until(lambda: answers(server), 10, "a connection below the limit")


def test_a_client_leaving_mid_body_is_counted_apart_and_logged_in_one_line(
    server: str, server_dir: Path
) -> None:
    with socket.create_connection(address(server), timeout=10) as sock:
        sock.sendall(post_head(1000) + b'{"inputs": [{"text": ')
    closed = 'contlearn_serve_requests_total{endpoint="/v1/tasks/{task}/predict",status="499"} 1'
    wait_until(lambda: closed in call(server, "GET", "/metrics")[1], 10, "the count")
    log = (server_dir / "server.log").read_text()
    assert "POST /v1/tasks/{task}/predict: the client left before its answer" in log
    assert "Traceback" not in log and "ERROR" not in log


def test_a_token_in_the_query_string_is_hidden_from_the_access_log(
    server: str, server_dir: Path
) -> None:
    assert call(server, "GET", "/healthz?token=leaked-secret&x", token=None)[0] == 200
    log = server_dir / "server.log"
    wait_until(lambda: '"GET /healthz?token=***&*** HTTP/1.1" 200' in log.read_text(), 10)
    assert "leaked-secret" not in log.read_text()
    assert hide_query("/v1/tasks?a=1&b=&c") == "/v1/tasks?a=***&b=***&***"


def test_no_request_so_far_got_a_500(server: str) -> None:
    assert 'status="500"' not in call(server, "GET", "/metrics")[1]


# ---------------------------------------------------------------------------------------------
# Concurrency: 8 clients x 50 requests, batched together


def expected_answers(ws: Workspace) -> dict[tuple, dict]:
    """Each (task, texts)'s answer from the library, keyed for look-up."""
    ctx = open_context(ws.ledger, ws.store)
    table = {}
    for task in ("a", "b", "stsb"):
        rows = rows_of(task)
        for row, result in zip(
            rows, predict(ws.ledger, ws.store, task, rows, context=ctx), strict=True
        ):
            table[(task, *_texts(row))] = result
    return table


def _texts(row: dict) -> tuple:
    return (row["text"],) if "text" in row else (row["sentence1"], row["sentence2"])


def _same(got: dict, want: dict) -> bool:
    """Equal labels and probabilities (to float32 rounding: a row batched with others is padded
    to another length)."""
    if got["task"] != want["task"]:
        return False
    if want["probabilities"] is None:
        return math.isclose(got["label"], want["label"], rel_tol=1e-5, abs_tol=1e-6)
    close = all(
        math.isclose(got["probabilities"][k], v, abs_tol=1e-5)
        for k, v in want["probabilities"].items()
    )
    return got["label"] == want["label"] and close


def test_concurrent_clients_get_every_answer_right(ws: Workspace, server: str) -> None:
    table = expected_answers(ws)
    rows = [(task, row) for task in ("a", "b", "stsb") for row in rows_of(task)]
    failures: list[str] = []

    def client(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(50):
            picked = rng.sample(rows, rng.randint(1, 3))
            if rng.random() < 0.5:
                items = [{"task": task, **row} for task, row in picked]
                status, body = call(server, "POST", "/v1/predict", {"items": items})
            else:
                task = picked[0][0]
                picked = [(task, row) for row in rows_of(task)[: len(picked)]]
                inputs = [row for _, row in picked]
                status, body = call(server, "POST", f"/v1/tasks/{task}/predict", {"inputs": inputs})
            if status != 200:
                failures.append(f"{status}: {body}")
                continue
            for i, ((task, row), got) in enumerate(zip(picked, body["predictions"], strict=True)):
                if got["index"] != i or not _same(got, table[(task, *_texts(row))]):
                    failures.append(f"{task} {row}: {got}")

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    text = call(server, "GET", "/metrics")[1]
    batches = _metric(text, "contlearn_serve_batch_rows_count")
    assert _metric(text, "contlearn_serve_batch_rows_sum") > batches  # requests ran together
    assert _metric(text, "contlearn_serve_batch_tasks_sum") > batches  # of several tasks


def _metric(text: str, name: str) -> float:
    return float(
        next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " "))
    )


# ---------------------------------------------------------------------------------------------
# Hot-loading, tasks being trained, modified artifacts (each on its own workspace, in-thread)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    """A workspace folder with "a" (neg/pos) and "b" (x/y/z) trained."""
    tmp = tmp_path_factory.mktemp("pair")
    ws = Workspace.create(tmp / "ws", backbone=str(tiny_backbone))
    ws.add_task("a", write_keyword_task(tmp / "a", n_train=32, n_dev=8, seed=1))
    b_keywords = {"x": "cat", "y": "dog", "z": "news"}
    ws.add_task(
        "b", write_keyword_task(tmp / "b", n_train=32, n_dev=8, seed=2, keywords=b_keywords)
    )
    ws.train_next(all_tasks=True, epochs=1, max_length=24)
    ws.ledger.engine.dispose()
    return ws.root


@pytest.fixture()
def trained(pair: Path, tmp_path: Path) -> Workspace:
    """A copy of ``pair`` of this test's own."""
    shutil.copytree(pair, tmp_path / "ws")
    return Workspace.open(tmp_path / "ws")


def served(base: str) -> list[str]:
    return sorted(t["name"] for t in call(base, "GET", "/v1/tasks", token=None)[1]["tasks"])


def test_tasks_trained_or_retrained_while_serving_are_served_without_a_restart(
    trained: Workspace, tmp_path: Path
) -> None:
    trained.add_task("c", write_keyword_task(tmp_path / "c", n_train=24, n_dev=8, seed=3))
    with thread_server(trained) as base:
        assert served(base) == ["a", "b"]
        trained.train_next(epochs=1)
        wait_until(lambda: served(base) == ["a", "b", "c"], 30, "task c")
        rows = [{"text": t} for t in TEXTS]
        status, body = call(base, "POST", "/v1/tasks/c/predict", {"inputs": rows}, token=None)
        assert status == 200
        assert body["predictions"] == predict(trained.ledger, trained.store, "c", rows)
        before = trained_at(base, "a")
        trained.retrain("a", epochs=1, lr=0.05)  # a new artifact for a served task
        assert trained.ledger.task("a").trained_at != before
        wait_until(lambda: trained_at(base, "a") == trained.ledger.task("a").trained_at, 30, "a")
        status, body = call(base, "POST", "/v1/tasks/a/predict", {"inputs": rows}, token=None)
        assert body["predictions"] == predict(trained.ledger, trained.store, "a", rows)


def trained_at(base: str, name: str) -> datetime:
    tasks = call(base, "GET", "/v1/tasks", token=None)[1]["tasks"]
    return datetime.fromisoformat(next(t["trained_at"] for t in tasks if t["name"] == name))


def test_a_task_being_trained_is_not_served(trained: Workspace, tmp_path: Path) -> None:
    trained.add_task("c", write_keyword_task(tmp_path / "c", n_train=8, n_dev=4, seed=3))
    trained.ledger.claim_next_pending(
        {"config": {}, "versions": {}, "pid": os.getpid(), "host": "here"}
    )
    assert trained.ledger.task("c").status == "training"
    with thread_server(trained) as base:
        assert served(base) == ["a", "b"]
        status, body = call(base, "POST", "/v1/tasks/c/predict", {"inputs": [{"text": "good"}]})
        assert status == 404 and "training, not trained" in body["error"]


def tamper(path: Path) -> bytes:
    original = path.read_bytes()
    path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    return original


def test_a_modified_artifact_is_refused_and_the_others_keep_serving(trained: Workspace) -> None:
    weights = trained.artifact_files("b")["weights"]
    original = tamper(weights)
    good = {"inputs": [{"text": "good movie"}]}
    with thread_server(trained) as base:
        assert served(base) == ["a"]
        assert call(base, "GET", "/v1/tasks", token=None)[1]["refused"] == ["b"]
        degraded = {"status": "degraded", "tasks": 1, "refused": 1}
        assert call(base, "GET", "/healthz", token=None) == (200, degraded)
        status, body = call(base, "POST", "/v1/tasks/b/predict", good, token=None)
        assert status == 503 and "does not match" in body["error"]
        mixed = {"items": [{"task": "a", "text": "good"}, {"task": "b", "text": "good"}]}
        assert call(base, "POST", "/v1/predict", mixed, token=None)[0] == 503
        assert call(base, "POST", "/v1/tasks/a/predict", good, token=None)[0] == 200
        weights.write_bytes(original)  # restored: served again after the next poll
        wait_until(lambda: served(base) == ["a", "b"], 30, "task b")
        assert call(base, "POST", "/v1/tasks/b/predict", good, token=None)[0] == 200
        assert call(base, "GET", "/healthz", token=None)[1]["status"] == "ok"


def test_an_artifact_modified_while_served_is_refused_once_it_is_read_again(
    trained: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    """The weights in memory were verified when loaded and keep answering; with one task
    resident, using b evicts a, and a's next use reads its file again: refused."""
    caplog.set_level(logging.INFO, logger="contlearn")
    text = (trained.root / "tasks.toml").read_text()
    (trained.root / "tasks.toml").write_text(
        text.replace("resident_tasks = 64", "resident_tasks = 1")
    )
    good = {"inputs": [{"text": "good movie"}]}
    with thread_server(trained) as base:
        assert call(base, "POST", "/v1/tasks/a/predict", good, token=None)[0] == 200
        tamper(trained.artifact_files("a")["weights"])
        assert call(base, "POST", "/v1/tasks/a/predict", good, token=None)[0] == 200
        assert call(base, "POST", "/v1/tasks/b/predict", good, token=None)[0] == 200
        status, body = call(base, "POST", "/v1/tasks/a/predict", good, token=None)
        assert status == 503 and body["error"]
        assert call(base, "POST", "/v1/tasks/b/predict", good, token=None)[0] == 200
        wait_until(lambda: served(base) == ["b"], 30, "the refusal")
    assert "no longer serving task 'a': its artifact is refused (" in caplog.text


# ---------------------------------------------------------------------------------------------
# Shutdown, configuration


def test_sigterm_stops_the_server_cleanly(ws: Workspace, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with cli_server(ws.root, log, "--threads", "1") as (base, proc):
        status, _ = call(base, "POST", "/v1/tasks/a/predict", {"inputs": [{"text": "good"}]})
        assert status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    text = log.read_text()
    assert "Application shutdown complete" in text and "Traceback" not in text
    assert not answers(base)


def test_a_batch_holds_whole_requests_up_to_max_batch_rows() -> None:
    batcher = Batcher(max_batch=4, max_wait=0.05, max_queued_rows=12)
    for size in (3, 2, 1, 5):
        batcher.put(Job([{}] * size, lambda result: None))
    sizes = [[len(job.rows) for job in batcher.take(1.0)] for _ in range(3)]
    assert sizes == [[3], [2, 1], [5]]  # never split; one larger than max_batch runs alone
    start = time.monotonic()
    batcher.put(Job([{}], lambda result: None))
    assert len(batcher.take(1.0)) == 1 and 0.04 <= time.monotonic() - start < 1.0  # waited
    batcher.put(Job([{}] * 8, lambda result: None))
    with pytest.raises(BadRequest, match="max_queued_rows") as full:
        batcher.put(Job([{}] * 5, lambda result: None))
    assert full.value.status == 503
    batcher.close()
    with pytest.raises(BadRequest, match="shutting down"):
        batcher.put(Job([{}], lambda result: None))
    assert len(batcher.take(1.0)) == 1 and batcher.take(1.0) == [] and batcher.drained


def test_settings_are_validated() -> None:
    for bad in ({"max_batch": 0}, {"port": 70000}, {"max_rows": 0}, {"device": "tpu"}):
        with pytest.raises(ConfigError):
            ServeConfig(**bad)
    assert "abc" not in repr(ServeConfig(token="abc"))


def test_an_empty_token_file_is_refused_in_one_line(ws: Workspace, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        read_token(str(tmp_path / "token"))
    result = invoke(ws, "serve", "--token-file", str(tmp_path / "token"))
    assert result.exit_code == 1 and "is empty" in result.output


# ---------------------------------------------------------------------------------------------
# Inputs as users send them: GLUE pair aliases, rows longer than the backbone's positions


@pytest.fixture(scope="module")
def older(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Workspace:
    """Trained: "mrpc" (GLUE's "#1 String"/"#2 String"), and "long", trained with max length
    200 on the tiny backbone's 160 positions as release 0.2 let it (its rows are short)."""
    from contlearn.ops.train_next import _claim
    from contlearn.runtime.runs import is_abandoned
    from contlearn.runtime.settings import resolve
    from contlearn.runtime.train_task import train_one

    tmp = tmp_path_factory.mktemp("older")
    ws = Workspace.create(tmp / "ws", backbone=str(tiny_backbone))
    ws.add_task("mrpc", write_glue_task(tmp, "mrpc", n_train=24, n_dev=8))
    ws.train_next(epochs=1, max_length=24)
    ws.add_task("long", write_keyword_task(tmp / "long", n_train=24, n_dev=8, seed=4))
    ctx = open_context(ws.ledger, ws.store, "cpu")
    task, run_id = ws.ledger.claim_next_pending(_claim(), is_abandoned)
    train_one(ctx, resolve(ws.config, {"epochs": 1, "max_length": 200}), task, run_id)
    assert ws.ledger.task("long").status == "trained"
    return ws


LONG_TEXT = " ".join(["good movie"] * 150)  # 300 words: far beyond 160 positions


def test_glue_pair_and_long_rows_are_answered_as_predict_answers(older: Workspace) -> None:
    raw = [{"#1 String": s1, "#2 String": s2} for s1, s2 in PAIRS]
    aliased = [{"sentence1": s1, "sentence2": s2} for s1, s2 in PAIRS]
    with torch_threads(1):
        expected = predict(older.ledger, older.store, "mrpc", raw)
        long_expected = predict(older.ledger, older.store, "long", [{"text": LONG_TEXT}])
    with thread_server(older, threads=1) as base:
        assert call(base, "POST", "/v1/tasks/mrpc/predict", {"inputs": aliased}, token=None) == (
            200,
            {"task": "mrpc", "predictions": expected},
        )
        items = [{"task": "mrpc", **row} for row in aliased] + [{"task": "long", "text": "a"}]
        status, body = call(base, "POST", "/v1/predict", {"items": items}, token=None)
        assert status == 200 and body["predictions"][:3] == expected
        status, body = call(
            base, "POST", "/v1/tasks/mrpc/predict", {"inputs": [{"x": "a"}]}, token=None
        )
        assert status == 422 and "(or sentence1, sentence2)" in body["error"]
        long = {"inputs": [{"text": LONG_TEXT}]}
        status, body = call(base, "POST", "/v1/tasks/long/predict", long, token=None)
        assert status == 200 and body["predictions"] == long_expected


def test_the_serving_thread_default_is_half_the_cores_one_to_four(older: Workspace) -> None:
    cores = len(os.sched_getaffinity(0))
    assert ServeConfig().threads == min(4, max(1, cores // 2))
    log = older.root / "serve.log"
    with cli_server(older.root, log) as (base, _proc):  # no --threads: the default
        assert call(base, "GET", "/healthz", token=None)[0] == 200
