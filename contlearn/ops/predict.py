"""``predict``: label new rows with trained tasks, one backbone in memory serving them all.

Rows are dicts holding each task's recorded text fields. Every row is checked before the
backbone is loaded. One task's rows go through its adapter by the evaluation path's model call
(eval mode, no autograd, length-sorted batches, the task's trained max_length), so a row's
prediction equals what evaluation computes for the same text. Rows of several tasks run
together in mixed-task batches, one forward pass each (logits within float rounding of the
single-task ones, the same predictions); a task whose method cannot mix (``topk``) runs its
rows in batches of their own. Reading input files and
writing results is ``predict_files``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..artifacts import ArtifactStore
from ..config import WorkspaceConfig
from ..errors import BadData, ConfigError, TaskNotFound
from ..kinds import kind_of
from ..ledger.records import TaskRecord
from ..ledger.store import Ledger
from ..naming import AUTO
from ..runtime.current import trained_artifacts
from ..runtime.events import QUIET, Events
from .route import RoutedRows
from .rows import require_mapping, row_texts

if TYPE_CHECKING:
    import torch

    from ..runtime.context import ModelContext

PROGRESS_MIN_ROWS = 256  # fewer rows than this finish before a progress bar would help


def predict(
    ledger: Ledger,
    store: ArtifactStore,
    task: str | None,
    rows: Iterable[dict[str, Any]],
    *,
    task_field: str | None = None,
    keep_columns: Sequence[str] = (),
    batch_size: int | None = None,
    context: ModelContext | None = None,
    device: str = "auto",
    events: Events = QUIET,
    workspace: WorkspaceConfig | None = None,
) -> list[dict[str, Any]]:
    """One result per row, in input order: ``{"index", "id"?, kept columns, "task", "label",
    "probabilities"}``; ``index`` is the row's 0-based place in ``rows``.

    ``task`` names the task of every row; or ``task_field`` names the field in which each row
    names its own (exactly one of the two). A row whose task is ``auto`` is routed first
    (:mod:`.route`): its result adds the routing ``confidence``, and a row like none of the
    trained tasks gets ``task`` None (with the ``nearest`` one) and no label.
    ``keep_columns`` echoes input fields (``"*"``: all of them; one named like an output field
    comes back as ``input_<name>``). ``batch_size`` defaults to the evaluation's; ``context``
    reuses a loaded backbone (else one is loaded with ``workspace``, tasks.toml as the caller
    read it). Every row is checked before the backbone loads. Rows of several tasks run
    together in mixed-task batches (one forward pass per batch); a task whose method cannot mix
    runs its rows in batches of their own, which ``events`` hears as a note. Without progress
    bars, it also hears when the prediction of many rows begins.
    """
    _check_request(task, task_field, batch_size)
    rows = list(rows)
    names: list[str | None] = (
        [task] * len(rows) if task is not None else list(_row_tasks(rows, task_field))
    )
    auto = [i for i, n in enumerate(names) if n == AUTO]
    routed = RoutedRows(ledger, store, rows, auto) if auto else None
    records = _trained_records(ledger, [n for n in names if n != AUTO], task_field)
    texts: list[tuple[str, ...]] = [
        () if n == AUTO else row_texts(row, i, records[n])
        for i, (row, n) in enumerate(zip(rows, names, strict=True))
    ]
    if not rows:
        return []
    from ..runtime.context import open_context  # every row checked: only now load the model

    ctx = context or open_context(ledger, store, device, workspace=workspace)
    decisions = _apply_routes(routed, ctx, names, texts, records) if routed else {}
    kept = [i for i, n in enumerate(names) if n is not None]  # routed to none: nothing runs
    show = events.bars and len(kept) >= PROGRESS_MIN_ROWS
    if not events.bars and len(kept) >= PROGRESS_MIN_ROWS:
        # no bars (a log file, a pipe): one line says the long part has begun
        events.note(f"predicting {len(kept)} rows of {', '.join(map(repr, records))}")
    used = {n: records[n] for n in dict.fromkeys(names[i] for i in kept)}
    run = _Run(ctx, used, [names[i] for i in kept], [texts[i] for i in kept], batch_size, show)
    found = dict(zip(kept, run.outputs(events.note) if kept else [], strict=True))
    outputs = [found.get(i, NO_TASK) for i in range(len(rows))]
    for i, decision in decisions.items():
        outputs[i] = {**decision.fields(), **outputs[i]}
    pairs = enumerate(zip(rows, outputs, strict=True))
    return [_result(i, row, output, keep_columns) for i, (row, output) in pairs]


NO_TASK = {"task": None, "label": None, "probabilities": None}  # a row routed to none


def _apply_routes(routed, ctx, names, texts, records) -> dict[int, Any]:
    """Route the rows named ``auto``: each one's task (None: none of these) written into
    ``names``, its text fields into ``texts``, its task's record into ``records``; returns
    each routed row's decision by index."""
    decisions = dict(zip(routed.where, routed.decide(ctx), strict=True))
    for k, (i, decision) in enumerate(decisions.items()):
        names[i] = decision.task
        if decision.task is not None:
            records.setdefault(decision.task, routed.loaded.tasks[decision.task])
            texts[i] = routed.texts[k][decision.task]
    return decisions


