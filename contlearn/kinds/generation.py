"""``generation``: a prompt in, a free-text response out (instruction tuning of a decoder LLM).

A row's text is its prompt as a flattened conversation ``(role1, content1, ..., "user",
content)``; its label is the reference response. The head is the backbone's own output
projection (head type ``lm``, shared, never saved per task).

Encoding. With a chat template, the prompt is ``tokenizer.apply_chat_template(messages,
add_generation_prompt=True)`` and the response is what the template adds for an assistant turn
(the response, then its end-of-turn marker): the text of the whole conversation rendered with
the assistant's turn, past the prompt's text. Without a chat template the prompt is each turn's
content on its own line, ending with a newline, and the response is followed by the eos token
(none when the tokenizer has none). A training row is the prompt, then the response; the loss
(next-token cross-entropy) covers the response's tokens only (prompt and padding are
``IGNORED``). A row longer than ``max_length`` loses its prompt's beginning, never its
response; a response that alone fills ``max_length`` keeps the prompt's last token and loses
its own end (counted and logged).

The canonical evaluation. Per dev example: greedy decoding (``Decoding(temperature=0)``) of at
most ``max_new_tokens`` (recorded with the run's training settings) from the prompt (left
padded, its beginning cut to ``max_length``), stopping after the eos or end-of-turn token; and
the teacher-forced logits [R, V] at the positions that predict the reference response's R
tokens (the training row, right padded). One float32 row per example, [N, 1 + G + 16 + 3W]:

- ``G``, the number of generated slots (``max_new_tokens``);
- the G generated token ids (exact in float32 below 2^24), NaN after the row stopped;
- the sha256 of the example's teacher-forced logit bytes [R, V] (float32, little-endian) as
  sixteen 16-bit chunks (exact in float32);
- per reference token (W: the split's longest reference), the reference token's logit, the
  log-sum-exp and the max of its row; NaN past the example's R.

So its digest covers the generated ids and every teacher-forced logit without storing [N, L, V].
A replay under another recipe agrees when the generated tokens are the same (the share of
identical generated tokens); the logit change is read on the reference tokens' columns.
Predictions are the generated texts (special tokens skipped, stripped); metrics are
``contlearn.eval.generation``'s (ROUGE-L, exact match, and accuracy over a closed label set).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .base import TRAIN_MORE, TaskKind

if TYPE_CHECKING:
    import torch

    from ..eval.bootstrap import Additive
    from ..train.batching import Encoded

log = logging.getLogger(__name__)

IGNORED = -100  # the loss's ignore_index: prompt and padding positions
DEFAULT_MAX_NEW_TOKENS = 32
MAX_NEW_TOKENS = 1024  # the most a task or the generate command may ask for


def check_max_new_tokens(value: int, fix: str = "give --max-new-tokens") -> int:
    """``value`` when it is 1..MAX_NEW_TOKENS, else a one-line ConfigError naming ``fix``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_NEW_TOKENS:
        raise ConfigError(f"max new tokens must be 1-{MAX_NEW_TOKENS}, got {value!r}: {fix}")
    return value


