"""Frozen, validated configuration: training settings, a task's entry, and the workspace file
``tasks.toml`` that holds the defaults (the method and its config among them) and the ordered
task list. A method's own config dataclass lives with the method (``model/methods/``)."""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .devices import PRECISIONS, check_spec
from .errors import ConfigError
from .eval.generation import GENERATION_METRICS, OPEN_GENERATION_METRICS  # noqa: F401 (data.labels)
from .kinds.generation import DEFAULT_MAX_NEW_TOKENS, MAX_NEW_TOKENS
from .model.backbone import DEFAULT_BACKBONE
from .model.methods.registry import DEFAULT_METHOD, METHODS, default_config, get_method
from .naming import check_task_name
from .validation import check as _check
from .validation import check_types as _check_types

CONFIG_FILE = "tasks.toml"
DEFAULT_DB_FILE = "contlearn.db"
CLASSIFICATION_METRICS = ("accuracy", "f1", "matthews")
REGRESSION_METRICS = ("pearson", "spearman")
# Entity-level scores by the CoNLL definition, then the share of words tagged right.
TAGGING_METRICS = ("entity_f1", "entity_precision", "entity_recall", "token_accuracy")
QA_METRICS = ("qa_f1", "qa_exact_match")  # SQuAD's token F1 and exact match, over questions
# Generation (free-text responses): eval.generation's, with and without a closed label set.
METRICS = tuple(  # "accuracy" is both a classification and a generation metric: listed once
    dict.fromkeys(
        (
            *CLASSIFICATION_METRICS,
            *REGRESSION_METRICS,
            *TAGGING_METRICS,
            *QA_METRICS,
            *GENERATION_METRICS,
        )
    )
)
# Settings added to TrainConfig after release 0.1, with the value every run before them used.
ADDED_TRAIN_SETTINGS = {
    "backbone_attention_dropout": True,
    "decay_norms_and_biases": True,
    "precision": "fp32",
    "cache_frozen_prefix": False,
    "selection": "dev",
    "max_new_tokens": DEFAULT_MAX_NEW_TOKENS,  # read by generation tasks, which came after it
}
SELECTIONS = ("holdout", "dev")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run. ``max_train_examples`` 0 means the whole training split.

    backbone_attention_dropout: keep the frozen backbone's attention-probability dropout while
    adapters train (the default, as in the paper). Off lets PyTorch use its fused attention
    kernel: faster (6-8% on GLUE RTE/MRPC, about 15% per step at 128 tokens), but RTE scored
    lower without it. Evaluation never uses dropout. Runs recorded before this setting existed
    trained with it on.

    decay_norms_and_biases: apply AdamW's weight decay to LayerNorm weights and every bias too.
    Off (the default), only weight matrices decay, as in Hugging Face's Trainer and nanoGPT;
    runs recorded before this setting existed decayed everything (true).

    precision: fp32, bf16 or fp16 autocast for the training forward (parameters and optimizer
    state stay fp32); auto is bf16 on CUDA devices that support it, else fp32. A run records the
    precision it used; runs recorded before this setting existed trained in fp32.

    cache_frozen_prefix: when a task's method leaves the lowest layers alone (``leave_out``,
    ``topk``, ``head``), run those layers without dropout and keep their output per example
    (up to ``prefix_cache_mb`` MiB; the rest is recomputed), so that from the second epoch on
    batches skip them. Off by default (runs recorded before it existed had it off).

    selection: what picks the best epoch. ``holdout`` (the default): a seeded slice of the
    training split (10%, at most 1,000 rows) that is not trained on, so the dev split stays
    untouched until the score that is reported; ``dev``: the dev split itself (optimistic,
    as in release 0.1, whose runs it replays, and in papers that select on dev).

    max_new_tokens: what a generation task's canonical evaluation decodes at most per dev
    prompt (greedy; recorded, so that every replay decodes as much). Other kinds ignore it.
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
    decay_norms_and_biases: bool = False
    precision: str = "auto"
    cache_frozen_prefix: bool = False
    prefix_cache_mb: int = 2048
    selection: str = "holdout"
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS

    def __post_init__(self) -> None:
        _check_types(self)
        _check(
            self.prefix_cache_mb >= 0, f"prefix_cache_mb must be >= 0, got {self.prefix_cache_mb}"
        )
        _check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _check(self.batch_size >= 1, f"batch size must be >= 1, got {self.batch_size}")
        _check(8 <= self.max_length <= 4096, f"max length must be 8-4096, got {self.max_length}")
        _check(self.max_train_examples >= 0, "max train examples must be >= 0 (0 = all)")
        _check(
            1 <= self.max_new_tokens <= MAX_NEW_TOKENS,
            f"max new tokens must be 1-{MAX_NEW_TOKENS}, got {self.max_new_tokens}",
        )
        _check(0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)")
        _check(self.grad_clip > 0, "grad_clip must be > 0")
        _check(0 <= self.dropout < 1, "dropout must be in [0, 1)")
        _check(
            self.precision in PRECISIONS,
            f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}",
        )
        _check(
            self.selection in SELECTIONS,
            f"selection must be one of {', '.join(SELECTIONS)}, got {self.selection!r}",
        )


