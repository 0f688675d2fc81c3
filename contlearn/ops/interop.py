"""``export`` and ``import-adapter``: a trained task written as an AdapterHub or peft folder
(with a provenance file), and such a folder registered as a task.

An import reads and converts the whole folder and validates the task's data before anything is
written; then, like ``train-next``, it opens a run, evaluates the task on its dev split, writes
its artifact, verifies every earlier task bit-identical and records it all. From then on the
task is like any other.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from .. import files, kinds
from ..artifacts import ArtifactStore
from ..config import TaskEntry, WorkspaceConfig, with_overrides
from ..errors import ArtifactError, ConfigError, InteropError, TaskExists, TaskNotTrained
from ..interop import adapterhub, folder, peft_format
from ..interop.names import naming
from ..interop.parts import a, base_model_warnings, norms_in, norms_out
from ..kinds import kind_of
from ..ledger.store import Ledger
from ..model.methods.registry import UNNAMED, method_config
from ..naming import check_task_name
from ..runtime.current import CALIBRATION, recorded_calibration, trained_artifacts
from ..runtime.events import QUIET, Events
from ..runtime.runs import stamp
from ..runtime.settings import resolve
from ..version import library_versions

FORMATS = {"adapterhub": adapterhub, "peft": peft_format}


def export_task(
    ledger: Ledger,
    store: ArtifactStore,
    name: str,
    fmt: str,
    out: Path,
    *,
    include_norms: bool = False,
) -> dict[str, Any]:
    """Write trained task ``name`` as a ``fmt`` folder at ``out`` (new, or empty)."""
    task = ledger.task(name)
    if task.status != "trained":
        raise TaskNotTrained(f"task {name!r} is {task.status}: train it before exporting it")
    run = ledger.trained_run(task.id)
    recorded = trained_artifacts(ledger, task)
    meta = _recorded_meta(store, recorded, name)
    adapter = method_config(meta.get("method", UNNAMED), meta["adapter"])
    _check_format(fmt)
    _check_kind(kind_of(task), fmt, name)  # first: no method or option gives it a head
    _check_method(adapter.method, fmt)  # --include-norms cannot fix another method
    _check_norms(adapter, include_norms, fmt, name)
    from ..runtime.context import open_context

    ctx = open_context(ledger, store, "cpu")
    ctx.load_task(task)
    names = naming(ctx.model)
    module = FORMATS[fmt]
    head = kind_of(task).role
    module.check_exportable(adapter.method, adapter, names, head)
    state = ctx.model.task_state(name)
    about = {
        "model_name": ctx.backbone.identity,
        "labels": task.labels,
        "dropout": meta["train"]["dropout"],
        "head": head,
    }
    content = (
        module.export(state, adapter, names, name, about)
        if fmt == "adapterhub"
        else module.export(state, adapter, names, about)
    )
    norms = norms_out(state, adapter.method, names)
    if norms:
        content[folder.NORMS] = norms
    content[folder.PROVENANCE] = _provenance(ctx, task, run, recorded, adapter, fmt, bool(norms))
    chosen = recorded_calibration(meta)
    if chosen is not None:  # an importing workspace answers as this one does
        content[folder.PROVENANCE][CALIBRATION] = chosen
    written = folder.write(out, _serialised(content))
    return {"task": name, "format": fmt, "out": str(out), "files": [p.name for p in written]}


def _recorded_meta(store: ArtifactStore, recorded: dict, name: str) -> dict[str, Any]:
    config = recorded["config"]
    store.verify(config.path, config.sha256, name)
    meta = store.load_json(config.path)
    if not isinstance(meta, dict) or not {"adapter", "train"} <= set(meta):
        raise ArtifactError(f"task {name!r}: {config.path} is not an adapter config")
    return meta


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise InteropError(f"unknown format {fmt!r}: use adapterhub or peft")


def _check_method(method: str, fmt: str) -> None:
    if method == "fusion":
        raise InteropError(
            f"method 'fusion' cannot be exported as {fmt}: its attention reads other tasks' "
            "adapters, which the export would not carry; export the fused tasks one by one"
        )
    known = adapterhub.PRESETS if fmt == "adapterhub" else peft_format.KINDS
    if method not in known:
        other = "peft" if fmt == "adapterhub" else "adapterhub"
        other_known = peft_format.KINDS if fmt == "adapterhub" else adapterhub.PRESETS
        hint = f"use --format {other}" if method in other_known else "no format holds it"
        raise InteropError(
            f"method {method!r} cannot be exported as {fmt} ({fmt} holds "
            f"{', '.join(known)}): {hint}"
        )


def _check_kind(kind: Any, fmt: str, name: str) -> None:
    """The format has a head of the task's kind (peft's task types, AdapterHub's head types)."""
    holds = FORMATS[fmt].HEAD_TYPES
    if kind.role not in holds:
        raise InteropError(
            f"task {name!r} is {a(kind.name)} task, whose head {fmt} has no place for ({fmt} "
            f"holds {', '.join(holds.values())} heads): it cannot be exported as {fmt}"
        )


