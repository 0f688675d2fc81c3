"""AdapterHub and peft folders on disk: which format a folder holds, its JSON and safetensors
read with one-line errors (a pickle is refused, never unpickled), and a new folder written as a
whole (a temporary folder renamed into place, so a failed export leaves nothing)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import files
from ..errors import InteropError

FORMATS = ("adapterhub", "peft")
# (config file, weights file, the pickle its library wrote before safetensors) per format
LAYOUT = {
    "adapterhub": ("adapter_config.json", "adapter.safetensors", "pytorch_adapter.bin"),
    "peft": ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"),
}
HEAD = ("head_config.json", "model_head.safetensors", "pytorch_model_head.bin")  # AdapterHub's
PROVENANCE = "contlearn_export.json"
MODEL_CONFIG = "config.json"  # a transformers config saved beside a peft adapter (id2label)
NORMS = "contlearn_layer_norms.safetensors"


@dataclass(frozen=True)
class Folder:
    """A folder read back: its format, config, weights, and the optional extras (peft's:
    the model's ``config.json``, when it was saved beside the adapter)."""

    path: Path
    format: str
    config: dict[str, Any]
    weights: dict[str, Any]
    head_config: dict[str, Any] | None = None
    head: dict[str, Any] | None = None
    norms: dict[str, Any] | None = None
    provenance: dict[str, Any] | None = None
    model_config: dict[str, Any] | None = None


def detect(path: Path) -> str:
    """The format of the folder at ``path`` from its ``adapter_config.json``: peft's records a
    ``peft_type``, AdapterHub's a ``config`` and ``model_class``."""
    if not path.is_dir():
        raise InteropError(f"{path} is not a folder: give the folder the adapter was saved to")
    config_file = path / "adapter_config.json"
    if not config_file.is_file():
        raise InteropError(
            f"{path} has no adapter_config.json: it is not an AdapterHub or peft adapter folder "
            "(save it with model.save_adapter(DIR, NAME) or peft's save_pretrained(DIR))"
        )
    config = read_json(config_file)
    if "peft_type" in config:
        return "peft"
    if isinstance(config.get("config"), dict) and "model_class" in config:
        return "adapterhub"
    raise InteropError(
        f"{config_file} is neither AdapterHub's (config, model_class) nor peft's (peft_type): "
        "give a folder saved by one of them"
    )


def read(path: Path, expected: str | None = None) -> Folder:
    """Read the folder at ``path``: its format detected, and refused if ``expected`` differs."""
    found = detect(path)
    if expected is not None and found != expected:
        raise InteropError(
            f"{path} holds a {found} adapter, not {expected}: use --format {found} "
            "(or leave --format out to detect it)"
        )
    config_name, weights_name, pickle_name = LAYOUT[found]
    extras: dict[str, Any] = {}
    if found == "adapterhub" and (path / HEAD[0]).is_file():
        extras["head_config"] = read_json(path / HEAD[0])
        extras["head"] = read_tensors(path, HEAD[1], HEAD[2])
    if (path / NORMS).is_file():
        extras["norms"] = read_tensors(path, NORMS, None)
    if (path / PROVENANCE).is_file():
        extras["provenance"] = read_json(path / PROVENANCE)
    if found == "peft" and (path / MODEL_CONFIG).is_file():
        extras["model_config"] = read_json(path / MODEL_CONFIG)
    weights = read_tensors(path, weights_name, pickle_name)
    return Folder(path, found, read_json(path / config_name), weights, **extras)


def read_json(file: Path) -> dict[str, Any]:
    try:
        value = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InteropError(f"{file} is not valid JSON ({exc}): re-save the adapter") from exc
    if not isinstance(value, dict):
        raise InteropError(f"{file} holds no JSON object: re-save the adapter")
    return value


def read_tensors(path: Path, name: str, pickle_name: str | None) -> dict[str, Any]:
    """The safetensors file ``name`` in ``path``; a folder with only the pickle is refused."""
    file = path / name
    if not file.is_file():
        if pickle_name is not None and (path / pickle_name).is_file():
            raise InteropError(
                f"{path} holds {pickle_name}, a pickle, and no {name}: contlearn never unpickles "
                f"weights; re-save it as safetensors (use_safetensors=True or "
                "safe_serialization=True) and import that"
            )
        raise InteropError(f"{path} has no {name}: re-save the adapter with its weights")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        detail = " ".join(str(exc).split())[:120]
        raise InteropError(
            f"{file} is corrupt or truncated ({detail}): re-save or copy it again"
        ) from exc


def write(out: Path, blobs: dict[str, bytes]) -> list[Path]:
    """Write the files ``blobs`` (name -> bytes) as the new folder ``out``, all or nothing."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InteropError(f"{out} already exists and is not empty: give a new --out folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        for name, data in blobs.items():
            files.atomic_write(tmp / name, data)
        os.chmod(tmp, 0o777 & ~_umask())
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [out / name for name in blobs]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