def recorded_train_config(recorded: dict[str, Any]) -> TrainConfig:
    """The TrainConfig a run recorded; settings added since it ran take the value it used."""
    return TrainConfig(**{**ADDED_TRAIN_SETTINGS, **recorded})


@dataclass(frozen=True)
class CompareConfig:
    """Settings of the baselines (the rest is shared with adapters). Every baseline fine-tunes
    the whole backbone with ``full_finetune_lr``. ``ewc_lambda``: the strength of EWC's
    penalty; ``ewc_decay``: how much of the earlier tasks' Fisher information online EWC keeps
    at each new task; ``fisher_examples``: training examples per task its Fisher is estimated
    on. ``replay_buffer``: earlier training examples replay keeps (reservoir sampling);
    ``replay_ratio``: replayed examples per example of the current task in each batch.
    ``bootstrap_resamples``: resamples of the dev examples behind each confidence interval."""

    full_finetune_lr: float = 2e-5
    ewc_lambda: float = 1e5
    ewc_decay: float = 1.0
    fisher_examples: int = 200
    replay_buffer: int = 200
    replay_ratio: float = 0.25
    bootstrap_resamples: int = 1000

    def __post_init__(self) -> None:
        _check_types(self)
        _check(self.full_finetune_lr > 0, "full_finetune_lr must be > 0")
        _check(self.ewc_lambda >= 0, f"ewc_lambda must be >= 0, got {self.ewc_lambda}")
        _check(0 <= self.ewc_decay <= 1, f"ewc_decay must be in [0, 1], got {self.ewc_decay}")
        _check(self.fisher_examples >= 1, "fisher_examples must be >= 1")
        _check(self.replay_buffer >= 1, f"replay_buffer must be >= 1, got {self.replay_buffer}")
        _check(
            0 < self.replay_ratio <= 4, f"replay_ratio must be in (0, 4], got {self.replay_ratio}"
        )
        _check(self.bootstrap_resamples >= 100, "bootstrap_resamples must be >= 100")


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
    method: str | None = None  # default: the workspace's [adapter] method
    options: dict[str, Any] | None = None  # the method's options for this task
    kind: str | None = None  # the task kind (contlearn.kinds); default: recognised from the data
    max_new_tokens: int | None = None  # a generation task's decoding budget (TrainConfig's)
    init_from: str | None = None  # a trained task its modules start from, or "auto"

    def __post_init__(self) -> None:
        check_task_name(self.name)
        if self.init_from is not None and self.init_from != "auto":
            _check(isinstance(self.init_from, str), f"task {self.name!r}: init_from is a name")
            check_task_name(self.init_from)
        if self.kind is not None:
            from . import kinds

            _check(isinstance(self.kind, str), f"task {self.name!r}: kind must be a name")
            kinds.get(self.kind)
        if self.method is not None:
            _check(isinstance(self.method, str), f"task {self.name!r}: method must be a name")
            get_method(self.method)
        _check(
            self.options is None or isinstance(self.options, dict),
            f"task {self.name!r}: options must be a table of the method's options",
        )
        _check(isinstance(self.data, str), f"task {self.name!r}: data must be a path string")
        fields_ok = self.text_fields is None or (
            isinstance(self.text_fields, tuple)
            and all(isinstance(t, str) for t in self.text_fields)
        )
        _check(fields_ok, f"task {self.name!r}: text_fields must be column names")
        for key in ("max_length", "bottleneck", "max_new_tokens"):
            value = getattr(self, key)
            ok = value is None or (isinstance(value, int) and not isinstance(value, bool))
            _check(ok, f"task {self.name!r}: {key} must be an integer")
        _check(bool(self.data), f"task {self.name!r} needs a data path")
        _check(
            self.metric is None or self.metric in METRICS,
            f"task {self.name!r}: metric must be one of {', '.join(METRICS)}",
        )


