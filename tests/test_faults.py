"""Faults from the environment, made real: a small tmpfs filled until writes fail with ENOSPC, a
read-only mount (EROFS), a data file refused to a process without root's permission bypass
(EACCES), an SQLite ledger locked by another connection, an accelerator out of memory. Each
gives one line and its exit code, the run recorded failed with that reason, nothing
half-written, and a rerun that completes once the cause is gone."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from contlearn.api import Workspace
from tests.conftest import invoke, write_keyword_task
from tests.test_crash import _check_consistent

CLI = [sys.executable, "-m", "contlearn.cli"]


def _mount(folder: Path, options: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here ({done.stderr.strip()})")


def _remount(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True)


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MB tmpfs, unmounted afterwards."""
    disk = tmp_path / "disk"
    _mount(disk, "size=8m")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path, leave: int = 0) -> Path:
    """Take all but ``leave`` bytes of ``disk`` with one file; returns it."""
    filler = disk / "filler"
    with open(filler, "ab") as handle:
        free = shutil.disk_usage(disk).free
        if free > leave:
            os.posix_fallocate(handle.fileno(), filler.stat().st_size, free - leave)
    return filler


def one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


def _workspace_on(root: Path, backbone: Path) -> Workspace:
    Workspace.create(root, backbone=str(backbone))
    text = (root / "tasks.toml").read_text().replace("max_length = 128", "max_length = 32")
    (root / "tasks.toml").write_text(text)
    return Workspace.open(root)


def _last_run(ws: Workspace):
    return ws.ledger.runs(purpose="train")[-1]


def _assert_clean_rerun(ws: Workspace) -> None:
    result = invoke(ws, "train-next", "--all", "-q", "--epochs", "1")
    assert result.exit_code == 0, result.output
    _check_consistent(ws)
    assert all(t.status == "trained" for t in ws.tasks())
    assert ws.audit()["verdict"] == "clean"


def test_a_full_disk_refuses_the_artifact_early_and_a_rerun_completes(
    small_disk: Path, tiny_backbone: Path, tmp_path: Path
) -> None:
    ws = _workspace_on(small_disk / "ws", tiny_backbone)
    ws.add_task("a", write_keyword_task(tmp_path / "a", seed=1))
    ws.add_task("b", write_keyword_task(tmp_path / "b", seed=2))
    ws.train_next(epochs=1)
    filler = fill(small_disk, leave=256 << 10)  # room for the ledger's commit, not an artifact

    result = invoke(ws, "train-next", "-q", "--epochs", "1")

    assert result.exit_code == 3
    line = one_line(result.output)
    assert "no space left on device for artifacts/b/run-2 (" in line and "needed" in line
    assert line.endswith("free space or move the workspace")
    run = _last_run(ws)
    assert run.status == "failed" and "no space left on device" in run.error
    assert ws.ledger.task("b").status == "pending"
    assert not (ws.artifacts_dir / "b").exists()
    _check_consistent(ws)
    filler.unlink()
    _assert_clean_rerun(ws)


def test_a_full_disk_under_predict_output_report_and_ledger(
    trained: Workspace, small_disk: Path, tmp_path: Path
) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join('{"text": "good movie"}\n' for _ in range(2000)))
    trained.compare(methods=("adapter",))
    ledger = small_disk / "ledger.db"
    with sqlite3.connect(trained.root / "contlearn.db") as source, sqlite3.connect(ledger) as copy:
        source.backup(copy)
    fill(small_disk)

    out = small_disk / "labels.jsonl"
    predicted = invoke(trained, "predict", "a", "--input", str(rows), "--output", str(out), "-q")
    assert predicted.exit_code == 3
    assert f"no space left on device while writing {out} (" in one_line(predicted.output)
    assert {p.name for p in small_disk.iterdir()} == {"ledger.db", "filler"}  # no partial file

    report = invoke(trained, "report", "--out", str(small_disk / "report"))
    assert report.exit_code == 3
    assert "no space left on device for the report" in one_line(report.output)
    assert not (small_disk / "report").exists() or not any((small_disk / "report").iterdir())

    data = write_keyword_task(tmp_path / "c", seed=3)
    added = invoke(trained, "add-task", "c", "--data", str(data), "--db", f"sqlite:///{ledger}")
    assert added.exit_code == 3, added.output
    assert f"no space left on device for the ledger {ledger}" in one_line(added.output)
    (small_disk / "filler").unlink()
    again = invoke(trained, "add-task", "c", "--data", str(data), "--db", f"sqlite:///{ledger}")
    assert again.exit_code == 0, again.output
    assert [t.name for t in Workspace.open(trained.root, db=f"sqlite:///{ledger}").tasks()] == [
        "a",
        "b",
        "c",
    ]
    assert invoke(trained, "report", "--out", str(small_disk / "report")).exit_code == 0


