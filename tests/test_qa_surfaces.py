"""An extractive-QA task through the surfaces: ``contlearn serve`` (its answer, the catalog's
kind, a mixed batch with a classification task, hostile input) and the CLI (``predict`` as JSON
lines and CSV)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from contlearn.api import Workspace
from tests.conftest import invoke, write_keyword_task
from tests.test_extractive_qa import write_qa_task
from tests.test_serve import TOKEN, call, cli_predict, cli_server

QUESTION = "which animal"
CONTEXT = "the movie was very good this dog is bad"  # the training contexts' words


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, word_backbone: Path) -> Workspace:
    """Trained: "words" (classification: pos / neg), "squad" (extractive QA, SQuAD v1)."""
    tmp = tmp_path_factory.mktemp("qa-surfaces")
    ws = Workspace.create(tmp / "ws", backbone=str(word_backbone))
    ws.add_task("words", write_keyword_task(tmp / "words", n_train=48, n_dev=16, seed=4))
    ws.add_task("squad", write_qa_task(tmp / "squad", n_train=96, n_dev=16))
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


def answered(row: dict, context: str = CONTEXT) -> None:
    """An answer's text is its span of the context, with a float score."""
    assert set(row) >= {"label", "start", "end", "score"} and row["probabilities"] is None
    assert context[row["start"] : row["end"]] == row["label"]
    assert isinstance(row["score"], float)


# -- serve --------------------------------------------------------------------------------


def test_a_qa_task_is_served_with_its_answer_span_and_score(ws: Workspace, server: str) -> None:
    rows = [{"id": "q1", "question": QUESTION, "context": CONTEXT}]
    status, body = call(server, "POST", "/v1/tasks/squad/predict", {"inputs": rows})
    assert status == 200, body
    (row,) = body["predictions"]
    answered(row)
    assert row["label"] and row["id"] == "q1"
    assert body["predictions"] == cli_predict(ws, rows, "squad")


def test_the_catalog_says_the_qa_tasks_kind(server: str) -> None:
    status, body = call(server, "GET", "/v1/tasks")
    assert status == 200, body
    kinds = {t["name"]: (t["kind"], t["regression"]) for t in body["tasks"]}
    assert kinds == {"words": ("classification", False), "squad": ("extractive-qa", False)}
    squad = next(t for t in body["tasks"] if t["name"] == "squad")
    assert squad["text_fields"] == ["question", "context"] and squad["metric"] == "qa_f1"


def test_a_mixed_batch_answers_classification_and_qa_rows_as_predict_does(
    ws: Workspace, server: str
) -> None:
    other = "a cat is in this news it was"
    items = [
        {"task": "words", "text": "the movie was good"},
        {"task": "squad", "question": QUESTION, "context": CONTEXT},
        {"task": "words", "text": "bad film"},
        {"task": "squad", "question": QUESTION, "context": other},
    ]
    status, body = call(server, "POST", "/v1/predict", {"items": items})
    assert status == 200, body
    got = body["predictions"]
    assert [p["task"] for p in got] == ["words", "squad", "words", "squad"]
    assert got == cli_predict(ws, items, "--task-field", "task")
    assert got[0]["label"] in ("pos", "neg") and set(got[0]["probabilities"]) == {"pos", "neg"}
    assert "start" not in got[0]
    answered(got[1])
    answered(got[3], other)
    _, alone = call(server, "POST", "/v1/tasks/squad/predict", {"inputs": [items[1], items[3]]})
    assert [p["label"] for p in alone["predictions"]] == [got[1]["label"], got[3]["label"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"inputs": [{"question": QUESTION}]}, "inputs[0].context"),
        ({"inputs": [{"context": CONTEXT}]}, "inputs[0].question"),
        ({"inputs": [{"question": "", "context": CONTEXT}]}, "inputs[0].question"),
        ({"inputs": [{"question": "  ", "context": CONTEXT}]}, "inputs[0].question"),
        ({"inputs": [{"question": QUESTION, "context": ""}]}, "inputs[0].context"),
        ({"inputs": [{"question": 7, "context": CONTEXT}]}, "inputs[0].question"),
        ({"inputs": [{"question": QUESTION, "context": ["a", "dog"]}]}, "inputs[0].context"),
        ({"inputs": [{"question": None, "context": CONTEXT}]}, "inputs[0].question"),
        ({"inputs": [{"text": CONTEXT}]}, "inputs[0].question"),
        ({"inputs": [QUESTION]}, "inputs[0]"),
        ({"inputs": {"question": QUESTION}}, "inputs"),
    ],
)
def test_hostile_input_for_a_qa_task_is_a_4xx_never_a_500(
    server: str, body: dict, field: str
) -> None:
    status, answer = call(server, "POST", "/v1/tasks/squad/predict", body)
    assert 400 <= status < 500, answer
    assert answer["field"] == field, answer
    assert answer["error"] and "Traceback" not in answer["error"]


