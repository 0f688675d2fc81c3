"""The ways of learning the sequence that ``compare`` knows, by name, in the order it sets them
side by side: the adapters (what ``train-next`` recorded) and the baselines. A new baseline is
one module with its ``run(job)`` plus one registration here (or ``register`` from outside).

The descriptors are torch-free: each ``run`` imports its training only when a comparison runs
it, so planning and rebuilding a report never load a model."""

from __future__ import annotations

from typing import Any

from ...config import CompareConfig, TrainConfig
from ...errors import ContlearnError
from ...ledger.records import TaskRecord
from ...report.figures import PlotStyle
from . import results
from .base import Baseline, Job


def _run_sequential(job: Job) -> None:
    from .sequential import run

    run(job)


def _run_ewc(job: Job) -> None:
    from .ewc import run

    run(job)


def _run_replay(job: Job) -> None:
    from .replay import run

    run(job)


def _run_joint(job: Job) -> None:
    from .joint import run

    run(job)


def _run_separate(job: Job) -> None:
    from .separate import run

    run(job)


def _run_lora_merged(job: Job) -> None:
    from .lora_merged import run

    run(job)


def adapters_bytes(backbone: int, params: list[int], sizes: list[int]) -> int:
    """The shared backbone in fp32 and every task's adapter files (sequential LoRA merged:
    the merged backbone and every task's head)."""
    return 4 * backbone + sum(sizes)


def one_model_bytes(backbone: int, params: list[int], sizes: list[int]) -> int:
    """One backbone and every task's head, in fp32: what serves every task at the end."""
    return 4 * (backbone + sum(p - backbone for p in params))


def ewc_bytes(backbone: int, params: list[int], sizes: list[int]) -> int:
    """One model, and the Fisher diagonal and anchor (fp32 each) to go on with."""
    return one_model_bytes(backbone, params, sizes) + 8 * backbone


def kept_bytes(backbone: int, params: list[int], sizes: list[int]) -> int:
    """Every model the baseline keeps, as its runs recorded them."""
    return sum(sizes)


def ewc_settings(settings: CompareConfig, tasks, configs) -> dict[str, Any]:
    return {
        "lambda": settings.ewc_lambda,
        "decay": settings.ewc_decay,
        "fisher_examples": settings.fisher_examples,
    }


def replay_settings(settings: CompareConfig, tasks, configs) -> dict[str, Any]:
    chosen: dict[str, Any] = {"buffer": settings.replay_buffer, "ratio": settings.replay_ratio}
    earlier = _earlier_rows(tasks, configs)
    if settings.replay_buffer > earlier:  # the reservoir keeps every row it sees
        chosen["keeps_all"] = earlier
    return chosen


def _earlier_rows(tasks: list[TaskRecord], configs: dict[str, TrainConfig]) -> int:
    """Training examples of every task but the last (what replay can keep)."""
    rows = 0
    for task in tasks[:-1]:
        limit = configs[task.name].max_train_examples
        rows += min(task.train_rows, limit) if limit else task.train_rows
    return rows


def replay_notes(recorded: dict[str, Any]) -> list[str]:
    """A buffer larger than the earlier tasks' training examples keeps every one of them."""
    if "keeps_all" not in recorded:
        return []
    return [
        f"replay_buffer {recorded['buffer']} is larger than the earlier tasks' "
        f"{recorded['keeps_all']} training examples: replay keeps every one of them"
    ]


ADAPTERS = Baseline(
    "adapter",
    "Adapters (frozen backbone)",
    PlotStyle("-", "o"),
    collect=results.adapters,
    memory=adapters_bytes,
)
SEQUENTIAL = Baseline(
    "sequential",
    "Sequential full fine-tuning",
    PlotStyle("--", "s"),
    collect=results.per_task,
    memory=one_model_bytes,
    run=_run_sequential,
    aliases=("full-finetune",),  # its name before the other baselines existed
)
EWC = Baseline(
    "ewc",
    "EWC (online, sequential full fine-tuning)",
    PlotStyle("-.", "D"),
    collect=results.per_task,
    memory=ewc_bytes,
    run=_run_ewc,
    settings=ewc_settings,
    needs_earlier=True,
)
REPLAY = Baseline(
    "replay",
    "Experience replay (sequential full fine-tuning)",
    PlotStyle(":", "v"),
    collect=results.per_task,
    memory=one_model_bytes,
    run=_run_replay,
    settings=replay_settings,
    notes=replay_notes,
    needs_earlier=True,
)
JOINT = Baseline(
    "joint",
    "Joint multi-task training (all data at once)",
    PlotStyle((0, (1, 1)), "*"),
    collect=results.once,
    memory=kept_bytes,
    run=_run_joint,
    needs_earlier=True,
    sequence=False,
    intransigence_reference=True,
)
SEPARATE = Baseline(
    "separate",
    "Separate models (one fine-tuned model per task)",
    PlotStyle((0, (5, 1)), "P"),
    collect=results.per_task,
    memory=kept_bytes,
    run=_run_separate,
    keeps_each=True,
    fwt_reference="separate models",
)
LORA_MERGED = Baseline(
    "lora-merged",
    "Sequential LoRA merged into the weights",
    PlotStyle((0, (3, 1, 1, 1)), "X"),
    collect=results.per_task,
    memory=adapters_bytes,
    run=_run_lora_merged,
)

BASELINES: dict[str, Baseline] = {}


def register(baseline: Baseline) -> Baseline:
    """Add ``baseline`` after those registered so far; refuses a name already taken."""
    taken = {n for b in BASELINES.values() for n in b.names}
    clash = sorted(taken & set(baseline.names))
    if clash:
        raise ContlearnError(f"a baseline named {clash[0]!r} is already registered")
    BASELINES[baseline.name] = baseline
    return baseline


for _baseline in (ADAPTERS, SEQUENTIAL, EWC, REPLAY, JOINT, SEPARATE, LORA_MERGED):
    register(_baseline)


def registered() -> tuple[Baseline, ...]:
    """Every baseline, in the order a comparison sets them side by side."""
    return tuple(BASELINES.values())


def current_name(name: str) -> str:
    """The name a baseline has now, for ``name`` or a name it had before (else ``name``)."""
    return next((b.name for b in BASELINES.values() if name in b.names), name)


def get_baseline(name: str) -> Baseline:
    """The baseline named ``name`` (now or before); refuses an unknown one."""
    current = current_name(name)
    if current not in BASELINES:
        raise ContlearnError(f"unknown method {name!r}: choose from {', '.join(BASELINES)}")
    return BASELINES[current]


def plot_styles() -> dict[str, PlotStyle]:
    """Each baseline's plot style under every name its results may be keyed by."""
    return {name: b.style for b in BASELINES.values() for name in b.names}
