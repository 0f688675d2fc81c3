"""A task's life after training: taking it out of the sequence, and collecting the files that no
task uses any more (superseded runs, removed tasks, leftovers of failed or killed runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..artifacts import ArtifactStore
from ..ledger.store import Ledger
from ..runtime.runs import is_abandoned


def remove_task(ledger: Ledger, name: str) -> dict[str, Any]:
    """Take task ``name`` out of the sequence (one transaction); its history stays. Refused
    while a fusion task reads its adapters (remove that one first)."""
    from ..runtime.fusion import refuse_if_read

    refuse_if_read(ledger, name, "remove")
    task = ledger.remove_task(name, is_abandoned)
    runs = ledger.runs(task_id=task.id)
    return {"task": task.name, "removed_at": task.removed_at, "runs": len(runs)}


def collect_garbage(ledger: Ledger, store: ArtifactStore, *, dry_run: bool = False) -> dict:
    """Delete the artifact files no task uses and say how many bytes that freed.

    The ledger first records the artifacts as deleted (one transaction), then the files go, so
    a crash in between leaves only unregistered files, which the next gc deletes. Files in the
    folder of a run that is still going are never touched."""
    garbage = ledger.garbage_artifacts()
    paths = [store.resolve(a.path) for a in garbage]
    strays = _strays(ledger, store, set(paths))
    files = [p for p in paths if p.is_file()] + strays
    freed = sum(p.stat().st_size for p in files)
    if not dry_run:
        if garbage:
            ledger.mark_deleted([a.id for a in garbage])
        for path in files:
            path.unlink(missing_ok=True)
            store.remove_empty(path.parent)
    return {
        "artifacts": len(garbage),
        "files": len(files),
        "bytes": freed,
        "dry_run": dry_run,
        "deleted": [store.relative(p) for p in files],
    }


def _strays(ledger: Ledger, store: ArtifactStore, garbage: set[Path]) -> list[Path]:
    """Files in the task folders that no artifact records: temporary files and leftovers of
    runs that failed or were killed (not those of a run still going)."""
    live = {store.resolve(a.path) for a in ledger.artifacts_on_disk()} - garbage
    running = {f"run-{r.id}" for r in ledger.runs(purpose="train") if r.status == "running"}
    found = []
    for task_dir in sorted(p for p in store.folder.glob("*") if _task_folder(p)):
        for path in sorted(task_dir.rglob("*")):
            inside_running = any(part in running for part in path.relative_to(task_dir).parts)
            if path.is_file() and path not in live and path not in garbage and not inside_running:
                found.append(path)
    return found


def _task_folder(path: Path) -> bool:
    return path.is_dir() and not path.name.startswith(".")  # .compare-N: a comparison's own