def test_a_read_only_artifacts_folder_fails_the_run_and_a_rerun_completes(
    two_tasks: Workspace,
) -> None:
    folder = two_tasks.artifacts_dir
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        _remount(folder, "bind,ro")
        result = invoke(two_tasks, "train-next", "-q", "--epochs", "1")
    finally:
        subprocess.run(["umount", str(folder)], check=True)

    assert result.exit_code == 4
    line = one_line(result.output)
    assert line.startswith("Error: read-only file system while writing ")
    assert "artifacts/a/run-1/adapter.safetensors" in line
    run = _last_run(two_tasks)
    assert run.status == "failed" and "read-only file system" in run.error
    assert two_tasks.ledger.task("a").status == "pending"
    _check_consistent(two_tasks)
    _assert_clean_rerun(two_tasks)


def test_a_read_only_workspace_changes_nothing(
    small_disk: Path, tiny_backbone: Path, tmp_path: Path
) -> None:
    ws = _workspace_on(small_disk / "ws", tiny_backbone)
    ws.add_task("a", write_keyword_task(tmp_path / "a", seed=1))
    ws.ledger.engine.dispose()
    _remount(small_disk, "ro")
    try:
        result = invoke(ws, "train-next", "-q", "--epochs", "1")
    finally:
        _remount(small_disk, "rw")
    assert result.exit_code == 4
    assert "read-only file system" in one_line(result.output)
    assert [r.status for r in ws.ledger.runs()] == []
    _assert_clean_rerun(ws)


def test_a_data_file_made_unreadable_after_registration(two_tasks: Workspace) -> None:
    if shutil.which("capsh") is None:
        pytest.skip("capsh (libcap2-bin) is missing: root reads any file without it")
    data = Path(two_tasks.ledger.task("a").data_source) / "train.csv"
    data.chmod(0)
    command = " ".join([*CLI, "train-next", "-q", "--epochs", "1", "-w", str(two_tasks.root)])
    # root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH obeys permission bits, as a user does
    done = subprocess.run(
        ["capsh", "--drop=cap_dac_override,cap_dac_read_search", "--", "-c", command],
        capture_output=True,
        text=True,
        timeout=300,
    )
    data.chmod(0o644)
    assert done.returncode == 4, done.stderr
    line = one_line(done.stderr)
    assert f"permission denied while reading {data}" in line
    run = _last_run(two_tasks)
    assert run.status == "failed" and "permission denied" in run.error
    assert two_tasks.ledger.task("a").status == "pending"
    _assert_clean_rerun(two_tasks)


def test_an_sqlite_ledger_locked_past_the_busy_timeout(
    two_tasks: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTLEARN_BUSY_TIMEOUT_SECONDS", "0.5")
    holder = sqlite3.connect(two_tasks.root / "contlearn.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write lock, held
    try:
        result = invoke(two_tasks, "train-next", "-q", "--epochs", "1")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == 5
    line = one_line(result.output)
    assert "is locked by another process for longer than the busy timeout (0.5 s)" in line
    assert [t.status for t in two_tasks.tasks()] == ["pending", "pending"]
    assert two_tasks.ledger.runs() == []


def test_every_fault_exit_code_is_in_the_help() -> None:
    from click.testing import CliRunner

    from contlearn.cli import main

    text = CliRunner().invoke(main, ["--help"]).output
    for code in ("3 ", "4 ", "5 ", "6 ", "130", "143"):
        assert f"\n      {code}" in text or f" {code} by SIGTERM" in text, code


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_ledger_server_that_restarts_or_stays_down(
    db_url: str, tiny_backbone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.pg import start_server, stop_server

    ws = Workspace.create(tmp_path / "ws", backbone=str(tiny_backbone), db=db_url)
    for i in range(3):
        ws.add_task(f"t{i}", write_keyword_task(tmp_path / f"t{i}", n_train=200, seed=i))
    args = [*CLI, "train-next", "--all", "-q", "--epochs", "1", "-w", str(ws.root)]
    worker = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not ws.ledger.runs() and worker.poll() is None:
        time.sleep(0.01)
    stop_server(db_url)  # right after the claim: the worker meets it while loading
    time.sleep(3)
    start_server(db_url)
    _out, err = worker.communicate(timeout=300)
    assert "unreachable; retrying for up to 60 s" in err
    assert worker.returncode == 0 or (worker.returncode == 5 and one_line(err)), err
    assert "Traceback" not in err
    if any(t.status != "trained" for t in ws.tasks()):
        ws.train_next(all_tasks=True, epochs=1)
    _check_consistent(ws)
    assert all(t.status == "trained" for t in ws.tasks())
    assert ws.audit()["verdict"] == "clean"

    monkeypatch.setenv("CONTLEARN_LEDGER_RETRY_SECONDS", "1")
    stop_server(db_url)
    try:
        down = invoke(ws, "status", "--db", db_url)
    finally:
        start_server(db_url)
    assert down.exit_code == 5
    assert "the ledger server postgresql://127.0.0.1:" in one_line(down.output)
    assert "was unreachable for 1 s" in down.output
