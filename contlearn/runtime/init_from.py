"""Starting a task from what an earlier one learned: ``--init-from TASK`` or ``--init-from auto``.

The new task's method modules (adapters, LoRA factors, norm copies...) start as a copy of an
earlier trained task's, loaded from its verified files; the earlier task's files and modules are
only read. The head is copied too only when the two tasks have the same kind and the same label
set (a head for other labels would map its outputs to the wrong classes; a kind without
labels: the same kind); otherwise the new
task's head starts fresh, as without ``--init-from``.

The source must have been trained with the same method and the same options (``init_std``
aside: the copy replaces the initialisation); anything else is a :class:`ConfigError` naming the
difference, raised by :func:`check_init_from` before a task is claimed, so nothing is written.

``auto`` picks, among the trained tasks with the same method and options, the one whose training
inputs are most like the new task's: the cosine similarity of the mean of mean-pooled frozen-
backbone features (no task active) over a seeded sample of each task's training inputs. Nothing
is stored for it: the features are computed from the data each time. The choice and every
similarity are recorded in the run's config (``init_from``) and in its artifact config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ConfigError
from ..kinds import kind_of
from ..ledger.records import TaskRecord
from ..ledger.store import Ledger
from ..model.methods.registry import UNNAMED
from .context import ModelContext, read_task_data

AUTO = "auto"
SAMPLE = 256  # training inputs per task whose features are averaged (seeded subsample)
INIT_ONLY = ("init_std",)  # options that only set the initialisation the copy replaces


@dataclass(frozen=True)
class InitPlan:
    """Where a task's modules start: ``source``'s (its weights file ``weights_sha256``), with
    its head if ``head``; ``chosen``: "named" or "auto"; ``similarities``: for auto, each
    candidate's cosine similarity to the new task's inputs."""

    source: str
    weights_sha256: str
    head: bool
    chosen: str
    similarities: dict[str, float] | None = None

    def record(self) -> dict[str, Any]:
        """What the run's config and the artifact config keep of it."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def requested(task: TaskRecord, overrides: Mapping[str, Any]) -> str | None:
    """The ``init_from`` a run of ``task`` asks for: the caller's, else the task's own."""
    return overrides.get("init_from") or task.settings.get("init_from")


def check_init_from(ledger: Ledger, task: TaskRecord, adapter: Any, name: str) -> list[str]:
    """The trained tasks ``task`` may start from for ``--init-from name`` (``name`` itself, or
    for auto every compatible one); raises :class:`ConfigError` naming the problem and the fix.
    Reads only the ledger: nothing is loaded or written."""
    trained = {t.name: t for t in ledger.tasks() if t.status == "trained" and t.name != task.name}
    if name == AUTO:
        found = [n for n, t in trained.items() if _difference(ledger, t, adapter) is None]
        if not found:
            raise ConfigError(
                f"--init-from auto: no trained task has method {adapter.method!r} with these "
                "options: name a task, or train without --init-from"
            )
        return found
    if name == task.name or name not in trained:
        known = ", ".join(trained) or "none"
        raise ConfigError(
            f"--init-from {name!r}: not a trained task other than {task.name!r} (trained: "
            f"{known}): name one of them, or auto"
        )
    problem = _difference(ledger, trained[name], adapter)
    if problem is not None:
        raise ConfigError(f"--init-from {name!r}: {problem}")
    return [name]


def _difference(ledger: Ledger, source: TaskRecord, adapter: Any) -> str | None:
    """Why ``source``'s trained modules cannot seed a task trained with ``adapter`` (None:
    they can): another method, or another option (the shape, or what the weights compute)."""
    recorded = ledger.trained_run(source.id).config
    method = recorded.get("method", UNNAMED)
    if method != adapter.method:
        return (
            f"it was trained with method {method!r}, this task trains with {adapter.method!r}: "
            f"give --method {method}, or init from a {adapter.method} task"
        )
    theirs, ours = recorded.get("adapter", {}), _as_recorded(adapter)
    for key in sorted(set(theirs) | set(ours)):
        if key not in INIT_ONLY and theirs.get(key) != ours.get(key):
            return (
                f"its {method} option {key} is {theirs.get(key)!r}, this task's is "
                f"{ours.get(key)!r}: give --set {key}={_shown(theirs.get(key))}, or init from "
                "another task"
            )
    return None


