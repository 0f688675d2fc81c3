"""The probe verification: proof that earlier tasks are unchanged, at a cost that stays flat as
tasks accumulate.

A task's outputs are a function of the backbone's weights, its own weights, the code and the
inputs. So, after a new task trains: (1) the backbone in memory must hash to its recorded
fingerprint; (2) every earlier task's artifact files must hash to their recorded sha256, and its
tensors in memory to what was loaded from them; (3) as a behavioural check of the code and the
machine, a seeded sample of whole canonical dev batches (one batch per sampled task, about
``budget`` rows in all, a different sample after each task) is re-evaluated by the recorded
recipe and compared bit for bit with the same rows of the task's recorded dev logits.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Any

from ..eval.digests import bitwise_equal
from ..eval.recipe import evaluate_rows
from ..kinds import kind_of
from ..ledger.records import EvaluationRecord, TaskRecord
from ..train.batching import canonical_batches
from .context import ModelContext
from .current import recorded_calibration, run_batch_size
from .references import Reference, adopted_references, matching


@dataclass(frozen=True)
class Recorded:
    """What the ledger holds of one earlier task's current run, read once per verification."""

    task: TaskRecord
    post: Any  # its post-train EvaluationRecord
    files: dict[str, Any]  # its ArtifactRecords by role
    batch_size: int
    versions: dict[str, Any]
    references: list[Reference]  # the host references adopted since (audit --adopt-host)


@dataclass(frozen=True)
class Rerun:
    """Check (3) of one task: the rows of the dev batch re-run (0 when none was), whether they
    reproduced, the largest |logit change|, the recipe they ran under, a note for the findings
    and the verdict (identical, equivalent or DIFFERENT)."""

    rows: int
    same: bool
    worst: float
    recipe: dict[str, Any] | None
    note: str
    verdict: str


def recorded(ctx: ModelContext, tasks: list[TaskRecord]) -> list[Recorded]:
    """Each task's current run, artifacts, post-train evaluation and adopted host references
    (a few queries for all)."""
    found = ctx.ledger.current_records([task.id for task in tasks])
    adopted = adopted_references(ctx.ledger, {t.id: found[t.id][2][-1] for t in tasks})
    facts = []
    for task in tasks:
        run, files, posts = found[task.id]
        roles = {a.role: a for a in files}
        facts.append(
            Recorded(
                task,
                posts[-1],
                roles,
                run_batch_size(run),
                run.versions or {},
                adopted[task.id],
            )
        )
    return facts


def probe_earlier(
    ctx: ModelContext,
    current: TaskRecord,
    earlier: list[TaskRecord],
    budget: int,
) -> list[EvaluationRecord]:
    """One probe record per earlier task (the batch re-run, if it was sampled)."""
    ctx.check_backbone()
    facts = recorded(ctx, earlier)
    picks = probe_plan(current, facts, budget)
    return [_probe_one(ctx, fact, current, picks.get(fact.task.id)) for fact in facts]


def probe_plan(current: TaskRecord, facts: list[Recorded], budget: int) -> dict[int, int]:
    """task id -> the index of the canonical dev batch to re-run: tasks in an order seeded by
    the new task's id, one batch each, until about ``budget`` rows (at least one batch)."""
    rng = random.Random(current.id)
    order = list(facts)
    rng.shuffle(order)
    picks: dict[int, int] = {}
    rows = 0
    for fact in order:
        if picks and rows >= budget:
            break
        count, size = fact.post.example_count, fact.batch_size
        if count == 0:
            continue
        picks[fact.task.id] = rng.randrange(math.ceil(count / size))
        rows += min(size, count)
    return picks


