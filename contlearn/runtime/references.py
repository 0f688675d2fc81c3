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
