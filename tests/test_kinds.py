"""Task kinds: the registry, what classification and regression each own, the kind recorded per
task and per artifact, and a third kind that this test adds without changing package code (it
labels each text with its length bucket, and trains with a loss of its own)."""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from contlearn import kinds
from contlearn.api import Workspace
from contlearn.errors import BadData, ConfigError
from contlearn.kinds import TaskKind, kind_of
from tests.conftest import invoke as cli
from tests.conftest import write_keyword_task

# -- the registry and the two built-in kinds -----------------------------------------------------


def test_the_registry_knows_classification_and_regression() -> None:
    assert {"classification", "regression"} <= set(kinds.KINDS)
    with pytest.raises(ConfigError, match="^unknown task kind 'tagging-x': use one of "):
        kinds.get("tagging-x")
    with pytest.raises(ValueError, match="registered twice"):
        kinds.register(kinds.get("classification"))


def test_classification_owns_its_targets_loss_and_predictions() -> None:
    kind = kinds.get("classification")
    labels = ["neg", "pos", "neutral"]
    assert kind.num_outputs(labels) == 3 and kind.num_classes(labels) == 3
    assert kind.encode_targets(["pos", "neutral", "neg"], labels) == [1, 2, 0]
    logits = torch.tensor([[0.1, 2.0, 0.3], [1.0, 0.0, -1.0]])
    targets = kind.target_tensor([1, 0])
    assert targets.dtype == torch.float64  # as the loop always built them
    assert torch.equal(kind.loss(logits, targets), F.cross_entropy(logits, torch.tensor([1, 0])))
    assert kind.predictions(logits) == [1, 0]
    rows = kind.outputs(logits, labels)
    assert rows[0]["label"] == "pos" and abs(sum(rows[0]["probabilities"].values()) - 1) < 1e-6
    assert kind.describe_outputs(labels) == "3 labels"


def test_regression_owns_its_tolerance_across_machines() -> None:
    kind = kinds.get("regression")
    assert kind.num_outputs(None) == 1 and kind.num_classes(None) is None
    assert kind.encode_targets(["1.5", 2], None) == [1.5, 2.0]
    saved = torch.tensor([[0.5], [3.0]])
    share, worst = kind.agreement(saved, saved + 1e-6)
    assert share == 1.0 and 0 < worst < 2e-6
    assert kind.agreement(saved, saved + torch.tensor([[0.0], [1e-3]]))[0] == 0.5
    assert kind.metrics_agree({"pearson": 0.8}, {"pearson": 0.8 + 1e-7})
    assert not kind.metrics_agree({"pearson": 0.8}, {"pearson": 0.81})
    assert kind.outputs(saved, None) == [
        {"label": 0.5, "probabilities": None},
        {"label": 3.0, "probabilities": None},
    ]


def test_a_task_records_its_kind_and_its_artifact_too(trained: Workspace) -> None:
    task = trained.ledger.task("a")
    assert task.kind == "classification" and kind_of(task).name == "classification"
    run = trained.ledger.trained_run(task.id)
    config = next(a for a in trained.ledger.artifacts(run.id) if a.role == "config")
    meta = json.loads((trained.root / config.path).read_text())
    assert (meta["kind"], meta["head"]) == ("classification", "pooled")
    assert {row["name"]: row["kind"] for row in trained.status()} == {
        "a": "classification",
        "b": "classification",
    }


def test_a_kind_that_does_not_fit_the_data_is_refused_with_nothing_written(
    workspace: Workspace, tmp_path: Path
) -> None:
    data = write_keyword_task(tmp_path / "a")
    result = cli(workspace, "add-task", "a", "--data", str(data), "--kind", "regression")
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "its data holds classification labels, which a regression task cannot learn" in (
        result.output
    )
    result = cli(workspace, "add-task", "a", "--data", str(data), "--kind", "nope")
    assert result.exit_code != 0 and "unknown task kind 'nope'" in result.output
    assert workspace.ledger.tasks() == []
    with pytest.raises(BadData, match="cannot learn"):
        workspace.add_task("a", data, kind="regression")


# -- a third kind, added by this test alone ------------------------------------------------------

BUCKETS = ["short", "long"]


