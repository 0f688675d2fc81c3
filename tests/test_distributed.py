"""Data-parallel training of one task with torch.distributed (gloo, 2 processes on this CPU):
the run is recorded with its world, verification is identical, the loss curve matches one
process on the same global batch, and a rank killed mid-training fails the run on every rank in
bounded time, after which a rerun completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from contlearn.api import Workspace
from contlearn.cli import main
from tests.conftest import save_tiny_backbone, write_keyword_task

CLI = [sys.executable, "-m", "contlearn.cli"]
ENV = {k: v for k, v in os.environ.items() if k != "CONTLEARN_WORKSPACE"}


@pytest.fixture(scope="module")
def still_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny backbone without dropout anywhere, so that training is deterministic."""
    folder = save_tiny_backbone(tmp_path_factory.mktemp("still") / "bb")
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def workspace_on(root: Path, backbone: Path, data: Path) -> Workspace:
    ws = Workspace.create(root, backbone=str(backbone))
    text = (root / "tasks.toml").read_text().replace("dropout = 0.1", "dropout = 0.0")
    (root / "tasks.toml").write_text(text.replace("max_length = 128", "max_length = 32"))
    ws = Workspace.open(root)
    ws.add_task("a", data)
    return ws


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=ENV, timeout=timeout)


def test_two_processes_train_like_one_on_the_same_global_batch(
    still_backbone: Path, tmp_path: Path
) -> None:
    data = write_keyword_task(tmp_path / "data", n_train=96, seed=3)
    two = workspace_on(tmp_path / "two", still_backbone, data)
    one = workspace_on(tmp_path / "one", still_backbone, data)
    common = ["--device", "cpu", "--epochs", "3", "--json", "-q"]
    done = run("train-next", "--nproc", "2", "--batch-size", "8", *common, "-w", str(two.root))
    assert done.returncode == 0, done.stderr
    (parallel,) = json.loads(done.stdout)["runs"]  # rank 1 prints nothing
    (single,) = one.train_next(device="cpu", epochs=3, batch_size=16)
    assert parallel["world_size"] == 2 and parallel["allreduce_bytes_per_step"] == 4 * (
        parallel["trainable_params"] + 1
    )
    for mine, theirs in zip(parallel["history"], single["history"], strict=True):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-5)
    run_record = two.ledger.trained_run(two.ledger.task("a").id)
    assert run_record.config["distributed"] == {
        "world_size": 2,
        "backend": "gloo",
        "global_batch": 16,
    }
    assert run_record.config["train"]["batch_size"] == 8
    assert two.audit()["verdict"] == "clean"  # rank 0's files reload in one process


def test_a_second_task_trained_in_parallel_verifies_the_first(
    still_backbone: Path, tmp_path: Path
) -> None:
    ws = workspace_on(tmp_path / "ws", still_backbone, write_keyword_task(tmp_path / "a", seed=1))
    ws.add_task("b", write_keyword_task(tmp_path / "b", seed=2, keywords={"x": "cat", "y": "dog"}))
    done = run(
        "train-next",
        "--all",
        "--nproc",
        "2",
        "--device",
        "cpu",
        "--epochs",
        "1",
        "--json",
        "-w",
        str(ws.root),
    )
    assert done.returncode == 0, done.stderr
    first, second = json.loads(done.stdout)["runs"]
    assert (first["task"], second["task"]) == ("a", "b")
    assert [(v["task"], v["identical"]) for v in second["verifications"]] == [("a", True)]


def _rank_of(launcher: int, rank: int = 1) -> int | None:
    """The pid of rank ``rank`` among the descendants of process ``launcher``."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            if f"RANK={rank}".encode() in environ and _descends_from(int(proc.name), launcher):
                return int(proc.name)
        except OSError:
            continue
    return None


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return False


@pytest.mark.parametrize("rank", [1, 0])
def test_a_killed_rank_fails_the_run_on_every_rank_and_a_rerun_completes(
    still_backbone: Path, tmp_path: Path, rank: int
) -> None:
    """Rank 1 killed: rank 0 records the run failed; rank 0 killed (it can record nothing):
    the launcher records it once torchrun has stopped every process."""
    data = write_keyword_task(tmp_path / "data", n_train=96, seed=4)
    ws = workspace_on(tmp_path / "ws", still_backbone, data)
    args = ["train-next", "--nproc", "2", "--device", "cpu", "--epochs", "400", "--batch-size", "4"]
    launcher = subprocess.Popen(
        [*CLI, *args, "-q", "-w", str(ws.root)], env=ENV, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    rank_one = None
    while time.monotonic() < deadline and rank_one is None:
        running = [r for r in ws.ledger.runs(purpose="train") if r.status == "running"]
        rank_one = _rank_of(launcher.pid, rank) if running and running[0].config else None
        time.sleep(0.2)
    assert rank_one is not None, "training never started"
    time.sleep(1.0)  # well inside training
    killed = time.monotonic()
    os.kill(rank_one, signal.SIGKILL)
    launcher.wait(timeout=120)
    assert launcher.returncode == 1 and time.monotonic() - killed < 120
    assert launcher.stderr.read().splitlines()[-1] == (
        "Error: the data-parallel training stopped (torchrun exit 1); a run it had not finished "
        "is recorded failed and its task is pending again: `contlearn runs` shows each run's "
        "status and error"
    )
    (run_record,) = ws.ledger.runs(purpose="train")
    assert run_record.status == "failed", run_record
    if rank == 0:  # recorded by the launcher
        assert run_record.error == "the data-parallel training stopped (torchrun exit 1)"
    assert ws.ledger.task("a").status == "pending" and ws.ledger.artifacts(run_record.id) == []
    result = CliRunner().invoke(main, ["train-next", "--epochs", "1", "-q", "-w", str(ws.root)])
    assert result.exit_code == 0, result.output
    assert ws.ledger.task("a").status == "trained"


def test_bad_process_counts_are_refused(still_backbone: Path, tmp_path: Path) -> None:
    ws = workspace_on(tmp_path / "ws", still_backbone, write_keyword_task(tmp_path / "a"))
    result = CliRunner().invoke(main, ["train-next", "--nproc", "0", "-w", str(ws.root)])
    assert result.exit_code == 2 and "Invalid value for '--nproc'" in result.output
    assert ws.ledger.runs() == []
