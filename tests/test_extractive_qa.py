"""The ``extractive-qa`` kind end to end on tiny models: windows over long contexts, start/end
logits, spans back to characters, SQuAD's metrics, verification bit for bit, audit, predict."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from contlearn import kinds
from contlearn.api import Workspace
from contlearn.errors import BadData
from tests.conftest import write_keyword_task

FILLERS = ["the", "movie", "was", "very", "good", "bad", "this", "it", "is", "a", "news"]
QUESTIONS = {"cat": "what is the dog", "dog": "what is the dog"}


def qa_row(rng: random.Random, i: int, words: int = 8, impossible: bool = False) -> dict:
    """A context of fillers holding one animal (the answer to "which animal"), or none."""
    context = rng.choices(FILLERS, k=words)
    animal = rng.choice(["cat", "dog"])
    if not impossible:
        context.insert(rng.randrange(len(context) + 1), animal)
    text = " ".join(context)
    answers = [] if impossible else [{"text": animal, "answer_start": text.index(animal)}]
    return {"id": f"q{i}", "question": "which animal", "context": text, "answers": answers}


def squad_document(rows: list[dict], v2: bool) -> dict:
    paragraphs = []
    for row in rows:
        qa = {"id": row["id"], "question": row["question"], "answers": row["answers"]}
        if v2:
            qa["is_impossible"] = not row["answers"]
        paragraphs.append({"context": row["context"], "qas": [qa]})
    return {"version": "v2.0" if v2 else "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]}


def write_qa_task(
    folder: Path, *, n_train: int = 96, n_dev: int = 32, seed: int = 0, v2: bool = False
) -> Path:
    """A SQuAD-format folder (train.json, dev.json) whose answer is the context's animal."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, count in (("train.json", n_train), ("dev.json", n_dev)):
        rows = [qa_row(rng, i, impossible=v2 and i % 3 == 0) for i in range(count)]
        (folder / name).write_text(json.dumps(squad_document(rows, v2)), encoding="utf-8")
    return folder


@pytest.fixture()
def workspace(word_workspace: Workspace) -> Workspace:
    return word_workspace


def test_a_long_context_is_windows_and_decodes_back_to_characters(word_backbone: Path) -> None:
    from transformers import AutoTokenizer

    qa = kinds.get("extractive-qa")
    tokenizer = AutoTokenizer.from_pretrained(word_backbone)
    context = " ".join(["the movie was good"] * 6 + ["cat"] + ["it is bad"] * 4)
    target = (context, (("cat", context.index("cat")),), "q1")
    encoded = qa.encode(tokenizer, [("which animal", context)], 24, True, [target])
    assert len(encoded) > 2  # the context needs several windows of 24 tokens
    holding = [i for i, t in enumerate(encoded.targets) if t != (0, 0)]
    assert holding  # some window holds the answer; the others point at [CLS]
    # logits that point at the answer token in one window decode to its characters
    out = torch.full((len(encoded), encoded.width, 5), float("nan"))
    for w in range(len(encoded)):
        notes = torch.tensor(encoded.notes[w])
        out[w, : len(notes), :2] = 0.0
        out[w, : len(notes), 2:] = notes
    w = holding[0]
    row = encoded.positions[w].index(encoded.targets[w][0])
    out[w, row, :2] = 10.0
    ((start, end, score, _),) = qa.predictions(out)
    assert context[start:end] == "cat" and score == 20.0
    values = qa.score(["qa_f1"], [target], [(start, end, score, None)], ("answer",))
    assert values == {"qa_f1": 1.0, "qa_exact_match": 1.0}


def test_v2_answers_nothing_when_the_null_score_wins() -> None:
    qa = kinds.get("extractive-qa")
    targets = [("a cat", (("cat", 2),), "q1"), ("a dog", (), "q2")]
    said = [(2, 5, 3.0, -1.0), (2, 5, 1.0, 2.0)]  # the second: null beats the span by 2
    values = qa.score(["qa_exact_match"], targets, said, ("answer", "no answer"))
    assert values["qa_exact_match"] == 1.0
    assert values["has_answer_exact_match"] == 1.0 and values["no_answer_exact_match"] == 1.0
    v1 = qa.score(["qa_f1"], targets[:1], said[:1], ("answer",))
    assert v1["qa_f1"] == 1.0


def test_a_qa_task_trains_verifies_audits_and_predicts(
    workspace: Workspace, tmp_path: Path
) -> None:
    workspace.add_task("squad", write_qa_task(tmp_path / "squad"))
    workspace.add_task("words", write_keyword_task(tmp_path / "words", seed=4))
    record = workspace.ledger.task("squad")
    assert record.kind == "extractive-qa" and record.metric == "qa_f1"
    first, second = workspace.train_next(all_tasks=True, epochs=6, lr=0.02)
    assert first["metrics"]["qa_exact_match"] > 0.5  # it learns to point at the animal
    assert [(v["task"], v["outcome"]) for v in second["verifications"]] == [("squad", "identical")]
    assert workspace.audit()["verdict"] == "clean"
    context = "the movie was very good and this dog was bad"
    (row,) = workspace.predict("squad", [{"question": "which animal", "context": context}])
    assert context[row["start"] : row["end"]] == row["label"]
    assert isinstance(row["score"], float)


