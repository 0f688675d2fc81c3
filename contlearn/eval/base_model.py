"""The base model measured on the base reference set, with no task active, and two such
measurements compared.

A measurement is the per-token losses of the set's texts (teacher-forced next-token
cross-entropy of the base causal LM, float32) and their perplexity, and the greedy answers to
its instructions (prompted as a generation task's are: the chat template with the generation
prompt, left padded, one batch; stopped after eos or end of turn). Its digest covers the losses'
bytes and the generated ids, so a replay under the same recipe must give the same digest; under
another recipe (another host or device) it agrees when every generated id is the same and the
perplexity within ``PERPLEXITY_RTOL`` (the weights were proven unchanged when they loaded).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ..devices import recipe, reproducible
from ..kinds.generation import full_prompt_ids, pad_id, stop_ids, texts_of
from ..model.backbone import positions
from ..model.decoding import Decoding, generate
from .digests import logits_digest
from .recipe import computes_in, torch_threads

if TYPE_CHECKING:
    from ..data.base_set import BaseSet
    from ..model.adapted import AdaptedModel

# a text longer than this (or than the backbone's positions) is scored on its first tokens only
MAX_TEXT_TOKENS = 256
PERPLEXITY_RTOL = 1e-3  # how close the perplexity must come under another recipe


@dataclass(frozen=True)
class BaseMeasure:
    """perplexity: exp of the mean token loss over every text; losses [N] float32 (each
    text's tokens after its first, in order); answers: per instruction its generated ids (the
    stop token kept) and text; digest: sha256 over the losses and the ids; recipe: what it ran
    under (``devices.recipe``)."""

    perplexity: float
    losses: torch.Tensor
    answers: list[dict[str, Any]]
    digest: str
    losses_sha256: str
    recipe: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """What the ledger records (the losses by their digest)."""
        return {
            "perplexity": self.perplexity,
            "tokens": int(self.losses.numel()),
            "losses_sha256": self.losses_sha256,
            "answers": self.answers,
            "digest": self.digest,
            "recipe": self.recipe,
            "seconds": self.seconds,
        }


def measure(
    model: AdaptedModel,
    tokenizer: Any,
    base_set: BaseSet,
    *,
    device: torch.device,
    threads: int | None = None,
) -> BaseMeasure:
    """The base model's measurement on ``base_set`` (every task of ``model`` switched off for
    the call, the active one restored after)."""
    start, active = time.perf_counter(), model.active
    model.deactivate()
    try:
        with torch_threads(threads) as used, reproducible(device) as pinned, torch.no_grad():
            losses = _losses(model, tokenizer, base_set.texts, device)
            ids = _answers(model, tokenizer, base_set, device)
    finally:
        if active is not None:
            model.activate(active)
    texts = texts_of(tokenizer, ids)
    answers = [{"ids": row, "text": text} for row, text in zip(ids, texts, strict=True)]
    made = recipe(
        device, batch_size=len(ids), threads=used, pinned=pinned, dtype=computes_in(model)
    )
    losses_sha = logits_digest(losses)
    return BaseMeasure(
        perplexity=math.exp(float(losses.double().mean())),
        losses=losses,
        answers=answers,
        digest=digest_of(losses_sha, ids),
        losses_sha256=losses_sha,
        recipe=made,
        seconds=time.perf_counter() - start,
    )


def digest_of(losses_sha256: str, ids: list[list[int]]) -> str:
    return hashlib.sha256(f"{losses_sha256}|{ids!r}".encode()).hexdigest()


def _losses(model: AdaptedModel, tokenizer: Any, texts: tuple[str, ...], device) -> torch.Tensor:
    """Each text's per-token losses [n_i - 1], one text at a time, concatenated (float32)."""
    limit = min(MAX_TEXT_TOKENS, positions(model.backbone.config.to_dict()) or MAX_TEXT_TOKENS)
    out = []
    with model.generating({None: slice(0, 1)}):  # eval mode, the base model, restored after
        for text in texts:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"][:limit]
            row = torch.tensor([ids], dtype=torch.long, device=device)
            logits = model.lm_logits(row, torch.ones_like(row))[0]  # [n, V]
            out.append(F.cross_entropy(logits[:-1], row[0, 1:], reduction="none").cpu())
    return torch.cat(out)


def _answers(model: AdaptedModel, tokenizer: Any, base_set: BaseSet, device) -> list[list[int]]:
    """The greedy answers' ids to every instruction, one left-padded batch."""
    prompts = [full_prompt_ids(tokenizer, ("user", text)) for text in base_set.instructions]
    width = max(map(len, prompts))
    pad = pad_id(tokenizer)
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    decoding = Decoding(base_set.max_new_tokens, stop_ids(tokenizer))
    made = generate(model, ids, mask, decoding).cpu()
    return [[int(t) for t in row if t >= 0] for row in made]


@dataclass(frozen=True)
class BaseComparison:
    """A measurement compared with the recorded one: outcome identical (the digest), equivalent
    (another recipe: every generated id the same, the perplexity within ``PERPLEXITY_RTOL``) or
    changed; answer_share: the share of answers whose ids are identical."""

    outcome: str
    same_recipe: bool
    answer_share: float
    recorded_perplexity: float
    perplexity: float

    @property
    def ok(self) -> bool:
        return self.outcome != "changed"


def compare(recorded: dict[str, Any], now: BaseMeasure, same_recipe: bool) -> BaseComparison:
    """``now`` against ``recorded`` (:meth:`BaseMeasure.as_dict` as the ledger holds it)."""
    share = answer_share([a["ids"] for a in recorded["answers"]], [a["ids"] for a in now.answers])
    was = float(recorded["perplexity"])
    if now.digest == recorded["digest"] and now.perplexity == was:
        outcome = "identical"
    elif (
        not same_recipe
        and share == 1.0
        and math.isclose(now.perplexity, was, rel_tol=PERPLEXITY_RTOL)
    ):
        outcome = "equivalent"
    else:
        outcome = "changed"
    return BaseComparison(outcome, same_recipe, share, was, now.perplexity)


def answer_share(recorded: list[list[int]], now: list[list[int]]) -> float:
    """The share of answers whose generated ids are identical (1.0 for no answers)."""
    if not recorded:
        return 1.0
    same = sum(a == b for a, b in zip(recorded, now, strict=False))
    return same / len(recorded)