def _as_recorded(adapter: Any) -> dict[str, Any]:
    """The config as a run records it (JSON: tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(adapter).items()}


def _shown(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def plan(
    ctx: ModelContext, task: TaskRecord, candidates: list[str], name: str, max_length: int
) -> InitPlan:
    """The plan for ``--init-from name`` among ``candidates`` (``check_init_from``'s): each
    candidate loaded (checksums verified), and for auto the most similar one chosen."""
    sources = {n: ctx.ledger.task(n) for n in candidates}
    ctx.ensure(list(sources.values()))
    similarities = None
    if name == AUTO:
        similarities = _similarities(ctx, task, list(sources.values()), max_length)
        name = max(similarities, key=lambda n: (similarities[n], n))
    source = sources[name]
    return InitPlan(
        source=name,
        weights_sha256=ctx.loaded[name],
        head=same_head(source, task),
        chosen="auto" if similarities is not None else "named",
        similarities=similarities,
    )


def same_head(source: TaskRecord, task: TaskRecord) -> bool:
    """Whether ``source``'s head fits ``task``: the same kind and the same label set, in order
    (a kind without labels, such as regression or extractive QA: the same kind)."""
    return source.kind == task.kind and source.labels == task.labels


def apply(ctx: ModelContext, task: str, init: InitPlan) -> None:
    """Copy ``init.source``'s modules (and its head when ``init.head``) into task ``task``, just
    built; the source is only read. A key or shape that differs is a :class:`ConfigError`."""
    import torch

    model = ctx.model
    state = model.tasks[init.source].state_dict()
    target = model.tasks[task].state_dict()
    keep = [k for k in target if init.head or not k.startswith("head.")]
    for key in keep:
        if key not in state or state[key].shape != target[key].shape:
            raise ConfigError(
                f"--init-from {init.source!r}: its state does not fit task {task!r} at {key}: "
                "init from a task trained with the same method and options"
            )
    with torch.no_grad():
        for key in keep:
            target[key].copy_(state[key])


def _similarities(
    ctx: ModelContext, task: TaskRecord, sources: list[TaskRecord], max_length: int
) -> dict[str, float]:
    """Cosine similarity between ``task``'s mean input feature and each source's."""
    import torch

    mine = mean_feature(ctx, task, max_length)
    return {
        s.name: round(
            float(torch.nn.functional.cosine_similarity(mine, mean_feature(ctx, s, max_length), 0)),
            6,
        )
        for s in sources
    }


def mean_feature(ctx: ModelContext, task: TaskRecord, max_length: int, seed: int = 0) -> Any:
    """The mean over a seeded sample of ``task``'s training inputs of the frozen backbone's
    mean-pooled last hidden states (no task active): a vector [d]."""
    import torch

    from ..train.batching import canonical_batches, collate, subsample

    rows = read_task_data(task).train
    keep = subsample(len(rows.labels), SAMPLE, seed)
    texts = [rows.texts[i] for i in keep]
    encoded = ctx.encode_texts(texts, max_length, kind=kind_of(task))
    model, saved = ctx.model, (ctx.model.router.name, ctx.model.router.task)
    was_training = model.training
    model.deactivate()
    model.eval()
    total = torch.zeros(model.hidden_size, dtype=torch.float64)
    try:
        with torch.no_grad():
            for batch in canonical_batches(encoded.lengths, 32):
                total += _pooled(model, collate(encoded, batch), ctx.device).sum(0).double().cpu()
    finally:
        model.router.name, model.router.task = saved
        model.train(was_training)
    return (total / max(1, len(keep))).float()


def _pooled(model: Any, inputs: dict[str, Any], device: Any) -> Any:
    """Mean over real tokens of the backbone's last hidden states: [B, d]."""
    inputs = {k: v.to(device) for k, v in inputs.items()}
    with model.low_precision(device):
        hidden = model.backbone(**inputs).last_hidden_state.float()  # [B, T, d]
    mask = inputs["attention_mask"].unsqueeze(-1).float()  # [B, T, 1]
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