class Generation(TaskKind):
    name = "generation"
    head = "lm"
    reads = "generation"
    predicts = "text"
    labels_name_outputs = False  # the outputs are the vocabulary, whatever the labels
    needs_decoder = True
    generates = True

    def encode(
        self,
        tokenizer: Any,
        texts: Sequence[Sequence[str]],
        max_length: int,
        token_types: bool,
        targets: Sequence[Any] | None = None,
    ) -> Encoded:
        """With ``targets`` (the responses: a training split), the training rows, each with
        the number of its prompt tokens as its target; without, the prompts to answer."""
        from ..train.batching import Encoded

        if targets is None:
            return self.encode_split(
                tokenizer, texts, max_length, token_types, None, training=False
            )
        rows = training_rows(tokenizer, texts, targets, max_length)
        pad = pad_id(tokenizer)
        return Encoded([ids for ids, _ in rows], None, pad, targets=[n for _, n in rows])

    def encode_split(
        self,
        tokenizer: Any,
        texts: Sequence[Sequence[str]],
        max_length: int,
        token_types: bool,
        targets: Sequence[Any] | None,
        *,
        training: bool,
        max_new_tokens: int | None = None,
    ) -> Encoded:
        """A training split as :meth:`encode`; any other as ``generated.Prompts``: the
        prompts, the teacher-forced rows of their reference responses (``targets``; none for
        rows to predict) and the decoding rule."""
        from .generated import Prompts

        if training:
            return self.encode(tokenizer, texts, max_length, token_types, targets)
        whole = [full_prompt_ids(tokenizer, row) for row in texts]
        rows = None
        if targets is not None:
            rows = training_rows(tokenizer, texts, targets, max_length, prompts=whole)
        return Prompts(
            [ids[-max_length:] for ids in whole],
            None,
            pad_id(tokenizer),
            forced=None if rows is None else [ids for ids, _ in rows],
            starts=None if rows is None else [n for _, n in rows],
            stop_ids=stop_ids(tokenizer),
            max_new_tokens=max_new_tokens or DEFAULT_MAX_NEW_TOKENS,
            tokenizer=tokenizer,
        )

    def predict_inputs(self, texts: Sequence[Sequence[str]]) -> list[tuple[str, ...]]:
        """A row given as one text is the user's prompt; a flattened conversation stays."""
        return [("user", row[0]) if len(row) == 1 else tuple(row) for row in texts]

    def routing_text(self, row: Sequence[str]) -> tuple[str, ...]:
        """A flattened conversation's contents (not its roles), as one text."""
        return ("\n".join(row[1::2]),)

    def num_outputs(self, labels: Sequence[str] | None) -> int:
        return 0  # the shared output projection: the vocabulary, nothing of the task's own

    def encode_targets(self, values: Sequence[Any], labels: Sequence[str] | None) -> list:
        return [str(v) for v in values]

    def batch_targets(
        self, targets: Sequence[Any], encoded: Encoded, idx: Sequence[int]
    ) -> torch.Tensor:
        """[B, T] next-token targets of the batch's training rows (T: its longest): at
        position t the token at t + 1 where that token is the response's, ``IGNORED`` on the
        prompt and the padding."""
        import torch

        width = max(len(encoded.input_ids[i]) for i in idx)
        out = torch.full((len(idx), width), IGNORED, dtype=torch.long)
        for row, i in enumerate(idx):
            ids, start = encoded.input_ids[i], encoded.targets[i]
            out[row, start - 1 : len(ids) - 1] = torch.tensor(ids[start:], dtype=torch.long)
        return out

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the response tokens: ``logits`` [B, T, V], ``targets``
        [B, T] (:meth:`batch_targets`); only the wanted positions' rows are gathered."""
        import torch.nn.functional as F

        wanted = targets[:, : logits.shape[1]]
        keep = wanted != IGNORED
        return F.cross_entropy(logits[keep].float(), wanted[keep].long())

    def canonical_outputs(
        self,
        model: Any,
        encoded: Encoded,
        *,
        batch_size: int,
        device: Any,
        progress: bool = False,
        desc: str = "evaluating",
        width: int | None = None,
    ) -> torch.Tensor:
        """[N, 1 + G + 16 + 3W] float32 in original order (the module docstring's layout)."""
        from .generated import canonical_generation

        return canonical_generation(
            model,
            encoded,
            batch_size=batch_size,
            device=device,
            progress=progress,
            desc=desc,
            width=width,
        )

    def predictions(self, logits: torch.Tensor) -> list:
        """Per row, its generated token ids (the stop token kept, nothing after it)."""
        from .generated import generated_ids

        return generated_ids(logits)

    def read(self, logits: torch.Tensor, encoded: Encoded) -> list:
        """The generated texts: special tokens skipped, stripped."""
        return texts_of(encoded.tokenizer, self.predictions(logits))

    def stored_predictions(self, logits: torch.Tensor, tokenizer: Callable[[], Any]) -> list:
        """The generated texts of stored outputs, decoded with the backbone's tokenizer."""
        return texts_of(tokenizer(), self.predictions(logits))

    def agreement(self, saved: torch.Tensor, now: torch.Tensor) -> tuple[float, float]:
        """The share of identical generated tokens (slots where either generated one), and
        the largest change of a reference token's logit, log-sum-exp or max."""
        from .generated import agreement

        return agreement(saved, now)

    def same_predictions(self, saved: torch.Tensor, now: torch.Tensor) -> torch.Tensor:
        """Per row: whether every generated token is the same."""
        from .generated import same_generated

        return same_generated(saved, now)

    def score(
        self,
        metrics: Sequence[str],
        targets: Sequence[Any],
        predictions: Sequence[Any],
        labels: Sequence[str] | None,
    ) -> dict[str, float]:
        from ..eval.generation import generation_scores

        return generation_scores(list(metrics), list(targets), list(predictions), labels)

    def score_answers(
        self,
        metric: str,
        values: Sequence[Any],
        answers: Sequence[str | None],
        labels: Sequence[str] | None,
    ) -> float | None:
        """Each answer as the generated text (no answer: the empty one)."""
        from ..eval.generation import generation_scores

        golds = self.encode_targets(values, labels)
        return generation_scores([metric], golds, [a or "" for a in answers], labels)[metric]

    def additive(self, metric: str, labels: Sequence[str] | None) -> Additive | None:
        """Every generation metric is a mean of per-example scores
        (:func:`contlearn.eval.generation.per_example`): each example's score and a count."""
        from ..eval.bootstrap import Additive
        from ..eval.generation import per_example

        def parts(targets: Sequence[Any], predictions: Sequence[Any]) -> list[tuple]:
            scores = per_example(
                metric, [str(t) for t in targets], [str(p) for p in predictions], labels
            )
            return [(score, 1.0) for score in scores]

        return Additive(parts, lambda sums: sums[..., 0] / sums[..., 1])

    def warnings(
        self, task: str, labels: Sequence[str] | None, targets: Sequence, logits: torch.Tensor
    ) -> list[str]:
        """Every dev answer empty (only a stop token generated): the task has not learned."""
        from .generated import answer_lengths

        lengths = answer_lengths(logits)
        if not targets or any(lengths):
            return []
        return [f"{task} answered every dev prompt with an empty text: {TRAIN_MORE}"]

    def outputs(
        self,
        logits: torch.Tensor,
        labels: Sequence[str] | None,
        texts: Sequence[Sequence[str]] | None = None,
        encoded: Encoded | None = None,
    ) -> list[dict[str, Any]]:
        """Per row: the generated text (``label`` and ``text``) and how many tokens were
        generated (the stop token included)."""
        ids = self.predictions(logits)
        made = texts_of(getattr(encoded, "tokenizer", None), ids)
        return [
            {"label": text, "probabilities": None, "text": text, "tokens": len(row)}
            for text, row in zip(made, ids, strict=True)
        ]

    def predict_outputs(
        self,
        logits: torch.Tensor,
        labels: Sequence[str] | None,
        texts: Sequence[Sequence[str]],
        encoded: Encoded,
    ) -> list[dict[str, Any]]:
        return self.outputs(logits, labels, texts, encoded)

    def describe_outputs(self, labels: Sequence[str] | None) -> str:
        return "generated text"


