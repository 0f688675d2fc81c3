"""A workspace trained by release 0.1 (``tests/data/ws01``, built by ``make_ws01.py`` with the
0.1 code) opened by this code: it audits clean with the same digests and metrics, its comparison
renders and is reused, training goes on on top of it, and the same data and seed train the same
bytes as 0.1 did when the run asks for 0.1's weight-decay rule."""

from __future__ import annotations

import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from contlearn.api import Workspace
from contlearn.cli import main
from contlearn.config import recorded_train_config

FIXTURE = Path(__file__).parent / "data" / "ws01"
MANIFEST = json.loads((FIXTURE / "manifest.json").read_text())


def _ledger_rows(db: Path, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture()
def ws01(tmp_path: Path) -> Path:
    """A copy of the fixture whose recorded absolute paths point at the copy.

    A ledger records the backbone folder and each task's data folder as absolute paths; the
    copy lives elsewhere, so only those two columns are rewritten (runs, artifacts, evaluations
    and comparisons stay as 0.1 wrote them)."""
    root = tmp_path / "ws01"
    shutil.copytree(FIXTURE, root)
    old, new = MANIFEST["root"], str(root)
    with closing(sqlite3.connect(root / "ws" / "contlearn.db")) as conn, conn:
        conn.execute("UPDATE backbones SET identity = replace(identity, ?, ?)", (old, new))
        conn.execute("UPDATE tasks SET data_source = replace(data_source, ?, ?)", (old, new))
    text = (root / "ws" / "tasks.toml").read_text().replace(old, new)
    (root / "ws" / "tasks.toml").write_text(text)
    return root


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_fixture_is_what_release_01_wrote() -> None:
    assert MANIFEST["made_by"] == "contlearn, version 0.1.0"
    configs = [json.loads(p.read_text()) for p in FIXTURE.glob("ws/artifacts/*/*.json")]
    assert len(configs) == 2 and all("method" not in c and "family" not in c for c in configs)
    trains = _ledger_rows(FIXTURE / "ws" / "contlearn.db", "SELECT config FROM runs")
    recorded = [json.loads(c)["train"] for (c,) in trains if "train" in json.loads(c)]
    assert recorded and all("decay_norms_and_biases" not in t for t in recorded)


def test_it_audits_clean_with_the_recorded_digests(ws01: Path) -> None:
    ws = Workspace.open(ws01 / "ws")
    result = ws.audit()
    assert result["verdict"] == "clean"
    recorded = dict(
        _ledger_rows(
            ws01 / "ws" / "contlearn.db",
            "SELECT task_id, logits_sha256 FROM evaluations WHERE kind = 'post-train'",
        )
    )
    audited = ws.ledger.evaluations(run_id=result["run_id"])
    assert {e.task_id: e.logits_sha256 for e in audited} == recorded
    scores = {t["name"]: t["score"] for t in MANIFEST["status"]["tasks"]}
    assert {r["task"]: r["now"] for r in result["tasks"]} == scores


def test_its_comparison_renders_and_is_reused(ws01: Path, tmp_path: Path) -> None:
    ws = Workspace.open(ws01 / "ws")
    (done,) = ws.ledger.comparisons(status="done")
    results, files = ws.rebuild_report(out=tmp_path / "report")
    assert results["comparison_id"] == done["id"] and files["html"].is_file()
    assert results["config"]["epochs"] == 4  # read from runs recorded by 0.1
    # The same sequence, methods and settings: nothing retrained (its sequential baseline was
    # recorded as full-finetune).
    again = ws.compare(methods=("adapter", "sequential"))
    assert again["comparison_id"] == done["id"] and len(ws.ledger.comparisons()) == 1
    assert len(ws.ledger.runs(purpose="compare")) == 2


def test_training_goes_on_and_the_old_tasks_stay_identical(ws01: Path) -> None:
    root = str(ws01 / "ws")
    cli("add-task", "c", "--data", str(ws01 / "data" / "c"), "-w", root)
    out = json.loads(cli("train-next", "--json", "-w", root))
    (run,) = out["runs"]
    assert run["task"] == "c"
    assert [(v["task"], v["identical"]) for v in run["verifications"]] == [
        ("a", True),
        ("b", True),
    ]
    meta = json.loads(Workspace.open(root).artifact_files("c")["config"].read_text())
    assert (meta["method"], meta["family"]) == ("houlsby", "bert")
    assert meta["train"]["decay_norms_and_biases"] is False  # the current default rule
    assert json.loads(cli("audit", "--json", "-q", "-w", root))["verdict"] == "clean"


def test_old_runs_read_as_the_weight_decay_rule_they_used(ws01: Path) -> None:
    ws = Workspace.open(ws01 / "ws")
    for task in ws.tasks():
        recorded = ws.ledger.trained_run(task.id).config["train"]
        assert recorded_train_config(recorded).decay_norms_and_biases is True


def test_the_same_data_and_seed_train_the_same_bytes(ws01: Path, tmp_path: Path) -> None:
    """A new workspace on the fixture's backbone, data and settings, with 0.1's weight-decay
    and selection rules, writes the very weights and dev logits that release 0.1 wrote."""
    root = tmp_path / "again"
    cli("init", "-w", str(root), "--backbone", str(ws01 / "backbone"))
    config = (ws01 / "ws" / "tasks.toml").read_text()
    # release 0.1's rules, as its runs read: weight decay on everything, the best epoch on dev
    rule = '[train]\ndecay_norms_and_biases = true\nselection = "dev"'
    (root / "tasks.toml").write_text(config.replace("[train]", rule))
    for name in ("a", "b"):
        cli("add-task", name, "--data", str(ws01 / "data" / name), "-w", str(root))
    threads = torch.get_num_threads()
    torch.set_num_threads(MANIFEST["torch_threads"])  # training matmuls follow the thread count
    try:
        cli("train-next", "--all", "-q", "-w", str(root))
    finally:
        torch.set_num_threads(threads)
    query = (
        "SELECT t.name, a.role, a.sha256 FROM artifacts a JOIN tasks t ON t.id = a.task_id "
        "WHERE a.role NOT IN ('config', 'routing', 'routing-meta') ORDER BY t.name, a.role"
    )
    assert _ledger_rows(root / "contlearn.db", query) == _ledger_rows(
        ws01 / "ws" / "contlearn.db", query
    )