@dataclass
class _Run:
    """One prediction request on a loaded context: which rows run mixed, which grouped."""

    ctx: ModelContext
    records: dict[str, TaskRecord]
    names: list[str]
    texts: list[tuple[str, ...]]
    batch_size: int | None
    progress: bool

    def outputs(self, note: Callable[[str], None]) -> list[dict[str, Any]]:
        """Each row's output, in input order: rows of the tasks that can mix (when there are
        several) in mixed-task batches, every other task's rows in batches of their own."""
        metas = {name: self.ctx.task_config(r) for name, r in self.records.items()}
        alone = {n: _why_alone(metas[n], r) for n, r in self.records.items()}
        mixing = [n for n in self.records if alone[n] is None]
        mixed = mixing if len(mixing) > 1 else []
        outputs: list[dict[str, Any]] = [{} for _ in self.names]
        if mixed:
            where = [i for i, n in enumerate(self.names) if n in mixed]
            self._fill(outputs, where, self._mixed(metas, where))
        for name, record in self.records.items():
            if name in mixed:
                continue
            if alone[name] is not None and len(self.records) > 1:
                note(
                    f"task {name!r} cannot share a forward pass with other tasks' rows "
                    f"({alone[name]}): its rows ran in batches of their own"
                )
            where = [i for i, n in enumerate(self.names) if n == name]
            texts = [self.texts[i] for i in where]
            found = _predict_task(
                self.ctx,
                record,
                meta=metas[name],
                texts=texts,
                batch_size=self.batch_size,
                progress=self.progress,
            )
            self._fill(outputs, where, found)
        return outputs

    @staticmethod
    def _fill(outputs: list, where: list[int], found: list) -> None:
        for i, output in zip(where, found, strict=True):
            outputs[i] = output

    def _mixed(self, metas: dict[str, dict[str, Any]], where: list[int]) -> list[dict[str, Any]]:
        """Results for the rows ``where`` (of tasks that can mix), run together in mixed-task
        batches; each row is encoded with its own task's max length."""
        from ..eval.mixed import predict_mixed
        from ..eval.recipe import CANONICAL_BATCH_SIZE
        from ..train.batching import Encoded

        names, records = self.names, self.records
        ids: dict[int, list[int]] = {}
        types: dict[int, list[int]] = {}
        for name in dict.fromkeys(names[i] for i in where):
            mine = [i for i in where if names[i] == name]
            part = _encode(
                self.ctx,
                records[name],
                [self.texts[i] for i in mine],
                metas[name]["train"]["max_length"],
            )
            ids |= dict(zip(mine, part.input_ids, strict=True))
            types |= dict(zip(mine, part.token_type_ids or [], strict=False))
        encoded = Encoded(
            [ids[i] for i in where], [types[i] for i in where] if types else None, part.pad_id
        )
        logits = predict_mixed(
            self.ctx.model,
            encoded,
            [names[i] for i in where],
            batch_size=self.batch_size or CANONICAL_BATCH_SIZE,
            device=self.ctx.device,
            progress=self.progress,
            prepare=lambda present: self.ctx.ensure([records[n] for n in present]),
        )
        pairs = zip(where, logits, strict=True)
        return [
            _outputs(records[names[i]], row[None], [self.texts[i]], metas[names[i]])[0]
            for i, row in pairs
        ]


OUTPUT_FIELDS = ("index", "id", "task", "confidence", "nearest", "label", "probabilities")


def _check_request(task: str | None, task_field: str | None, batch_size: int | None) -> None:
    if (task is None) == (task_field is None):
        raise ConfigError("give either a task name or a task field (one, not both)")
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"batch size {batch_size} is below 1: pass a positive batch size")


