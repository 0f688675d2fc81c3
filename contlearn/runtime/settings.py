"""What a training run is configured with: the workspace defaults, then the task's own settings
(from ``add-task``), then the caller's overrides, which are checked before anything loads or is
recorded."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Any

from ..config import TrainConfig, VerifyConfig, WorkspaceConfig, with_overrides
from ..errors import ConfigError, UnknownSetting
from ..ledger.records import TaskRecord
from ..model.methods.registry import get_method

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
    "cache_frozen_prefix",
    "selection",
)
ADAPTER_KEYS = ("bottleneck", "method", "options")
VERIFY_KEYS = ("verify",)
INIT_KEYS = ("init_from",)  # where the task's modules start (runtime.init_from)
SETTINGS = TRAIN_KEYS + ADAPTER_KEYS + VERIFY_KEYS + INIT_KEYS


@dataclass(frozen=True)
class Resolved:
    """One command's settings, resolved once at its top and handed down: the workspace's
    ``tasks.toml`` as its caller read it, the caller's checked overrides, the workspace's
    training settings with them, how earlier tasks are verified, and the device (its spec;
    ``target``, the ``torch.device`` it names, is resolved the first time it is asked)."""

    workspace: WorkspaceConfig
    overrides: Mapping[str, Any]
    train: TrainConfig
    verify: VerifyConfig
    device: str

    @cached_property
    def target(self) -> Any:
        """The ``torch.device`` this command runs on, resolved once."""
        from .. import devices

        return devices.resolve(self.device)

    def task_configs(self, task: TaskRecord) -> tuple[TrainConfig, Any]:
        """Task ``task``'s training and method configs (its own settings between the
        workspace's and the caller's)."""
        return task_configs(self.workspace, task, self.overrides)


def resolve(
    defaults: WorkspaceConfig,
    overrides: Mapping[str, Any],
    device: str | None = None,
    backbone: str = "float32",
) -> Resolved:
    """Refuse an unknown setting, an invalid value, a device this machine lacks or a precision
    it cannot do (with a backbone loaded in ``backbone``), before anything loads or is
    recorded; returns what the command runs with."""
    unknown = sorted(set(overrides) - set(SETTINGS))
    if unknown:
        raise UnknownSetting(
            f"unknown training setting {unknown[0]!r}: use one of {', '.join(SETTINGS)}"
        )
    train = with_overrides(
        defaults.train, **{k: v for k, v in overrides.items() if k in TRAIN_KEYS}
    )
    if overrides.get("options") and not overrides.get("method"):
        raise ConfigError(
            "method options need the method they belong to: give --method NAME with --set"
        )
    method_config(defaults.adapter, {}, overrides)
    verify = verify_settings(defaults, overrides)
    resolved = Resolved(
        defaults, MappingProxyType(dict(overrides)), train, verify, device or defaults.device
    )
    if resolved.device != "auto" or train.precision != "auto" or backbone != "float32":
        _check_device(resolved, backbone)
    return resolved


def _check_device(resolved: Resolved, backbone: str) -> None:
    """The device exists here and computes in the backbone's dtype and the asked precision."""
    from .. import devices

    target = resolved.target
    if backbone != "float32":
        devices.check_backbone_dtype(devices.short_dtype(backbone), target)
    devices.resolve_precision(resolved.train.precision, target, backbone)


def check_max_length(max_length: int | None, limit: int | None, identity: str, fix: str) -> None:
    """Refuse a max length beyond the backbone's ``limit`` positions (its position embeddings
    take no longer row); ``fix`` names where to give a smaller one."""
    if max_length is not None and limit is not None and max_length > limit:
        raise ConfigError(
            f"max length {max_length} is beyond the {limit} positions of backbone "
            f"{identity!r}: {fix} {limit} or less"
        )


def check_queue_lengths(
    defaults: WorkspaceConfig, tasks: list[TaskRecord], overrides: Mapping[str, Any], identity: str
) -> None:
    """Before a task is claimed: each of ``tasks`` would train within the backbone's positions
    (the caller's max length, else the task's own from add-task, else tasks.toml's)."""
    from ..model.backbone import positions_of

    limit = positions_of(identity, defaults.root)
    if overrides.get("max_length") is not None:
        check_max_length(overrides["max_length"], limit, identity, "give --max-length")
        return
    for task in tasks:
        own = task.settings.get("max_length")
        where = f"task {task.name!r} was added with it; train it with --max-length"
        fix = where if own is not None else "set [train] max_length in tasks.toml to"
        check_max_length(own or defaults.train.max_length, limit, identity, fix)


def task_configs(
    defaults: WorkspaceConfig, task: TaskRecord, overrides: Mapping[str, Any]
) -> tuple[TrainConfig, Any]:
    """Workspace defaults, then the task's own settings, then command-line overrides."""
    settings = task.settings
    train = with_overrides(
        defaults.train,
        max_length=settings.get("max_length"),
        max_new_tokens=settings.get("max_new_tokens"),
    )
    train = with_overrides(train, **{k: overrides.get(k) for k in TRAIN_KEYS})
    return train, method_config(defaults.adapter, settings, overrides)


def verify_settings(defaults: WorkspaceConfig, overrides: Mapping[str, Any]) -> VerifyConfig:
    """How earlier tasks are verified: tasks.toml's ``[verify]``, its mode replaced by the
    caller's ``verify`` (auto, full or probe)."""
    return with_overrides(defaults.verify, mode=overrides.get("verify"))


def method_name(default: Any, settings: dict[str, Any], overrides: Mapping[str, Any]) -> str:
    """The method a task trains with: the caller's, else the task's own, else the workspace's."""
    return overrides.get("method") or settings.get("method") or default.method


def method_config(default: Any, settings: dict[str, Any], overrides: Mapping[str, Any]) -> Any:
    """The task's method config: the workspace's ``[adapter]`` values when the method is the
    workspace's, then the task's own options (``add-task --set``, ``--bottleneck``) when they
    belong to this method, then the caller's. Raises :class:`ConfigError` naming a bad option."""
    name = method_name(default, settings, overrides)
    values = asdict(default) if name == default.method else {}
    if settings.get("method", name) == name:
        values |= _options(settings)
    values |= _options(overrides)
    return get_method(name).config(values)


def _options(settings: Mapping[str, Any]) -> dict[str, Any]:
    options = dict(settings.get("options") or {})
    if settings.get("bottleneck") is not None:
        options["bottleneck"] = settings["bottleneck"]
    return options
