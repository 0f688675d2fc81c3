"""SIGINT and SIGTERM sent to a real `contlearn` process at seeded moments in each phase: it
stops at a safe point with one line and exit 130 or 143, the run is recorded interrupted with
what it was doing, its task is left pending, the kill harness's invariants hold, and a rerun
completes and audits clean."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from contlearn.api import Workspace
from tests.conftest import write_keyword_task
from tests.test_crash import _check_consistent

CLI = [sys.executable, "-m", "contlearn.cli"]
RNG = random.Random(22)
SIGNALS = (signal.SIGINT, signal.SIGTERM)
LANDED: Counter = Counter()  # (command, phase the run recorded) -> signals


def _start(ws: Workspace, *args: str) -> subprocess.Popen:
    command = [*CLI, *args, "-w", str(ws.root)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)


def _signal(proc: subprocess.Popen, signum: int, within: float) -> str:
    """Send ``signum`` after a seeded delay; returns the one line the process printed."""
    time.sleep(RNG.uniform(0.0, within))
    proc.send_signal(signum)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    opening = "Aborted! stopped by SIGINT" if signum == signal.SIGINT else "Terminated: stopped"
    assert line.startswith(opening), err
    return line


def _running(ws: Workspace, purpose: str = "train"):
    runs = [r for r in ws.ledger.runs(purpose=purpose) if r.status == "running"]
    return runs[-1] if runs else None


def _config_recorded(ws: Workspace) -> bool:
    run = _running(ws)
    return run is not None and bool(run.config)


def _logits_written(ws: Workspace) -> bool:
    run = _running(ws)
    return run is not None and any(ws.artifacts_dir.glob(f"*/run-{run.id}/dev_logits.*"))


PHASES = {  # when the phase has begun, and how long after that the signal may come
    "loading": (lambda ws: _running(ws) is not None, 0.2),
    "training": (_config_recorded, 0.5),
    "verifying": (_logits_written, 0.05),
}


def _interrupt_training(ws: Workspace, phase: str, signum: int) -> None:
    proc = _start(ws, "train-next", "-q", "--epochs", "2")
    ready, within = PHASES[phase]
    _wait_for(proc, lambda: ready(ws))
    _signal(proc, signum, within)
    run = ws.ledger.runs(purpose="train")[-1]
    task = ws.ledger.task_by_id(run.task_id)
    _check_consistent(ws)
    if run.status == "succeeded":  # landed after the commit: the work stands
        LANDED["train-next", "after commit"] += 1
        return
    name = signal.Signals(signum).name
    assert run.status == "interrupted" and run.error.startswith(f"interrupted by {name} while ")
    assert task.status == "pending"
    assert not ws.artifacts_dir.joinpath(task.name, f"run-{run.id}").exists()
    LANDED["train-next", run.error.split(" while ", 1)[1]] += 1


def test_signals_in_each_phase_leave_everything_consistent(
    workspace: Workspace, tmp_path: Path
) -> None:
    ws = workspace
    # an earlier task with a big dev split, so that verifying it takes a while
    ws.add_task("early", write_keyword_task(tmp_path / "early", n_train=64, n_dev=1500))
    ws.train_next(epochs=1)
    for i, phase in enumerate(PHASES):
        name = f"t{i}"
        ws.add_task(name, write_keyword_task(tmp_path / name, n_train=400, n_dev=32, seed=i))
        _interrupt_training(ws, phase, SIGNALS[i % 2])
    _interrupt_audit(ws, signal.SIGTERM)
    _interrupt_predict(ws, tmp_path, signal.SIGINT)
    _interrupt_registering(ws, tmp_path, signal.SIGTERM)

    results = ws.train_next(all_tasks=True, epochs=1)
    _check_consistent(ws)
    assert all(t.status == "trained" for t in ws.tasks())
    assert all(v["identical"] for r in results for v in r["verifications"])
    assert ws.audit()["verdict"] == "clean"
    print("signals landed:", dict(LANDED))
    assert sum(LANDED.values()) == 6


def _interrupt_audit(ws: Workspace, signum: int) -> None:
    proc = _start(ws, "audit", "-q")
    _wait_for(proc, lambda: _running(ws, "audit") is not None)
    _signal(proc, signum, 0.2)
    run = ws.ledger.runs(purpose="audit")[-1]
    assert run.status in ("interrupted", "succeeded"), run
    LANDED["audit", "auditing" if run.status == "interrupted" else "after commit"] += 1


def _interrupt_predict(ws: Workspace, tmp_path: Path, signum: int) -> None:
    rows = tmp_path / "many.jsonl"
    rows.write_text('{"text": "a good film"}\n' * 8_000)
    out = tmp_path / "predictions" / "labels.jsonl"
    out.parent.mkdir()
    proc = _start(ws, "predict", "early", "--input", str(rows), "--output", str(out))
    _wait_for(proc, lambda: _progress_shown(proc))
    _signal(proc, signum, 0.3)
    assert list(out.parent.iterdir()) == []  # no output, no temporary file
    LANDED["predict", "predicting"] += 1


def _progress_shown(proc: subprocess.Popen) -> bool:
    """Predicting has begun: with standard error a pipe, no bars are drawn, and the one line
    saying the rows are being predicted is printed (stderr is read from here on by
    ``communicate``)."""
    fd = proc.stderr.fileno()
    os.set_blocking(fd, False)
    try:
        return bool(os.read(fd, 4096))
    except BlockingIOError:
        return False


def _interrupt_registering(ws: Workspace, tmp_path: Path, signum: int) -> None:
    # big enough that reading it outlasts the wait for it to be open, and the signal's delay
    data = write_keyword_task(tmp_path / "late", n_train=300_000, n_dev=32, seed=9)
    proc = _start(ws, "add-task", "late", "--data", str(data))
    train = str(data / "train.csv")
    _wait_for(proc, lambda: _has_open(proc.pid, train))
    _signal(proc, signum, 0.02)
    assert "late" not in [t.name for t in ws.tasks()]
    LANDED["add-task", "registering"] += 1


def _has_open(pid: int, path: str) -> bool:
    try:
        return any(
            os.readlink(f"/proc/{pid}/fd/{fd}") == path for fd in os.listdir(f"/proc/{pid}/fd")
        )
    except OSError:
        return False