VERIFY_MODES = ("auto", "full", "probe")
RESIDENT_TASKS = 64  # tasks whose modules stay on the device at once (0: no limit)


@dataclass(frozen=True)
class VerifyConfig:
    """How ``train-next`` proves that the earlier tasks did not change (``audit`` is always
    full). ``full``: every earlier task's whole dev split re-evaluated and compared bit for bit.
    ``probe``: the backbone's weights hashed against its fingerprint, every earlier task's
    artifact files and in-memory tensors hashed, and a seeded sample of whole canonical dev
    batches (about ``probe_examples`` rows in all, one batch per sampled task) re-evaluated
    and compared bit for bit with the same rows of the recorded dev logits. ``auto`` (the
    default): full while the earlier tasks' dev examples total at most ``full_max_examples``,
    probe beyond."""

    mode: str = "auto"
    full_max_examples: int = 10000
    probe_examples: int = 1024

    def __post_init__(self) -> None:
        _check_types(self)
        _check(
            self.mode in VERIFY_MODES,
            f"verify mode must be one of {', '.join(VERIFY_MODES)}, got {self.mode!r}",
        )
        _check(self.full_max_examples >= 0, "full_max_examples must be >= 0")
        _check(self.probe_examples >= 1, "probe_examples must be >= 1")


