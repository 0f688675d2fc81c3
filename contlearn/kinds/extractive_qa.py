"""``extractive-qa``: the answer to a question as a span of its context (SQuAD v1.1 / v2.0).

A row's text fields are (question, context). A context longer than a window is cut into
overlapping windows (``qa_windows``: ``max_length`` tokens, consecutive windows sharing
``doc_stride`` = a third of it), each holding the whole question; the windows are the model's
rows. A per-token head gives a start and an end logit per token. The canonical evaluation
keeps, per window, the [CLS] token's and every context token's (start, end) logits, followed
by the characters the token covers and the window's example: [W, P, 5], NaN past a window's
last context token. Its digest covers every window's start and end logits; decoding needs
nothing else: n-best spans (``N_BEST``, ``MAX_ANSWER_TOKENS``) mapped back to characters, and
for SQuAD v2 (a task whose data has unanswerable questions) no answer when the null score
beats the best span by more than the task's no-answer threshold. The threshold is chosen after
training on the selection split (``calibrate``: the official v2 script's best threshold over
the null-score differences), recorded with the task and handed back (``calibrated``); a task
recorded without one answers by threshold 0. Metrics: the official SQuAD exact match and F1,
over questions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .base import TaskKind, primary_only

if TYPE_CHECKING:
    import torch

    from ..eval.bootstrap import Additive
    from ..train.batching import Encoded

N_BEST = 20
MAX_ANSWER_TOKENS = 30
NO_ANSWER = "no answer"  # the second label of a task that can have none (SQuAD v2)
LOGITS = 2  # start, end; then the notes: start character, end character, example


def doc_stride(max_length: int) -> int:
    """Context tokens consecutive windows share: a third of the window (128 of 384)."""
    return max(1, max_length // 3)


class ExtractiveQA(TaskKind):
    name = "extractive-qa"
    head = "token"
    role = "span"  # a token head, whose two outputs other libraries keep apart from tags
    labels_name_outputs = False  # the outputs are start and end, whatever the labels
    reads = "extractive-qa"
    predicts = "span"

    def __init__(self, null_threshold: float | None = None) -> None:
        # SQuAD v2's recorded no-answer threshold; None: none recorded (v1.1, or threshold 0)
        self.null_threshold = null_threshold

    def encode(
        self,
        tokenizer: Any,
        texts: Sequence[Sequence[str]],
        max_length: int,
        token_types: bool,
        targets: Sequence[Any] | None = None,
    ) -> Encoded:
        """Each row's windows; with ``targets`` (a training split), each window's answer
        tokens ([CLS] when it does not hold the answer whole; a question whose answer no window
        holds is refused in one line)."""
        from ..train.batching import Encoded
        from .qa_windows import make_windows

        answers = None if targets is None else [first_answer(t) for t in targets]
        windows = make_windows(
            tokenizer,
            [row[0] for row in texts],
            [row[1] for row in texts],
            max_length,
            doc_stride(max_length),
            ids=None if targets is None else [str(t[2]) for t in targets],
            answers=answers,
        )
        positions, notes = [], []
        for window in windows:
            inside = [t for t, span in enumerate(window.offsets) if span is not None]
            positions.append([0, *inside])
            spans = [(-1, -1), *(window.offsets[t] for t in inside)]
            notes.append([(float(a), float(b), float(window.example)) for a, b in spans])
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        return Encoded(
            [list(w.input_ids) for w in windows],
            [list(w.token_type_ids) for w in windows] if token_types else None,
            pad,
            positions,
            notes,
            [(w.start_position, w.end_position) for w in windows] if targets else None,
        )

    def num_outputs(self, labels: Sequence[str] | None) -> int:
        return LOGITS

    def encode_targets(self, values: Sequence[Any], labels: Sequence[str] | None) -> list:
        """Each row's (context, ((answer text, start character), ...), question id)."""
        return [(c, tuple(tuple(a) for a in answers), q) for c, answers, q in values]

    def batch_targets(
        self, targets: Sequence[Any], encoded: Encoded, idx: Sequence[int]
    ) -> torch.Tensor:
        """[B, 2]: each window's answer start and end token ([CLS]: not in this window)."""
        import torch

        return torch.tensor([encoded.targets[i] for i in idx], dtype=torch.long)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The mean of the start and the end token's cross-entropy: ``logits`` [B, T, 2]."""
        import torch.nn.functional as F

        start = F.cross_entropy(logits[..., 0], targets[:, 0].long())
        return (start + F.cross_entropy(logits[..., 1], targets[:, 1].long())) / 2

    def predictions(self, logits: torch.Tensor) -> list:
        """Per question present (in question order): (start character, end character, score,
        margin) of its best span, the margin its null-score difference less the recorded
        no-answer threshold (SQuAD v2 answers nothing when it is above 0; with no threshold
        recorded, the difference itself); (0, 0, score, None) when no span is valid."""
        by_example: dict[int, list[Any]] = {}
        for row in logits:
            real = row[~row[:, 0].isnan()]
            by_example.setdefault(int(real[0, 4]), []).append(real)
        found = [_best(by_example[i]) for i in sorted(by_example)]  # a batch: some questions
        if self.null_threshold is None:
            return found
        return [_less(p, self.null_threshold) for p in found]

    def calibrate(
        self,
        logits: torch.Tensor,
        targets: Sequence[Any],
        labels: Sequence[str] | None,
        metric: str,
    ) -> dict[str, Any] | None:
        """SQuAD v2: ``{"null_threshold": t}``, the official script's best threshold over the
        selection questions' null-score differences, each answered by its best span at or
        below ``t``; it maximises exact match for a task scored by it, else F1. v1.1: None."""
        from ..eval.squad import best_threshold, raw_scores

        if not self.calibrates(labels) or not len(targets):
            return None
        predictions = ExtractiveQA().predictions(logits)  # the differences, before any threshold
        golds = gold_answers(targets)
        spans = {
            str(i): answer_text(t[0], p, False)
            for i, (t, p) in enumerate(zip(targets, predictions, strict=True))
        }
        diffs = {str(i): math.inf if p[3] is None else p[3] for i, p in enumerate(predictions)}
        exact, f1 = raw_scores(spans, golds)
        chosen = exact if metric == "qa_exact_match" else f1
        return {"null_threshold": best_threshold(spans, chosen, diffs, golds)[1]}

    def calibrates(self, labels: Sequence[str] | None) -> bool:
        """SQuAD v2 tasks (with no-answer questions) choose a no-answer threshold."""
        return NO_ANSWER in (labels or ())

    def calibrated(self, calibration: dict[str, Any] | None) -> ExtractiveQA:
        """The kind answering by the recorded no-answer threshold (itself without one)."""
        threshold = (calibration or {}).get("null_threshold")
        return self if threshold is None else ExtractiveQA(float(threshold))

    def agreement(self, saved: torch.Tensor, now: torch.Tensor) -> tuple[float, float]:
        """Per question: the share of identical answers (spans, and with a recorded threshold
        whether it answers), and the largest logit change."""
        if saved.shape != now.shape:
            return 0.0, float("inf")
        if len(saved) == 0:
            return 1.0, 0.0
        before, after = self.predictions(saved), self.predictions(now)
        same = sum(self._said(a) == self._said(b) for a, b in zip(before, after, strict=True))
        same /= len(before)
        change = (saved[..., :LOGITS] - now[..., :LOGITS]).abs().nan_to_num()
        return float(same), float(change.max())

    def score(
        self,
        metrics: Sequence[str],
        targets: Sequence[Any],
        predictions: Sequence[Any],
        labels: Sequence[str] | None,
    ) -> dict[str, float]:
        """SQuAD's F1 and exact match over questions (v2.0: with the HasAns / NoAns
        breakdowns), as fractions; the asked metrics first."""
        from ..eval.squad import squad_v1, squad_v2

        v2 = NO_ANSWER in (labels or ())
        golds, answered = _answers(targets, predictions, v2)
        if not v2:
            got = squad_v1(answered, golds)
            values = {"qa_f1": got["f1"], "qa_exact_match": got["exact_match"]}
        else:
            got = squad_v2(answered, golds)
            values = {"qa_f1": got["f1"], "qa_exact_match": got["exact"]}
            for group, prefix in (("HasAns", "has_answer"), ("NoAns", "no_answer")):
                if f"{group}_f1" in got:
                    values[f"{prefix}_f1"] = got[f"{group}_f1"]
                    values[f"{prefix}_exact_match"] = got[f"{group}_exact"]
        return {**{m: values[m] for m in metrics}, **values}

    def additive(self, metric: str, labels: Sequence[str] | None) -> Additive | None:
        """F1 and exact match over all questions: means of per-question scores."""
        from ..eval.bootstrap import Additive
        from ..eval.squad import question_scores

        if metric not in ("qa_f1", "qa_exact_match"):
            return None
        v2 = NO_ANSWER in (labels or ())

        def parts(targets: Sequence[Any], predictions: Sequence[Any]) -> list[tuple]:
            golds, answered = _answers(targets, predictions, v2)
            exact, f1 = question_scores(answered, golds, v2=v2)
            chosen = f1 if metric == "qa_f1" else exact
            return [(chosen[q], 1.0) for q in sorted(chosen, key=int)]

        return Additive(parts, lambda sums: sums[..., 0] / sums[..., 1])

    def score_answers(
        self,
        metric: str,
        values: Sequence[Any],
        answers: Sequence[str | None],
        labels: Sequence[str] | None,
    ) -> float | None:
        """Each answer as the question's answer text (no answer: the empty one), scored as
        the SQuAD script does."""
        from ..eval.squad import question_scores

        if metric not in ("qa_f1", "qa_exact_match") or not values:
            return None
        targets = self.encode_targets(values, labels)
        golds = gold_answers(targets)
        said = {str(i): a or "" for i, a in enumerate(answers)}
        exact, f1 = question_scores(said, golds, v2=NO_ANSWER in (labels or ()))
        chosen = f1 if metric == "qa_f1" else exact
        return sum(chosen.values()) / len(chosen)

    def outputs(
        self,
        logits: torch.Tensor,
        labels: Sequence[str] | None,
        texts: Sequence[Sequence[str]] | None = None,
    ) -> list[dict[str, Any]]:
        """Per question: the answer (``label``), its character offsets in the context and its
        score (start + end logit); SQuAD v2 tasks answer "" when the null score beats the best
        span by more than the recorded threshold (0 without one)."""
        v2 = NO_ANSWER in (labels or ())
        rows = []
        for i, p in enumerate(self.predictions(logits)):
            context = texts[i][1] if texts is not None else ""
            text = answer_text(context, p, v2)
            start, end = (p[0], p[1]) if text else (None, None)
            rows.append(
                {"label": text, "probabilities": None, "start": start, "end": end, "score": p[2]}
            )
        return rows

    def _said(self, prediction: Sequence[Any]) -> tuple:
        """What a prediction answers: its span, and with a recorded threshold whether the null
        answer wins (a task recorded without one compares spans, as it always did)."""
        if self.null_threshold is None:
            return tuple(prediction[:2])
        margin = prediction[3]
        return (*prediction[:2], margin is None or margin > 0)

    def shown_metrics(self, metrics: Sequence[str], primary: str) -> list[str]:
        """The primary metric alone: the others include breakdowns (a row would run wide)."""
        return primary_only(metrics, primary)

    def describe_outputs(self, labels: Sequence[str] | None) -> str:
        return "answer spans" + (" (or no answer)" if NO_ANSWER in (labels or ()) else "")


