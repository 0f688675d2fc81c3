"""``generate``: answer prompts with a trained generation task, for use (greedy by default, or
sampled with a temperature, top-p and a seed); the canonical evaluation never samples.

Every prompt and setting is checked before the backbone loads. Prompts run in batches sorted
by length, left padded, with the task's trained max length (a prompt's beginning is cut to it);
a sampled answer is reproducible for the same prompts, settings and seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..artifacts import ArtifactStore
from ..config import WorkspaceConfig
from ..errors import BadData, ConfigError
from ..kinds import kind_of
from ..kinds.generation import check_max_new_tokens, texts_of
from ..ledger.records import TaskRecord
from ..ledger.store import Ledger
from ..runtime.current import trained_artifacts

if TYPE_CHECKING:
    from ..runtime.context import ModelContext

BATCH_SIZE = 8
Prompt = str | tuple[str, ...]  # the user's prompt, or a flattened conversation ending with it


@dataclass(frozen=True)
class Sampling:
    """How ``generate`` decodes: at most ``max_new_tokens`` (None: the task's recorded
    budget); ``temperature`` 0 is greedy; ``top_p`` keeps the smallest set of tokens whose
    probability reaches it; ``seed`` makes sampling reproducible."""

    max_new_tokens: int | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens is not None:
            check_max_new_tokens(self.max_new_tokens)
        if not self.temperature >= 0:
            raise ConfigError(f"temperature must be >= 0 (0: greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top-p must be in (0, 1], got {self.top_p}")


def generate(
    ledger: Ledger,
    store: ArtifactStore,
    task: str,
    prompts: Sequence[str],
    sampling: Sampling = Sampling(),
    *,
    device: str = "auto",
    context: ModelContext | None = None,
    workspace: WorkspaceConfig | None = None,
) -> list[dict[str, Any]]:
    """One result per prompt, in order: ``{"index", "prompt", "text", "tokens"}``."""
    record = generation_task(ledger, task)
    prompts = checked_prompts(prompts)
    from ..runtime.context import open_context  # every input checked: only now load the model

    ctx = context or open_context(ledger, store, device, workspace=workspace)
    made = _answers(ctx, record, prompts, sampling)
    texts = texts_of(ctx.backbone.tokenizer, made)
    return [
        {"index": i, "prompt": p, "text": t, "tokens": len(ids)}
        for i, (p, t, ids) in enumerate(zip(prompts, texts, made, strict=True))
    ]


def generation_task(ledger: Ledger, name: str) -> TaskRecord:
    """The trained task ``name``, refused in one line unless it generates text."""
    record = ledger.task(name)
    kind = kind_of(record)
    if not kind.generates:
        raise ConfigError(
            f"task {name!r} is a {kind.name} task, which generates no text: "
            f"use `contlearn predict {name}`, or give a generation task"
        )
    trained_artifacts(ledger, record)  # raises TaskNotTrained, naming the fix
    return record


def checked_prompts(prompts: Sequence[str]) -> list[str]:
    """The prompts, each a non-empty string; none at all is refused."""
    prompts = list(prompts)
    if not prompts:
        raise BadData("no prompt given: pass one as an argument, or one per line on stdin")
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str) or not prompt.strip():
            raise BadData(f"prompt {i + 1} is empty: give it some text or drop it")
    return prompts


@dataclass(frozen=True)
class Answer:
    """One prompt answered: its ``text`` (stripped, special tokens skipped), the tokens of
    its prompt as the model read it and of the answer (a stop token counted), and why it
    ended: ``"stop"`` (a stop token) or ``"length"`` (``max_new_tokens`` reached)."""

    text: str
    prompt_tokens: int
    tokens: int
    finish_reason: str


def answer(
    ctx: ModelContext,
    task: TaskRecord,
    prompt: Prompt,
    sampling: Sampling,
    on_text: Callable[[str], None] | None = None,
) -> Answer:
    """``prompt`` answered by the loaded generation task ``task`` alone (a batch of one, so
    it is what ``generate`` answers); ``on_text(piece)`` hears the text as it is generated
    (:mod:`contlearn.kinds.pieces`), and the answer's text is those pieces joined."""
    from ..kinds.generated import left_padded
    from ..kinds.pieces import TextPieces
    from ..model.decoding import generate as decode

    encoded, decoding = _prepared(ctx, task, [prompt], sampling)
    pieces = TextPieces(ctx.backbone.tokenizer)

    def heard(piece: str) -> None:
        if piece and on_text is not None:
            on_text(piece)

    def on_token(step: int, tokens: Any) -> None:
        if int(tokens[0]) >= 0:
            heard(pieces.add(int(tokens[0])))

    ids, mask = left_padded(encoded.input_ids, encoded.pad_id)
    made = decode(ctx.model, ids.to(ctx.device), mask.to(ctx.device), decoding, on_token=on_token)
    heard(pieces.finish())
    row = [t for t in made[0].tolist() if t >= 0]
    reason = "stop" if row and row[-1] in decoding.stop_ids else "length"
    return Answer(pieces.text, len(encoded.input_ids[0]), len(row), reason)


def _prepared(
    ctx: ModelContext, task: TaskRecord, prompts: Sequence[Prompt], sampling: Sampling
) -> tuple[Any, Any]:
    """The prompts encoded as the task reads them, and the decoding rule; the task active."""
    from ..model.decoding import Decoding

    kind = kind_of(task)
    train = ctx.task_config(task)["train"]
    budget = sampling.max_new_tokens or train.get("max_new_tokens")
    inputs = kind.predict_inputs([p if isinstance(p, tuple) else (p,) for p in prompts])
    encoded = ctx.encode_texts(inputs, train["max_length"], kind=kind, max_new_tokens=budget)
    decoding = Decoding(
        max_new_tokens=encoded.max_new_tokens,
        stop_ids=tuple(encoded.stop_ids),
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        seed=sampling.seed,
    )
    ctx.ensure([task])
    ctx.model.eval()
    ctx.model.activate(task.name)
    return encoded, decoding


def _answers(
    ctx: ModelContext, task: TaskRecord, prompts: list[str], sampling: Sampling
) -> list[tuple[int, ...]]:
    """Each prompt's generated ids (the stop token kept), in order."""
    from ..kinds.generated import decoded_batches

    encoded, decoding = _prepared(ctx, task, prompts, sampling)
    out: list[tuple[int, ...]] = [()] * len(prompts)
    for idx, made in decoded_batches(ctx.model, encoded, decoding, BATCH_SIZE, ctx.device):
        for i, row in zip(idx, made.tolist(), strict=True):
            out[i] = tuple(t for t in row if t >= 0)
    return out