@dataclass(frozen=True)
class WorkspaceConfig:
    """Everything ``tasks.toml`` holds. ``root`` is the workspace folder paths resolve against."""

    root: Path
    backbone: str = DEFAULT_BACKBONE
    db: str | None = None
    device: str = "auto"
    resident_tasks: int = RESIDENT_TASKS
    adapter: Any = field(default_factory=default_config)  # the method's config; its class names it
    train: TrainConfig = field(default_factory=TrainConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    tasks: tuple[TaskEntry, ...] = ()
    layout: dict[str, str] | None = None  # [backbone.layout]: a family described by the user

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


def _resident(value: Any) -> int:
    _check(
        isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        f"{CONFIG_FILE}: [workspace] resident_tasks must be an integer >= 0 (0: no limit), "
        f"got {value!r}",
    )
    return value


def _device(value: Any) -> str:
    try:
        return check_spec(value)
    except ConfigError as exc:
        raise ConfigError(f"{CONFIG_FILE}: [workspace] device: {exc}") from exc


def _adapter_section(raw: Any) -> Any:
    """``[adapter]``: an optional ``method`` (default houlsby), then that method's settings."""
    if raw is None:
        return default_config()
    _check(isinstance(raw, dict), f"{CONFIG_FILE}: [adapter] must be a table")
    settings = dict(raw)
    name = settings.pop("method", DEFAULT_METHOD)
    _check(isinstance(name, str), f"{CONFIG_FILE}: [adapter] method must be a method name")
    try:
        method = get_method(name)
    except ConfigError as exc:
        raise ConfigError(f"{CONFIG_FILE}: [adapter] {exc}") from exc
    return _section(method.config_cls, settings, "adapter")


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
    unknown = sorted(
        set(raw) - {"workspace", "adapter", "train", "compare", "verify", "task", "backbone"}
    )
    _check(not unknown, f"{CONFIG_FILE}: unknown table(s): {', '.join(unknown)}")
    ws = raw.get("workspace", {})
    _check(isinstance(ws, dict), f"{CONFIG_FILE}: [workspace] must be a table")
    unknown = sorted(set(ws) - {"backbone", "db", "device", "resident_tasks"})
    _check(not unknown, f"{CONFIG_FILE}: unknown key(s) in [workspace]: {', '.join(unknown)}")
    tasks = tuple(_task_entry(t) for t in raw.get("task", []))
    names = [t.name for t in tasks]
    dupes = sorted({n for n in names if names.count(n) > 1})
    _check(not dupes, f"{CONFIG_FILE}: task(s) listed twice: {', '.join(dupes)}")
    return WorkspaceConfig(
        root=root,
        backbone=str(ws.get("backbone", DEFAULT_BACKBONE)),
        db=ws.get("db"),
        device=_device(ws.get("device", "auto")),
        resident_tasks=_resident(ws.get("resident_tasks", RESIDENT_TASKS)),
        adapter=_adapter_section(raw.get("adapter")),
        train=_section(TrainConfig, raw.get("train"), "train"),
        compare=_section(CompareConfig, raw.get("compare"), "compare"),
        verify=_section(VerifyConfig, raw.get("verify"), "verify"),
        tasks=tasks,
        layout=_layout_section(raw.get("backbone")),
    )


def _layout_section(raw: Any) -> dict[str, str] | None:
    """``[backbone.layout]``: kept as the table it is (checked when the backbone loads)."""
    if raw is None:
        return None
    _check(isinstance(raw, dict), f"{CONFIG_FILE}: [backbone] must be a table")
    unknown = sorted(set(raw) - {"layout"})
    _check(not unknown, f"{CONFIG_FILE}: unknown key(s) in [backbone]: {', '.join(unknown)}")
    layout = raw.get("layout")
    _check(isinstance(layout, dict), f"{CONFIG_FILE}: [backbone.layout] must be a table")
    return dict(layout)


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


METHOD_NAMES = ", ".join(METHODS) + " (README: Methods)"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_layout(layout: dict[str, str] | None) -> list[str]:
    """The ``[backbone.layout]`` lines of ``tasks.toml`` (none without a layout)."""
    if not layout:
        return []
    return ["", "[backbone.layout]", *(f"{k} = {_toml_value(v)}" for k, v in layout.items())]


def render_config(backbone: str, db: str | None, layout: dict[str, str] | None = None) -> str:
    """The ``tasks.toml`` that ``init`` writes: every default spelled out, no tasks yet."""
    lines = ["# contlearn workspace configuration", "", "[workspace]"]
    lines.append(f"backbone = {_toml_value(backbone)}")
    if db:
        lines.append(f"db = {_toml_value(db)}")
    lines.append('device = "auto"  # auto (CUDA, else MPS, else the CPU), cpu, cuda, cuda:N, mps')
    lines.append(
        f"resident_tasks = {RESIDENT_TASKS}  # tasks kept built on the device at once "
        "(least recently used leave first; 0: no limit)"
    )
    lines += render_layout(layout)
    adapter = default_config()
    lines += ["", "[adapter]", f"method = {_toml_value(adapter.method)}  # {METHOD_NAMES}"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in asdict(adapter).items()]
    sections = (("train", TrainConfig()), ("compare", CompareConfig()), ("verify", VerifyConfig()))
    for section, obj in sections:
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
