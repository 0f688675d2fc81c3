"""The base model kept, as a checked property: its reference measurement recorded once, and
every later check of it.

Disabling every task gives back the backbone's own causal LM. When the first generation task
of a workspace trains (the moment its backbone has proven it generates: a decoder with an LM
head), a run of purpose ``base-reference`` records the base model's measurement on the base
reference set (:mod:`contlearn.data.base_set`, :mod:`contlearn.eval.base_model`): the set
itself in the run's config, the measurement (perplexity, the losses' sha256, the greedy
answers' ids and text, their digest, the recipe) in its result. From then on ``train-next``'s
verification and ``audit`` measure it again with every task switched off and compare: bit for
bit under the recorded recipe, equivalently under another. A workspace without that run (an
encoder backbone, a decoder that only classifies, one recorded before this check existed) is
checked as before.

On another host the replay agrees only as "equivalent" (every answer the same, the perplexity
within a tolerance). ``audit --adopt-host`` then records the replay as this host's reference: a
run of purpose ``base-reference`` whose config names the reference it was adopted for
(``host_of``) and the audit that adopted it; later checks here compare with it bit for bit. The
reference in force stays the one recorded at training; its host references count only for it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..data.base_set import for_workspace, from_dict
from ..devices import describe, same_recipe
from ..errors import VerificationFailed
from ..ledger.records import RunRecord
from ..ledger.store import Ledger
from .runs import recorded_run, run_values

if TYPE_CHECKING:
    from .context import ModelContext

PURPOSE = "base-reference"
NAME = "(base model)"  # how tables name it beside the tasks
HOST_OF = "host_of"  # a host reference's config key: the id of the reference it was adopted for


def reference_run(ledger: Ledger) -> RunRecord | None:
    """The run that recorded the base reference in force (the latest that succeeded, host
    references aside), if any."""
    done = [r for r in _succeeded(ledger) if HOST_OF not in (r.config or {})]
    return done[-1] if done else None


def host_references(ledger: Ledger, reference: RunRecord) -> list[RunRecord]:
    """The host references adopted for ``reference`` (``audit --adopt-host``), oldest first."""
    return [r for r in _succeeded(ledger) if (r.config or {}).get(HOST_OF) == reference.id]


def _succeeded(ledger: Ledger) -> list[RunRecord]:
    return [r for r in ledger.runs(purpose=PURPOSE) if r.status == "succeeded"]


def _compared_with(ledger: Ledger, reference: RunRecord, recipe: dict[str, Any]) -> RunRecord:
    """What a replay under ``recipe`` is compared with: the latest host reference recorded
    under that recipe (this host, these versions), else the reference itself."""
    for adopted in reversed(host_references(ledger, reference)):
        if same_recipe(adopted.result["recipe"], recipe):
            return adopted
    return reference


def ensure_recorded(ctx: ModelContext) -> RunRecord:
    """The run of the base reference in force, recorded now if the workspace has none: a run
    of its own, committed at once (the base model depends on no task). The set is the
    workspace's ``base_reference.json`` if it has one, else the built-in set."""
    found = reference_run(ctx.ledger)
    if found is not None:
        return found
    from ..eval.base_model import measure

    base_set = for_workspace(ctx.store.root)
    config = {"set": base_set.as_dict(), "backbone": ctx.backbone.fingerprint}
    during = "recording the base reference"
    with recorded_run(ctx.ledger, run_values(PURPOSE, config), during) as run_id:
        now = measure(ctx.model, ctx.backbone.tokenizer, base_set, device=ctx.device)
        ctx.ledger.finish_run(run_id, status="succeeded", seconds=now.seconds, result=now.as_dict())
    return ctx.ledger.run(run_id)