def _check_norms(adapter: Any, include_norms: bool, fmt: str, name: str) -> None:
    if getattr(adapter, "norms", "shared") == "task" and not include_norms:
        raise InteropError(
            f'task {name!r} has its own LayerNorm copies (norms = "task"), which {fmt} '
            f"folders have no place for: add --include-norms to write them to "
            f"{folder.NORMS} (README: Moving adapters in and out), or train with "
            'norms = "shared"'
        )


def _provenance(ctx, task, run, recorded, adapter, fmt: str, norms: bool) -> dict[str, Any]:
    meta_max_length = run.config.get("train", {}).get("max_length")
    return {
        "exported_by": "contlearn",
        "format": fmt,
        "task": task.name,
        "run_id": run.id,
        "artifact_sha256": {role: record.sha256 for role, record in recorded.items()},
        "method": adapter.method,
        "adapter": asdict(adapter),
        "labels": task.labels,
        "problem_type": task.problem_type,
        "kind": kind_of(task).name,
        "max_length": meta_max_length,
        "backbone": {
            "identity": ctx.backbone.identity,
            "fingerprint": ctx.backbone.fingerprint,
            "family": ctx.model.family.name,
        },
        "layer_norms": folder.NORMS if norms else None,
        "apply_layer_norms": (
            "load this file into the model after the adapter, with "
            "model.load_state_dict(safetensors.torch.load_file(PATH), strict=False); it "
            "replaces the backbone's LayerNorms, so use that model for this adapter only"
            if norms
            else None
        ),
        "contlearn_version": library_versions().get("contlearn"),
        "versions": library_versions(),
    }


def _serialised(content: dict[str, Any]) -> dict[str, bytes]:
    return {
        name: files.json_bytes(value)
        if name.endswith(".json")
        else files.tensors_bytes(value, {"format": "pt"})
        for name, value in content.items()
    }


# -- import -----------------------------------------------------------------------------------
def import_adapter(
    ledger: Ledger,
    store: ArtifactStore,
    defaults: WorkspaceConfig,
    name: str,
    source: Path,
    data: Path,
    *,
    fmt: str | None = None,
    max_length: int | None = None,
    device: str | None = None,
    events: Events = QUIET,
) -> dict[str, Any]:
    """Register task ``name`` from the adapter folder ``source`` and the data folder ``data``,
    evaluated, recorded and with every earlier task verified; returns the run's result."""
    from .intake import read_entry, task_spec

    if name in {t.name for t in ledger.tasks()}:
        raise TaskExists(f"task {name!r} is already registered: choose another name")
    found = folder.read(Path(source), fmt)
    chosen = _calibration(found)
    max_length = max_length or (found.provenance or {}).get("max_length")
    entry = TaskEntry(
        name=check_task_name(name), data=str(Path(data).resolve()), max_length=max_length
    )
    backbone = ledger.backbone()
    settings = resolve(defaults, {}, device, backbone.dtype)
    task_data = read_entry(defaults, entry)
    spec = task_spec(entry, task_data)
    from ..runtime.context import build_context

    ctx = build_context(ledger, store, settings.target, defaults)
    converted = convert(ctx.model, found, spec)
    spec["settings"] |= {"method": converted["method"], "options": converted["options"]}
    adapter = converted["config"]
    train_cfg = with_overrides(defaults.train, max_length=max_length)
    train_cfg = replace(train_cfg, precision=ctx.precision(train_cfg.precision))
    _load(ctx, name, converted["state"], spec, adapter, train_cfg.dropout)
    imported = _imported(found, converted, ctx.backbone.identity)
    if chosen is not None:
        imported[CALIBRATION] = chosen
    task, run_id = ledger.add_claimed_task(spec, _claim(ctx, train_cfg, adapter, imported))
    return _record(ctx, task, run_id, train_cfg, adapter, imported, events, defaults.verify)


def _load(ctx, name: str, state: dict, spec: dict, adapter: Any, dropout: float) -> None:
    """The converted state loaded strictly onto the backbone (in memory only)."""
    try:
        ctx.model.load_task(
            name,
            state,
            num_outputs=kinds.get(spec["kind"]).num_outputs(spec["labels"]),
            adapter=adapter,
            dropout=dropout,
            head=kinds.get(spec["kind"]).head,
        )
    except ArtifactError as exc:
        detail = str(exc).split(": ", 1)[-1]
        raise InteropError(
            f"the adapter's keys do not map onto a {adapter.method} task on this backbone "
            f"({detail}): export it again from this workspace's base model"
        ) from exc


