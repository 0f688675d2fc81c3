"""The bootstrap's fast path: a metric given as counts per example scores each resample exactly
as the metric itself scores the resampled rows (entity F1 by seqeval, SQuAD's F1 and EM)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from contlearn.eval.bootstrap import bootstrap_summary, resample_indices
from contlearn.kinds import get

TAGS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")


def _sentences(rng: random.Random, count: int) -> list[tuple[int, ...]]:
    return [tuple(rng.randrange(len(TAGS)) for _ in range(rng.randint(1, 9))) for _ in range(count)]


def _noisy(rng: random.Random, rows: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """Predictions: each tag kept or changed at random, some words without one (-1: cut off)."""
    return [
        tuple(t if rng.random() < 0.6 else rng.randrange(-1, len(TAGS)) for t in row)
        for row in rows
    ]


def _objects(rows: list[tuple]) -> np.ndarray:
    out = np.empty(len(rows), dtype=object)
    for i, row in enumerate(rows):
        out[i] = row
    return out


def _by_metric(kind, metric, labels, true, pred, resamples=30):
    """Each resample's score by the metric itself, and by its additive form."""
    additive = kind.additive(metric, labels)
    assert additive is not None
    true_rows, pred_rows = _objects(true), _objects(pred)
    idx = resample_indices([len(true)], resamples, seed=3)[0]
    slow = [
        kind.score([metric], list(true_rows[r]), list(pred_rows[r]), labels)[metric] for r in idx
    ]
    parts = np.asarray(additive.parts(true_rows, pred_rows), dtype=float)
    drawn = np.stack([np.bincount(r, minlength=len(true)) for r in idx])
    return np.array(slow), additive.combine(drawn @ parts)


@pytest.mark.parametrize(
    "metric", ["entity_f1", "entity_precision", "entity_recall", "token_accuracy"]
)
def test_tagging_counts_give_seqeval_scores_on_every_resample(metric):
    rng = random.Random(0)
    gold = _sentences(rng, 60)
    slow, fast = _by_metric(get("tagging"), metric, TAGS, gold, _noisy(rng, gold))
    assert len(set(slow.tolist())) > 5  # the resamples really differ
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)


def _questions(rng: random.Random, count: int, v2: bool):
    words = ["the", "red", "cat", "sat", "on", "a", "mat", "in", "paris", "today"]
    targets, predictions = [], []
    for i in range(count):
        context = " ".join(rng.choice(words) for _ in range(12))
        start = rng.randrange(0, 30)
        end = start + rng.randint(3, 12)
        answers = () if v2 and i % 4 == 0 else ((context[start:end], start),)
        targets.append((context, answers, f"q{i}"))
        a = rng.randrange(0, 30)
        predictions.append((a, a + rng.randint(0, 12), 1.0, rng.uniform(-1, 1) if v2 else None))
    return targets, predictions


@pytest.mark.parametrize("v2", [False, True])
@pytest.mark.parametrize("metric", ["qa_f1", "qa_exact_match"])
def test_qa_question_scores_give_squad_scores_on_every_resample(metric, v2):
    rng = random.Random(1)
    targets, predictions = _questions(rng, 50, v2)
    labels = ("answer", "no answer") if v2 else ("answer",)
    slow, fast = _by_metric(get("extractive-qa"), metric, labels, targets, predictions)
    assert len(set(slow.tolist())) > 3
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)


def test_intervals_with_counts_equal_intervals_by_rescoring():
    rng = random.Random(2)
    kind, gold = get("tagging"), [_sentences(rng, 40), _sentences(rng, 30)]
    final = [_noisy(rng, g) for g in gold]
    diagonal = [_noisy(rng, g) for g in gold]

    def score(y_true, y_pred):
        return kind.score(["entity_f1"], list(y_true), list(y_pred), TAGS)["entity_f1"]

    args = (final, diagonal, gold, [score, score])
    slow = bootstrap_summary(*args, resamples=100, seed=0)
    fast = bootstrap_summary(
        *args, resamples=100, seed=0, additive=[kind.additive("entity_f1", TAGS)] * 2
    )
    assert fast["tasks"] == slow["tasks"] or all(
        np.allclose(f["ci"], s["ci"], atol=1e-12) and f["score"] == s["score"]
        for f, s in zip(fast["tasks"], slow["tasks"], strict=True)
    )
    for key in ("acc", "bwt"):
        assert fast[key]["value"] == slow[key]["value"]
        np.testing.assert_allclose(fast[key]["ci"], slow[key]["ci"], rtol=0, atol=1e-12)


def test_a_metric_without_counts_has_no_additive_form():
    assert get("tagging").additive("f1_PER", TAGS) is None
    assert get("extractive-qa").additive("has_answer_f1", ("answer", "no answer")) is None
    assert get("classification").additive("accuracy", ("a", "b")) is None