# -- encoding --------------------------------------------------------------------------------


def messages_of(row: Sequence[str]) -> list[dict[str, str]]:
    """A flattened conversation ``(role1, content1, ...)`` as chat messages."""
    return [{"role": row[k], "content": row[k + 1]} for k in range(0, len(row) - 1, 2)]


def pad_id(tokenizer: Any) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def has_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def prompt_text(tokenizer: Any, row: Sequence[str]) -> str:
    """The prompt as text: the chat template with the generation prompt, else each turn's
    content on its own line, ending with a newline."""
    if has_template(tokenizer):
        return tokenizer.apply_chat_template(
            messages_of(row), add_generation_prompt=True, tokenize=False
        )
    return "".join(f"{row[k + 1]}\n" for k in range(0, len(row) - 1, 2))


def full_prompt_ids(tokenizer: Any, row: Sequence[str]) -> list[int]:
    """The whole prompt's token ids (the chat template's own tokenisation when there is one)."""
    if has_template(tokenizer):
        out = tokenizer.apply_chat_template(
            messages_of(row), add_generation_prompt=True, tokenize=True
        )
        return list(out["input_ids"] if hasattr(out, "keys") else out)
    return tokenizer(prompt_text(tokenizer, row), add_special_tokens=False)["input_ids"]


def response_text(tokenizer: Any, row: Sequence[str], response: str) -> str:
    """What follows the prompt in a conversation the assistant answered ``response``: the
    template's assistant turn past the prompt (the response and its end-of-turn marker), or
    the response then the eos token."""
    eos = tokenizer.eos_token or ""
    if not has_template(tokenizer):
        return response + eos
    prompt = prompt_text(tokenizer, row)
    answered = [*messages_of(row), {"role": "assistant", "content": response}]
    whole = tokenizer.apply_chat_template(answered, tokenize=False)
    if whole.startswith(prompt):
        return whole[len(prompt) :]
    return response + eos  # a template whose generation prompt is not a prefix of the turn


def training_rows(
    tokenizer: Any,
    texts: Sequence[Sequence[str]],
    responses: Sequence[Any],
    max_length: int,
    prompts: Sequence[list[int]] | None = None,
) -> list[tuple[list[int], int]]:
    """Each row's (prompt + response ids, number of prompt ids), cut to ``max_length``: the
    prompt's beginning goes first; a response that alone fills it keeps one prompt token and
    loses its end (counted and logged). ``prompts``: the rows' whole prompt ids, if known."""
    rows, cut = [], 0
    for i, (row, response) in enumerate(zip(texts, responses, strict=True)):
        prompt = full_prompt_ids(tokenizer, row) if prompts is None else prompts[i]
        answer = tokenizer(response_text(tokenizer, row, str(response)), add_special_tokens=False)
        answer = answer["input_ids"]
        if len(answer) > max_length - 1:
            answer, cut = answer[: max_length - 1], cut + 1
        prompt = prompt[-(max_length - len(answer)) :] if prompt else prompt
        rows.append((prompt + answer, len(prompt)))
    if cut:
        log.warning(
            "%d response(s) longer than max length %d lost their end: raise --max-length",
            cut,
            max_length,
        )
    return rows


def stop_ids(tokenizer: Any) -> tuple[int, ...]:
    """The ids that end a generated answer: eos, and the special tokens the chat template ends
    an assistant turn with."""
    found = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    if has_template(tokenizer):
        special = set(tokenizer.all_special_ids)
        tail = response_text(tokenizer, ("user", "x"), "x")
        found += [i for i in tokenizer(tail, add_special_tokens=False)["input_ids"] if i in special]
    return tuple(dict.fromkeys(found))


def texts_of(tokenizer: Any, ids: Sequence[Sequence[int]]) -> list[str]:
    """Generated ids as text: special tokens skipped, stripped."""
    if tokenizer is None:
        raise ValueError("decoding generated ids needs the tokenizer")
    return [tokenizer.decode(list(row), skip_special_tokens=True).strip() for row in ids]
