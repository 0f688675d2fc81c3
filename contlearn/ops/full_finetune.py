"""Sequential full fine-tuning, the baseline that forgets: every weight trainable, one head per
task, tasks in ledger order on one copy of the backbone, resumable from a checkpoint. A
``Strategy`` (``ops/baselines``: EWC, replay) changes what each training step minimises and
keeps state of its own across tasks, saved in the same checkpoint.

A generation task's head is the backbone's own output projection (head type ``lm``, nothing of
the task's own): a tied one is the input embedding matrix, a backbone weight, so it trains with
the backbone as in standard causal-LM fine-tuning; an untied one (Llama's by default) is the
fixed buffer the kind reads, as the adapters read it, and stays as loaded. Every task is scored
by its canonical evaluation (a generation task's greedy decoding within its recorded
``max_new_tokens``), and its predictions are recorded as the metric reads them (texts).

Like the adapters, a baseline chooses what a task's kind calibrates (SQuAD v2's no-answer
threshold) on that task's own selection split, when it has just learned the task (under the
``dev`` rule it chooses nothing: threshold 0); every later evaluation of the task answers by
it. Each run records what it chose in its result (``calibration``, by task id)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import torch

from .. import files
from ..artifacts import ArtifactStore
from ..config import TrainConfig
from ..kinds import kind_of
from ..ledger.records import TaskRecord
from ..ledger.store import Ledger
from ..model.adapted import count_parameters
from ..runtime import base_reference
from ..runtime.context import ModelContext, open_context, read_task_data, training_rows
from ..runtime.evaluate import evaluate_task, evaluation_record
from ..runtime.events import QUIET, Events
from ..runtime.pace import estimator, training_plan
from ..runtime.runs import recorded_run, run_values
from ..runtime.selection import Selection
from ..train.loop import StepHooks

METHOD = "sequential"
LEGACY_METHOD = "full-finetune"  # what comparisons recorded before the other baselines existed


class Strategy(Protocol):
    """What a sequential baseline adds to plain fine-tuning: the step hooks for a task, what
    it keeps once a task is done, and that state as tensors (for the checkpoint)."""

    def hooks(self, ctx: ModelContext, task: TaskRecord, config: TrainConfig) -> StepHooks: ...

    def after_task(self, ctx: ModelContext, task: TaskRecord, split: Any) -> None: ...

    def state(self) -> dict[str, torch.Tensor]: ...

    def load_state(self, ctx: ModelContext, state: dict[str, torch.Tensor]) -> None: ...


def run_sequence(
    ledger: Ledger,
    store: ArtifactStore,
    comparison_id: int,
    tasks: list[TaskRecord],
    settings: dict[str, TrainConfig],
    *,
    events: Events = QUIET,
    device: str = "auto",
    method: str = METHOD,
    strategy: Strategy | None = None,
) -> None:
    """Train the tasks not yet done in this comparison by ``method``, each with its recorded
    settings, on ``device``, saving a checkpoint after each."""
    finished = finished_runs(ledger, comparison_id, method)
    done = set(finished)
    if len(done) == len(tasks):
        remove_checkpoint(store, comparison_id, method)
        return
    chosen = {t.name: recorded_choice(finished[t.id], t) for t in tasks if t.id in done}
    ctx = open_baseline_context(ledger, store, device)
    _restore(ctx, settings, comparison_id, [t for t in tasks if t.id in done], method, strategy)
    for i, task in enumerate(tasks):
        if task.id in done:
            continue
        _train_and_evaluate(
            ctx,
            settings,
            comparison_id,
            task,
            tasks[: i + 1],
            events,
            chosen=chosen,
            method=method,
            strategy=strategy,
        )
        _save_checkpoint(ctx, comparison_id, method, strategy)
    remove_checkpoint(store, comparison_id, method)


def open_baseline_context(ledger: Ledger, store: ArtifactStore, device: str) -> ModelContext:
    """A backbone copy a baseline may change, in fp32 whatever the workspace's backbone dtype
    (its trained weights need an fp32 master copy)."""
    ctx = open_context(ledger, store, device)
    ctx.model.upcast()
    return ctx


def recorded_choice(run: Any, task: TaskRecord) -> dict[str, Any] | None:
    """What baseline run ``run`` recorded it chose for ``task`` (None: nothing)."""
    return ((run.result or {}).get("calibration") or {}).get(str(task.id))


def finished_runs(ledger: Ledger, comparison_id: int, method: str) -> dict[int, Any]:
    """The comparison's succeeded runs of ``method``, by task id (sequential: also the runs
    recorded under its former name)."""
    names = {method, LEGACY_METHOD} if method == METHOD else {method}
    return ledger.finished_comparison_runs(comparison_id, methods=names)


def _add_head(ctx: ModelContext, settings: dict[str, TrainConfig], task: TaskRecord) -> None:
    dropout, kind = settings[task.name].dropout, kind_of(task)
    ctx.model.add_task(
        task.name,
        num_outputs=kind.num_outputs(task.labels),
        adapter=None,
        dropout=dropout,
        head=kind.head,
    )


def _restore(ctx, settings, comparison_id, done: list[TaskRecord], method, strategy) -> None:
    """Load the backbone, heads and the strategy's state as they were after the last finished
    task."""
    if not done:
        return
    state = files.load_tensors(checkpoint_path(ctx.store, comparison_id, method))
    if strategy is not None:
        prefix = "strategy."
        strategy.load_state(
            ctx, {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        )
    ctx.model.backbone.load_state_dict(
        {k[9:]: v for k, v in state.items() if k.startswith("backbone.")}
    )
    for task in done:
        prefix = f"head.{task.name}."
        head = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        _add_head(ctx, settings, task)
        ctx.model.tasks[task.name].load_state_dict(head)


def _save_checkpoint(ctx: ModelContext, comparison_id: int, method: str, strategy) -> None:
    state = {
        f"backbone.{k}": v.detach().contiguous() for k, v in ctx.model.backbone.state_dict().items()
    }
    for name in ctx.model.tasks:
        state.update({f"head.{name}.{k}": v for k, v in ctx.model.task_state(name).items()})
    if strategy is not None:
        state.update({f"strategy.{k}": v.contiguous() for k, v in strategy.state().items()})
    path = checkpoint_path(ctx.store, comparison_id, method)
    files.atomic_write(path, files.tensors_bytes(state))


def _train_and_evaluate(
    ctx,
    settings,
    comparison_id,
    task,
    so_far,
    events,
    *,
    chosen: dict[str, dict[str, Any] | None],
    method: str = METHOD,
    strategy: Strategy | None = None,
) -> None:
    """Fine-tune ``task``, then evaluate it and every task before it, each answering by what
    was chosen when it was learned (``chosen``, by task name, gains this task's)."""
    config = settings[task.name]
    values = comparison_run_values(comparison_id, task, config, ctx.model.family.name, method)
    with recorded_run(ctx.ledger, values, "fine-tuning") as run_id:
        hooks = None if strategy is None else strategy.hooks(ctx, task, config)
        tuned = fine_tune(ctx, settings, task, config, events, hooks, label=method)
        result, split, chosen[task.name] = tuned
        if strategy is not None:
            strategy.after_task(ctx, task, split)
        evaluated = [
            evaluate_on_dev(ctx, settings, earlier, task, events, chosen.get(earlier.name))
            for earlier in so_far
        ]
    trainable = count_parameters(ctx.model.backbone) + count_parameters(ctx.model.tasks[task.name])
    choice = {task.id: chosen[task.name]}
    finish_baseline_run(ctx, run_id, result, evaluated, trainable, 4 * trainable, choice)


def finish_baseline_run(
    ctx, run_id, result, evaluated, trainable: int, stored: int, chosen=None
) -> None:
    """Record a baseline run as succeeded, with its evaluations, each one's predictions (for
    the comparison's confidence intervals), what it chose for its tasks on their selection
    splits (``chosen``: task id -> calibration or None; recorded only when something was) and,
    where the workspace records a base reference, what the baseline's backbone now does to it
    (``base``: every task switched off)."""
    calibration = {str(k): v for k, v in (chosen or {}).items() if v is not None}
    base = base_reference.measured(ctx)
    ctx.ledger.finish_run(
        run_id,
        status="succeeded",
        evaluations=[record for record, _ in evaluated],
        seconds=result.seconds,
        examples=result.examples,
        examples_per_second=result.examples_per_second,
        result={
            "trainable_params": trainable,
            "bytes_if_kept": stored,
            "best_epoch": result.best_epoch,
            "history": result.history,
            "predictions": {str(r.task_id): preds for r, preds in evaluated},
        }
        | ({"calibration": calibration} if calibration else {})
        | ({"base": base} if base is not None else {}),
    )


def fine_tune(
    ctx,
    settings,
    task: TaskRecord,
    config: TrainConfig,
    events: Events,
    hooks=None,
    label: str = "full fine-tuning",
):
    """Fine-tune the whole backbone and the task's new head on the task; returns the training
    result, the encoded training split and what the task's kind chose on its held-out selection
    rows (None: nothing). ``label`` names what trains (a baseline's name) in the progress bar
    and the time estimate."""
    from ..train.loop import train
    from ..train.seeding import seed_everything

    data = read_task_data(task)
    rows, held = training_rows(data.train, config)
    split = ctx.encode(task, rows, config.max_length, training=True)
    pick = dev_encoded(ctx, task, config, data.dev if held is None else held)
    select = Selection(ctx, task, pick, held_out=held is not None)
    seed_everything(config.seed)
    _add_head(ctx, settings, task)
    ctx.model.activate(task.name)
    ctx.model.backbone.requires_grad_(True)
    selection = "dev" if held is None else "holdout"
    report = events.estimates(task=task.name, selection=selection, method=label)
    params = list(ctx.model.backbone.parameters()) + ctx.model.trainable_parameters(task.name)
    result = train(
        ctx.model,
        params,
        split.encoded,
        split.targets,
        config,
        kind=kind_of(task),
        progress=events.bars,
        evaluate=select,
        desc=f"{task.name} ({label})",
        device=ctx.device,
        on_step=estimator(
            training_plan(len(split.encoded), config.epochs, config.batch_size), report
        ),
        hooks=hooks,
    )
    ctx.model.backbone.requires_grad_(False)
    return result, split, select.chosen(result.best_epoch)


def evaluate_on_dev(
    ctx, settings, task: TaskRecord, after: TaskRecord, events, calibration=None
) -> tuple:
    """Task ``task``'s canonical dev evaluation now (after training ``after``), answering by
    ``calibration`` (what was chosen for it on its selection split): its ledger record, and
    its predictions as the metric scores them (a generation task's texts)."""
    dev = dev_encoded(ctx, task, settings[task.name], read_task_data(task).dev)
    with torch.no_grad():
        result = evaluate_task(ctx, task, dev, events=events, calibration=calibration)
    record = evaluation_record(task, result, "comparison", after_task_id=after.id)
    return record, kind_of(task).calibrated(calibration).read(result.logits, dev.encoded)


def dev_encoded(ctx: ModelContext, task: TaskRecord, config: TrainConfig, rows: Any):
    """Rows the task is evaluated on, encoded as its canonical evaluation reads them (a
    generation task's decoding at most its recorded ``max_new_tokens``)."""
    return ctx.encode(task, rows, config.max_length, max_new_tokens=config.max_new_tokens)


def comparison_run_values(
    comparison_id: int, task: TaskRecord, config: TrainConfig, family: str, method: str = METHOD
) -> dict:
    """A baseline run: its settings and the backbone family it fine-tuned, by name."""
    return run_values(
        "compare",
        {"family": family, "train": asdict(config)},
        method=method,
        task_id=task.id,
        comparison_id=comparison_id,
        seed=config.seed,
    )


def checkpoint_path(store: ArtifactStore, comparison_id: int, method: str = METHOD) -> Path:
    name = "state.safetensors" if method == METHOD else f"{method}.safetensors"
    return store.folder / f".compare-{comparison_id}" / name


def remove_checkpoint(store: ArtifactStore, comparison_id: int, method: str = METHOD) -> None:
    """Remove ``method``'s checkpoint, and the folder once no method's is left in it."""
    path = checkpoint_path(store, comparison_id, method)
    path.unlink(missing_ok=True)
    if path.parent.exists() and not any(path.parent.glob("*.safetensors")):
        for stray in path.parent.iterdir():
            stray.unlink()
        path.parent.rmdir()
