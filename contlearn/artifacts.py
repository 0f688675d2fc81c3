"""Files under ``artifacts/<task>/``: written atomically, checked by sha256 before loading.

A task's artifact is ``adapter.safetensors`` (its adapters, LayerNorm copies and head),
``adapter_config.json`` (adapter and training config, labels, backbone fingerprint, versions)
and ``dev_logits.safetensors`` (the post-train dev logits an audit compares against).
Loading never unpickles: safetensors and JSON only.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import ArtifactError

WEIGHTS = "adapter.safetensors"
CONFIG = "adapter_config.json"
LOGITS = "dev_logits.safetensors"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tensors_bytes(tensors: dict[str, Any], metadata: dict[str, str] | None = None) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata)


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8")


def verify(path: Path, expected_sha256: str, task: str) -> None:
    """Refuse a missing or modified file before anything reads it."""
    if not path.is_file():
        raise ArtifactError(
            f"task {task!r}: artifact {path} is missing: restore it from a backup, "
            "or re-register and retrain the task"
        )
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise ArtifactError(
            f"task {task!r}: artifact {path} was modified (sha256 {actual[:12]} != recorded "
            f"{expected_sha256[:12]}): restore the original file; it was not loaded"
        )


def load_tensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read {path}: {exc}") from exc


def load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read {path}: {exc}") from exc


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
