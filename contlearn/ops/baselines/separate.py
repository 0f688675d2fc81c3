"""Separate models: one full fine-tuning of the pretrained backbone per task, nothing shared.
Nothing is forgotten (each task keeps its own model), at the price of a whole model stored per
task. Each task's run starts from the pretrained weights again, and answers by what it chose on
the task's own selection split (SQuAD v2's no-answer threshold; none under the ``dev`` rule:
threshold 0)."""

from __future__ import annotations

from ...model.adapted import count_parameters
from ...runtime.events import QUIET
from ...runtime.runs import recorded_run
from ..full_finetune import (
    comparison_run_values,
    evaluate_on_dev,
    fine_tune,
    finish_baseline_run,
    finished_runs,
    open_baseline_context,
)
from .base import Job

NAME = "separate"


def run(job: Job) -> None:
    run_separate(
        job.ledger,
        job.store,
        job.comparison_id,
        job.tasks,
        job.configs,
        events=job.events,
        device=job.device,
    )


def run_separate(
    ledger,
    store,
    comparison_id,
    tasks,
    settings,
    *,
    events=QUIET,
    device="auto",
):
    """Fine-tune a fresh copy of the backbone on each task not yet done in this comparison."""
    done = set(finished_runs(ledger, comparison_id, NAME))
    ctx, pristine = None, None
    for task in tasks:
        if task.id in done:
            continue
        if ctx is None:
            ctx = open_baseline_context(ledger, store, device)
            pristine = {k: v.clone() for k, v in ctx.model.backbone.state_dict().items()}
        ctx.model.backbone.load_state_dict(pristine)
        _one(ctx, settings, comparison_id, task, events)
        ctx.model.remove_task(task.name)


def _one(ctx, settings, comparison_id, task, events) -> None:
    config = settings[task.name]
    values = comparison_run_values(comparison_id, task, config, ctx.model.family.name, NAME)
    with recorded_run(ctx.ledger, values, "fine-tuning") as run_id:
        result, _, chosen = fine_tune(ctx, settings, task, config, events, label=NAME)
        evaluated = [evaluate_on_dev(ctx, settings, task, task, events, chosen)]
    trainable = count_parameters(ctx.model.backbone) + count_parameters(ctx.model.tasks[task.name])
    stored = 4 * trainable
    finish_baseline_run(ctx, run_id, result, evaluated, trainable, stored, {task.id: chosen})
