"""A tagging task through the surfaces: ``contlearn serve`` (per-kind answers, a mixed batch
with a classification task, hostile input) and the CLI (add-task recognises or is forced to
tagging, status shows the kind, predict prints words and entities, as JSON lines and CSV)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from contlearn.api import Workspace
from tests.conftest import invoke, write_keyword_task
from tests.test_serve import TOKEN, call, cli_predict, cli_server
from tests.test_tagging import write_tagging_task

TEXT = "the cat saw news tech"


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, word_backbone: Path) -> Workspace:
    """Trained: "words" (classification: pos / neg), "ner" (tagging: ANI, ORG)."""
    tmp = tmp_path_factory.mktemp("surfaces")
    ws = Workspace.create(tmp / "ws", backbone=str(word_backbone))
    ws.add_task("words", write_keyword_task(tmp / "words", n_train=48, n_dev=16, seed=4))
    ws.add_task("ner", write_tagging_task(tmp / "ner", n_train=96, n_dev=16))
    ws.train_next(all_tasks=True, epochs=6, lr=0.02, max_length=32)
    return ws


@pytest.fixture(scope="module")
def server(ws: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``contlearn serve`` as a subprocess, on one thread (as ``cli_predict`` computes)."""
    folder = tmp_path_factory.mktemp("server")
    (folder / "token").write_text(TOKEN + "\n")
    args = ["--token-file", str(folder / "token"), "--threads", "1", "--max-wait-ms", "20"]
    with cli_server(ws.root, folder / "server.log", *args) as (base, _proc):
        yield base


def entities_of(row: dict) -> list[tuple[str, str]]:
    return [(e["type"], e["text"]) for e in row["entities"]]


# -- serve --------------------------------------------------------------------------------


def test_a_tagging_task_is_served_with_words_and_entities(ws: Workspace, server: str) -> None:
    status, body = call(server, "POST", "/v1/tasks/ner/predict", {"inputs": [{"tokens": TEXT}]})
    assert status == 200, body
    (row,) = body["predictions"]
    assert [w["word"] for w in row["words"]] == TEXT.split()
    assert row["label"] == " ".join(w["tag"] for w in row["words"])
    assert all(TEXT[w["start"] : w["end"]] == w["word"] for w in row["words"])
    assert all(TEXT[e["start"] : e["end"]] == e["text"] for e in row["entities"])
    assert ("ANI", "cat") in entities_of(row)  # learned: the sentence is like the training ones
    assert body["predictions"] == cli_predict(ws, [{"tokens": TEXT}], "ner")


def test_the_catalog_says_each_tasks_kind(server: str) -> None:
    status, body = call(server, "GET", "/v1/tasks")
    assert status == 200, body
    kinds = {t["name"]: (t["kind"], t["regression"]) for t in body["tasks"]}
    assert kinds == {"words": ("classification", False), "ner": ("tagging", False)}
    ner = next(t for t in body["tasks"] if t["name"] == "ner")
    assert ner["labels"][0] == "O" and ner["metric"] == "entity_f1"


def test_a_mixed_batch_answers_each_kind_as_predict_does(ws: Workspace, server: str) -> None:
    """Classification rows and tagging rows in one request: the tagging rows run in batches of
    their own (a per-token head), each answered as ``contlearn predict`` answers it."""
    items = [
        {"task": "words", "text": "the movie was good"},
        {"task": "ner", "tokens": TEXT},
        {"task": "words", "text": "bad film"},
        {"task": "ner", "tokens": "a dog and news"},
    ]
    status, body = call(server, "POST", "/v1/predict", {"items": items})
    assert status == 200, body
    got = body["predictions"]
    assert [p["task"] for p in got] == ["words", "ner", "words", "ner"]
    assert got == cli_predict(ws, items, "--task-field", "task")
    assert got[0]["label"] in ("pos", "neg") and set(got[0]["probabilities"]) == {"pos", "neg"}
    assert "entities" not in got[0] and got[1]["probabilities"] is None
    _, alone = call(
        server, "POST", "/v1/tasks/ner/predict", {"inputs": [items[1], items[3]]}
    )  # the tagging rows, in the same batch of their own
    assert [p["words"] for p in alone["predictions"]] == [got[1]["words"], got[3]["words"]]
    assert ("ANI", "cat") in entities_of(got[1])