def convert(model: Any, found: folder.Folder, spec: dict[str, Any]) -> dict[str, Any]:
    """The folder as a contlearn method config and task state for the task ``spec`` describes,
    checked to load strictly."""
    names = naming(model)
    kind = kinds.get(spec["kind"])
    converted = FORMATS[found.format].to_contlearn(
        found, names, spec["labels"], model.backbone, kind
    )
    if found.norms is not None:
        converted["state"] |= norms_in(found.norms, converted["method"], names)
        converted["options"]["norms"] = "task"
    try:
        converted["config"] = method_config(converted["method"], converted["options"])
        from ..model.methods.common import check_depth

        check_depth(converted["config"], names.num_layers)
    except ConfigError as exc:
        raise InteropError(
            f"{found.path} converts to no valid {converted['method']} config: {exc}"
        ) from exc
    return converted


def _imported(found: folder.Folder, converted: dict[str, Any], identity: str) -> dict[str, Any]:
    """What the run and artifact record about where the adapter came from: its base model
    (a warning when it names none or another model), the head layers taken from the backbone."""
    weights = {"adapterhub": "adapter.safetensors", "peft": "adapter_model.safetensors"}
    return {
        "format": found.format,
        "source": str(found.path.resolve()),
        "base_model": converted["base_model"],
        "from_backbone": converted["from_backbone"],
        "warnings": base_model_warnings(converted["base_model"], identity),
        "weights_sha256": files.sha256_file(found.path / weights[found.format]),
        "config": found.config,
    }


def _calibration(found: folder.Folder) -> dict[str, float] | None:
    """What the exporting workspace's task chose on its selection split (a SQuAD v2 task's
    no-answer threshold), as its provenance file records it; None when it records nothing."""
    chosen = (found.provenance or {}).get(CALIBRATION)
    if chosen is None:
        return None
    if not isinstance(chosen, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in chosen.values()
    ):
        raise InteropError(
            f"{found.path / folder.PROVENANCE}: {CALIBRATION!r} is not an object of numbers: "
            "export the task again, or delete the key to answer by the defaults"
        )
    return chosen


def _claim(ctx, train_cfg, adapter, imported) -> dict[str, Any]:
    from ..runtime.train_task import run_config

    values = run_config(ctx, train_cfg, adapter)
    values["config"] |= {"imported": imported}
    return {"method": "adapter", **values} | stamp()


def _record(ctx, task, run_id, train_cfg, adapter, imported, events, verify) -> dict[str, Any]:
    """Evaluate, write, verify and record, as ``train_one`` does after training; any failure
    undoes the import (its run recorded failed, the task taken out of the sequence)."""
    from ..runtime.context import read_task_data
    from ..runtime.evaluate import evaluate_task, evaluation_record
    from ..runtime.train_task import undo_run, verification_row, write_artifact
    from ..runtime.verify import require_identical, verify_earlier

    written: list[Path] = []
    verifications: list = []
    try:
        dev = ctx.dev_split(
            task,
            train_cfg.max_length,
            read_task_data(task),
            max_new_tokens=train_cfg.max_new_tokens,
        )
        chosen = imported.get(CALIBRATION)
        final = evaluate_task(ctx, task, dev, events=events, calibration=chosen)
        extra = {"imported": _described(imported)}
        if chosen is not None:
            extra[CALIBRATION] = chosen
        records = write_artifact(ctx, task, run_id, train_cfg, adapter, final, written, extra)
        verifications = verify_earlier(ctx, task, settings=verify, events=events)
        require_identical(ctx.ledger, task, verifications)
        ctx.check_backbone()
    except BaseException as exc:
        undo_run(ctx, task, run_id, exc, written, verifications, None)
        ctx.ledger.remove_task(task.name)
        raise
    weights = next(r for r in records if r.role == "weights")
    result = {
        "task": task.name,
        "run_id": run_id,
        "imported_from": _described(imported),
        "method": adapter.method,
        "metrics": final.metrics,
        "metric": task.metric,
        "logits_sha256": final.logits_sha256,
        "trainable_params": weights.trainable_params,
        "trainable_pct": 100.0 * weights.trainable_params / weights.backbone_params,
        "best_epoch": None,
        "history": [],
        "seconds": 0.0,
        "warnings": imported["warnings"],
        "verifications": [verification_row(ctx.ledger, v).as_dict() for v in verifications],
    }
    post = evaluation_record(task, final, "post-train")
    ctx.ledger.finish_run(
        run_id,
        status="succeeded",
        task_status="trained",
        artifacts=records,
        evaluations=[post, *verifications],
        seconds=0.0,
        examples=0,
        result=result,
    )
    return result


def _described(imported: dict[str, Any]) -> dict[str, Any]:
    """Where an imported adapter came from, as its run and artifact record it (its folder's
    config and what it chose are recorded apart)."""
    return {k: v for k, v in imported.items() if k not in ("config", CALIBRATION)}
