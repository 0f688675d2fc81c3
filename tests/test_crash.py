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

from contlearn.api import Workspace
from contlearn.files import sha256_file
from tests.conftest import write_keyword_task

CLI = [sys.executable, "-m", "contlearn.cli"]
KILLS = int(os.environ.get("CONTLEARN_KILLS", "6"))


def _kill_at(ws: Workspace, delay: float, *, after_claim: bool) -> None:
    """SIGKILL a worker ``delay`` seconds after it started, or after it claimed a task."""
    args = [*CLI, "train-next", "--all", "-q", "-w", str(ws.root)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if after_claim:
        _wait_for_claim(ws, proc)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _wait_for_claim(ws: Workspace, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if any(r.pid == proc.pid for r in ws.ledger.runs(purpose="train")):
            return
        time.sleep(0.05)


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
            assert path.is_file() and sha256_file(path) == record.sha256
    for folder in ws.artifacts_dir.glob("*"):
        assert not [
            p for p in folder.iterdir() if p.suffix == ".tmp" and not p.name.startswith(".")
        ]


def test_sigkill_at_random_moments_never_corrupts_the_ledger(
    workspace: Workspace, tmp_path: Path
) -> None:
    rng = random.Random(1234)
    for i in range(KILLS):
        if not _pending(workspace):  # keep two tasks queued for the next victim
            _add(workspace, tmp_path, f"t{i}a", seed=i)
            _add(workspace, tmp_path, f"t{i}b", seed=100 + i)
        # one kill in four while starting up; the rest at a random moment after the claim:
        # loading the backbone, training, writing the artifact, verifying, committing
        before_claim = i % 4 == 3
        _kill_at(workspace, rng.uniform(0.0, 4.0), after_claim=not before_claim)
        _check_consistent(workspace)
    results = workspace.train_next(all_tasks=True) if _pending(workspace) else []
    _check_consistent(workspace)
    assert all(t.status == "trained" for t in workspace.tasks())
    assert all(v["identical"] for r in results for v in r["verifications"])
    abandoned = [r for r in workspace.ledger.runs(purpose="train") if r.status == "failed"]
    assert all("abandoned" in r.error for r in abandoned)
    assert len(abandoned) >= KILLS // 2  # the kills really hit claimed runs, taken over later
    assert workspace.audit()["verdict"] == "clean"


def _add(ws: Workspace, tmp_path: Path, name: str, seed: int) -> None:
    # big enough that a run takes a few seconds, so kills land inside it
    ws.add_task(name, write_keyword_task(tmp_path / name, n_train=4000, n_dev=200, seed=seed))


def _pending(ws: Workspace) -> bool:
    return any(t.status != "trained" for t in ws.tasks())
