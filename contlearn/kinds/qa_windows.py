"""Extractive QA windows and span decoding: questions over long contexts as model inputs, and
start/end logits back to answer spans in characters.

A context longer than ``max_length`` allows is cut into overlapping windows (a fast
tokenizer's ``return_overflowing_tokens`` with ``stride=doc_stride``: consecutive windows share
``doc_stride`` context tokens), each holding the whole question. A window remembers which
example it came from and, per token, the characters it covers in the context (None for the
question and special tokens), so that a span of tokens maps back to a span of the context.

Decoding follows the transformers question-answering examples: per window the ``n_best``
highest start and end logits are paired, spans outside the context, reversed or longer than
``max_answer_length`` tokens are skipped, a span scores ``start + end``, and SQuAD v2's null
answer scores ``start[CLS] + end[CLS]`` (the lowest over the example's windows). The question
goes first, as BERT-style tokenizers (padding on the right) expect.

Pure functions; torch is imported only to batch windows into tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import BadData

if TYPE_CHECKING:
    import torch

CLS_INDEX = 0  # where "no answer in this window" points: the first token ([CLS])


@dataclass(frozen=True)
class Window:
    """One model input: a question and a stretch of its example's context.

    ``offsets[t]`` is the (start, end) characters of token ``t`` in the context, or None for a
    question or special token. ``start_position`` / ``end_position`` are the answer's first and
    last tokens, or :data:`CLS_INDEX` for both when this window does not hold the whole answer
    (or the example has none); they are the training targets.
    """

    example: int
    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...]
    offsets: tuple[tuple[int, int] | None, ...]
    start_position: int = CLS_INDEX
    end_position: int = CLS_INDEX


@dataclass(frozen=True)
class Span:
    """A candidate answer: ``context[start_char:end_char]``, scored ``start + end`` logits.
    The null answer (no answer) has empty text and ``start_char == end_char == 0``."""

    text: str
    start_char: int
    end_char: int
    score: float


def make_windows(
    tokenizer: Any,
    questions: Sequence[str],
    contexts: Sequence[str],
    max_length: int,
    doc_stride: int,
    *,
    ids: Sequence[str] | None = None,
    answers: Sequence[tuple[int, int] | None] | None = None,
) -> tuple[Window, ...]:
    """The windows of every example, in example order.

    ``answers`` (training): per example, the (start, end) characters of the answer to learn,
    end exclusive, or None for no answer. An answer that no window holds whole is refused, as
    is a question that leaves no room for context; ``ids`` name the question in messages.
    """
    ids = list(ids) if ids is not None else [str(i + 1) for i in range(len(questions))]
    _check_room(tokenizer, questions, ids, max_length, doc_stride)
    encoded = tokenizer(
        list(questions),
        list(contexts),
        truncation="only_second",
        max_length=max_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_token_type_ids=True,
    )
    windows = [_window(encoded, w) for w in range(len(encoded["input_ids"]))]
    if answers is not None:
        windows = _with_targets(windows, answers, ids, max_length, doc_stride)
    return tuple(windows)


def _check_room(
    tokenizer: Any, questions: Sequence[str], ids: Sequence[str], max_length: int, stride: int
) -> None:
    """Refuse a question that leaves no context token in a window, or fewer than the stride
    (the tokenizer cannot step through the context then)."""
    if not tokenizer.is_fast:
        raise BadData("QA windows need a fast tokenizer (offsets); load one with use_fast=True")
    special = tokenizer.num_special_tokens_to_add(pair=True)
    lengths = tokenizer(list(questions), add_special_tokens=False)["input_ids"]
    for qid, tokens in zip(ids, lengths, strict=True):
        room = max_length - special - len(tokens)
        if room <= stride:
            raise BadData(
                f"question {qid!r} takes {len(tokens)} tokens, leaving {max(room, 0)} of "
                f"max_length {max_length} for its context, not more than doc_stride {stride}; "
                "raise max_length, lower doc_stride or shorten the question"
            )


def _window(encoded: Any, w: int) -> Window:
    sequence = encoded.sequence_ids(w)
    offsets = tuple(
        tuple(span) if part == 1 else None
        for span, part in zip(encoded["offset_mapping"][w], sequence, strict=True)
    )
    return Window(
        example=int(encoded["overflow_to_sample_mapping"][w]),
        input_ids=tuple(encoded["input_ids"][w]),
        token_type_ids=tuple(encoded["token_type_ids"][w]),
        offsets=offsets,
    )


def _with_targets(
    windows: list[Window],
    answers: Sequence[tuple[int, int] | None],
    ids: Sequence[str],
    max_length: int,
    stride: int,
) -> list[Window]:
    out = [_targeted(w, answers[w.example]) for w in windows]
    reached = {w.example for w in out if w.start_position != CLS_INDEX}
    for example, answer in enumerate(answers):
        if answer is not None and example not in reached:
            raise BadData(
                f"question {ids[example]!r}: its answer (characters {answer[0]}-{answer[1]}) "
                f"lies whole in no window of max_length {max_length}, doc_stride {stride}; "
                "raise max_length (doc_stride grows with it), or shorten the answer"
            )
    return out


def _targeted(window: Window, answer: tuple[int, int] | None) -> Window:
    """``window`` with the token span of ``answer`` when it holds the answer whole."""
    tokens = [t for t, span in enumerate(window.offsets) if span is not None]
    if answer is None or not tokens:
        return window
    start_char, end_char = answer
    spans = window.offsets
    if spans[tokens[0]][0] > start_char or spans[tokens[-1]][1] < end_char:
        return window
    start = max(t for t in tokens if spans[t][0] <= start_char)
    end = min(t for t in tokens if spans[t][1] >= end_char)
    return Window(
        window.example, window.input_ids, window.token_type_ids, spans, start, max(start, end)
    )


def best_spans(
    start_logits: Sequence[Sequence[float]],
    end_logits: Sequence[Sequence[float]],
    windows: Sequence[Window],
    context: str,
    *,
    n_best: int = 20,
    max_answer_length: int = 30,
    with_null: bool = False,
) -> list[Span]:
    """The ``n_best`` best answers of one example, best first, from its windows' logits
    (``start_logits[i]``, ``end_logits[i]``: window i's [tokens]). A span found in several
    windows keeps its best score. ``with_null`` (SQuAD v2) adds the null answer at the lowest
    ``start[CLS] + end[CLS]`` over the windows."""
    if not windows or not len(start_logits) == len(end_logits) == len(windows):
        raise ValueError("best_spans needs one start and one end row of logits per window")
    found: dict[tuple[int, int], float] = {}
    for starts, ends, window in zip(start_logits, end_logits, windows, strict=True):
        starts, ends = np.asarray(starts, dtype=float), np.asarray(ends, dtype=float)
        for key, score in _window_spans(starts, ends, window, n_best, max_answer_length):
            found[key] = max(score, found.get(key, -np.inf))
    spans = [Span(context[s:e], s, e, score) for (s, e), score in found.items()]
    spans = sorted(spans, key=lambda span: -span.score)
    if not with_null:
        return spans[:n_best]
    null = Span("", 0, 0, null_score(start_logits, end_logits))
    ranked = sorted([*spans, null], key=lambda span: -span.score)[:n_best]
    return ranked if null in ranked else [*ranked, null]  # the null answer is always kept


def _window_spans(
    starts: np.ndarray, ends: np.ndarray, window: Window, n_best: int, max_answer_length: int
) -> list[tuple[tuple[int, int], float]]:
    """((start_char, end_char), score) of the valid pairs among the top start and end tokens."""
    out = []
    top_starts = np.argsort(starts)[::-1][:n_best]
    top_ends = np.argsort(ends)[::-1][:n_best]
    for s in top_starts:
        for e in top_ends:
            first, last = window.offsets[s], window.offsets[e]
            if first is None or last is None or e < s or e - s + 1 > max_answer_length:
                continue
            out.append(((first[0], last[1]), float(starts[s] + ends[e])))
    return out


def null_score(
    start_logits: Sequence[Sequence[float]], end_logits: Sequence[Sequence[float]]
) -> float:
    """The null answer's score over an example's windows: min of start[CLS] + end[CLS]."""
    return min(
        float(s[CLS_INDEX]) + float(e[CLS_INDEX])
        for s, e in zip(start_logits, end_logits, strict=True)
    )


def choose_answer(spans: Sequence[Span], null_threshold: float) -> tuple[Span, float]:
    """(the answer, its null-score difference) from :func:`best_spans` with the null answer:
    the difference is null score minus the best non-null span's, and the answer is null when
    that exceeds ``null_threshold`` (chosen on the selection split, as SQuAD v2's best
    threshold). With no valid span at all the answer is null."""
    null = next((s for s in spans if not s.text and s.start_char == s.end_char == 0), None)
    best = next((s for s in spans if s is not null), None)
    if null is None:
        raise ValueError("choose_answer needs best_spans(..., with_null=True)")
    if best is None:
        return null, float("inf")
    diff = null.score - best.score
    return (null if diff > null_threshold else best), diff


def window_tensors(windows: Sequence[Window], pad_id: int) -> dict[str, torch.Tensor]:
    """A batch of windows as right-padded tensors [B, T]: input_ids, token_type_ids,
    attention_mask, and the targets start_positions / end_positions [B]."""
    import torch

    width = max(len(w.input_ids) for w in windows)

    def padded(rows: list[tuple[int, ...]], fill: int) -> torch.Tensor:
        return torch.tensor([list(r) + [fill] * (width - len(r)) for r in rows], dtype=torch.long)

    return {
        "input_ids": padded([w.input_ids for w in windows], pad_id),
        "token_type_ids": padded([w.token_type_ids for w in windows], 0),
        "attention_mask": padded([(1,) * len(w.input_ids) for w in windows], 0),
        "start_positions": torch.tensor([w.start_position for w in windows], dtype=torch.long),
        "end_positions": torch.tensor([w.end_position for w in windows], dtype=torch.long),
    }
