"""Several `contlearn train-next --all` processes at once never train a task twice."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from contlearn.api import Workspace
from tests.conftest import write_keyword_task

CLI = [sys.executable, "-m", "contlearn.cli"]


def _workers(ws: Workspace, count: int) -> None:
    args = [*CLI, "train-next", "--all", "-q", "--epochs", "1", "-w", str(ws.root)]
    procs = [
        subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    codes = [p.returncode for p in procs]
    # A worker that found the queue already drained exits 1 with "no pending task".
    for code, (_out, err) in zip(codes, outputs, strict=True):
        assert code == 0 or "no pending task" in err, err


def _check_each_trained_once(ws: Workspace, names: list[str]) -> None:
    tasks = ws.tasks()
    assert [t.status for t in tasks] == ["trained"] * len(names)
    runs = ws.ledger.runs(purpose="train")
    assert all(r.status == "succeeded" for r in runs)
    per_task = Counter(ws.ledger.task_by_id(r.task_id).name for r in runs)
    assert per_task == Counter(names)  # exactly one run each
    ordered = sorted(runs, key=lambda r: r.finished_at)
    checks = [ws.ledger.evaluations(run_id=r.id, kind="verification") for r in ordered]
    for finished_before, run_checks in enumerate(checks):
        # a run verifies the tasks already trained when it finished training (never itself)
        assert len(run_checks) <= finished_before and all(c.identical for c in run_checks)
    assert sum(map(len, checks)) >= 1
    assert ws.audit()["verdict"] == "clean"


def _register(ws: Workspace, tmp_path: Path, count: int) -> list[str]:
    names = [f"t{i}" for i in range(count)]
    for i, name in enumerate(names):
        ws.add_task(name, write_keyword_task(tmp_path / name, n_train=64, n_dev=16, seed=i))
    return names


def test_two_workers_on_sqlite(workspace: Workspace, tmp_path: Path) -> None:
    names = _register(workspace, tmp_path, 4)
    _workers(workspace, 2)
    _check_each_trained_once(workspace, names)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_four_workers_on_postgresql(db_url: str, tiny_backbone: Path, tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws", backbone=str(tiny_backbone), db=db_url)
    names = _register(ws, tmp_path, 6)
    _workers(ws, 4)
    _check_each_trained_once(ws, names)
