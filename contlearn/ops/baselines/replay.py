"""Experience replay: a fixed-size buffer of earlier tasks' training examples, filled by
reservoir sampling (every example seen so far has the same chance to be in it), mixed into each
batch of a later task: with ratio r, a batch of b current examples gets round(r * b) replayed
ones, each through its own task's head (earlier heads stay as they were trained), and the step
minimises the mean loss over all of them."""

from __future__ import annotations

import random
from typing import Any

import torch

from ...config import CompareConfig, TrainConfig
from ...kinds import kind_of
from ...ledger.records import TaskRecord
from ...runtime.context import ModelContext, read_task_data, training_rows
from ...train.batching import collate
from ...train.loop import StepHooks
from .base import Job
from .sequential import run_with

NAME = "replay"


def run(job: Job) -> None:
    run_with(job, NAME, Replay(job.settings, job.tasks, job.configs))


class Replay:
    """The buffer of one comparison: (task position, example index) pairs, and how many
    examples the reservoir has seen."""

    def __init__(self, settings: CompareConfig, tasks: list[TaskRecord], configs: dict):
        self.size, self.ratio = settings.replay_buffer, settings.replay_ratio
        self.tasks, self.configs = tasks, configs
        self.buffer: list[tuple[int, int]] = []
        self.seen = 0
        self.splits: dict[int, Any] = {}  # task position -> its encoded training split

    def hooks(self, ctx: ModelContext, task: TaskRecord, config: TrainConfig) -> StepHooks:
        if not self.buffer:
            return StepHooks()
        rng = random.Random(config.seed)

        def mixed(loss: torch.Tensor, batch: int) -> torch.Tensor:
            count = max(1, round(self.ratio * batch))
            drawn = [self.buffer[rng.randrange(len(self.buffer))] for _ in range(count)]
            total = loss * batch
            for position in sorted({p for p, _ in drawn}):
                rows = [i for p, i in drawn if p == position]
                total = total + self._loss(ctx, position, rows) * len(rows)
            ctx.model.activate(task.name)
            return total / (batch + count)

        return StepHooks(extra_loss=mixed)

    def _loss(self, ctx: ModelContext, position: int, rows: list[int]) -> torch.Tensor:
        earlier, split = self.tasks[position], self._split(ctx, position)
        ctx.model.activate(earlier.name)
        batch = {k: v.to(ctx.device) for k, v in collate(split.encoded, rows).items()}
        kind = kind_of(earlier)
        wanted = kind.batch_targets(split.targets, split.encoded, rows)
        return kind.loss(ctx.model(**batch).float(), wanted.to(ctx.device))

    def _split(self, ctx: ModelContext, position: int) -> Any:
        if position not in self.splits:  # after a resume: encoded again, the same way
            task = self.tasks[position]
            config = self.configs[task.name]
            rows, _ = training_rows(read_task_data(task).train, config)
            self.splits[position] = ctx.encode(task, rows, config.max_length, training=True)
        return self.splits[position]

    def after_task(self, ctx: ModelContext, task: TaskRecord, split: Any) -> None:
        position = next(i for i, t in enumerate(self.tasks) if t.id == task.id)
        self.splits[position] = split
        ctx.model.tasks[task.name].requires_grad_(False)  # its head stays as trained
        rng = random.Random(f"{self.configs[task.name].seed}:{position}")
        for i in range(len(split.encoded)):
            self.seen += 1
            if len(self.buffer) < self.size:
                self.buffer.append((position, i))
            elif (slot := rng.randrange(self.seen)) < self.size:
                self.buffer[slot] = (position, i)

    def state(self) -> dict[str, torch.Tensor]:
        pairs = torch.tensor(self.buffer, dtype=torch.long).reshape(-1, 2)
        return {"buffer": pairs, "seen": torch.tensor([self.seen], dtype=torch.long)}

    def load_state(self, ctx: ModelContext, state: dict[str, torch.Tensor]) -> None:
        self.buffer = [(int(p), int(i)) for p, i in state["buffer"].tolist()]
        self.seen = int(state["seen"][0])
        for task in self.tasks[: 1 + max((p for p, _ in self.buffer), default=-1)]:
            if task.name in ctx.model.tasks:
                ctx.model.tasks[task.name].requires_grad_(False)
