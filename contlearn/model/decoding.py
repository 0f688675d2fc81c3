"""Generating text with an :class:`~contlearn.model.adapted.AdaptedModel`: greedy or sampled
decoding of a left-padded batch, one task per row if asked, with a key/value cache.

Each row's positions come from its attention mask, so a left-padded row generates what it
generates alone. With ``use_cache`` the prompt runs once and each later step feeds only the
newest token, the backbone keeping every layer's keys and values in a transformers
``DynamicCache`` made for this one call; without it each step recomputes the whole sequence.
Both give the same tokens, for every method:

- ``houlsby``, ``pfeiffer``, ``parallel``, ``lora``, ``ia3``: their hooks act on each token's
  state at a site, one token at a time, so a token's keys and values are fixed once computed:
  the cache keeps them as the task's hooks made them (LoRA's and (IA)^3's adapted keys and
  values included); each step runs the hooks on the new token only (the parallel adapter's
  kept block input is that token's).
- ``topk``: the task's copies of the top layers run instead of the backbone's with the same
  layer index, so those layers' cache slots hold the copies' keys and values.
- ``head`` (and no task): the base model's cache.
- A batch of several tasks is ordered by task once, before the prompt runs; the cache keeps
  that order, and each row's entries come from its own task's hooks. A task whose modules
  cannot share a forward pass (``topk``) generates its rows in a batch of their own.

The frozen-prefix cache of training (:class:`~contlearn.model.prefix.PrefixCache`) is off
while a batch generates; so is dropout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..errors import ConfigError
from ..validation import check, check_types
from .adapted import position_ids
from .backbone import positions as position_limit
from .mixing import task_order

if TYPE_CHECKING:
    from .adapted import AdaptedModel

OnToken = Callable[[int, Tensor], None]  # (step, the step's tokens [B], -1 for a stopped row)


@dataclass(frozen=True)
class Decoding:
    """max_new_tokens: how many tokens a row generates at most; stop_ids: the end-of-text /
    end-of-turn ids, a row stops after emitting one (kept in its output); temperature: 0 is
    greedy (the canonical evaluation), > 0 samples from the softmax at that temperature;
    top_p: sampling keeps the smallest set of most likely tokens whose probability reaches it;
    seed: the sampling generator's seed (None: not reproducible); use_cache: keep keys and
    values between steps (the same tokens as recomputing, faster)."""

    max_new_tokens: int
    stop_ids: tuple[int, ...]
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    use_cache: bool = True

    def __post_init__(self) -> None:
        check_types(self)
        check(self.max_new_tokens >= 1, f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        stops = self.stop_ids
        check(
            isinstance(stops, (list, tuple))
            and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in stops),
            f"stop_ids must be a list of token ids (integers >= 0), got {stops!r}",
        )
        object.__setattr__(self, "stop_ids", tuple(stops))
        check(self.temperature >= 0, f"temperature must be >= 0, got {self.temperature!r}")
        check(0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p!r}")
        seed = self.seed
        check(
            seed is None or (isinstance(seed, int) and not isinstance(seed, bool)),
            f"seed must be an integer or None, got {seed!r}",
        )


def generate(
    model: AdaptedModel,
    input_ids: Tensor,
    attention_mask: Tensor,
    decoding: Decoding,
    tasks: Sequence[str] | None = None,
    on_token: OnToken | None = None,
) -> Tensor:
    """Generated ids [B, max_new_tokens] (int64) for the left-padded prompts ``input_ids`` [B, T]:
    ``-1`` after a row stopped (its stop token kept). ``tasks``: row i's task ``tasks[i]``;
    None: the active task's, or with none active the base model's. ``on_token(step, tokens)``
    is called after each step with that step's column of the result [B] (a server streams
    text from it; an exception it raises stops the generation); it changes no result."""
    rows = input_ids.shape[0]
    if rows == 0:
        return input_ids.new_full((0, decoding.max_new_tokens), -1)
    _check_batch(model, input_ids, attention_mask, decoding, tasks)
    if tasks is None:
        whole = {model.active: slice(0, rows)}
        return _generate(model, input_ids, attention_mask, decoding, whole, on_token)
    names = list(dict.fromkeys(tasks))
    if len(names) > 1 and not all(model.can_mix(name) for name in names):
        return _task_by_task(model, input_ids, attention_mask, decoding, tasks, on_token)
    order, slices = task_order(tasks)
    perm = torch.tensor(order, device=input_ids.device)
    back = torch.argsort(perm)  # the caller's row order
    told = None if on_token is None else lambda step, tokens: on_token(step, tokens[back])
    out = _generate(model, input_ids[perm], attention_mask[perm], decoding, slices, told)
    return out[back]


def _task_by_task(
    model: AdaptedModel,
    input_ids: Tensor,
    mask: Tensor,
    decoding: Decoding,
    tasks: Sequence[str],
    on_token: OnToken | None,
) -> Tensor:
    """Each task's rows generated in a batch of their own (a task that cannot mix); each
    step's ``on_token`` sees -1 for the rows of the other tasks."""
    out = input_ids.new_full((input_ids.shape[0], decoding.max_new_tokens), -1)
    for name in dict.fromkeys(tasks):
        rows = torch.tensor([i for i, t in enumerate(tasks) if t == name], device=out.device)
        slices = {name: slice(0, len(rows))}
        told = None if on_token is None else _scattered(on_token, rows, input_ids.shape[0])
        out[rows] = _generate(model, input_ids[rows], mask[rows], decoding, slices, told)
    return out


