"""contlearn serve for generation tasks: a real server (uvicorn in a thread) on a tiny trained
Llama workspace, real HTTP and the real ``openai`` client. Answers equal ``Workspace.generate``;
streamed text joined equals the whole answer; refusals are 4xx with one line (OpenAI's error
shape on its routes), never a 500; generation shares the model's thread with predictions."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from contlearn.api import Workspace
from contlearn.kinds.pieces import TextPieces
from tests.conftest import fast_workspace, write_keyword_task
from tests.test_generation import save_chat_llama, write_generation_task
from tests.test_serve import TOKEN, call, thread_server

LIMIT = 8  # the server's max_tokens
PROMPTS = ["the film was good", "this movie was bad", "very good"]


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """Trained: "chat" (generation, learned to answer yes good / no bad), "words"
    (classification)."""
    tmp = tmp_path_factory.mktemp("gen-serve")
    ws = fast_workspace(tmp / "ws", save_chat_llama(tmp / "llama"))
    ws.add_task("chat", write_generation_task(tmp / "chat", n_train=32), max_new_tokens=4)
    ws.add_task("words", write_keyword_task(tmp / "words", n_train=16, n_dev=4))
    ws.train_next(epochs=5, lr=0.02, batch_size=8)
    ws.train_next(epochs=1)
    return ws


@pytest.fixture(scope="module")
def server(ws: Workspace) -> Iterator[str]:
    with thread_server(ws, token=TOKEN, max_tokens=LIMIT, max_rows=4) as base:
        yield base


@pytest.fixture(scope="module")
def client(server: str):
    from openai import OpenAI

    return OpenAI(base_url=server + "/v1", api_key=TOKEN, max_retries=0, timeout=60)


def sse(base: str, path: str, body: dict[str, Any]) -> tuple[int, str, list[Any]]:
    """(status, content type, each event's JSON, "[DONE]" as it is) of a streamed request."""
    url = urlparse(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    conn.request("POST", path, json.dumps(body), headers)
    response = conn.getresponse()
    raw = response.read().decode()
    conn.close()
    kind = response.headers["content-type"]
    if not kind.startswith("text/event-stream"):
        return response.status, kind, [json.loads(raw)]
    assert raw.endswith("\n\n")
    events = [block.removeprefix("data: ") for block in raw[:-2].split("\n\n")]
    return response.status, kind, [e if e == "[DONE]" else json.loads(e) for e in events]


def alone(ws: Workspace, prompt: str, **settings: Any) -> dict[str, Any]:
    return ws.generate("chat", [prompt], **settings)[0]


# -- answers -----------------------------------------------------------------------------------


def test_generate_answers_as_the_workspace_does(ws: Workspace, server: str) -> None:
    status, body = call(server, "POST", "/v1/tasks/chat/generate", {"prompt": PROMPTS[0]})
    assert status == 200, body
    expected = alone(ws, PROMPTS[0])
    assert body["task"] == "chat" and body["text"] == expected["text"] == "yes good"
    assert body["tokens"] == expected["tokens"] and body["finish_reason"] == "stop"
    assert body["prompt_tokens"] > len(PROMPTS[0].split())  # the chat template's tokens too
    turns = {"messages": [{"role": "user", "content": PROMPTS[0]}]}
    assert call(server, "POST", "/v1/tasks/chat/generate", turns) == (200, body)
    parts = [{"type": "text", "text": "the film "}, {"type": "text", "text": "was good"}]
    turns = {"messages": [{"role": "user", "content": parts}]}  # OpenAI's content parts
    assert call(server, "POST", "/v1/tasks/chat/generate", turns) == (200, body)
    short = call(server, "POST", "/v1/tasks/chat/generate", {"prompt": PROMPTS[0], "max_tokens": 1})
    assert short[1]["finish_reason"] == "length" and short[1]["tokens"] == 1
    assert short[1]["text"] == alone(ws, PROMPTS[0], max_new_tokens=1)["text"]


def test_sampling_with_a_seed_answers_as_the_workspace_does(ws: Workspace, server: str) -> None:
    settings = {"temperature": 2.0, "top_p": 0.9, "seed": 11, "max_tokens": 6}
    body = {"prompt": PROMPTS[1], **settings}
    first = call(server, "POST", "/v1/tasks/chat/generate", body)[1]
    assert call(server, "POST", "/v1/tasks/chat/generate", body)[1] == first
    expected = alone(ws, PROMPTS[1], temperature=2.0, top_p=0.9, seed=11, max_new_tokens=6)
    assert (first["text"], first["tokens"]) == (expected["text"], expected["tokens"])


@pytest.mark.parametrize("prompt", PROMPTS)
def test_the_streamed_pieces_join_to_the_whole_answer(server: str, prompt: str) -> None:
    whole = call(server, "POST", "/v1/tasks/chat/generate", {"prompt": prompt})[1]
    status, kind, events = sse(
        server, "/v1/tasks/chat/generate", {"prompt": prompt, "stream": True}
    )
    assert status == 200 and kind.startswith("text/event-stream")
    assert events[-1] == "[DONE]"
    *pieces, last = events[:-1]
    assert all(set(p) == {"text"} and p["text"] for p in pieces)
    assert len(pieces) == len(whole["text"].split())  # a piece per word of this vocabulary
    assert "".join(p["text"] for p in pieces) == whole["text"]
    assert last == {**{k: v for k, v in whole.items() if k != "task"}, "text": ""}


def test_the_openai_client_chats(ws: Workspace, client) -> None:
    reply = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": PROMPTS[1]}]
    )
    expected = alone(ws, PROMPTS[1])
    assert reply.object == "chat.completion" and reply.model == "chat"
    assert reply.id.startswith("chatcmpl-") and reply.created > 0
    (choice,) = reply.choices
    assert choice.index == 0 and choice.finish_reason == "stop"
    assert choice.message.role == "assistant" and choice.message.content == expected["text"]
    usage = reply.usage
    assert usage.completion_tokens == expected["tokens"]
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_the_openai_client_streams_a_chat(client) -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "good"}]
    whole = client.chat.completions.create(model="chat", messages=messages)
    chunks = list(
        client.chat.completions.create(
            model="chat",
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1 and chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content and text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == whole.choices[0].finish_reason and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage


def test_the_openai_client_completes_several_prompts(ws: Workspace, client) -> None:
    reply = client.completions.create(model="chat", prompt=PROMPTS, max_tokens=3)
    assert reply.object == "text_completion" and [c.index for c in reply.choices] == [0, 1, 2]
    expected = [alone(ws, p, max_new_tokens=3) for p in PROMPTS]
    assert [c.text for c in reply.choices] == [e["text"] for e in expected]
    assert reply.usage.completion_tokens == sum(e["tokens"] for e in expected)
    streamed = list(
        client.completions.create(model="chat", prompt=PROMPTS, max_tokens=3, stream=True)
    )
    texts = [
        "".join(c.choices[0].text for c in streamed if c.choices[0].index == i) for i in range(3)
    ]
    assert texts == [c.text for c in reply.choices]
    ends = {
        c.choices[0].index: c.choices[0].finish_reason
        for c in streamed
        if c.choices[0].finish_reason
    }
    assert ends == {i: c.finish_reason for i, c in enumerate(reply.choices)}


def test_models_lists_the_generation_tasks(ws: Workspace, client, server: str) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == ["chat"]  # "words" classifies: not a model
    (model,) = models.data
    assert model.object == "model" and model.owned_by == "contlearn"
    assert model.created == int(ws.ledger.task("chat").trained_at.timestamp())
    tasks = {t["name"]: t["kind"] for t in call(server, "GET", "/v1/tasks")[1]["tasks"]}
    assert tasks == {"chat": "generation", "words": "classification"}


def test_without_max_tokens_the_task_s_budget_is_cut_to_the_limit(ws: Workspace) -> None:
    """The task records 4 new tokens; a server whose max_tokens is 2 generates 2 at most."""
    with thread_server(ws, max_tokens=2) as base:
        status, body = call(base, "POST", "/v1/tasks/chat/generate", {"prompt": PROMPTS[0]})
    assert status == 200 and body["tokens"] == 2 and body["finish_reason"] == "length"
    assert body["text"] == alone(ws, PROMPTS[0], max_new_tokens=2)["text"]


def test_a_job_with_its_own_work_is_handed_out_alone_at_once() -> None:
    import time

    from contlearn.serve.batching import Batcher, Job

    batcher = Batcher(max_batch=8, max_wait=5.0, max_queued_rows=64)
    jobs = [
        Job([{"r": 1}], print),
        Job([{"r": 2}], print, work=len),
        Job([{"r": 3}], print),
        Job([{"r": 4}], print),
    ]
    for job in jobs:
        batcher.put(job)
    start = time.monotonic()
    assert batcher.take(1.0) == [jobs[0]]  # a batch never holds a generation
    assert batcher.take(1.0) == [jobs[1]]  # nor waits for others to join one
    assert time.monotonic() - start < 1.0
    batcher.close()
    assert batcher.take(1.0) == jobs[2:]


def test_the_token_limit_is_a_checked_setting() -> None:
    from contlearn.errors import ConfigError
    from contlearn.serve.config import ServeConfig

    assert ServeConfig().max_tokens == 256
    for bad in (0, 1025):
        with pytest.raises(ConfigError, match=f"max_tokens must be 1-1024, got {bad}"):
            ServeConfig(max_tokens=bad)


def test_generation_and_predictions_share_the_model_thread(ws: Workspace, server: str) -> None:
    """Concurrent generations and predictions each get the answer they get alone."""
    expected = {p: alone(ws, p)["text"] for p in PROMPTS}
    predicted = ws.predict("words", [{"text": t} for t in PROMPTS])
    labels = {t: row["label"] for t, row in zip(PROMPTS, predicted, strict=True)}
    got: dict[tuple[str, str], Any] = {}

    def ask(kind: str, prompt: str) -> None:
        if kind == "generate":
            got[kind, prompt] = call(server, "POST", "/v1/tasks/chat/generate", {"prompt": prompt})
        else:
            body = {"inputs": [{"text": prompt}]}
            got[kind, prompt] = call(server, "POST", "/v1/tasks/words/predict", body)

    threads = [
        threading.Thread(target=ask, args=(kind, p))
        for p in PROMPTS * 2
        for kind in ("generate", "predict")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for (kind, prompt), (status, body) in got.items():
        assert status == 200, body
        if kind == "generate":
            assert body["text"] == expected[prompt]
        else:
            assert body["predictions"][0]["label"] == labels[prompt]
    status, text = call(server, "GET", "/metrics")
    assert 'endpoint="/v1/tasks/{task}/generate",status="200"' in text


# -- refusals ----------------------------------------------------------------------------------

GENERATE = "/v1/tasks/chat/generate"
CHAT = "/v1/chat/completions"
USER = [{"role": "user", "content": "good"}]


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        (GENERATE, {"prompt": "good", "max_tokens": LIMIT + 1}, 400, f"max_tokens is {LIMIT}"),
        (GENERATE, {"prompt": "good", "max_tokens": 0}, 400, "max_tokens must be an integer >= 1"),
        (GENERATE, {"prompt": "good", "temperature": -0.5}, 400, "temperature must be >= 0"),
        (GENERATE, {"prompt": "good", "top_p": 0}, 400, "top_p must be in (0, 1], got 0.0"),
        (GENERATE, {"prompt": "good", "top_p": 1.5}, 400, "top_p must be in (0, 1]"),
        (GENERATE, {"prompt": "good", "seed": "x"}, 400, "seed must be an integer"),
        (GENERATE, {"prompt": "good", "seed": 2**70}, 400, "seed must be -9223372036854775808"),
        (GENERATE, b'{"prompt": "a", "temperature": 1e400}', 400, "a finite number, got inf"),
        (GENERATE, b'{"prompt": "a", "top_p": NaN}', 400, "top_p must be a finite number"),
        (GENERATE, {"prompt": "good", "temperature": 10**400}, 400, "must be a finite number"),
        (GENERATE, {"prompt": "good", "temperature": "hot"}, 400, "must be a number, not 'hot'"),
        (GENERATE, {"prompt": "good", "stream": "yes"}, 400, "stream must be true or false"),
        (GENERATE, {}, 400, "give either 'prompt' (a string) or 'messages'"),
        (GENERATE, {"prompt": "a", "messages": USER}, 400, "give either 'prompt'"),
        (GENERATE, {"prompt": "  "}, 400, "prompt is empty"),
        (GENERATE, {"prompt": 3}, 400, "prompt must be a string, not a number"),
        (GENERATE, b'{"prompt": "good"', 400, "the body is not valid JSON"),
        (GENERATE, {"messages": "hi"}, 400, "messages must be a non-empty list"),
        (GENERATE, {"messages": []}, 400, "messages must be a non-empty list"),
        (GENERATE, {"messages": [{"role": "user"}]}, 400, "is not a {role, content} turn"),
        (GENERATE, {"messages": [{"role": "bot", "content": "x"}]}, 400, "unknown role 'bot'"),
        (GENERATE, {"messages": [{"role": ["user"], "content": "x"}]}, 400, "role, content"),
        (GENERATE, {"messages": ["hi"]}, 400, "is not a {role, content} turn"),
        (GENERATE, {"messages": [{"role": "user", "content": [{"type": "image"}]}]}, 400, "text"),
        (
            GENERATE,
            {"messages": [*USER, {"role": "assistant", "content": "yes"}]},
            400,
            "the conversation ends with the assistant's turn",
        ),
        ("/v1/tasks/nope/generate", {"prompt": "good"}, 404, "no task 'nope' is served"),
        (
            "/v1/tasks/words/generate",
            {"prompt": "good"},
            400,
            "task 'words' is a classification task, which generates no text",
        ),
        (CHAT, {"model": "nope", "messages": USER}, 404, "no task 'nope' is served"),
        (CHAT, {"model": "words", "messages": USER}, 400, "which generates no text"),
        (CHAT, {"messages": USER}, 400, "name the task in 'model'"),
        (CHAT, {"model": "chat"}, 400, "the body has no 'messages'"),
        (CHAT, {"model": "chat", "messages": USER, "n": 2}, 400, "n must be 1"),
        (CHAT, {"model": "chat", "messages": USER, "stop": ["."]}, 400, "stop sequences"),
        (CHAT, b"[1, 2]", 400, "the body is a JSON list, not an object"),
        ("/v1/completions", {"model": "chat", "prompt": []}, 400, "prompt must be a string or"),
        ("/v1/completions", {"model": "chat", "prompt": ["a"] * 5}, 400, "max_rows is 4"),
        ("/v1/completions", {"model": "chat"}, 400, "the body has no 'prompt'"),
    ],
)
def test_bad_requests_are_refused_in_one_line(server: str, path, body, status, message) -> None:
    for stream in (False, True):
        sent = body if isinstance(body, bytes) or not stream else {"stream": True, **body}
        got, answer = call(server, "POST", path, sent)
        assert got == status, answer
        error = answer["error"]
        text = error if path.startswith("/v1/tasks/") else error["message"]
        assert message in text and "\n" not in text


def test_openai_routes_refuse_in_openai_s_error_shape(client, server: str) -> None:
    import openai

    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nope", messages=USER)
    error = missing.value.body
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert error["type"] == "invalid_request_error" and "GET /v1/tasks" in error["message"]
    with pytest.raises(openai.BadRequestError) as over:
        client.completions.create(model="chat", prompt="good", max_tokens=LIMIT + 1)
    assert over.value.body["code"] == "max_tokens" and over.value.body["param"] == "max_tokens"
    status, body = call(server, "GET", "/v1/models", token="wrong")
    assert status == 401 and body["error"]["type"] == "authentication_error"


# -- text pieces -------------------------------------------------------------------------------


def test_pieces_never_split_a_multibyte_character(tmp_path: Path) -> None:
    """A byte-level BPE tokenizer (trained here) spreads a character's bytes over several ids:
    each piece is whole characters, and the pieces join to the whole decoded text."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(["plain ascii words only"] * 20, vocab_size=300, min_frequency=1)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe)
    text = "  café 日本語 ok 🙂 done "
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > len(text.encode("utf-8")) // 2  # mostly one id per byte
    pieces = TextPieces(tokenizer)
    sent = [pieces.add(i) for i in ids] + [pieces.finish()]
    assert "".join(sent) == pieces.text == text.strip()
    assert all("\ufffd" not in piece for piece in sent)
    assert sum(1 for piece in sent if piece) >= 5  # sent as it came, not all at the end


def test_a_stream_nobody_reads_stops_its_generation(ws: Workspace) -> None:
    """Once the client left (the stream closed), the model's thread stops that generation at
    its next piece (499, nothing logged) and goes on answering."""
    import asyncio

    from contlearn.errors import BadRequest
    from contlearn.serve.completions import END, _Stream
    from contlearn.serve.config import ServeConfig
    from contlearn.serve.generating import native
    from contlearn.serve.runner import worker_for

    worker = worker_for(ws, ServeConfig(threads=1))
    worker.start()

    async def both() -> tuple[Any, list[Any]]:
        req = native({"prompt": PROMPTS[0], "stream": True}, "chat", worker.snapshot, worker.config)
        left = _Stream(worker, req)
        left.closed.set()  # before its first piece
        with pytest.raises(BadRequest) as stopped:
            while await left.next() is not END:
                pass
        read, items = _Stream(worker, req), []
        while (item := await read.next()) is not END:
            items.append(item)
        return stopped.value, items

    try:
        stopped, items = asyncio.run(both())
    finally:
        worker.stop()
    assert stopped.status == 499 and "the client left" in str(stopped)
    assert "".join(piece for _, piece in items) == alone(ws, PROMPTS[0])["text"]