def _answers(
    targets: Sequence[Any], predictions: Sequence[Any], v2: bool
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Per question (keyed by its index): the gold answers, and the predicted answer."""
    golds = gold_answers(targets)
    answered = {
        str(i): answer_text(target[0], p, v2)
        for i, (target, p) in enumerate(zip(targets, predictions, strict=True))
    }
    return golds, answered


def gold_answers(targets: Sequence[Any]) -> dict[str, list[str]]:
    """Per question (keyed by its index): its gold answer texts."""
    return {str(i): [a[0] for a in target[1]] for i, target in enumerate(targets)}


def first_answer(target: Any) -> tuple[int, int] | None:
    """The (start, end) characters of a row's first answer, the one a window learns; None
    for an unanswerable question."""
    answers = target[1]
    if not answers:
        return None
    text, start = answers[0]
    return int(start), int(start) + len(text)


def answer_text(context: str, prediction: Sequence[Any], v2: bool) -> str:
    """The predicted answer: its span of ``context``, or "" (no answer: a v2 task whose
    margin, the null-score difference less the threshold, is above 0, or no valid span)."""
    start, end, _, diff = prediction
    if start == end or (v2 and diff is not None and diff > 0):
        return ""
    return context[start:end]


def _less(prediction: tuple, threshold: float) -> tuple:
    """``prediction`` with its null-score difference less ``threshold`` (None stays None)."""
    start, end, score, diff = prediction
    return start, end, score, None if diff is None else diff - threshold


def _best(windows: list[Any]) -> tuple[int, int, float, float | None]:
    """One question's best span over its windows' rows ([CLS], then context tokens)."""
    from .qa_windows import Window, best_spans, choose_answer

    starts, ends, made = [], [], []
    for rows in windows:
        offsets = (None, *((int(r[2]), int(r[3])) for r in rows[1:]))
        made.append(Window(int(rows[0, 4]), (), (), offsets))
        starts.append(rows[:, 0].tolist())
        ends.append(rows[:, 1].tolist())
    spans = best_spans(
        starts, ends, made, "", n_best=N_BEST, max_answer_length=MAX_ANSWER_TOKENS, with_null=True
    )
    best, diff = choose_answer(spans, math.inf)  # the best non-null span, and the difference
    if best.start_char == best.end_char == 0 and not math.isfinite(diff):
        return 0, 0, best.score, None
    return best.start_char, best.end_char, best.score, diff
