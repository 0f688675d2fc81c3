"""The ``tagging`` kind end to end on tiny models: word pieces, the per-token head, entity
metrics, every method on a tagging task, verification bit for bit, audit, predict."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from contlearn import kinds
from contlearn.api import Workspace
from contlearn.eval.logits import at_positions
from contlearn.report.content import overview
from contlearn.train.batching import Encoded, encode_words, first_pieces
from tests.conftest import write_keyword_task

ENTITIES = {"cat": "ANI", "dog": "ANI", "news": "ORG", "tech": "ORG"}
FILLERS = ["the", "movie", "was", "very", "good", "bad", "this", "it", "is", "a"]


def tagged_sentence(rng: random.Random) -> list[tuple[str, str]]:
    """Fillers tagged O, an animal (one word, B-ANI) and an organisation ("news tech": B-ORG
    I-ORG, or "news" alone)."""
    words = [(w, "O") for w in rng.sample(FILLERS, 4)]
    at = rng.randrange(len(words) + 1)
    words[at:at] = [(rng.choice(["cat", "dog"]), "B-ANI")]
    org = [("news", "B-ORG"), ("tech", "I-ORG")] if rng.random() < 0.5 else [("news", "B-ORG")]
    at = rng.randrange(len(words) + 1)
    words[at:at] = org
    return words


def write_tagging_task(folder: Path, *, n_train: int = 96, n_dev: int = 32, seed: int = 0) -> Path:
    """A CoNLL folder (train.txt / valid.txt, two columns, -DOCSTART- lines) of learnable tags."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, count in (("train.txt", n_train), ("valid.txt", n_dev)):
        lines = ["-DOCSTART- O", ""]
        for _ in range(count):
            lines += [f"{w} {t}" for w, t in tagged_sentence(rng)] + [""]
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture()
def workspace(word_workspace: Workspace) -> Workspace:
    return word_workspace


# -- the pieces ---------------------------------------------------------------------------


