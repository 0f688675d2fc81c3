"""The head alone (a linear probe on the frozen backbone; ``topk`` with k = 0): the task trains
only its classifier or regressor, which every method has.

Generation's key/value cache: the base model's (a generation task's ``lm`` head is the
backbone's own output projection, so a head-only generation task is the base model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import Method, MethodModules, Sites


@dataclass(frozen=True)
class HeadConfig:
    """No options: the head is the task's whole trainable state."""

    method: ClassVar[str] = "head"


def build(config: HeadConfig, sites: Sites) -> MethodModules:
    return MethodModules()


METHOD = Method(
    name="head",
    config_cls=HeadConfig,
    site_kinds=(),
    build=build,
    added_parameters=lambda config, sites: 0,
    summary="the head alone: a probe on the frozen backbone",
)
