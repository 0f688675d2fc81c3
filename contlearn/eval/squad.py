"""Extractive question answering metrics, as the official SQuAD v1.1 and v2.0 scripts define
them, as pure functions over predicted and gold answer texts.

Both scripts compare normalised text: lower-cased, punctuation dropped, the articles a/an/the
dropped, whitespace collapsed. Exact match is 1 when the normalised texts are equal; F1 is the
harmonic mean of token precision and recall over the normalised tokens (a multiset overlap).
A question scores the best over its gold answers.

The two versions differ only at the edges, and both are kept exact:

- v1.1 scores F1 0 whenever no token is shared, even when both sides normalise to nothing;
- v2.0 treats an unanswerable question (no gold answer) as having the single gold answer ``""``,
  drops gold answers that normalise to nothing, and scores F1 1 when both sides are empty.

Scores here are fractions in [0, 1], like every other metric in :mod:`contlearn.eval`; the
official scripts print 100 times them. Predictions must cover exactly the gold questions
(a programming error otherwise, so ``ValueError``): the v1.1 script would score a missing one 0
and the v2.0 script would skip it, and neither is wanted here.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower-case, drop ASCII punctuation, then the articles, then collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact(gold: str, prediction: str) -> float:
    return float(normalize_answer(gold) == normalize_answer(prediction))


def token_f1(gold: str, prediction: str, *, v2: bool = True) -> float:
    """Token F1 of one prediction against one gold answer; ``v2``: empty against empty is 1
    (and empty against anything else 0), as the v2.0 script scores a no-answer question."""
    gold_tokens, pred_tokens = normalize_answer(gold).split(), normalize_answer(prediction).split()
    if v2 and (not gold_tokens or not pred_tokens):
        return float(gold_tokens == pred_tokens)
    same = sum((Counter(gold_tokens) & Counter(pred_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_v1(
    predictions: Mapping[str, str], golds: Mapping[str, Sequence[str]]
) -> dict[str, float]:
    """``{"exact_match", "f1"}`` over every question of ``golds`` (each with gold answers)."""
    em, f1 = question_scores(predictions, golds, v2=False)
    return {"exact_match": _mean(list(em.values())), "f1": _mean(list(f1.values()))}


def question_scores(
    predictions: Mapping[str, str], golds: Mapping[str, Sequence[str]], *, v2: bool
) -> tuple[dict[str, float], dict[str, float]]:
    """Per question, (exact, F1) as v1.1's script (``v2`` False) or v2.0's (before any
    no-answer threshold) scores it: the metrics are their means over questions."""
    if v2:
        return raw_scores(predictions, golds)
    _check_ids(predictions, golds)
    if any(not answers for answers in golds.values()):
        raise ValueError("SQuAD v1.1 has an answer for every question; score these with squad_v2")
    em = {q: max(exact(g, predictions[q]) for g in golds[q]) for q in golds}
    f1 = {q: max(token_f1(g, predictions[q], v2=False) for g in golds[q]) for q in golds}
    return em, f1


def raw_scores(
    predictions: Mapping[str, str], golds: Mapping[str, Sequence[str]]
) -> tuple[dict[str, float], dict[str, float]]:
    """Per question, v2.0's (exact, F1) before any no-answer threshold; ``golds[q]`` empty
    for an unanswerable question."""
    _check_ids(predictions, golds)
    exact_scores, f1_scores = {}, {}
    for q, answers in golds.items():
        scored = [a for a in answers if normalize_answer(a)] or [""]
        exact_scores[q] = max(exact(a, predictions[q]) for a in scored)
        f1_scores[q] = max(token_f1(a, predictions[q]) for a in scored)
    return exact_scores, f1_scores


def squad_v2(
    predictions: Mapping[str, str],
    golds: Mapping[str, Sequence[str]],
    na_probs: Mapping[str, float] | None = None,
    threshold: float = 1.0,
) -> dict[str, float]:
    """``exact``, ``f1`` and ``total``, then the same prefixed ``HasAns_`` and ``NoAns_`` for
    each group present. With ``na_probs`` (a no-answer score per question), a question whose
    score exceeds ``threshold`` counts as answered "no answer" whatever its prediction."""
    exact_scores, f1_scores = raw_scores(predictions, golds)
    if na_probs is not None:
        exact_scores = _apply_threshold(exact_scores, golds, na_probs, threshold)
        f1_scores = _apply_threshold(f1_scores, golds, na_probs, threshold)
    out = _summary(exact_scores, f1_scores, list(golds))
    for prefix, has_answer in (("HasAns", True), ("NoAns", False)):
        group = [q for q, answers in golds.items() if bool(answers) == has_answer]
        if group:
            out |= {f"{prefix}_{k}": v for k, v in _summary(exact_scores, f1_scores, group).items()}
    return out


def best_threshold(
    predictions: Mapping[str, str],
    scores: Mapping[str, float],
    na_probs: Mapping[str, float],
    golds: Mapping[str, Sequence[str]],
) -> tuple[float, float]:
    """(best overall score, its threshold): the v2.0 script's ``find_best_thresh``.

    ``scores`` are one metric's raw per-question scores (from :func:`raw_scores`). Walking the
    questions by rising ``na_probs``, each threshold answers the questions at or below it and
    says "no answer" above; the running score starts from answering none (every unanswerable
    question right) and the first threshold reaching the best score wins (0.0 if none beats
    answering nothing).
    """
    _check_ids(na_probs, golds)
    current = best = sum(1 for answers in golds.values() if not answers)
    threshold = 0.0
    for q in sorted(na_probs, key=lambda k: na_probs[k]):
        if golds[q]:
            current += scores[q]
        elif predictions[q]:
            current -= 1
        if current > best:
            best, threshold = current, na_probs[q]
    return best / len(scores), threshold


def _apply_threshold(
    scores: dict[str, float],
    golds: Mapping[str, Sequence[str]],
    na_probs: Mapping[str, float],
    threshold: float,
) -> dict[str, float]:
    _check_ids(na_probs, golds)
    return {q: float(not golds[q]) if na_probs[q] > threshold else s for q, s in scores.items()}


def _summary(
    exact_scores: Mapping[str, float], f1_scores: Mapping[str, float], ids: Sequence[str]
) -> dict[str, float]:
    return {
        "exact": _mean([exact_scores[q] for q in ids]),
        "f1": _mean([f1_scores[q] for q in ids]),
        "total": float(len(ids)),
    }


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _check_ids(given: Mapping[str, object], golds: Mapping[str, object]) -> None:
    if not golds:
        raise ValueError("cannot compute a metric over no questions (golds is empty)")
    if given.keys() != golds.keys():
        missing = sorted(golds.keys() - given.keys())[:3]
        extra = sorted(given.keys() - golds.keys())[:3]
        raise ValueError(
            f"question ids differ from the gold ones: missing {missing}, extra {extra}"
        )
