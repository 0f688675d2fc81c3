"""The baselines ``compare`` sets beside adapters, by name: ``sequential`` (full fine-tuning,
task after task), ``ewc`` and ``replay`` (the same sequence with a penalty, or with earlier
examples mixed in: a ``Strategy`` on the sequential runner), ``joint`` (every task at once) and
``separate`` (a model per task). Each records its runs and evaluations in the ledger and resumes
per task."""

from __future__ import annotations

from typing import Any

from ...config import CompareConfig, TrainConfig
from ...ledger.records import TaskRecord
from ...ledger.store import Ledger
from ..full_finetune import METHOD as SEQUENTIAL
from ..full_finetune import run_sequence
from .ewc import EWC
from .joint import run_joint
from .replay import Replay
from .separate import run_separate

STRATEGIES = {
    SEQUENTIAL: lambda settings, tasks, configs: None,
    "ewc": lambda settings, tasks, configs: EWC(settings),
    "replay": Replay,
}


def run_baseline(
    method: str,
    ledger: Ledger,
    store: Any,
    comparison_id: int,
    tasks: list[TaskRecord],
    configs: dict[str, TrainConfig],
    settings: CompareConfig,
    *,
    progress: bool = False,
    on_estimate: Any = None,
    device: str = "auto",
) -> None:
    """Train and evaluate baseline ``method`` on the comparison's tasks (what is not done)."""
    common = {"progress": progress, "device": device}
    if method == "joint":
        run_joint(ledger, store, comparison_id, tasks, configs, **common)
    elif method == "separate":
        run_separate(
            ledger, store, comparison_id, tasks, configs, on_estimate=on_estimate, **common
        )
    else:
        strategy = STRATEGIES[method](settings, tasks, configs)
        run_sequence(
            ledger,
            store,
            comparison_id,
            tasks,
            configs,
            on_estimate=on_estimate,
            method=method,
            strategy=strategy,
            **common,
        )