def _probe_one(
    ctx: ModelContext, fact: Recorded, current: TaskRecord, batch: int | None
) -> EvaluationRecord:
    start = time.perf_counter()
    task, files, post = fact.task, fact.files, fact.post
    for role in ("weights", "config", "logits"):
        ctx.store.verify(files[role].path, files[role].sha256, task.name)
    findings = [_hashed(ctx, task, files)]
    ok = not findings[0].startswith("CHANGED")
    rerun = Rerun(0, ok, 0.0, None, "", "identical")
    if ok and batch is not None:
        rerun = _rerun(ctx, fact, batch)
        findings.append(rerun.note)
    return EvaluationRecord(
        task_id=task.id,
        kind="verification",
        metrics=post.metrics,  # carried: weights, backbone and probed logits unchanged
        primary_value=post.primary_value,
        example_count=rerun.rows,
        logits_sha256=None,
        after_task_id=current.id,
        identical=rerun.same,
        max_abs_diff=rerun.worst,
        findings=findings,
        threads=post.threads,
        seconds=time.perf_counter() - start,
        recipe=rerun.recipe,
        mode="probe",
        outcome=rerun.verdict if rerun.same else "changed",
    )


def _hashed(ctx: ModelContext, task: TaskRecord, files: dict[str, Any]) -> str:
    """Check (2): the files matched; the tensors in memory, if the task is loaded, must be what
    was loaded from them."""
    name = task.name
    if name not in ctx.model.tasks or ctx.loaded.get(name) != files["weights"].sha256:
        return "probe: artifact files match their recorded sha256 (not loaded in memory)"
    if ctx.in_memory_digest(name) != ctx.digests[name]:
        return f"CHANGED: task {name!r}'s tensors in memory differ from its artifact"
    return "probe: artifact files match their recorded sha256; tensors in memory match them"


def _rerun(ctx: ModelContext, fact: Recorded, batch: int) -> Rerun:
    """Check (3): re-run canonical dev batch ``batch`` and compare with the recorded rows."""
    task, files, size = fact.task, fact.files, fact.batch_size
    if task.name not in ctx.model.tasks or ctx.loaded.get(task.name) != files["weights"].sha256:
        ctx.load_task(task)  # in eval mode, as the model is
    meta = ctx.metas.get(task.name) or ctx.store.load_json(files["config"].path)
    dev = ctx.dev_split(
        task, meta["train"]["max_length"], max_new_tokens=meta["train"].get("max_new_tokens")
    )
    rows = canonical_batches(dev.encoded.lengths, size)[batch]
    ctx.model.activate(task.name)
    logits, recipe = evaluate_rows(
        ctx.model,
        dev.encoded,
        rows,
        threads=fact.post.threads,
        batch_size=size,
        device=ctx.device,
        kind=kind_of(task),
    )
    path, bitwise = _compared_with(fact, recipe)
    if path != files["logits"].path:
        ctx.store.verify(path, matching(fact.references, recipe).logits.sha256, task.name)
    saved = ctx.store.load_tensors(path)["logits"][rows]
    share, worst = kind_of(task).calibrated(recorded_calibration(meta)).agreement(saved, logits)
    if bitwise:
        same = bitwise_equal(saved, logits)
        kind, verdict = "bit for bit", "identical" if same else "DIFFERENT"
    else:  # another machine, device or library: the predictions must be the same
        same = share == 1.0
        kind, verdict = "predictions (another recipe)", "equivalent" if same else "DIFFERENT"
    note = f"probe: dev batch {batch} ({len(rows)} rows) re-run, {kind}: {verdict}"
    return Rerun(len(rows), same, worst, recipe, note, verdict)


def _compared_with(fact: Recorded, recipe: dict[str, Any]) -> tuple[str, bool]:
    """The ledger path of the logits the probe compares with, and whether bit for bit: this
    host's adopted reference, else the post-train logits (bit for bit under their recipe)."""
    from ..devices import legacy_recipe, same_recipe

    adopted = matching(fact.references, recipe)
    if adopted is not None:
        return adopted.logits.path, True
    was = fact.post.recipe or legacy_recipe(
        torch_version=fact.versions.get("torch"),
        batch_size=fact.batch_size,
        threads=fact.post.threads,
    )
    return fact.files["logits"].path, same_recipe(was, recipe)
