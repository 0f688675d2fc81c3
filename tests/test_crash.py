"""Kill `contlearn train-next` with SIGKILL at random moments; the ledger stays consistent and
a rerun completes the work. CI runs a reduced count; `make stress` sets CONTLEARN_KILLS=20."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from contlearn import artifacts as art
from contlearn.workspace import Workspace
from tests.conftest import write_keyword_task

CLI = [sys.executable, "-m", "contlearn.cli"]
KILLS = int(os.environ.get("CONTLEARN_KILLS", "6"))


def _kill_at(ws: Workspace, delay: float) -> None:
    args = [*CLI, "train-next", "--all", "-q", "-w", str(ws.root)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _check_consistent(ws: Workspace) -> None:
    for task in ws.tasks():
        assert task.status in ("pending", "training", "trained")
        run = ws.ledger.trained_run(task.id)
        assert (task.status == "trained") == (run is not None)
    for run in ws.ledger.runs(purpose="train"):
        records = ws.ledger.artifacts(run.id)
        if run.status != "succeeded":
            assert records == []  # nothing registered by a run that did not finish
        for record in records:
            path = ws.root / record.path
            assert path.is_file() and art.sha256_file(path) == record.sha256
    for folder in ws.artifacts_dir.glob("*"):
        assert not [
            p for p in folder.iterdir() if p.suffix == ".tmp" and not p.name.startswith(".")
        ]


def test_sigkill_at_random_moments_never_corrupts_the_ledger(
    workspace: Workspace, tmp_path: Path
) -> None:
    for i in range(3):
        data = write_keyword_task(tmp_path / f"t{i}", n_train=160, n_dev=48, seed=i)
        workspace.add_task(f"t{i}", data)
    rng = random.Random(1234)
    for _ in range(KILLS):
        _kill_at(workspace, rng.uniform(0.5, 6.0))  # loading, training, writing, committing
        _check_consistent(workspace)
    results = workspace.train_next(all_tasks=True) if _pending(workspace) else []
    _check_consistent(workspace)
    assert [t.status for t in workspace.tasks()] == ["trained"] * 3
    assert all(v["identical"] for r in results for v in r["verifications"])
    abandoned = [r for r in workspace.ledger.runs(purpose="train") if r.status == "failed"]
    assert all("abandoned" in r.error for r in abandoned)
    assert workspace.audit()["verdict"] == "clean"


def _pending(ws: Workspace) -> bool:
    return any(t.status != "trained" for t in ws.tasks())
