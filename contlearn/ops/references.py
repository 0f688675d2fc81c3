"""What a task's replay is compared with: its post-train evaluation, or a reference this host
adopted.

A task's post-train evaluation holds the logits it gave on the machine it was trained on. On
another host (another CPU micro-architecture, ISA, core count or math library build) the same
weights give logits that may differ in the last bits, so a replay there is compared prediction
by prediction ("equivalent"). ``audit --adopt-host`` records the replay's logits as this
host's reference (an evaluation of kind ``host-reference`` and its logits file, history kept),
and later replays here compare with it bit for bit again. A reference counts only for the run
it was adopted for: one recorded before the task's current post-train evaluation is stale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..devices import same_recipe
from ..ledger.records import ArtifactRecord, EvaluationRecord
from ..ledger.store import Ledger


@dataclass(frozen=True)
class Reference:
    """A recorded evaluation a replay can be compared with bit for bit, and its logits file."""

    evaluation: EvaluationRecord
    logits: ArtifactRecord
    adopted: bool  # a host reference (audit --adopt-host), not the post-train evaluation


def adopted_references(
    ledger: Ledger, posts: dict[int, EvaluationRecord]
) -> dict[int, list[Reference]]:
    """Each task's host references still in force (recorded after ``posts[task_id]``, its
    current post-train evaluation), oldest first, read in two queries for all of them."""
    found = ledger.host_references(list(posts))
    return {
        task_id: [
            Reference(evaluation, logits, True)
            for evaluation, logits in found.get(task_id, [])
            if evaluation.id > post.id
        ]
        for task_id, post in posts.items()
    }


def matching(references: Sequence[Reference], recipe: dict[str, Any]) -> Reference | None:
    """The latest reference recorded under ``recipe`` (this host, these versions), if any."""
    for reference in reversed(references):
        if reference.evaluation.recipe and same_recipe(reference.evaluation.recipe, recipe):
            return reference
    return None


# A regression task's prediction is its value: across machines a value within this relative
# tolerance (of max(1, |value|)) is the same prediction, and a metric within it the same value.
REGRESSION_TOLERANCE = 1e-5


def agreement(saved: Any, now: Any, *, regression: bool) -> tuple[float, float]:
    """(share of identical predictions, max |logit change|) between two [N, C] logit tensors
    of the same rows; (0, inf) when their shapes differ."""
    if saved.shape != now.shape:
        return 0.0, float("inf")
    if len(saved) == 0:
        return 1.0, 0.0
    delta = (saved - now).abs()
    if regression:
        same = delta <= REGRESSION_TOLERANCE * saved.abs().clamp(min=1.0)
    else:
        same = saved.argmax(-1) == now.argmax(-1)
    return float(same.float().mean()), float(delta.max())


def metrics_agree(recorded: dict[str, float], now: dict[str, float], *, regression: bool) -> bool:
    """Whether every metric has the recorded value (for regression, within the tolerance)."""
    if not regression or recorded.keys() != now.keys():
        return recorded == now
    return all(
        math.isclose(
            recorded[k], now[k], rel_tol=REGRESSION_TOLERANCE, abs_tol=REGRESSION_TOLERANCE
        )
        for k in recorded
    )
