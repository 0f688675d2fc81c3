"""How long a training will take, measured on its first steps, so a user can stop early."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

TIMED_STEPS = 3  # timed after one untimed step (the first one pays for warm-up)

Report = Callable[[dict[str, Any]], None]


def training_plan(examples: int, epochs: int, batch_size: int) -> dict[str, int]:
    """The size of a training: examples, epochs, batch size and optimizer steps."""
    steps = math.ceil(examples / batch_size) * epochs
    return {"examples": examples, "epochs": epochs, "batch_size": batch_size, "steps": steps}


def estimator(plan: dict[str, Any], report: Report | None) -> Callable[[], None]:
    """A step callback that times the steps after the first and, once, reports ``plan`` with
    the seconds per step and the estimated training seconds (evaluations not included)."""
    state = {"done": 0, "start": 0.0}

    def step_done() -> None:
        state["done"] += 1
        if report is None or state["done"] > TIMED_STEPS + 1:
            return
        if state["done"] == 1:
            state["start"] = time.perf_counter()
        elif state["done"] == TIMED_STEPS + 1:
            per_step = (time.perf_counter() - state["start"]) / TIMED_STEPS
            report({**plan, "seconds_per_step": per_step, "seconds": per_step * plan["steps"]})

    return step_done


def chain(*callbacks: Callable[[], None] | None) -> Callable[[], None]:
    """One callback calling each given one in turn."""
    present = [c for c in callbacks if c is not None]

    def call() -> None:
        for callback in present:
            callback()

    return call