class LengthBucket(TaskKind):
    """Each text's length bucket, learned with a label-smoothed cross-entropy."""

    name = "length-bucket"
    reads = "classification"
    predicts = "class"

    def num_outputs(self, labels: Sequence[str] | None) -> int:
        return len(labels)

    def encode_targets(self, values: Sequence[Any], labels: Sequence[str] | None) -> list:
        return [list(labels).index(v) for v in values]

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets.long(), label_smoothing=0.1)

    def predictions(self, logits: torch.Tensor) -> list:
        return logits.argmax(dim=-1).tolist()

    def same_predictions(self, saved: torch.Tensor, now: torch.Tensor) -> torch.Tensor:
        return saved.argmax(-1) == now.argmax(-1)

    def num_classes(self, labels: Sequence[str] | None) -> int | None:
        return len(labels)

    def outputs(
        self, logits: torch.Tensor, labels: Sequence[str] | None, texts: Any = None
    ) -> list[dict[str, Any]]:
        return [{"label": labels[i], "probabilities": None} for i in self.predictions(logits)]

    def describe_outputs(self, labels: Sequence[str] | None) -> str:
        return f"{len(labels)} length buckets"


@pytest.fixture()
def length_bucket():
    kind = kinds.register(LengthBucket())
    yield kind
    del kinds.KINDS[kind.name]


def write_length_task(folder: Path, seed: int = 3) -> Path:
    rng = random.Random(seed)
    words = ["good", "bad", "movie", "film", "cat", "dog", "news", "tech"]
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", 96), ("dev", 32)):
        with open(folder / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            for _ in range(count):
                n = rng.choice([2, 3, 9, 10])
                writer.writerow([" ".join(rng.choices(words, k=n)), BUCKETS[n > 5]])
    return folder


def test_a_third_kind_trains_verifies_audits_and_predicts(
    length_bucket: TaskKind, workspace: Workspace, tmp_path: Path
) -> None:
    workspace.add_task("lengths", write_length_task(tmp_path / "lengths"), kind=length_bucket.name)
    workspace.add_task("words", write_keyword_task(tmp_path / "words", seed=4))
    first, second = workspace.train_next(all_tasks=True, epochs=2)
    assert workspace.ledger.task("lengths").kind == "length-bucket"
    assert first["history"][0]["loss"] > 0.1  # label smoothing: the loss never reaches 0
    assert [(v["task"], v["outcome"]) for v in second["verifications"]] == [
        ("lengths", "identical")
    ]
    assert workspace.audit()["verdict"] == "clean"
    (row,) = workspace.predict("lengths", [{"text": "cat dog news tech good bad movie film cat"}])
    assert row["label"] in BUCKETS and row["probabilities"] is None


def test_each_kind_scores_predicted_answers_from_any_task() -> None:
    """``score_answers``: a kind's metric over answers as ``predict`` gives them; another
    task's answer or none counts as wrong (an empty answer for tags, a span, a text)."""
    from contlearn.kinds import get

    labels = ["neg", "pos"]
    assert (
        get("classification").score_answers("accuracy", ["pos", "neg"], ["pos", "x"], labels) == 0.5
    )
    tags = ["O", "B-PER", "I-PER"]
    gold = [["B-PER", "I-PER", "O"], ["O", "B-PER"]]
    tagging = get("tagging")
    assert tagging.score_answers("entity_f1", gold, ["B-PER I-PER O", "O B-PER"], tags) == 1.0
    assert tagging.score_answers("entity_recall", gold, ["B-PER I-PER O", "positive"], tags) == 0.5
    assert tagging.score_answers("entity_recall", gold, ["B-PER I-PER", None], tags) == 0.5
    qa = get("extractive-qa")
    values = [("Ann met Bob.", [("Bob", 8)], "q1"), ("Cy ran.", [("Cy", 0)], "q2")]
    assert qa.score_answers("qa_exact_match", values, ["Bob", None], ["answer"]) == 0.5
    assert qa.score_answers("qa_f1", values, ["met Bob", "positive"], ["answer"]) == pytest.approx(
        1 / 3
    )
    gen = get("generation")
    assert (
        gen.score_answers("exact_match", ["yes good", "no bad"], ["Yes good.", None], None) == 0.5
    )
    assert gen.score_answers("accuracy", ["yes", "no"], ["yes", "pets"], ["no", "yes"]) == 0.5
    assert get("regression").score_answers("pearson", [1.0, 2.0], ["1.0", "2.0"], None) is None
