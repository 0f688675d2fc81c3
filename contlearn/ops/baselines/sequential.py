"""Sequential full fine-tuning as a baseline: the tasks in order on one copy of the backbone
(``ops/full_finetune``), plain or with a ``Strategy`` (EWC, replay) changing each step."""

from __future__ import annotations

from ..full_finetune import METHOD as NAME
from ..full_finetune import Strategy, run_sequence
from .base import Job


def run(job: Job) -> None:
    run_with(job, NAME, None)


def run_with(job: Job, name: str, strategy: Strategy | None) -> None:
    """Train the tasks of ``job`` not yet done as baseline ``name``, stepping with
    ``strategy``."""
    run_sequence(
        job.ledger,
        job.store,
        job.comparison_id,
        job.tasks,
        job.configs,
        events=job.events,
        device=job.device,
        method=name,
        strategy=strategy,
    )