def test_hostile_qa_input_in_a_mixed_batch_is_a_4xx_never_a_500(server: str) -> None:
    items = [{"task": "words", "text": "good"}, {"task": "squad", "question": QUESTION}]
    status, answer = call(server, "POST", "/v1/predict", {"items": items})
    assert 400 <= status < 500 and answer["field"] == "items[1].context", answer
    status, answer = call(server, "GET", "/metrics")
    assert status == 200 and 'status="500"' not in str(answer)


# -- the CLI ------------------------------------------------------------------------------


def test_predict_prints_the_answer_as_json_lines_and_csv(ws: Workspace) -> None:
    stdin = json.dumps({"id": "q1", "question": QUESTION, "context": CONTEXT}) + "\n"
    result = invoke(ws, "predict", "squad", "--input", "-", "-q", stdin=stdin)
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in result.output.splitlines()]
    assert row["id"] == "q1" and row["task"] == "squad"
    answered(row)
    result = invoke(ws, "predict", "squad", "--input", "-", "--format", "csv", "-q", stdin=stdin)
    assert result.exit_code == 0, result.output
    (cells,) = list(csv.DictReader(io.StringIO(result.output)))
    assert cells["id"] == "q1" and cells["label"] == row["label"]
    assert (int(cells["start"]), int(cells["end"])) == (row["start"], row["end"])
    assert float(cells["score"]) == row["score"]


def test_predict_refuses_a_qa_row_without_its_context_in_one_line(ws: Workspace) -> None:
    stdin = json.dumps({"question": QUESTION}) + "\n"
    result = invoke(ws, "predict", "squad", "--input", "-", "-q", stdin=stdin)
    assert result.exit_code != 0
    message = result.output.strip()
    assert message.startswith("Error: ") and "\n" not in message and "context" in message


def test_the_verification_table_shows_a_qa_or_tagging_tasks_primary_metric_alone(
    word_workspace: Workspace, tmp_path: Path
) -> None:
    """Their scores include breakdowns (v2's has/no answer, per entity type): the table's
    recorded and now columns show the primary metric; ``--json`` and the ledger keep all."""
    from tests.test_tagging import write_tagging_task

    ws = word_workspace
    ws.add_task("squad", write_qa_task(tmp_path / "squad", n_train=16, n_dev=9, v2=True))
    ws.add_task("ner", write_tagging_task(tmp_path / "ner", n_train=16, n_dev=8))
    ws.add_task("words", write_keyword_task(tmp_path / "words", n_train=16, n_dev=8, seed=4))
    ws.train_next(all_tasks=True, epochs=1)
    ws.add_task("more", write_keyword_task(tmp_path / "more", n_train=16, n_dev=8, seed=5))
    result = invoke(ws, "train-next", "-q", "--epochs", "1")
    assert result.exit_code == 0, result.output
    header, *rows = result.output.split("verification of earlier tasks:\n")[1].splitlines()
    cells = {row.split()[0]: row for row in rows}
    recorded = {t: ws.ledger.trained_run(ws.ledger.task(t).id).result["metrics"] for t in cells}
    assert len(recorded["squad"]) > 2 and len(recorded["ner"]) > 4  # the breakdowns
    assert f"qa_f1 {recorded['squad']['qa_f1']:.4f}" in cells["squad"]
    assert "exact_match" not in cells["squad"] and "answer" not in cells["squad"]
    assert cells["ner"].count("entity_f1") == 2 and "token_accuracy" not in cells["ner"]
    words = ", ".join(f"{k} {v:.4f}" for k, v in recorded["words"].items())
    assert cells["words"].count(words) == 2  # a classification task's: every metric
    ws.add_task("last", write_keyword_task(tmp_path / "last", n_train=16, n_dev=8, seed=6))
    result = invoke(ws, "train-next", "--json", "--epochs", "1")
    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.output)["runs"]
    rows = {v["task"]: v for v in run["verifications"]}
    assert rows["squad"]["recorded"] == recorded["squad"] and rows["squad"]["shown"] == ["qa_f1"]
    assert rows["ner"]["now"] == recorded["ner"] and rows["ner"]["metric"] == "entity_f1"
