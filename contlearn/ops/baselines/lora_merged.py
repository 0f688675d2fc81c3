"""Sequential LoRA merged into the weights, what peft users do (``merge_and_unload`` after each
task): a LoRA and the task's head are trained on task 1, the LoRA's update is added into the
weights (``W += alpha / r * B @ A``, ``model.methods.lora.merge``), then a new LoRA is trained on
task 2 over the merged weights, and so on. Every task so far is evaluated after each merge with
its own head on the merged weights, so each cell, the diagonal included, is the merged model's.

The merge uses contlearn's own LoRA modules on this baseline's copy of the backbone (loaded for
it, fp32), never on the backbone the adapters share: the same modules as the adapters' LoRA, so
the update merged is exactly the one trained, with no second implementation to agree with.

Each task's LoRA has the settings its adapter run recorded when that run used LoRA (else LoRA's
defaults), with the LayerNorms shared (a task's own norm copies are not a weight update to
merge); it trains at its adapter run's learning rate and attention-dropout rule (a LoRA's
settings, not full fine-tuning's), with the comparison's budget. The runs record both."""

from __future__ import annotations

from dataclasses import asdict, replace

from ...config import TrainConfig, recorded_train_config
from ...kinds import kind_of
from ...ledger.records import RunRecord, TaskRecord
from ...model.adapted import count_parameters
from ...model.methods import lora
from ...model.methods.registry import get_method
from ...runtime.context import read_task_data, training_rows
from ...runtime.pace import estimator, training_plan
from ...runtime.runs import recorded_run, run_values
from ...runtime.selection import Selection
from ..full_finetune import (
    _add_head,
    _restore,
    _save_checkpoint,
    dev_encoded,
    evaluate_on_dev,
    finish_baseline_run,
    finished_runs,
    open_baseline_context,
    recorded_choice,
    remove_checkpoint,
)
from .base import Job

NAME = "lora-merged"


def run(job: Job) -> None:
    """Train, merge and evaluate the tasks of ``job`` not yet done, resuming from the
    checkpoint of the merged weights and heads after the last finished task."""
    done = set(finished_runs(job.ledger, job.comparison_id, NAME))
    if len(done) == len(job.tasks):
        remove_checkpoint(job.store, job.comparison_id, NAME)
        return
    adapters = _adapter_runs(job)
    configs = {t.name: lora_train_config(job.configs[t.name], adapters[t.id]) for t in job.tasks}
    loras = {t.name: lora_config(adapters[t.id]) for t in job.tasks}
    ctx = open_baseline_context(job.ledger, job.store, job.device)
    for config in loras.values():  # wrapped before a checkpoint's weights are loaded into them
        ctx.model.adapt(get_method("lora").needs(config, ctx.model))
    _restore(ctx, configs, job.comparison_id, [t for t in job.tasks if t.id in done], NAME, None)
    finished = finished_runs(job.ledger, job.comparison_id, NAME)
    chosen = {t.name: recorded_choice(finished[t.id], t) for t in job.tasks if t.id in done}
    for i, task in enumerate(job.tasks):
        if task.id not in done:
            _one(ctx, job, configs, loras[task.name], task, job.tasks[: i + 1], chosen)
            _save_checkpoint(ctx, job.comparison_id, NAME, None)
    remove_checkpoint(job.store, job.comparison_id, NAME)


def _adapter_runs(job: Job) -> dict[int, RunRecord]:
    """The adapter run of each task the comparison covers, by task id."""
    recorded = job.ledger.comparison(job.comparison_id)["config"]["adapter_runs"]
    return {t.id: job.ledger.run(recorded[t.name]) for t in job.tasks}


def lora_config(adapter_run: RunRecord) -> lora.LoraConfig:
    """The LoRA the task's adapter run used (LoRA's defaults if it used another method), with
    the LayerNorms shared."""
    config = adapter_run.config
    if config.get("method") != lora.METHOD.name:
        return lora.LoraConfig()
    return replace(get_method(lora.METHOD.name).config(config["adapter"]), norms="shared")


def lora_train_config(budget: TrainConfig, adapter_run: RunRecord) -> TrainConfig:
    """The comparison's settings for the task (its budget) at the adapter run's learning rate
    and attention-dropout rule."""
    adapter = recorded_train_config(adapter_run.config["train"])
    kept = adapter.backbone_attention_dropout
    return replace(budget, lr=adapter.lr, backbone_attention_dropout=kept)


def _one(ctx, job: Job, configs, config: lora.LoraConfig, task: TaskRecord, so_far, chosen) -> None:
    """Train, merge and evaluate ``task``, each task so far answering by what was chosen when
    it was learned (``chosen``, by task name, gains this task's: SQuAD v2's threshold)."""
    train = configs[task.name]
    family = ctx.model.family.name
    values = run_values(
        "compare",
        {"family": family, "train": asdict(train), "adapter": asdict(config)},
        method=NAME,
        task_id=task.id,
        comparison_id=job.comparison_id,
        seed=train.seed,
    )
    with recorded_run(ctx.ledger, values, "training a LoRA") as run_id:
        result, trainable, chosen[task.name] = _fit(ctx, job, train, config, task)
        _merge(ctx, configs, task)
        evaluated = [
            evaluate_on_dev(ctx, configs, t, task, job.events, chosen.get(t.name)) for t in so_far
        ]
    heads = 4 * count_parameters(ctx.model.tasks[task.name])
    choice = {task.id: chosen[task.name]}
    finish_baseline_run(ctx, run_id, result, evaluated, trainable, heads, choice)


def _fit(ctx, job: Job, train: TrainConfig, config: lora.LoraConfig, task: TaskRecord):
    """Train a new LoRA and the task's head on the (merged) frozen weights; returns the
    training result, how many parameters trained and what the task's kind chose on the
    held-out rows."""
    from ...train.loop import train as train_loop
    from ...train.seeding import seed_everything

    data, kind = read_task_data(task), kind_of(task)
    rows, held = training_rows(data.train, train)
    split = ctx.encode(task, rows, train.max_length, training=True)
    pick = dev_encoded(ctx, task, train, data.dev if held is None else held)
    select = Selection(ctx, task, pick, held_out=held is not None)
    seed_everything(train.seed)
    ctx.model.add_task(
        task.name,
        num_outputs=kind.num_outputs(task.labels),
        adapter=config,
        dropout=train.dropout,
        head=kind.head,
    )
    ctx.model.activate(task.name)
    params = ctx.model.trainable_parameters(task.name)
    selection = "dev" if held is None else "holdout"
    report = job.events.estimates(task=task.name, selection=selection, method=NAME)
    with ctx.model.backbone_attention_dropout(keep=train.backbone_attention_dropout):
        result = train_loop(
            ctx.model,
            params,
            split.encoded,
            split.targets,
            train,
            kind=kind,
            progress=job.events.bars,
            evaluate=select,
            desc=f"{task.name} ({NAME})",
            device=ctx.device,
            on_step=estimator(
                training_plan(len(split.encoded), train.epochs, train.batch_size), report
            ),
        )
    return result, sum(p.numel() for p in params), select.chosen(result.best_epoch)


def _merge(ctx, configs: dict[str, TrainConfig], task: TaskRecord) -> None:
    """Add the task's LoRA into the weights and keep only its head (as trained)."""
    lora.merge(ctx.model, task.name)
    head = {k: v for k, v in ctx.model.task_state(task.name).items() if k.startswith("head.")}
    ctx.model.remove_task(task.name)
    _add_head(ctx, configs, task)
    ctx.model.tasks[task.name].load_state_dict(head)
