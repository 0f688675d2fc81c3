"""The artifact store: the files under a workspace's ``artifacts/`` folder.

A training run's artifact is ``artifacts/<task>/run-<id>/adapter.safetensors`` (the task's
trainable state), ``adapter_config.json`` (the method and family it was made with, its configs,
labels, backbone fingerprint and library versions) and ``dev_logits.safetensors`` (the
post-train dev logits an audit compares against). Each run has its own folder, so a retrained
or removed task's earlier files stay as they were until ``gc``; release 0.1 wrote the files
into ``artifacts/<task>/`` itself. The ledger records each file's path relative to the
workspace and its sha256; the store refuses a missing or modified file before anything reads
it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import files
from .errors import ArtifactError

WEIGHTS = "adapter.safetensors"
CONFIG = "adapter_config.json"
LOGITS = "dev_logits.safetensors"
ROLES = {"weights": WEIGHTS, "config": CONFIG, "logits": LOGITS}
FOLDER = "artifacts"


class ArtifactStore:
    """The artifacts of one workspace, rooted at ``root`` (the workspace folder)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def folder(self) -> Path:
        return self.root / FOLDER

    def task_dir(self, task: str) -> Path:
        return self.folder / task

    def run_dir(self, task: str, run_id: int) -> Path:
        return self.task_dir(task) / f"run-{run_id}"

    def paths(self, task: str, run_id: int) -> dict[str, Path]:
        """Where each role of the artifact that run ``run_id`` writes for ``task`` lives."""
        return {role: self.run_dir(task, run_id) / name for role, name in ROLES.items()}

    def relative(self, path: Path) -> str:
        """``path`` as the ledger records it: relative to the workspace folder."""
        return str(path.relative_to(self.root))

    def resolve(self, recorded: str) -> Path:
        """The file a ledger path names."""
        return self.root / recorded

    def remove_empty(self, folder: Path) -> None:
        """Remove ``folder`` and then its task folder, each only if it is empty."""
        for path in (folder, folder.parent):
            try:
                path.rmdir()
            except OSError:  # not empty, or already gone
                return

    def write(self, path: Path, data: bytes) -> None:
        files.atomic_write(path, data)

    def verify(self, recorded: str, expected_sha256: str, task: str) -> Path:
        """The file at ledger path ``recorded``, refused if missing or modified."""
        path = self.resolve(recorded)
        if not path.is_file():
            raise ArtifactError(
                f"task {task!r}: artifact {path} is missing: restore it from a backup, "
                "or re-register and retrain the task"
            )
        actual = files.sha256_file(path)
        if actual != expected_sha256:
            raise ArtifactError(
                f"task {task!r}: artifact {path} was modified (sha256 {actual[:12]} != recorded "
                f"{expected_sha256[:12]}): restore the original file; it was not loaded"
            )
        return path

    def load_tensors(self, recorded: str) -> dict[str, Any]:
        return files.load_tensors(self.resolve(recorded))

    def load_json(self, recorded: str) -> Any:
        return files.load_json(self.resolve(recorded))