def test_the_note_says_why_tagging_rows_run_apart_and_only_in_a_mixed_request(
    ws: Workspace,
) -> None:
    notes: list[str] = []
    ws.predict("ner", [{"tokens": TEXT}], on_note=notes.append)
    assert notes == []  # no other task's rows to share a pass with
    rows = [{"task": "words", "text": "good"}, {"task": "ner", "tokens": TEXT}]
    ws.predict(None, rows, task_field="task", on_note=notes.append)
    assert notes == [
        "task 'ner' cannot share a forward pass with other tasks' rows (a tagging task's head "
        "gives one output row per token): its rows ran in batches of their own"
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": [{"tokens": ""}]},
        {"inputs": [{"tokens": "   "}]},
        {"inputs": [{"tokens": 7}]},
        {"inputs": [{"tokens": ["the", "cat"]}]},
        {"inputs": [{"tokens": None}]},
        {"inputs": [{"text": TEXT}]},
        {"inputs": [{}]},
        {"inputs": "the cat"},
    ],
)
def test_hostile_input_for_a_tagging_task_is_a_4xx_never_a_500(server: str, body: dict) -> None:
    status, answer = call(server, "POST", "/v1/tasks/ner/predict", body)
    assert 400 <= status < 500, answer
    assert answer["error"] and "Traceback" not in answer["error"]


def test_a_text_longer_than_max_length_answers_every_word(ws: Workspace, server: str) -> None:
    """Words past the recorded max length (32 word pieces) have no logits: tagged O."""
    text = " ".join(["the cat saw news tech"] * 20)
    status, body = call(server, "POST", "/v1/tasks/ner/predict", {"inputs": [{"tokens": text}]})
    assert status == 200, body
    (row,) = body["predictions"]
    assert [w["word"] for w in row["words"]] == text.split()
    assert {w["tag"] for w in row["words"][40:]} == {"O"}
    assert all(e["end"] <= len(" ".join(text.split()[:31])) for e in row["entities"])


def test_hostile_input_in_a_mixed_batch_is_a_4xx_never_a_500(server: str) -> None:
    items = [{"task": "words", "text": "good"}, {"task": "ner", "tokens": ""}]
    status, answer = call(server, "POST", "/v1/predict", {"items": items})
    assert 400 <= status < 500 and answer["field"] == "items[1].tokens", answer
    status, answer = call(server, "GET", "/metrics")
    assert status == 200 and 'status="500"' not in str(answer)


# -- the CLI ------------------------------------------------------------------------------


def test_predict_prints_words_and_entities_as_json_lines_and_csv(ws: Workspace) -> None:
    stdin = json.dumps({"id": "s1", "tokens": TEXT}) + "\n"
    result = invoke(ws, "predict", "ner", "--input", "-", "-q", stdin=stdin)
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in result.output.splitlines()]
    assert row["id"] == "s1" and [w["word"] for w in row["words"]] == TEXT.split()
    assert ("ANI", "cat") in entities_of(row)
    result = invoke(ws, "predict", "ner", "--input", "-", "--format", "csv", "-q", stdin=stdin)
    assert result.exit_code == 0, result.output
    (cells,) = list(csv.DictReader(io.StringIO(result.output)))
    assert json.loads(cells["words"]) == row["words"]
    assert json.loads(cells["entities"]) == row["entities"]
    assert cells["label"] == row["label"]


def test_status_shows_each_tasks_kind(ws: Workspace) -> None:
    result = invoke(ws, "status", "--json")
    assert result.exit_code == 0, result.output
    kinds = {row["name"]: row["kind"] for row in json.loads(result.output)["tasks"]}
    assert kinds == {"words": "classification", "ner": "tagging"}
    table = invoke(ws, "status")
    assert table.exit_code == 0
    header, *lines = table.output.splitlines()
    assert header.split()[:6] == ["position", "name", "status", "method", "kind", "rows"]
    assert [line.split()[4] for line in lines[:2]] == ["classification", "tagging"]


def test_add_task_recognises_a_conll_folder_and_kind_forces_tagging(
    tmp_path: Path,
    word_backbone: Path,
) -> None:
    ws = Workspace.create(tmp_path / "ws", backbone=str(word_backbone))
    data = write_tagging_task(tmp_path / "ner", n_train=8, n_dev=4)
    result = invoke(ws, "add-task", "ner", "--data", str(data))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("added ner (tagging) at position 1: 8 train / 4 dev rows")
    assert "4 tags, metric entity_f1" in result.output
    result = invoke(ws, "add-task", "forced", "--data", str(data), "--kind", "tagging")
    assert result.exit_code == 0, result.output
    assert {t.name: t.kind for t in ws.tasks()} == {"ner": "tagging", "forced": "tagging"}
    words = write_keyword_task(tmp_path / "words", n_train=8, n_dev=4)
    refusals = [
        (words, "tagging", "tagging data needs a list of words and a list of tags per row"),
        (data, "classification", "holds tagging labels, which a classification task cannot"),
    ]
    for folder, kind, expected in refusals:
        result = invoke(ws, "add-task", "bad", "--data", str(folder), "--kind", kind)
        assert result.exit_code == 1, result.output
        message = result.output.strip()
        assert message.startswith("Error: ") and "\n" not in message
        assert expected in message and "bad" not in {t.name for t in ws.tasks()}
