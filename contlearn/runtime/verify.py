"""Verification: reload a trained task from its files, replay its post-train evaluation as it was
recorded, and compare. ``train-next`` verifies every other trained task after training one;
``audit`` replays every task the same way.

PyTorch promises bitwise equality only for the same operations on the same kind of device and
software. When the replay runs under the recorded recipe (device class and model, the CPU
host's identity, library versions, batch size, threads), identical means identical logits, bit
for bit. Under another recipe (a GPU-trained workspace checked on a CPU, a workspace copied to
another machine, a torch upgrade) the replay is "reproduced on a different device" (or
"machine"): it is equivalent, and passes, only if every prediction and every metric value is
the same, and it says how close the logits came. ``audit --adopt-host`` makes this host's
logits the reference, so that replays here are bit for bit again (:mod:`.references`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import VerifyConfig
from ..devices import RECIPE_KEYS, describe, legacy_recipe, other_host, same_recipe
from ..errors import VerificationFailed
from ..eval.recipe import EvalResult
from ..kinds import kind_of
from ..ledger.records import EvaluationRecord, TaskRecord
from ..ledger.store import Ledger
from . import routing
from .context import ModelContext
from .current import (
    canonical_batch_size,
    recorded_calibration,
    recorded_post_train,
    trained_artifacts,
)
from .evaluate import evaluate_task, evaluation_record
from .events import QUIET, Events
from .references import adopted_references, matching


@dataclass(frozen=True)
class Reproduction:
    """A replayed evaluation, compared with the recorded one (or this host's adopted reference).

    same_recipe: compared bit for bit; ok: it passes; outcome: identical (the logits bit for
    bit), equivalent (under another recipe: every prediction and metric value the same) or
    changed; prediction_share: the share of identical predictions (1.0 when the logits are
    identical); max_abs_diff: the largest |logit change|; logits_path: the ledger path of the
    logits it was compared with; adopted: the audit run that adopted them for this host.
    """

    recorded: EvaluationRecord
    now: EvalResult
    same_recipe: bool
    logits_identical: bool
    ok: bool
    prediction_share: float = 1.0
    max_abs_diff: float = 0.0
    notes: list[str] = field(default_factory=list)
    outcome: str = "identical"
    logits_path: str | None = None
    adopted: int | None = None


def reproduce(ctx: ModelContext, task: TaskRecord, *, events: Events = QUIET) -> Reproduction:
    """Reload a trained task from its files, re-run its post-train evaluation with the recorded
    max length, batch size and thread count on the context's device, and compare: bit for bit
    with this host's adopted reference or the post-train evaluation when one ran under the
    same recipe, else prediction by prediction."""
    recorded = recorded_post_train(ctx.ledger, task)
    run = ctx.ledger.trained_run(task.id)
    meta = ctx.load_task(task)
    batch_size = canonical_batch_size(ctx.ledger, task)
    dev = ctx.dev_split(
        task, meta["train"]["max_length"], max_new_tokens=meta["train"].get("max_new_tokens")
    )
    calibration = recorded_calibration(meta)
    now = evaluate_task(
        ctx,
        task,
        dev,
        threads=recorded.threads,
        batch_size=batch_size,
        events=events,
        calibration=calibration,
    )
    logits = trained_artifacts(ctx.ledger, task)["logits"]
    adopted = matching(adopted_references(ctx.ledger, {task.id: recorded})[task.id], now.recipe)
    if adopted is not None:
        ctx.store.verify(adopted.logits.path, adopted.logits.sha256, task.name)
        return _bit_for_bit(adopted.evaluation, now, adopted.logits.path, adopted.evaluation.run_id)
    was = recorded.recipe or legacy_recipe(
        torch_version=(run.versions or {}).get("torch"),
        batch_size=batch_size,
        threads=recorded.threads,
    )
    if same_recipe(was, now.recipe):
        return _bit_for_bit(recorded, now, logits.path)
    return _elsewhere(ctx, task, recorded, now, was, logits, calibration)


def _bit_for_bit(
    reference: EvaluationRecord, now: EvalResult, path: str, adopted: int | None = None
) -> Reproduction:
    same = now.logits_sha256 == reference.logits_sha256 and now.metrics == reference.metrics
    outcome = "identical" if same else "changed"
    return Reproduction(
        reference, now, True, same, same, outcome=outcome, logits_path=path, adopted=adopted
    )


def _elsewhere(
    ctx, task, recorded, now, was: dict[str, Any], logits_file, calibration=None
) -> Reproduction:
    """A replay under another recipe, compared prediction by prediction with the stored logits:
    equivalent when every prediction and metric value is the same (the weights were proven
    unchanged when they loaded)."""
    ctx.store.verify(logits_file.path, logits_file.sha256, task.name)
    saved = ctx.store.load_tensors(logits_file.path)["logits"]
    kind = kind_of(task).calibrated(calibration)
    share, worst = kind.agreement(saved, now.logits)
    identical = now.logits_sha256 == recorded.logits_sha256 and now.metrics == recorded.metrics
    agree = share == 1.0 and kind.metrics_agree(recorded.metrics, now.metrics)
    ok = identical or agree
    outcome = "identical" if identical else "equivalent" if ok else "changed"
    note = (
        f"task {task.name!r}: {where(was, now.recipe)}: {share:.1%} of predictions identical, "
        f"max |logit change| {worst:.3g}, metric {recorded.primary_value:.4f} -> "
        f"{now.primary_value:.4f} ({outcome})"
    )
    return Reproduction(
        recorded, now, False, identical, ok, share, worst, [note], outcome, logits_file.path
    )


def where(was: dict[str, Any], now: dict[str, Any]) -> str:
    """``reproduced on a different machine (another host: cores)`` when only the CPU host
    differs (or was not recorded), else ``reproduced on a different device (A -> B)``."""
    host = other_host(was, now)
    rest = [k for k in RECIPE_KEYS if k in was and was[k] != now.get(k)]
    if host and not rest:
        return f"reproduced on a different machine ({host})"
    return f"reproduced on a different device ({describe(was)} -> {describe(now)})"


def verify_earlier(
    ctx: ModelContext,
    current: TaskRecord,
    *,
    settings: VerifyConfig | None = None,
    events: Events = QUIET,
) -> list[EvaluationRecord]:
    """Prove every other trained task unchanged, fully or by the probe (``settings.mode``;
    ``auto`` chooses by the earlier tasks' dev examples), one record each; their routing files
    are checked against their sha256 first (an audit also recomputes them)."""
    settings = settings or VerifyConfig(mode="full")
    earlier = [t for t in ctx.ledger.tasks() if t.status == "trained" and t.id != current.id]
    for task in earlier:  # their routing files, like their weights: refused if modified
        for record in (routing.recorded(ctx.ledger, task) or {}).values():
            ctx.store.verify(record.path, record.sha256, task.name)
    ctx.model.eval()  # once: switching modes visits every task's modules
    if choose_mode(ctx.ledger, earlier, settings) == "probe":
        from .probe import probe_earlier

        return probe_earlier(ctx, current, earlier, settings.probe_examples)
    return [_verify_one(ctx, task, current, events) for task in earlier]


def choose_mode(ledger: Ledger, earlier: list[TaskRecord], settings: VerifyConfig) -> str:
    """``full`` or ``probe``: as set, or for ``auto`` full while the earlier tasks' recorded
    dev examples total at most ``full_max_examples``."""
    if settings.mode != "auto":
        return settings.mode
    found = ledger.current_records([task.id for task in earlier])
    total = sum(posts[-1].example_count for _, _, posts in found.values())
    return "full" if total <= settings.full_max_examples else "probe"


def _verify_one(ctx, task, current, events: Events) -> EvaluationRecord:
    check = reproduce(ctx, task, events=events)
    findings = list(check.notes)
    if not check.ok and check.same_recipe:
        findings.append(f"recorded {check.recorded.logits_sha256}, now {check.now.logits_sha256}")
    return evaluation_record(
        task,
        check.now,
        "verification",
        after_task_id=current.id,
        identical=check.ok,
        max_abs_diff=check.max_abs_diff,
        findings=findings,
        mode="full",
        outcome=check.outcome,
    )


def require_identical(ledger: Ledger, current: TaskRecord, records: list[EvaluationRecord]) -> None:
    """Fail loudly, naming them, if any earlier task's results changed."""
    changed = [r for r in records if not r.identical]
    if changed:
        names = ", ".join(repr(ledger.task_by_id(r.task_id).name) for r in changed)
        raise VerificationFailed(
            f"earlier task {names} no longer reproduces its recorded results after training "
            f"{current.name!r}, which was not marked trained: run `contlearn audit` to see why"
        )
