"""What a training run is configured with: the workspace defaults, then the task's own settings
(from ``add-task``), then the caller's overrides, which are checked before anything loads or is
recorded."""

from __future__ import annotations

from typing import Any

from ..config import TrainConfig, WorkspaceConfig, with_overrides
from ..errors import UnknownSetting
from ..ledger.records import TaskRecord

TRAIN_KEYS = (
    "epochs",
    "lr",
    "batch_size",
    "max_length",
    "seed",
    "max_train_examples",
    "backbone_attention_dropout",
    "decay_norms_and_biases",
    "precision",
)
ADAPTER_KEYS = ("bottleneck",)
SETTINGS = TRAIN_KEYS + ADAPTER_KEYS


def check_overrides(
    defaults: WorkspaceConfig, overrides: dict[str, Any], device: str | None = None
) -> str:
    """Refuse an unknown setting, an invalid value, a device this machine lacks or a precision
    it cannot do, before anything loads or is recorded; returns the device to train on."""
    unknown = sorted(set(overrides) - set(SETTINGS))
    if unknown:
        raise UnknownSetting(
            f"unknown training setting {unknown[0]!r}: use one of {', '.join(SETTINGS)}"
        )
    train = with_overrides(
        defaults.train, **{k: v for k, v in overrides.items() if k in TRAIN_KEYS}
    )
    with_overrides(defaults.adapter, **{k: v for k, v in overrides.items() if k in ADAPTER_KEYS})
    device = device or defaults.device
    if device != "auto" or train.precision != "auto":
        from .. import devices

        devices.resolve_precision(train.precision, devices.resolve(device))
    return device


def task_configs(
    defaults: WorkspaceConfig, task: TaskRecord, overrides: dict[str, Any]
) -> tuple[TrainConfig, Any]:
    """Workspace defaults, then the task's own settings, then command-line overrides."""
    settings = task.settings
    train = with_overrides(defaults.train, max_length=settings.get("max_length"))
    train = with_overrides(train, **{k: overrides.get(k) for k in TRAIN_KEYS})
    adapter = with_overrides(defaults.adapter, bottleneck=settings.get("bottleneck"))
    adapter = with_overrides(adapter, bottleneck=overrides.get("bottleneck"))
    return train, adapter
