"""``tagging``: one tag per word (named entities, BIO / IOB2 or IOBES), from a per-token head.

A row's text is its words. The tokenizer cuts words into sub-tokens; the first sub-token of a
word carries its tag and the others are ignored by the loss and the metrics (the usual rule).
The canonical evaluation keeps, per example, the logits at those first sub-tokens: [N, W, C],
NaN past an example's last word (and for a word the tokenizer made nothing of). A word cut off
by ``max_length`` has no logits: it is scored as tagged ``O``, so an entity there is missed,
never dropped from the score. Metrics are entity-level (seqeval's CoNLL definition: a span
counts when its boundaries and type both match), per entity type, and per token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .base import TRAIN_MORE, TaskKind, primary_only

if TYPE_CHECKING:
    import torch

    from ..eval.bootstrap import Additive
    from ..train.batching import Encoded

IGNORED = -100  # the loss's ignore_index: sub-tokens after a word's first, special tokens
OUTSIDE = "O"


class Tagging(TaskKind):
    name = "tagging"
    head = "token"
    reads = "tagging"
    predicts = "tags"

    def encode(
        self,
        tokenizer: Any,
        texts: Sequence[Sequence[str]],
        max_length: int,
        token_types: bool,
        targets: Sequence[Any] | None = None,
    ) -> Encoded:
        from ..train.batching import encode_words

        return encode_words(tokenizer, texts, max_length, token_types=token_types)

    def predict_inputs(self, texts: Sequence[Sequence[str]]) -> list[tuple[str, ...]]:
        """A row given as text (one field) becomes its whitespace-separated words."""
        return [tuple(word for field in row for word in field.split()) for row in texts]

    def routing_text(self, row: Sequence[str]) -> tuple[str, ...]:
        """A row's words, as one text."""
        return (" ".join(row),)

    def num_outputs(self, labels: Sequence[str] | None) -> int:
        return len(labels or ())

    def encode_targets(self, values: Sequence[Any], labels: Sequence[str] | None) -> list:
        index = {name: i for i, name in enumerate(labels or ())}
        return [tuple(index[tag] for tag in tags) for tags in values]

    def target_tensor(self, targets: Sequence[Any], encoded: Encoded | None = None) -> torch.Tensor:
        """[N, T] tag ids at each word's first sub-token, ``IGNORED`` everywhere else."""
        import torch

        if encoded is None or encoded.positions is None:
            raise ValueError("tagging targets need the examples' word positions")
        width = max(encoded.lengths, default=0)
        out = torch.full((len(targets), width), IGNORED, dtype=torch.long)
        for row, (tags, where) in enumerate(zip(targets, encoded.positions, strict=True)):
            for tag, position in zip(tags, where, strict=False):  # cut-off words have none
                if position >= 0:
                    out[row, position] = tag
        return out

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the tagged sub-tokens: ``logits`` [B, T, C], ``targets``
        [B, >= T] (the split's width; this batch is padded to T)."""
        import torch.nn.functional as F

        wanted = targets[:, : logits.shape[1]].long()
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), wanted.reshape(-1), ignore_index=IGNORED
        )

    def predictions(self, logits: torch.Tensor) -> list:
        """Per example, the tag id of each word kept (-1 for a word with no sub-token)."""
        import torch

        real = ~torch.isnan(logits[..., 0]) if logits.numel() else logits.new_zeros(0, 0).bool()
        best = logits.nan_to_num(float("-inf")).argmax(dim=-1) if logits.numel() else real.long()
        out = []
        for row in range(logits.shape[0]):
            kept = real[row].nonzero()
            count = int(kept[-1]) + 1 if len(kept) else 0
            tags = best[row, :count].masked_fill(~real[row, :count], -1)
            out.append(tuple(tags.tolist()))
        return out

    def agreement(self, saved: torch.Tensor, now: torch.Tensor) -> tuple[float, float]:
        """Per word: the share of identical tags, and the largest logit change."""
        import torch

        if saved.shape != now.shape:
            return 0.0, float("inf")
        real = ~torch.isnan(saved[..., 0])
        if not torch.equal(real, ~torch.isnan(now[..., 0])):
            return 0.0, float("inf")
        if not bool(real.any()):
            return 1.0, 0.0
        same = self.same_predictions(saved, now)[real]
        return float(same.float().mean()), float((saved - now).abs()[real].max())

    def same_predictions(self, saved: torch.Tensor, now: torch.Tensor) -> torch.Tensor:
        """Per word row (of [N, W, C]): whether the tag is the same."""
        return saved.nan_to_num().argmax(-1) == now.nan_to_num().argmax(-1)

    def num_classes(self, labels: Sequence[str] | None) -> int | None:
        return len(labels or ())

    def score(
        self,
        metrics: Sequence[str],
        targets: Sequence[Any],
        predictions: Sequence[Any],
        labels: Sequence[str] | None,
    ) -> dict[str, float]:
        """Entity precision / recall / F1, per-type F1 and token accuracy; the asked metrics
        first. Words without a prediction (cut off by ``max_length``) count as ``O``."""
        from ..eval.tagging import entity_scores

        names = list(labels or ())
        gold = [[names[t] for t in tags] for tags in targets]
        pred = [self.tag_names(p, names, len(g)) for p, g in zip(predictions, gold, strict=True)]
        values = entity_scores(gold, pred)
        return {**{m: values[m] for m in metrics}, **values}

    def additive(self, metric: str, labels: Sequence[str] | None) -> Additive | None:
        """Entity precision, recall, F1 and token accuracy from per-sentence counts."""
        from functools import partial

        from ..eval.bootstrap import Additive
        from ..eval.tagging import COUNTED, entity_counts, from_counts

        if metric not in COUNTED:
            return None
        names = list(labels or ())

        def parts(targets: Sequence[Any], predictions: Sequence[Any]) -> list[tuple]:
            gold = [[names[t] for t in tags] for tags in targets]
            pred = [
                self.tag_names(p, names, len(g)) for p, g in zip(predictions, gold, strict=True)
            ]
            return entity_counts(gold, pred)

        return Additive(parts, partial(from_counts, metric))

    def score_answers(
        self,
        metric: str,
        values: Sequence[Any],
        answers: Sequence[str | None],
        labels: Sequence[str] | None,
    ) -> float | None:
        """Each answer's space-separated tags, word by word; a word without one of this
        task's tags (another task's answer, no answer) as ``O``."""
        from ..eval.tagging import entity_scores

        names = set(labels or ())
        gold = [list(tags) for tags in values]
        said = [[t if t in names else OUTSIDE for t in (a or "").split()] for a in answers]
        pred = [(p + [OUTSIDE] * len(g))[: len(g)] for p, g in zip(said, gold, strict=True)]
        return entity_scores(gold, pred)[metric]

    @staticmethod
    def tag_names(predicted: Sequence[int], names: Sequence[str], words: int) -> list[str]:
        """A row's predicted tags as names, ``O`` for a word without a prediction."""
        tags = [names[t] if t >= 0 else OUTSIDE for t in predicted[:words]]
        return tags + [OUTSIDE] * (words - len(tags))

    def warnings(
        self, task: str, labels: Sequence[str] | None, targets: Sequence, logits: torch.Tensor
    ) -> list[str]:
        """No entity predicted at all on the dev split: the task has not learned yet."""
        names = list(labels or ())
        found = {names[t] for row in self.predictions(logits) for t in row if t >= 0}
        if not targets or found - {OUTSIDE}:
            return []
        return [f"{task} tagged every dev word {OUTSIDE!r} (no entity found): {TRAIN_MORE}"]

    def outputs(
        self,
        logits: torch.Tensor,
        labels: Sequence[str] | None,
        texts: Sequence[Sequence[str]] | None = None,
    ) -> list[dict[str, Any]]:
        """Per row: its tags (``label``, space-separated), each word with its tag and character
        offsets, and the entity spans with their types and offsets."""
        from ..eval.tagging import entity_spans, word_offsets

        names = list(labels or ())
        rows = []
        for i, predicted in enumerate(self.predictions(logits)):
            text = " ".join(texts[i]) if texts is not None else ""
            spans = word_offsets(text)
            tags = self.tag_names(predicted, names, len(spans))
            words = [
                {"word": text[a:b], "tag": tag, "start": a, "end": b}
                for (a, b), tag in zip(spans, tags, strict=True)
            ]
            entities = [
                {"type": e.type, "text": e.text, "start": e.start, "end": e.end}
                for e in entity_spans([w["word"] for w in words], tags, text)
            ]
            rows.append(
                {
                    "label": " ".join(tags),
                    "probabilities": None,
                    "words": words,
                    "entities": entities,
                }
            )
        return rows

    def shown_metrics(self, metrics: Sequence[str], primary: str) -> list[str]:
        """The primary metric alone: the others include breakdowns (a row would run wide)."""
        return primary_only(metrics, primary)

    def describe_outputs(self, labels: Sequence[str] | None) -> str:
        return f"{len(labels or ())} tags"