def test_an_answer_no_window_can_hold_is_refused_in_one_line(
    workspace: Workspace, tmp_path: Path
) -> None:
    folder = write_qa_task(tmp_path / "long", n_train=8, n_dev=4)
    document = json.loads((folder / "train.json").read_text())
    context = "the " * 40 + "cat " * 30 + "dog"
    start = context.index("cat")
    qa = {
        "id": "long-one",
        "question": "which animal",
        "answers": [{"text": context[start:-4].strip(), "answer_start": start}],
    }
    document["data"][0]["paragraphs"].append({"context": context, "qas": [qa]})
    (folder / "train.json").write_text(json.dumps(document))
    workspace.add_task("long", folder)
    with pytest.raises(BadData, match="'long-one'.*no window"):
        workspace.train_next(epochs=1)
    assert workspace.ledger.task("long").status != "trained"


METHODS = ["houlsby", "pfeiffer", "parallel", "lora", "ia3", "topk", "head"]


@pytest.mark.parametrize("method", METHODS)
def test_every_method_learns_a_qa_task_in_isolation(
    method: str, workspace: Workspace, tmp_path: Path
) -> None:
    """QA first, a classification task after it: the QA task's weights, logits and scores are
    identical afterwards."""
    workspace.add_task("squad", write_qa_task(tmp_path / "squad", n_train=48), method=method)
    workspace.add_task("words", write_keyword_task(tmp_path / "words", seed=4), method=method)
    first, second = workspace.train_next(all_tasks=True, epochs=1, lr=0.02)
    assert 0.0 <= first["metrics"]["qa_f1"] <= 1.0 and first["trainable_params"] > 0
    assert [(v["task"], v["outcome"]) for v in second["verifications"]] == [("squad", "identical")]
    assert workspace.audit()["verdict"] == "clean"


def test_compare_runs_every_baseline_on_classification_then_qa(
    workspace: Workspace, tmp_path: Path
) -> None:
    workspace.add_task("words", write_keyword_task(tmp_path / "words", seed=4))
    workspace.add_task("squad", write_qa_task(tmp_path / "squad", n_train=48, v2=True))
    assert workspace.ledger.task("squad").labels == ["answer", "no answer"]
    workspace.train_next(all_tasks=True, epochs=1, lr=0.02)
    results = workspace.compare(epochs=1)
    assert set(results["methods"]) == {
        "adapter",
        "sequential",
        "ewc",
        "replay",
        "joint",
        "separate",
        "lora-merged",
    }
    assert [t["metric"] for t in results["tasks"]] == ["accuracy", "qa_f1"]
    for method in results["methods"].values():
        (first, _), (after, last) = method["matrix"]
        assert None not in (first, after, last)
        assert "intervals" in method and method["intervals"]["acc"]["value"] is not None
        # the final predictions score what the evaluations recorded: both answer by the
        # no-answer threshold each method chose on the v2 task's selection split
        assert [t["score"] for t in method["intervals"]["tasks"]] == [after, last]
    assert results["methods"]["adapter"]["identical"] == {"identical": 1, "total": 1}
    squad = workspace.ledger.task("squad")
    chose = {
        r.method: r.result["calibration"][str(squad.id)]["null_threshold"]
        for r in workspace.ledger.runs()
        if r.comparison_id is not None and r.result and "calibration" in (r.result or {})
    }
    assert set(chose) == {"sequential", "ewc", "replay", "joint", "separate", "lora-merged"}
    assert all(isinstance(t, float) for t in chose.values())


def test_an_answer_not_in_its_context_is_refused_at_intake_with_nothing_written(
    workspace: Workspace, tmp_path: Path
) -> None:
    folder = write_qa_task(tmp_path / "bad", n_train=8, n_dev=4)
    document = json.loads((folder / "dev.json").read_text())
    qa = document["data"][0]["paragraphs"][2]["qas"][0]
    qa["answers"][0]["answer_start"] += 1
    (folder / "dev.json").write_text(json.dumps(document))
    before = sorted(p.name for p in workspace.root.rglob("*"))
    with pytest.raises(BadData, match=rf"question {qa['id']!r}.*answer_start") as caught:
        workspace.add_task("bad", folder)
    assert "\n" not in str(caught.value)
    assert workspace.ledger.tasks() == []
    assert sorted(p.name for p in workspace.root.rglob("*")) == before


def test_kind_extractive_qa_forces_the_reading_and_a_wrong_kind_is_refused(
    workspace: Workspace, tmp_path: Path
) -> None:
    folder = write_qa_task(tmp_path / "qa", n_train=8, n_dev=4)
    with pytest.raises(BadData, match="extractive-qa"):
        workspace.add_task("wrong", folder, kind="classification")
    assert workspace.add_task("qa", folder, kind="extractive-qa").kind == "extractive-qa"
    with pytest.raises(BadData):
        workspace.add_task("notqa", write_keyword_task(tmp_path / "kw"), kind="extractive-qa")


def test_the_probe_reruns_a_qa_and_a_tagging_batch_bit_for_bit(
    workspace: Workspace, tmp_path: Path
) -> None:
    """verify = probe: one canonical dev batch of each earlier task re-run and compared byte for
    byte (a tagging batch's NaN past each sentence's last word included)."""
    from tests.test_tagging import write_tagging_task

    workspace.add_task("squad", write_qa_task(tmp_path / "squad", n_train=16, n_dev=40))
    workspace.add_task("ner", write_tagging_task(tmp_path / "ner", n_train=16, n_dev=40))
    workspace.add_task("words", write_keyword_task(tmp_path / "words", seed=4))
    workspace.train_next(all_tasks=True, epochs=1, verify="probe")
    probes = workspace.ledger.evaluations(kind="verification")
    checked = {workspace.ledger.task(n).id for n in ("squad", "ner")}
    assert {e.task_id for e in probes} == checked and {e.mode for e in probes} == {"probe"}
    assert all(e.identical for e in probes)
    assert any("bit for bit: identical" in " ".join(e.findings) for e in probes)
