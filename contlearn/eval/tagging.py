"""Token tagging (NER) as pure functions: entity-level scores, entity spans, word offsets.

Tags follow IOB2 / BIO (``B-X``, ``I-X``, ``O``), IOB1, or IOBES (``S-X`` and ``E-X`` as well).
Entities are read as CoNLL's ``conlleval`` script reads them, which is seqeval's default mode: an
``I-X`` after ``O`` or after another type starts an entity, a change of type ends one, and
``E-X`` / ``S-X`` end one, so IOB2 and IOBES data need no separate parser and scores match the
numbers papers report. Scores are strict: a predicted entity counts only when its type and both
its ends equal a gold entity's (a wrong type, or a span one word short, is both a false positive
and a false negative). Where a ratio is undefined (no predicted or no gold entities) it is 0.0.

Wrong input (no sentences, sentences of different lengths) raises ``ValueError``: these are
programming errors, as in :mod:`contlearn.eval.metrics`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Entity:
    """One entity in a sentence: its type, its first and last word (inclusive, 0-based), and its
    characters ``text[start:end]`` in the sentence's text."""

    type: str
    first_word: int
    last_word: int
    start: int
    end: int
    text: str


def entity_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """Micro ``entity_f1`` / ``entity_precision`` / ``entity_recall`` over all sentences,
    ``token_accuracy`` (the share of words whose tag is right), and ``f1_<TYPE>`` for each
    entity type in ``gold``, in sorted order. ``gold[i]`` and ``pred[i]`` are sentence i's tags.
    """
    from seqeval.metrics.sequence_labeling import precision_recall_fscore_support

    gold_lists, pred_lists = _checked(gold, pred)
    micro = precision_recall_fscore_support(
        gold_lists, pred_lists, average="micro", zero_division=0
    )
    scores = {
        "entity_f1": float(micro[2]),
        "entity_precision": float(micro[0]),
        "entity_recall": float(micro[1]),
        "token_accuracy": _token_accuracy(gold_lists, pred_lists),
    }
    return scores | _type_f1(gold_lists, pred_lists)


COUNTED = ("entity_f1", "entity_precision", "entity_recall", "token_accuracy")


def entity_counts(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> list[tuple]:
    """Per sentence: (true positives, predicted entities, gold entities, right tags, words),
    whose sums over sentences give the micro scores of :func:`entity_scores` (seqeval reads the
    sentences as one sequence with an ``O`` between them, so no entity spans two)."""
    from seqeval.metrics.sequence_labeling import get_entities

    rows = []
    for g, p in zip(*_checked(gold, pred), strict=True):
        true, found = set(get_entities(g)), set(get_entities(p))
        right = sum(a == b for a, b in zip(g, p, strict=True))
        rows.append((len(true & found), len(found), len(true), right, len(g)))
    return rows


def from_counts(metric: str, sums):
    """``metric`` (one of :data:`COUNTED`) from summed :func:`entity_counts` [..., 5], computed
    as seqeval computes it (a ratio with a zero denominator is 0)."""
    import numpy as np

    sums = np.asarray(sums, dtype=float)
    tp, predicted, true, right, words = (sums[..., i] for i in range(5))
    if metric == "token_accuracy":
        return _ratio(right, words)
    precision, recall = _ratio(tp, predicted), _ratio(tp, true)
    if metric == "entity_precision":
        return precision
    if metric == "entity_recall":
        return recall
    if metric != "entity_f1":
        raise ValueError(f"{metric!r} is not computed from counts; these are: {COUNTED}")
    return _ratio(2 * precision * recall, precision + recall)


def _ratio(top, bottom):
    import numpy as np

    return np.divide(top, bottom, out=np.zeros_like(top), where=bottom != 0)


def _type_f1(gold: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
    """``f1_<TYPE>`` for the types in ``gold``; seqeval scores the union of gold and predicted
    types in sorted order, which names its per-type arrays."""
    from seqeval.metrics.sequence_labeling import precision_recall_fscore_support

    gold_types = _types(gold)
    scored = sorted(gold_types | _types(pred))
    f1 = precision_recall_fscore_support(gold, pred, average=None, zero_division=0)[2]
    return {f"f1_{t}": float(f) for t, f in zip(scored, f1, strict=True) if t in gold_types}


def _types(sentences: list[list[str]]) -> set[str]:
    from seqeval.metrics.sequence_labeling import get_entities

    return {kind for kind, _, _ in get_entities(sentences)}


def _token_accuracy(gold: list[list[str]], pred: list[list[str]]) -> float:
    right = sum(
        g == p for gs, ps in zip(gold, pred, strict=True) for g, p in zip(gs, ps, strict=True)
    )
    return right / sum(len(s) for s in gold)


def _checked(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]
) -> tuple[list[list[str]], list[list[str]]]:
    """Both sides as lists of lists (seqeval reads nested lists only, not tuples), checked to
    hold the same number of sentences and of words per sentence, and at least one word."""
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} sentences but pred has {len(pred)}")
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: gold has {len(g)} tags but pred has {len(p)}")
    if not any(len(g) for g in gold):
        raise ValueError("cannot compute a metric over no examples (gold holds no tags)")
    return [list(g) for g in gold], [list(p) for p in pred]


def entity_spans(
    words: Sequence[str], tags: Sequence[str], text: str | None = None
) -> list[Entity]:
    """The entities that ``tags`` mark on ``words``, read as :func:`entity_scores` reads them,
    with their character offsets in ``text`` (which holds the words in order, e.g. the sentence
    they were split from), or, when ``text`` is None, in the words joined by single spaces."""
    from seqeval.metrics.sequence_labeling import get_entities

    if len(words) != len(tags):
        raise ValueError(f"{len(words)} words but {len(tags)} tags")
    if text is None:
        text = " ".join(words)
    offsets = _locate(words, text)
    return [
        Entity(
            kind,
            first,
            last,
            offsets[first][0],
            offsets[last][1],
            _slice(text, offsets, first, last),
        )
        for kind, first, last in get_entities(list(tags))
    ]


def _slice(text: str, offsets: list[tuple[int, int]], first: int, last: int) -> str:
    return text[offsets[first][0] : offsets[last][1]]


def _locate(words: Sequence[str], text: str) -> list[tuple[int, int]]:
    """(start, end) of each word in ``text``: each found at or after the end of the one before."""
    offsets, position = [], 0
    for i, word in enumerate(words):
        start = text.find(word, position) if word else -1
        if start < 0:
            raise ValueError(f"word {i} ({word!r}) is not in the text after offset {position}")
        position = start + len(word)
        offsets.append((start, position))
    return offsets


def word_offsets(text: str) -> list[tuple[int, int]]:
    """(start, end) of each word of ``text``, words being runs of non-whitespace: how a raw
    sentence is split into the words a tagger labels (``text[start:end]`` is the word)."""
    return [(m.start(), m.end()) for m in _WORD.finditer(text)]
