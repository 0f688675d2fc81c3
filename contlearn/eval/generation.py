"""Generation metrics as pure functions over gold responses and generated texts.

- ``exact_match``: the share of generated texts equal to their gold response once both are
  normalised as SQuAD normalises answers (:func:`normalize`: lower-cased, punctuation and the
  articles a/an/the dropped, whitespace collapsed).
- ``rouge_l``: the mean ROUGE-L F-measure (longest common subsequence of tokens) computed by the
  ``rouge-score`` package. Its default tokenizer keeps only ``[a-z0-9]`` runs, so text in other
  scripts becomes no tokens at all and two identical Russian sentences would score 0; the
  tokenizer here (:class:`UnicodeTokenizer`) gives the same tokens on ASCII text and keeps the
  letters, digits and combining marks of every script (NFC-normalised), each Chinese or
  Japanese character a token of its own (those scripts do not separate words by spaces). A
  side with no tokens (an empty text, or only punctuation) scores 0.
- ``accuracy``, for a closed label set (a sentiment, a topic name): the share of generated
  texts that answer their gold label (:func:`label_of`).

Scores are fractions in [0, 1]. :func:`per_example` gives each example's part (0/1, or its
ROUGE-L F) for the bootstrap; their mean is the metric. Wrong input (no examples, sides of
different lengths, an unknown metric, accuracy without labels) raises ``ValueError``: these are
programming errors, as in :mod:`contlearn.eval.metrics`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from functools import cache, lru_cache

from .squad import normalize_answer

# With a closed set of responses (a sentiment, a topic name), the share answering the right one,
# then exact match and ROUGE-L; else ROUGE-L and exact match (``contlearn.config`` lists them
# with the other kinds' metrics; defined here so that the metrics import no configuration).
GENERATION_METRICS = ("accuracy", "exact_match", "rouge_l")
OPEN_GENERATION_METRICS = ("rouge_l", "exact_match")

# Chinese and Japanese (written without spaces between words): one token per character.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"


def normalize(text: str) -> str:
    """SQuAD's answer normalisation (:func:`contlearn.eval.squad.normalize_answer`)."""
    return normalize_answer(text)


class UnicodeTokenizer:
    """rouge-score's tokenizer interface (``tokenize(text) -> list[str]``): the NFC-normalised,
    lower-cased text's runs of letters, digits and combining marks of any script (Devanagari's
    vowel signs belong to their word), each Chinese or Japanese character alone. On ASCII text
    the tokens are those of rouge-score's default tokenizer (without stemming)."""

    def __init__(self) -> None:
        self._token = _token_pattern()

    def tokenize(self, text: str) -> list[str]:
        return self._token.findall(unicodedata.normalize("NFC", text).lower())


@cache
def _token_pattern() -> re.Pattern[str]:
    """CJK characters one by one, else runs of word characters (not ``_``) and combining marks,
    which Python's ``\\w`` leaves out. The marks are those of the Basic Multilingual Plane
    (scanning it takes some tens of milliseconds, once); a mark beyond it, of a rare or historic
    script, splits its word."""
    marks = "".join(
        f"\\u{cp:04x}" for cp in range(0x10000) if unicodedata.category(chr(cp)).startswith("M")
    )
    return re.compile(f"[{_CJK}]|(?:[^\\W_{_CJK}]|[{marks}])+")


@cache
def _scorer():
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer(["rougeL"], tokenizer=UnicodeTokenizer())


def rouge_l_pair(gold: str, pred: str) -> float:
    """ROUGE-L F-measure of one generated text against its gold response; 0 when either side
    has no tokens."""
    return float(_scorer().score(gold, pred)["rougeL"].fmeasure)


def exact_match(golds: Sequence[str], preds: Sequence[str]) -> float:
    """The share of ``preds`` equal to their gold once both are normalised."""
    return _mean(per_example("exact_match", golds, preds))


def rouge_l(golds: Sequence[str], preds: Sequence[str]) -> float:
    """The mean ROUGE-L F-measure of ``preds`` against ``golds``."""
    return _mean(per_example("rouge_l", golds, preds))


def label_of(text: str, labels: Sequence[str]) -> str | None:
    """The label of a closed set that ``text`` answers: the label whose normalised words are the
    normalised text's words or their beginning ("Positive." and "positive, clearly" both answer
    "positive"; "positively" does not). When several fit, the one of most words wins (then the
    longest, then the first listed); None when none does. A text that is exactly a label answers
    it, even where normalising makes labels equal or empty ("A" and "the" normalise to "")."""
    stripped = text.strip()
    if stripped in labels:
        return stripped
    words = _words(text)
    fitting = [
        label
        for label in labels
        if (label_words := _words(label)) and words[: len(label_words)] == label_words
    ]
    if not fitting:
        return None
    return max(fitting, key=lambda label: (len(_words(label)), len(label)))


@lru_cache(maxsize=1024)  # a closed set's few labels, normalised once per run, not per example
def _words(text: str) -> tuple[str, ...]:
    return tuple(normalize(text).split())


def accuracy(golds: Sequence[str], preds: Sequence[str], labels: Sequence[str]) -> float:
    """The share of ``preds`` whose label (:func:`label_of`) is their gold label."""
    return _mean(per_example("accuracy", golds, preds, labels))


def per_example(
    metric: str, golds: Sequence[str], preds: Sequence[str], labels: Sequence[str] | None = None
) -> list[float]:
    """Each example's part of ``metric``: 1.0 or 0.0 for ``exact_match`` and ``accuracy``
    (which needs ``labels``), the pair's F-measure for ``rouge_l``. Their mean is the metric."""
    _check(golds, preds)
    if metric == "accuracy":
        if not labels:
            raise ValueError("accuracy needs the closed label set (labels is empty or None)")
        return [float(label_of(p, labels) == g) for g, p in zip(golds, preds, strict=True)]
    if metric not in _PAIR_SCORES:
        raise ValueError(f"unknown generation metric {metric!r}; choose from {GENERATION_METRICS}")
    score = _PAIR_SCORES[metric]
    return [score(g, p) for g, p in zip(golds, preds, strict=True)]


def generation_scores(
    metrics: Sequence[str],
    golds: Sequence[str],
    preds: Sequence[str],
    labels: Sequence[str] | None = None,
) -> dict[str, float]:
    """``{name: score}``: the asked ``metrics`` first, in their order, then the others of the
    set (accuracy, exact match, ROUGE-L with a closed label set; exact match and ROUGE-L
    without)."""
    others = (
        GENERATION_METRICS if labels else tuple(m for m in GENERATION_METRICS if m != "accuracy")
    )
    names = tuple(dict.fromkeys((*metrics, *others)))
    return {name: _mean(per_example(name, golds, preds, labels)) for name in names}


def _exact(gold: str, pred: str) -> float:
    return float(normalize(gold) == normalize(pred))


_PAIR_SCORES: dict[str, Callable[[str, str], float]] = {
    "exact_match": _exact,
    "rouge_l": rouge_l_pair,
}


def _check(golds: Sequence[str], preds: Sequence[str]) -> None:
    if len(golds) != len(preds):
        raise ValueError(f"golds has {len(golds)} texts but preds has {len(preds)}")
    if not golds:
        raise ValueError("cannot compute a metric over no examples (golds is empty)")
    bad = [x for x in (*golds, *preds) if not isinstance(x, str)]
    if bad:
        raise ValueError(f"golds and preds must be texts, got a {type(bad[0]).__name__}")


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)