def check(ctx: ModelContext, adopt_for: int | None = None) -> dict[str, Any] | None:
    """The base model measured again with every task switched off and compared with its
    recorded reference (or this host's reference of it), as a row of a verification or audit
    table (None: none recorded). ``adopt_for``: the id of an audit run adopting this host: a
    replay that passed under another recipe becomes this host's reference."""
    from ..eval.base_model import compare

    reference = reference_run(ctx.ledger)
    if reference is None:
        return None
    start = time.perf_counter()
    now = _replay(ctx, reference)
    against = _compared_with(ctx.ledger, reference, now.recipe)
    found = compare(against.result, now, same_recipe(against.result["recipe"], now.recipe))
    row = _row(reference, against, now, found, time.perf_counter() - start)
    if adopt_for is not None and found.ok and not found.same_recipe:
        row["adopted"] = _adopt(ctx, reference, now, adopt_for)
    return row


def _adopt(ctx: ModelContext, reference: RunRecord, now: Any, audit_run: int) -> int:
    """Record ``now`` as this host's reference of ``reference`` (a run of its own, committed
    at once, as the reference itself is); returns its id."""
    config = {
        "set": reference.config["set"],
        "backbone": ctx.backbone.fingerprint,
        HOST_OF: reference.id,
        "audit_run": audit_run,
    }
    during = "adopting this host's base reference"
    with recorded_run(ctx.ledger, run_values(PURPOSE, config), during) as run_id:
        ctx.ledger.finish_run(run_id, status="succeeded", seconds=now.seconds, result=now.as_dict())
    return run_id


def measured(ctx: ModelContext) -> dict[str, Any] | None:
    """The model of ``ctx`` as it is now (a baseline's changed backbone), every task switched
    off, on the recorded base reference set: its perplexity and the share of greedy answers
    identical to the reference's (None: the workspace records no base reference)."""
    from ..eval.base_model import answer_share

    reference = reference_run(ctx.ledger)
    if reference is None:
        return None
    now = _replay(ctx, reference)
    was = [a["ids"] for a in reference.result["answers"]]
    against = _compared_with(ctx.ledger, reference, now.recipe)
    return {
        "perplexity": now.perplexity,
        "answers_identical": answer_share(was, [a["ids"] for a in now.answers]),
        "identical": now.digest == against.result["digest"],
    }


def _replay(ctx: ModelContext, reference: RunRecord) -> Any:
    """The model of ``ctx`` measured on the set ``reference`` recorded, with its thread count."""
    from ..eval.base_model import measure

    base_set = from_dict(reference.config["set"], f"the base reference of run {reference.id}")
    threads = reference.result["recipe"].get("threads")
    return measure(ctx.model, ctx.backbone.tokenizer, base_set, device=ctx.device, threads=threads)


def _row(
    reference: RunRecord, against: RunRecord, now: Any, found: Any, seconds: float
) -> dict[str, Any]:
    """What a table and ``--json`` show of one check of the base model (``against``: the
    reference itself or this host's reference of it)."""
    was = against.result
    adopted = against.config.get("audit_run") if against.id != reference.id else None
    row = {
        "task": NAME,
        "reference_run": reference.id,
        "reference": "recorded" if adopted is None else f"host (audit run {adopted})",
        "adopted": None,
        "recorded": {"perplexity": was["perplexity"]},
        "now": {"perplexity": now.perplexity},
        "answers_identical": found.answer_share,
        "digest": now.digest,
        "identical": found.outcome == "identical",
        "ok": found.ok,
        "outcome": found.outcome,
        "recipe": "same" if found.same_recipe else "different",
        "device": describe(now.recipe),
        "seconds": seconds,
        "findings": [],
    }
    if not found.ok:
        row["findings"].append(
            f"the base reference (run {reference.id}) no longer reproduces with every task "
            f"switched off: perplexity {found.recorded_perplexity:.6g} -> {found.perplexity:.6g}"
            f", {found.answer_share:.0%} of the greedy answers identical; check the backbone's "
            "files (its output projection included) and the library versions"
        )
    return row


def require_kept(row: dict[str, Any] | None, current: str) -> None:
    """Fail loudly if the base model no longer reproduces its reference."""
    if row is not None and not row["ok"]:
        raise VerificationFailed(
            f"the base reference (run {row['reference_run']}) no longer reproduces after "
            f"training {current!r}, which was not marked trained: run `contlearn audit` to see "
            "why"
        )
