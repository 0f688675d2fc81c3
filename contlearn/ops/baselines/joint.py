"""Joint multi-task training, the upper bound without a sequence: one copy of the backbone and
every task's head trained on all tasks' training data at once. Each batch holds one task's
examples (batches of every task, shuffled together), so each goes through its own head; the
epoch with the best mean selection score is kept, and every task is evaluated once at the end,
answering by what it chose on its own selection split at that epoch (SQuAD v2's no-answer
threshold; none under the ``dev`` rule: threshold 0)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ...config import TrainConfig
from ...kinds import TaskKind, kind_of
from ...ledger.records import TaskRecord
from ...model.adapted import count_parameters
from ...runtime.context import read_task_data, training_rows
from ...runtime.events import QUIET, Events
from ...runtime.runs import recorded_run
from ...runtime.selection import Selection
from ...train.batching import Encoded, training_batches
from ...train.loop import StepHooks
from ..full_finetune import (
    _add_head,
    comparison_run_values,
    dev_encoded,
    evaluate_on_dev,
    finish_baseline_run,
    finished_runs,
    open_baseline_context,
)
from .base import Job

NAME = "joint"


def run(job: Job) -> None:
    run_joint(
        job.ledger,
        job.store,
        job.comparison_id,
        job.tasks,
        job.configs,
        events=job.events,
        device=job.device,
    )


def run_joint(ledger, store, comparison_id, tasks, settings, *, events=QUIET, device="auto"):
    """Train and evaluate the joint model, unless this comparison already has it."""
    if finished_runs(ledger, comparison_id, NAME):
        return
    ctx = open_baseline_context(ledger, store, device)
    last = tasks[-1]
    config = joint_config(tasks, settings)
    values = comparison_run_values(comparison_id, last, config, ctx.model.family.name, NAME)
    with recorded_run(ledger, values, "training jointly") as run_id:
        result, chosen = _train(ctx, tasks, settings, config, events)
        evaluated = [evaluate_on_dev(ctx, settings, t, last, events, chosen[t.id]) for t in tasks]
    trainable = count_parameters(ctx.model.backbone) + sum(
        count_parameters(ctx.model.tasks[t.name]) for t in tasks
    )
    finish_baseline_run(ctx, run_id, result, evaluated, trainable, 4 * trainable, chosen)


def joint_config(tasks: list[TaskRecord], settings: dict[str, TrainConfig]) -> TrainConfig:
    """The first task's settings with the most epochs any task asks for (the data is every
    task's, each task's examples encoded with its own max length)."""
    epochs = max(settings[t.name].epochs for t in tasks)
    return replace(settings[tasks[0].name], epochs=epochs)


def _train(ctx, tasks, settings, config: TrainConfig, events: Events):
    """Train every task jointly; returns the training result and what each task's kind chose
    on its selection split (task id -> calibration or None)."""
    from ...train.loop import train
    from ...train.seeding import seed_everything

    splits, picks = [], []
    for task in tasks:
        data, own = read_task_data(task), settings[task.name]
        rows, held = training_rows(data.train, own)
        splits.append(ctx.encode(task, rows, own.max_length, training=True))
        pick = dev_encoded(ctx, task, own, data.dev if held is None else held)
        picks.append(Selection(ctx, task, pick, held_out=held is not None))
    seed_everything(config.seed)
    for task in tasks:
        _add_head(ctx, settings, task)
    owner = [k for k, split in enumerate(splits) for _ in range(len(split.encoded))]
    encoded = Encoded(
        [ids for s in splits for ids in s.encoded.input_ids],
        _token_types(splits),
        splits[0].encoded.pad_id,
        _joined(splits, "positions", []),
        _joined(splits, "notes", []),
        _joined(splits, "targets", None),
    )
    # one target per encoded row (a QA task's rows are windows: its encoding holds theirs)
    targets = [
        t
        for s in splits
        for t in (s.targets if s.encoded.targets is None else [None] * len(s.encoded))
    ]

    def route(idx: list[int]) -> TaskKind:
        task = tasks[owner[idx[0]]]
        ctx.model.activate(task.name)
        return kind_of(task)

    def evaluate() -> float:
        scores = [select() for select in picks]
        return sum(scores) / len(scores)

    hooks = StepHooks(route=route, batches=per_task_batches(owner))
    ctx.model.backbone.requires_grad_(True)
    params = list(ctx.model.backbone.parameters())
    for task in tasks:
        params += ctx.model.trainable_parameters(task.name)
    result = train(
        ctx.model,
        params,
        encoded,
        targets,
        config,
        kind=kind_of(tasks[0]),
        progress=events.bars,
        evaluate=evaluate,
        desc="joint (all tasks)",
        device=ctx.device,
        hooks=hooks,
    )
    ctx.model.backbone.requires_grad_(False)
    pairs = zip(tasks, picks, strict=True)  # each task's choice at the joint best epoch
    return result, {t.id: pick.chosen(result.best_epoch) for t, pick in pairs}


def _joined(splits: list[Any], field: str, empty: Any) -> list | None:
    """The splits' per-row ``field`` of their encodings, one after the other (``empty`` for
    the rows of a split without it); None when no split has it."""
    if all(getattr(s.encoded, field) is None for s in splits):
        return None
    return [v for s in splits for v in (getattr(s.encoded, field) or [empty] * len(s.encoded))]


def _token_types(splits: list[Any]) -> list[list[int]] | None:
    if splits[0].encoded.token_type_ids is None:
        return None
    return [t for s in splits for t in s.encoded.token_type_ids]


def per_task_batches(owner: Sequence[int]):
    """An epoch's batches that each hold one task's examples: every task's own length-grouped
    batches, shuffled together."""

    def batches(lengths: Sequence[int], batch_size: int, seed: int) -> list[list[int]]:
        out: list[list[int]] = []
        for k in sorted(set(owner)):
            mine = [i for i, o in enumerate(owner) if o == k]
            local = training_batches([lengths[i] for i in mine], batch_size, seed + k)
            out += [[mine[i] for i in batch] for batch in local]
        random.Random(seed).shuffle(out)
        return out

    return batches
