"""audit: clean in a fresh process, tampering and deletion named, backbone and data checks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from contlearn.api import Workspace
from contlearn.cli import main
from tests.conftest import copy_workspace, save_tiny_backbone, settled, write_keyword_task


def _train(folder: Path) -> Workspace:
    """Two trained tasks on their own backbone, all under ``folder``."""
    backbone = save_tiny_backbone(folder / "backbone")
    ws = Workspace.create(folder / "ws", backbone=str(backbone))
    ws.add_task("a", write_keyword_task(folder / "a", n_train=48, n_dev=24, seed=1))
    ws.add_task("b", write_keyword_task(folder / "b", n_train=48, n_dev=24, seed=2))
    ws.train_next(all_tasks=True, epochs=1, max_length=24)
    return ws


@pytest.fixture()
def own(tmp_path: Path) -> Workspace:
    """Two trained tasks on a backbone folder and data folders this test may change."""
    return _train(tmp_path)


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return settled(_train(tmp_path_factory.mktemp("audit")))


@pytest.fixture()
def trained(trained_once: Path, tmp_path: Path) -> Workspace:
    """A copy of the module's two trained tasks (its artifacts and ledger) for this test to
    change; their backbone and data folders are shared."""
    return copy_workspace(trained_once, tmp_path / "ws")


def cli(ws: Workspace, *args: str):
    return CliRunner().invoke(main, ["audit", "-w", str(ws.root), "-q", *args])


def test_untouched_workspace_audits_clean_in_a_fresh_process(trained: Workspace) -> None:
    exe = Path(sys.executable).with_name("contlearn")
    out = subprocess.run(
        [str(exe), "audit", "-w", str(trained.root), "--json", "-q"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["verdict"] == "clean"
    assert [r["task"] for r in result["tasks"]] == ["a", "b"]
    for row in result["tasks"]:
        assert row["logits_identical"] and row["artifact_ok"] and row["data_ok"]
        assert row["delta"] == 0.0 and row["examples"] == 24 and row["findings"] == []
    assert result["examples_per_second"] > 0


@pytest.mark.parametrize("role", ["weights", "config", "logits"])
def test_a_flipped_byte_is_detected_and_named(trained: Workspace, role: str) -> None:
    run = trained.ledger.trained_run(trained.ledger.task("b").id)
    record = next(a for a in trained.ledger.artifacts(run.id) if a.role == role)
    path = trained.root / record.path
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    result = cli(trained, "--json")
    assert result.exit_code == 1
    rows = {r["task"]: r for r in json.loads(result.output)["tasks"]}
    assert rows["a"]["ok"] and rows["a"]["logits_identical"]
    assert not rows["b"]["artifact_ok"] and rows["b"]["now"] is None  # never loaded
    assert "'b'" in rows["b"]["findings"][0] and "was modified" in rows["b"]["findings"][0]


def test_a_deleted_artifact_is_named(trained: Workspace) -> None:
    trained.artifact_files("a")["weights"].unlink()
    result = cli(trained)
    assert result.exit_code == 1
    assert "task 'a': artifact" in result.output and "is missing" in result.output
    assert "verdict: tampered (2 tasks," in result.output


def test_a_different_backbone_is_refused(own: Workspace, tmp_path: Path) -> None:
    shutil.rmtree(tmp_path / "backbone")
    save_tiny_backbone(tmp_path / "backbone", seed=7)
    result = cli(own)
    assert result.exit_code == 1 and "fingerprint" in result.output
    assert "restore the original backbone" in result.output


def test_edited_data_is_reported_as_data_drift(own: Workspace) -> None:
    dev = Path(own.ledger.task("a").data_source) / "dev.csv"
    dev.write_text(dev.read_text().replace("good", "bad", 1))
    result = cli(own, "--json")
    assert result.exit_code == 1
    rows = {r["task"]: r for r in json.loads(result.output)["tasks"]}
    assert not rows["a"]["data_ok"] and rows["a"]["artifact_ok"]
    assert "data drift" in rows["a"]["findings"][0] and rows["b"]["ok"]
    assert json.loads(result.output)["verdict"] == "drift"  # data, not the artifacts


def test_changed_logits_with_same_predictions_report_the_difference(trained: Workspace) -> None:
    from sqlalchemy import text

    with trained.ledger.engine.begin() as conn:  # as if recorded by another library version
        conn.execute(text("UPDATE evaluations SET logits_sha256 = 'old' WHERE kind = 'post-train'"))
    rows = json.loads(cli(trained, "--json", "--task", "a").output)["tasks"]
    assert rows[0]["predictions_identical"] and not rows[0]["logits_identical"]
    assert "every prediction is the same" in rows[0]["findings"][0]


def test_history_lists_audits_with_verdicts(trained: Workspace) -> None:
    assert cli(trained).exit_code == 0
    trained.artifact_files("b")["weights"].unlink()
    assert cli(trained).exit_code == 1
    out = json.loads(cli(trained, "--history", "--json").output)["audits"]
    assert [a["verdict"] for a in out] == ["clean", "tampered"]
    table = cli(trained, "--history").output
    assert "clean" in table and "tampered" in table
    audits = trained.ledger.runs(purpose="audit")
    assert len(trained.ledger.evaluations(run_id=audits[0].id, kind="audit")) == 2