def _scattered(on_token: OnToken, rows: Tensor, size: int) -> OnToken:
    """``on_token`` told a step of ``rows`` alone, as a column of all ``size`` rows."""

    def told(step: int, tokens: Tensor) -> None:
        on_token(step, tokens.new_full((size,), -1).index_copy(0, rows, tokens))

    return told


def _generate(
    model: AdaptedModel,
    input_ids: Tensor,
    mask: Tensor,
    decoding: Decoding,
    slices: dict[str | None, slice],
    on_token: OnToken | None = None,
) -> Tensor:
    """:func:`generate` on a batch ordered by task (``slices``: each task's rows)."""
    real = mask.any(dim=0).nonzero()
    start = int(real[0]) if len(real) else 0  # columns that pad every row: left out
    input_ids, mask = input_ids[:, start:], mask[:, start:]
    with torch.no_grad(), model.generating(slices) as heads:
        return _decode(model, heads, input_ids, mask, decoding, on_token)


def _decode(
    model: AdaptedModel,
    heads: list,
    input_ids: Tensor,
    mask: Tensor,
    decoding: Decoding,
    on_token: OnToken | None = None,
) -> Tensor:
    """The decoding loop: the prompt once, then one token per step (fed alone with the cache,
    the whole sequence again without)."""
    rows, device = input_ids.shape[0], input_ids.device
    out = input_ids.new_full((rows, decoding.max_new_tokens), -1)
    done = torch.zeros(rows, dtype=torch.bool, device=device)
    stops = torch.tensor(decoding.stop_ids, dtype=input_ids.dtype, device=device)
    generator = _generator(decoding, device)
    cache = model.new_cache() if decoding.use_cache else None
    new, positions = input_ids, position_ids(mask)
    for step in range(decoding.max_new_tokens):
        hidden = model.lm_hidden(new, mask, positions, cache)[:, -1]  # [B, d]
        token = _choose(_logits(hidden, heads), decoding, generator)  # [B]
        out[:, step] = token.masked_fill(done, -1)
        if on_token is not None:
            on_token(step, out[:, step].clone())
        done |= torch.isin(token, stops)
        if bool(done.all()):
            break
        mask = torch.cat([mask, mask.new_ones((rows, 1))], dim=1)
        input_ids = torch.cat([input_ids, token[:, None]], dim=1)
        positions = position_ids(mask)
        if cache is not None:
            new, positions = token[:, None], positions[:, -1:]
        else:
            new = input_ids
    return out


def _logits(hidden: Tensor, heads: list) -> Tensor:
    """Next-token logits [B, V] (float32): each task's head on its rows (in order)."""
    if len(heads) == 1:
        return heads[0][0](hidden)
    return torch.cat([head(hidden[rows]) for head, rows in heads])


def _choose(logits: Tensor, decoding: Decoding, generator: Any) -> Tensor:
    """Each row's next token [B]: the most likely (temperature 0), else a sample."""
    if decoding.temperature == 0:
        return logits.argmax(dim=-1)
    probs = nucleus(torch.softmax(logits / decoding.temperature, dim=-1), decoding.top_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def nucleus(probs: Tensor, top_p: float) -> Tensor:
    """``probs`` [B, V] with all but each row's nucleus zeroed: its most likely tokens, in order,
    while the probability before them is under ``top_p`` (the most likely always kept)."""
    if top_p >= 1:
        return probs
    ordered, index = probs.sort(dim=-1, descending=True)
    before = ordered.cumsum(dim=-1) - ordered  # [B, V]: the mass of the tokens ahead
    ordered = ordered.masked_fill(before >= top_p, 0.0)
    return torch.zeros_like(probs).scatter(-1, index, ordered)


def _generator(decoding: Decoding, device: torch.device) -> torch.Generator | None:
    if decoding.temperature == 0 or decoding.seed is None:
        return None
    return torch.Generator(device=device).manual_seed(decoding.seed)


def _check_batch(
    model: AdaptedModel,
    input_ids: Tensor,
    mask: Tensor,
    decoding: Decoding,
    tasks: Sequence[str] | None,
) -> None:
    """A batch that can generate: shapes agree, each row ends on a real token (left padding),
    one task per row, and prompt plus new tokens within the backbone's positions."""
    if input_ids.ndim != 2 or mask.shape != input_ids.shape:
        raise ConfigError(
            f"input_ids {tuple(input_ids.shape)} and attention_mask {tuple(mask.shape)} must "
            "both be [batch, tokens]"
        )
    if input_ids.shape[1] == 0 or not bool(mask[:, -1].all()):
        raise ConfigError(
            "every prompt must end on a real token: pad the batch on the left "
            "(tokenizer.padding_side = 'left')"
        )
    if tasks is not None and len(tasks) != input_ids.shape[0]:
        raise ConfigError(f"{len(tasks)} tasks for {input_ids.shape[0]} rows: give one per row")
    limit = position_limit(model.backbone.config.to_dict())
    longest = int(mask.sum(dim=1).max()) + decoding.max_new_tokens
    if limit is not None and longest > limit:
        raise ConfigError(
            f"a prompt plus max_new_tokens is {longest} tokens, more than the backbone's "
            f"{limit} positions: shorten the prompts or lower max_new_tokens"
        )
