"""Prediction without a task name: routing statistics written with each task, the router over
them, ``predict`` with the task ``auto`` through the API and the command line, and the audit of
the routing files."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from tests.conftest import copy_workspace, fast_workspace, invoke, settled

FILM = ["good", "bad", "great", "awful", "movie", "film", "very", "not"]
PETS = ["cat", "dog", "sport", "news", "tech", "money", "same", "other"]


def write_words_task(folder: Path, words: list[str], keywords: dict[str, str], seed: int) -> Path:
    """A csv task whose texts use only ``words``; the label is the keyword a text holds."""
    rng = random.Random(seed)
    fillers = [w for w in words if w not in keywords.values()]
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", 64), ("dev", 24)):
        with open(folder / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            for _ in range(count):
                label = rng.choice(sorted(keywords))
                text = rng.choices(fillers, k=rng.randint(3, 6)) + [keywords[label]]
                rng.shuffle(text)
                writer.writerow([" ".join(text), label])
    return folder


def dev_texts(folder: Path) -> list[str]:
    with open(folder / "dev.csv", encoding="utf-8") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def routed_once(tmp_path_factory: pytest.TempPathFactory, word_backbone: Path) -> Path:
    """A workspace with two tasks of disjoint vocabularies, trained; the routing files of the
    first as they were before the second trained are kept beside it."""
    base = tmp_path_factory.mktemp("routing")
    ws = fast_workspace(base / "ws", word_backbone)
    ws.add_task("film", write_words_task(base / "film", FILM, {"pos": "good", "neg": "bad"}, 1))
    ws.add_task("pets", write_words_task(base / "pets", PETS, {"a": "cat", "b": "dog"}, 2))
    ws.train_next(epochs=1)
    first = {p.name: p.read_bytes() for p in ws.task_dir("film").rglob("routing.*")}
    (base / "before.json").write_text(json.dumps({k: v.hex() for k, v in first.items()}))
    ws.train_next(epochs=1)
    return settled(ws)


@pytest.fixture()
def routed(routed_once: Path, tmp_path: Path):
    return copy_workspace(routed_once, tmp_path / "ws")


def test_disjoint_vocabularies_route_perfectly(routed) -> None:
    film, pets = (Path(routed.ledger.task(n).data_source) for n in ("film", "pets"))
    rows = [{"text": t} for t in dev_texts(film)] + [{"text": t} for t in dev_texts(pets)]
    truth = ["film"] * len(dev_texts(film)) + ["pets"] * len(dev_texts(pets))
    routes = routed.route(rows)
    assert [r["task"] for r in routes] == truth
    assert all(0.5 < r["confidence"] <= 1.0 for r in routes)
    results = routed.predict(None, rows)
    assert [r["task"] for r in results] == truth
    named = routed.predict("film", rows[:3])
    assert [r["label"] for r in results[:3]] == [r["label"] for r in named]
    assert {"confidence", "label", "probabilities"} <= set(results[0])
    # words neither task ever saw: beyond the threshold, none of these
    (stranger,) = routed.predict("auto", [{"id": "x", "text": "true false and that yes no"}])
    assert stranger["task"] is None and stranger["label"] is None
    assert stranger["nearest"] in ("film", "pets") and stranger["id"] == "x"


def test_routing_file_of_an_earlier_task_never_changes(routed_once: Path, routed) -> None:
    before = json.loads((routed_once.parent / "before.json").read_text())
    after = {p.name: p.read_bytes().hex() for p in routed.task_dir("film").rglob("routing.*")}
    assert set(before) == {"routing.safetensors", "routing.json"}
    assert after == before
    files = routed.artifact_files("film")
    assert files["routing"].read_bytes().hex() == before["routing.safetensors"]


def rows_of(ws, task: str) -> list[dict]:
    return [{"text": t} for t in dev_texts(Path(ws.ledger.task(task).data_source))]


def test_audit_recomputes_routing_files_and_finds_one_tampered(routed) -> None:
    clean = routed.audit()
    assert clean["verdict"] == "clean"
    assert [t["routing"] for t in clean["tasks"]] == ["reproduced", "reproduced"]
    path = routed.artifact_files("pets")["routing-meta"]
    path.write_text(path.read_text().replace('"max_length"', '"max_length" '))
    found = routed.audit()
    assert found["verdict"] == "tampered"
    pets = next(t for t in found["tasks"] if t["task"] == "pets")
    assert not pets["artifact_ok"] and "routing.json was modified" in pets["findings"][0]
    from contlearn.errors import ArtifactError

    with pytest.raises(ArtifactError, match=r"^task 'pets': artifact .*routing.json was modif"):
        routed.retrain("film", epochs=1)  # verifying the earlier tasks checks them too
    assert routed.ledger.task("film").status == "trained"


def test_predict_task_auto_on_the_command_line(routed) -> None:
    lines = "".join(json.dumps(r) + "\n" for r in rows_of(routed, "pets")[:4])
    done = invoke(routed, "predict", "--task", "auto", "--input", "-", stdin=lines)
    assert done.exit_code == 0, done.output
    results = [json.loads(line) for line in done.output.splitlines()]
    assert [r["task"] for r in results] == ["pets"] * 4
    assert all(r["label"] in ("a", "b") and r["confidence"] > 0.5 for r in results)
    routes = invoke(routed, "route", "--input", "-", stdin=lines)
    assert [json.loads(line)["task"] for line in routes.output.splitlines()] == ["pets"] * 4


def test_the_routing_report_measures_every_step(routed) -> None:
    done = invoke(routed, "routing", "--json", "--max-rows", "12")
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert report["tasks"] == ["film", "pets"]
    assert [s["after"] for s in report["steps"]] == ["film", "pets"]
    assert report["steps"][1]["matrix"][0][:2] == [1.0, 0.0]  # film's inputs: all to film
    assert report["steps"][1]["matrix"][1][:2] == [0.0, 1.0]
    assert report["out_of_scope"]["pets"]["auroc"] == 1.0  # pets far from a film-only router
    e2e = report["end_to_end"]["film"]
    assert e2e["routed"] == e2e["task_given"] and e2e["routed_to_own_task"] == 1.0
    assert report["throughput"]["rows"] == 24 and report["throughput"]["ratio"] > 0


def test_the_routing_benchmark_runs_at_the_tiny_size(tmp_path: Path) -> None:
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "routing.py"
    spec = importlib.util.spec_from_file_location("routing_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "out"
    assert bench.main(["--tiny", "--out", str(out), "--max-rows", "8"]) == 0
    record = json.loads((out / "routing.json").read_text())
    assert record["report"]["steps"][-1]["accuracy"] == 1.0
    table = (out / "ROUTING.md").read_text()
    assert "| film | 1.000 | 0.000 | 0.000 |" in table and "with routing" in table


def forget_routing(ws) -> None:
    """Make ``ws`` look trained before routing existed: no routing rows, no routing files."""
    from sqlalchemy import delete

    from contlearn.ledger.schema import ROUTING_ROLES, ArtifactRow

    for path in ws.root.rglob("routing.*"):
        path.unlink()
    with ws.ledger.session() as s:
        s.execute(delete(ArtifactRow).where(ArtifactRow.role.in_(ROUTING_ROLES)))


def test_tasks_trained_before_routing_get_statistics_from_route_stats(routed) -> None:
    forget_routing(routed)
    weights = {n: routed.artifact_files(n) for n in ("film", "pets")}
    refused = invoke(routed, "predict", "--task", "auto", "--input", "-", stdin='{"text": "cat"}')
    assert refused.exit_code == 1
    assert refused.output.strip() == (
        "Error: task 'film' has no routing statistics (trained before routing existed): run "
        "`contlearn route-stats` to compute them (nothing trained is changed)"
    )
    done = invoke(routed, "route-stats", "--json")
    assert done.exit_code == 0, done.output
    assert [r["task"] for r in json.loads(done.output)["recorded"]] == ["film", "pets"]
    assert {n: routed.artifact_files(n) for n in ("film", "pets")} == weights  # runs untouched
    again = invoke(routed, "route-stats")
    assert "every trained task has routing statistics (2 tasks)" in again.output
    assert [r["task"] for r in routed.route(rows_of(routed, "film")[:3])] == ["film"] * 3
    audit = routed.audit()
    assert audit["verdict"] == "clean"
    assert [t["routing"] for t in audit["tasks"]] == ["reproduced", "reproduced"]
    assert routed.gc()["deleted"] == []  # route-stats' files serve the current runs
    assert [r["task"] for r in routed.route(rows_of(routed, "pets")[:3])] == ["pets"] * 3


def test_bad_input_is_refused_in_one_line(routed, tmp_path: Path, word_backbone: Path) -> None:
    from contlearn.errors import BadData, InvalidTaskName, RoutingUnavailable, TaskNotFound

    with pytest.raises(BadData, match=r"^row 2 holds none of the trained tasks' text fields"):
        routed.predict("auto", [{"text": "cat"}, {"review": "a dog"}])
    with pytest.raises(TaskNotFound, match="^'auto' names no task: routing chooses tasks only"):
        routed.audit(task="auto")
    done = invoke(routed, "retrain", "auto")
    assert done.exit_code == 2 and done.output.startswith("Error: 'auto' names no task")
    with pytest.raises(InvalidTaskName, match="'auto' is reserved"):
        routed.add_task("auto", Path(routed.ledger.task("film").data_source))
    workspace = fast_workspace(tmp_path / "empty", word_backbone)
    with pytest.raises(RoutingUnavailable, match="^no task is trained, so none can be chosen"):
        workspace.route([{"text": "cat"}])
    done = invoke(workspace, "predict", "--task", "auto", "--input", "-", stdin='{"text": "x"}')
    assert done.exit_code == 1 and done.output.count("\n") == 1


def test_serve_routes_rows_without_a_task_and_never_fails_with_500(routed) -> None:
    from tests.test_serve import call, thread_server

    film, pets = rows_of(routed, "film")[:2], rows_of(routed, "pets")[:2]
    with thread_server(routed) as base:
        status, body = call(base, "POST", "/v1/predict", {"items": [*film, *pets]})
        assert status == 200, body
        got = body["predictions"]
        assert [r["task"] for r in got] == ["film", "film", "pets", "pets"]
        want = routed.predict("auto", [*film, *pets])
        assert [r["label"] for r in got] == [r["label"] for r in want]
        named = {"task": "pets", **pets[0]}
        status, body = call(base, "POST", "/v1/predict", {"items": [named, {"id": 7, **film[0]}]})
        assert status == 200 and [r["task"] for r in body["predictions"]] == ["pets", "film"]
        assert "confidence" not in body["predictions"][0] and body["predictions"][1]["id"] == 7
        status, body = call(base, "POST", "/v1/route", {"inputs": [*pets, *film]})
        assert status == 200, body
        assert [r["task"] for r in body["routes"]] == ["pets", "pets", "film", "film"]
        assert all(0.5 < r["confidence"] <= 1 for r in body["routes"])
        for doc, where in (
            ({"inputs": [{"review": "a cat"}]}, "inputs[0]"),
            ({"inputs": [{"text": ""}]}, "inputs[0].text"),
            ({"inputs": [3]}, "inputs[0]"),
            ({"rows": []}, "inputs"),
        ):
            status, body = call(base, "POST", "/v1/route", doc)
            assert status == 422 and body["field"] == where, body
        status, body = call(base, "POST", "/v1/predict", {"items": [{"task": "auto"}]})
        assert status == 422 and "holds no text field of a served task" in body["error"]
        assert call(base, "POST", "/v1/route", {"inputs": []}) == (200, {"routes": []})
        assert 'status="500"' not in call(base, "GET", "/metrics")[1]


def test_the_routing_report_on_a_workspace_with_a_tagging_task(routed, tmp_path: Path) -> None:
    """A tagging task's rows are routed like any task's and scored end to end: its entity F1
    with the task given is the one training recorded on the same dev rows, and routing that
    sends every row home changes nothing."""
    from tests.test_tagging import write_tagging_task

    routed.add_task("tags", write_tagging_task(tmp_path / "tags", n_train=24, n_dev=8))
    (trained,) = routed.train_next(epochs=4, lr=0.02)
    report = routed.routing_report(max_rows=8)
    assert report["tasks"] == ["film", "pets", "tags"]
    assert len(report["steps"][2]["matrix"]) == 3
    tags = report["end_to_end"]["tags"]
    assert tags["metric"] == "entity_f1"
    assert tags["task_given"] == pytest.approx(trained["metrics"]["entity_f1"])
    if tags["routed_to_own_task"] == 1.0:
        assert tags["routed"] == tags["task_given"]
    else:
        assert tags["routed"] <= tags["task_given"]
    assert report["end_to_end"]["film"]["routed_to_own_task"] == 1.0


def test_routing_to_a_generation_task_answers_with_its_text(tmp_path: Path) -> None:
    """On a decoder: a generation task and a classification task of disjoint vocabularies;
    ``predict auto`` sends most prompts to the task they belong to (a tiny random decoder's
    features separate them less cleanly than the tiny encoder's) and answers a prompt routed to
    the generation task with that task's text; the report scores it end to end."""
    from tests.test_generation import save_chat_llama, write_generation_task

    ws = fast_workspace(tmp_path / "ws", save_chat_llama(tmp_path / "llama"))
    ws.add_task("chat", write_generation_task(tmp_path / "chat", n_train=32), max_new_tokens=4)
    ws.add_task("pets", write_words_task(tmp_path / "pets", PETS, {"a": "cat", "b": "dog"}, 2))
    chat, _ = ws.train_next(all_tasks=True, epochs=3, lr=0.02, batch_size=8)
    lines = (tmp_path / "chat" / "dev.jsonl").read_text(encoding="utf-8").splitlines()
    prompts = [json.loads(line)["prompt"] for line in lines]
    pets = dev_texts(tmp_path / "pets")[:8]
    got = ws.predict("auto", [{"prompt": p} for p in prompts] + [{"text": t} for t in pets])
    want = ["chat"] * len(prompts) + ["pets"] * len(pets)
    assert sum(r["task"] == w for r, w in zip(got, want, strict=True)) >= 0.75 * len(got)
    home = [(p, r["text"]) for p, r in zip(prompts, got, strict=False) if r["task"] == "chat"]
    assert home
    given = ws.predict("chat", [{"prompt": p} for p, _ in home])
    assert [text for _, text in home] == [r["text"] for r in given]
    report = ws.routing_report(max_rows=8)
    e2e = report["end_to_end"]["chat"]
    assert e2e["metric"] == "accuracy" and e2e["routed_to_own_task"] >= 0.75
    assert e2e["task_given"] == pytest.approx(chat["metrics"]["accuracy"])
    assert e2e["routed"] <= e2e["task_given"]
    if e2e["routed_to_own_task"] == 1.0:
        assert e2e["routed"] == e2e["task_given"]