def _result(
    index: int, row: dict[str, Any], output: dict[str, Any], keep: Sequence[str]
) -> dict[str, Any]:
    """The row's result: its index, its id when it has one, the kept fields, the output."""
    result: dict[str, Any] = {"index": index}
    if "id" in row:
        result["id"] = row["id"]
    for column in row if list(keep) == ["*"] else keep:
        if column != "id":
            name = f"input_{column}" if column in OUTPUT_FIELDS else column
            result[name] = row.get(column)
    return {**result, **output}


def _row_tasks(rows: Sequence[dict[str, Any]], field: str) -> list[str]:
    """Each row's task name, from its ``field``."""
    names = []
    for i, row in enumerate(rows):
        require_mapping(row, i)
        name = row.get(field)
        if not isinstance(name, str) or not name.strip():
            raise BadData(
                f"row {i + 1}: no task name in field {field!r}; every row needs one "
                "when a task field is given"
            )
        names.append(name.strip())
    return names


def _trained_records(
    ledger: Ledger, names: Sequence[str], task_field: str | None
) -> dict[str, TaskRecord]:
    """The ledger record of each distinct task, refusing unknown and untrained ones."""
    records: dict[str, TaskRecord] = {}
    for i, name in enumerate(names):
        if name in records:
            continue
        try:
            records[name] = ledger.task(name)
        except TaskNotFound as exc:
            if task_field is None:
                raise
            raise TaskNotFound(
                f"row {i + 1}: field {task_field!r} names {name!r}, which is not a registered "
                "task; `contlearn status` lists the tasks"
            ) from exc
        trained_artifacts(ledger, records[name])  # raises TaskNotTrained, naming the fix
    return records


def _why_alone(meta: dict[str, Any], task: TaskRecord) -> str | None:
    """Why a task's rows cannot share a forward pass with other tasks' rows, or None when they
    can: its method's hooks must split by row (topk's do not) and its head must give one output
    row per text (a tagging head gives one per token)."""
    from ..model.methods.registry import UNNAMED, get_method

    method = meta.get("method", UNNAMED)
    if not get_method(method).mixes:
        return f"its method {method} changes whole layers"
    kind = kind_of(task)
    if kind.head != "pooled":
        return f"a {kind.name} task's head gives one output row per token"
    return None


def _encode(
    ctx: ModelContext,
    task: TaskRecord,
    texts: Sequence[tuple[str, ...]],
    max_length: int,
    max_new_tokens: int | None = None,
) -> Any:
    kind = kind_of(task)
    inputs = kind.predict_inputs(texts)
    return ctx.encode_texts(inputs, max_length, kind=kind, max_new_tokens=max_new_tokens)


def _predict_task(
    ctx: ModelContext,
    task: TaskRecord,
    *,
    meta: dict[str, Any],
    texts: list[tuple[str, ...]],
    batch_size: int | None,
    progress: bool,
) -> list[dict[str, Any]]:
    """Results for one task's rows, in the order given (by the canonical evaluation's model
    call: a generation task decodes greedily, as much as its run recorded)."""
    from ..eval.recipe import CANONICAL_BATCH_SIZE

    batch_size = batch_size or CANONICAL_BATCH_SIZE
    train = meta["train"]
    encoded = _encode(ctx, task, texts, train["max_length"], train.get("max_new_tokens"))
    ctx.ensure([task])
    ctx.model.activate(task.name)
    logits = kind_of(task).canonical_outputs(  # [N, C] float32 (logits), input order
        ctx.model,
        encoded,
        batch_size=batch_size,
        device=ctx.device,
        progress=progress,
        desc=f"predicting {task.name}",
    )
    return _outputs(task, logits, texts, meta, encoded)


def _outputs(
    task: TaskRecord,
    logits: torch.Tensor,
    texts: Sequence[tuple[str, ...]],
    meta: dict[str, Any],
    encoded: Any = None,
) -> list[dict[str, Any]]:
    """What the task's kind says of each row, deciding as its artifact config (``meta``)
    records it chose on the selection split."""
    from ..runtime.current import recorded_calibration

    kind = kind_of(task).calibrated(recorded_calibration(meta))
    if encoded is None:  # a mixed batch's row
        rows = kind.outputs(logits, task.labels, texts)
    else:
        rows = kind.predict_outputs(logits, task.labels, texts, encoded)
    return [{"task": task.name, **row} for row in rows]