def test_each_word_reads_its_first_sub_token(word_backbone: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(word_backbone)
    encoded = encode_words(tokenizer, [["cat", "catdog", "dog"]], max_length=32)
    pieces = tokenizer.convert_ids_to_tokens(encoded.input_ids[0])
    assert pieces[1:-1] == ["cat", "cat", "##d", "##o", "##g", "dog"]
    assert [pieces[p] for p in encoded.positions[0]] == ["cat", "cat", "dog"]
    assert encoded.positions[0] == [1, 2, 6]
    assert first_pieces([None, 0, 1, 1, None, 3]) == [1, 2, -1, 5]  # word 2: no sub-token
    cut = encode_words(tokenizer, [["cat", "catdog", "dog"]], max_length=4)
    assert cut.positions[0] == [1, 2]  # [CLS] cat cat [SEP]: "catdog" starts, "dog" is cut


def test_the_canonical_output_is_per_word_with_nan_past_the_last() -> None:
    logits = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    out = at_positions(logits, [[1, 3], [2, -1, 4]], width=4)
    assert out.shape == (2, 4, 3)
    assert torch.equal(out[0, :2], logits[0, [1, 3]]) and out[0, 2:].isnan().all()
    assert torch.equal(out[1, 0], logits[1, 2]) and out[1, 1].isnan().all()
    tagging = kinds.get("tagging")
    assert tagging.predictions(out) == [(2, 2), (2, -1, 2)]


def test_the_loss_reads_first_sub_tokens_only() -> None:
    tagging = kinds.get("tagging")
    encoded = Encoded([[2, 5, 6, 7, 3]], None, 0, [[1, 3]])
    wanted = tagging.target_tensor([(1, 0)], encoded)
    assert wanted.tolist() == [[-100, 1, -100, 0, -100]]
    logits = torch.randn(1, 5, 2)
    expected = torch.nn.functional.cross_entropy(logits[0, [1, 3]], torch.tensor([1, 0]))
    assert torch.allclose(tagging.loss(logits, wanted), expected)


def test_a_word_cut_off_is_scored_as_missed_never_dropped() -> None:
    tagging = kinds.get("tagging")
    labels = ("O", "B-ANI", "B-ORG", "I-ORG")
    gold = [(1, 0, 2, 3)]  # cat . news tech: two entities
    whole = tagging.score(["entity_f1"], gold, [(1, 0, 2, 3)], labels)
    cut = tagging.score(["entity_f1"], gold, [(1, 0)], labels)  # the last two words cut off
    assert whole["entity_f1"] == 1.0
    assert cut["entity_recall"] == 0.5 and cut["entity_precision"] == 1.0
    assert cut["f1_ORG"] == 0.0 and cut["f1_ANI"] == 1.0
    assert cut["token_accuracy"] == 0.5


def test_agreement_is_per_word_and_ignores_the_padding() -> None:
    tagging = kinds.get("tagging")
    saved = at_positions(torch.randn(2, 4, 3), [[1, 2], [1]], width=2)
    assert tagging.agreement(saved, saved.clone()) == (1.0, 0.0)
    nudged = saved.clone()
    nudged[0, 0] += 0.25
    share, worst = tagging.agreement(saved, nudged)
    assert share == 1.0 and worst == pytest.approx(0.25)
    flipped = saved.clone()
    flipped[1, 0] = -flipped[1, 0]
    assert tagging.agreement(saved, flipped)[0] == pytest.approx(2 / 3)


# -- end to end ----------------------------------------------------------------------------


def test_a_tagging_task_trains_verifies_audits_and_predicts(
    workspace: Workspace, tmp_path: Path
) -> None:
    workspace.add_task("ner", write_tagging_task(tmp_path / "ner"))
    workspace.add_task("words", write_keyword_task(tmp_path / "words", seed=4))
    record = workspace.ledger.task("ner")
    assert record.kind == "tagging" and record.metric == "entity_f1"
    assert list(record.labels)[0] == "O"
    first, second = workspace.train_next(all_tasks=True, epochs=8, lr=0.02)
    assert first["metrics"]["entity_f1"] > 0.5  # learnable: animals and organisations
    assert {"entity_precision", "entity_recall", "token_accuracy", "f1_ANI"} <= set(
        first["metrics"]
    )
    assert [(v["task"], v["outcome"]) for v in second["verifications"]] == [("ner", "identical")]
    assert workspace.audit()["verdict"] == "clean"
    (row,) = workspace.predict("ner", [{"tokens": "the cat saw news tech"}])
    assert [w["word"] for w in row["words"]] == ["the", "cat", "saw", "news", "tech"]
    assert row["label"] == " ".join(w["tag"] for w in row["words"])
    for entity in row["entities"]:
        text = "the cat saw news tech"
        assert text[entity["start"] : entity["end"]] == entity["text"]


METHODS = ["houlsby", "pfeiffer", "parallel", "lora", "ia3", "topk", "head"]


@pytest.mark.parametrize("method", METHODS)
def test_every_method_learns_a_tagging_task_in_isolation(
    method: str, workspace: Workspace, tmp_path: Path
) -> None:
    """Tagging first, a classification task after it: the tagging task's weights, logits and
    scores are identical afterwards, and the classification task trained beside it."""
    workspace.add_task("ner", write_tagging_task(tmp_path / "ner", n_train=48), method=method)
    workspace.add_task("words", write_keyword_task(tmp_path / "words", seed=4), method=method)
    first, second = workspace.train_next(all_tasks=True, epochs=2, lr=0.02)
    assert first["metrics"]["token_accuracy"] > 0.5
    assert first["trainable_params"] > 0
    assert [(v["task"], v["outcome"]) for v in second["verifications"]] == [("ner", "identical")]
    assert workspace.ledger.task("ner").kind == "tagging"
    assert workspace.audit()["verdict"] == "clean"


def test_compare_runs_every_baseline_on_a_sequence_that_mixes_kinds(
    workspace: Workspace, tmp_path: Path
) -> None:
    """words (classification) -> ner (tagging): each baseline learns both, each task scored by
    its own primary metric, and the report names them."""
    workspace.add_task("words", write_keyword_task(tmp_path / "words", seed=4))
    workspace.add_task("ner", write_tagging_task(tmp_path / "ner", n_train=48))
    workspace.train_next(all_tasks=True, epochs=2, lr=0.02)
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
    assert [t["metric"] for t in results["tasks"]] == ["accuracy", "entity_f1"]
    for method in results["methods"].values():
        (first, _), (after, last) = method["matrix"]
        assert None not in (first, after, last)  # every task scored after every later one
        assert method["intervals"]["tasks"][1]["ci"][0] <= last  # intervals over sentences
    assert results["methods"]["adapter"]["identical"] == {"identical": 1, "total": 1}
    assert results["methods"]["adapter"]["summary"]["bwt"] == 0.0
    assert "2. ner (entity_f1)" in dict(overview(results))["Tasks, in training order (T = 2)"]
