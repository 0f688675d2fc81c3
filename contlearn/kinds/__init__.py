"""Task kinds: what one kind of task (one label per text, one number per text, ...) means to
every layer, behind one seam.

A :class:`~.base.TaskKind` owns, for its kind: how many outputs its head has and which head
type it attaches; how a batch's targets are built and the loss over them; the predictions the
canonical evaluation compares and digests; what it chooses on the selection split after
training (``calibrate``: SQuAD v2's no-answer threshold), which the task records and every
later use hands back (``calibrated``); how a replay under another recipe is compared; the
metrics; what ``predict`` prints per row. The rest of the package asks ``kind_of(task)`` and
never "is this regression?". A new kind is one module plus one :func:`register` call.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .base import TaskKind
from .classification import Classification
from .extractive_qa import ExtractiveQA
from .generation import Generation
from .regression import Regression
from .tagging import Tagging

KINDS: dict[str, TaskKind] = {}


def register(kind: TaskKind) -> TaskKind:
    """Make ``kind`` known by its name (a name registered twice is a programming error)."""
    if kind.name in KINDS:
        raise ValueError(f"task kind {kind.name!r} is registered twice")
    KINDS[kind.name] = kind
    return kind


def get(name: str) -> TaskKind:
    """The kind named ``name``; an unknown one is refused in one line naming the known ones."""
    try:
        return KINDS[name]
    except KeyError:
        raise ConfigError(
            f"unknown task kind {name!r}: use one of {', '.join(sorted(KINDS))}"
        ) from None


def kind_of(task: Any) -> TaskKind:
    """The kind of a task record (or anything with ``kind``, or a ``problem_type`` recorded
    before kinds were: classification or regression)."""
    return get(getattr(task, "kind", None) or task.problem_type)


register(Classification())
register(Regression())
register(Tagging())
register(ExtractiveQA())
register(Generation())

__all__ = ["KINDS", "TaskKind", "get", "kind_of", "register"]
