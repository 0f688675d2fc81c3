"""What a way of learning the task sequence is, to ``compare``: a frozen descriptor that names
it, says what it records, how much it stores, how its curve is drawn, how it runs and how its
matrix is read back from the ledger. ``compare`` and the report ask the descriptor; they never
branch on a name. Nothing here imports torch: a baseline's training is loaded when it runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...artifacts import ArtifactStore
from ...config import CompareConfig, TrainConfig
from ...ledger.records import RunRecord, TaskRecord
from ...ledger.store import Ledger
from ...report.figures import PlotStyle
from ...runtime.events import QUIET, Events


@dataclass(frozen=True)
class Job:
    """What a baseline's run is handed: the comparison, its tasks in order, each task's full
    fine-tuning settings, the baselines' own settings and what the user hears of it."""

    ledger: Ledger
    store: ArtifactStore
    comparison_id: int
    tasks: list[TaskRecord]
    configs: dict[str, TrainConfig]
    settings: CompareConfig
    events: Events = QUIET
    device: str = "auto"


@dataclass(frozen=True)
class Recorded:
    """What a baseline's results are read from: the comparison, its tasks and the adapter run
    of each, the artifact store (the adapters' dev logits), whether the comparison recorded
    what its intervals need (dev targets and bootstrap settings), and the earlier comparison
    whose runs it reads for each baseline it reused."""

    ledger: Ledger
    comparison_id: int
    tasks: list[TaskRecord]
    adapter_runs: list[RunRecord]
    store: ArtifactStore | None
    intervals: bool
    reused: dict[str, int] = field(default_factory=dict)

    def source(self, baseline: str) -> int:
        """The comparison whose runs of ``baseline`` are this comparison's."""
        return self.reused.get(baseline, self.comparison_id)


# (backbone parameters, trainable parameters per task, bytes per task) -> bytes stored to
# serve every task at the end.
Memory = Callable[[int, list[int], list[int]], int]
# (compare settings, tasks, each task's full fine-tuning settings) -> what the comparison records
Settings = Callable[[CompareConfig, list[TaskRecord], dict[str, TrainConfig]], dict[str, Any]]


@dataclass(frozen=True)
class Baseline:
    """A way of learning the sequence that ``compare`` sets beside the others.

    name: how the comparison and its runs record it; aliases: names it was recorded under
    before; label: how the report names it; style: its line and marker in the figures.
    collect(baseline, recorded): its method entry of the results (matrix, summary, costs, and
    ``predictions`` (final, just trained) where the intervals want them).
    memory: what it stores to serve every task (see ``Memory``).
    run(job): trains and evaluates what is not yet done (None: nothing to train, the adapters
    reuse what ``train-next`` recorded).
    settings(compare settings, tasks, configs): the settings of its own that the comparison
    records (None: it has none); notes(recorded settings): lines the user should know.
    needs_earlier: it needs an earlier task to keep or replay (``all`` leaves it out of a
    one-task comparison); sequence: it learns the tasks in order (else BWT, forgetting and FWT
    mean nothing); keeps_each: each task keeps a model of its own, never changed later.
    fwt_reference: how the report names its diagonal when it is FWT's per-task reference;
    intransigence_reference: its final row is intransigence's reference.
    """

    name: str
    label: str
    style: PlotStyle
    collect: Callable[[Baseline, Recorded], dict[str, Any]]
    memory: Memory
    run: Callable[[Job], None] | None = None
    settings: Settings | None = None
    notes: Callable[[dict[str, Any]], list[str]] | None = None
    aliases: tuple[str, ...] = ()
    needs_earlier: bool = False
    sequence: bool = True
    keeps_each: bool = False
    fwt_reference: str | None = None
    intransigence_reference: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        """Its name and every name it was recorded under."""
        return (self.name, *self.aliases)
