"""A task's whole life: retrain (the old run serves until the new one is verified), remove (the
history stays, the name is free), gc (only unused files go), and the runs and comparisons the
ledger lists; the ledger operations on SQLite and a real PostgreSQL server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from contlearn.api import Workspace
from contlearn.errors import TaskBusy, TaskNotFound, TaskNotTrained, VerificationFailed
from contlearn.ledger.engine import make_engine, upgrade
from contlearn.ledger.store import Ledger
from tests.conftest import invoke as cli
from tests.conftest import write_keyword_task
from tests.test_ledger import _spec


def files_of(ws: Workspace, run_id: int) -> list[Path]:
    return [ws.store.resolve(a.path) for a in ws.ledger.artifacts(run_id)]


# -- retrain -----------------------------------------------------------------------------------


def test_retrain_supersedes_only_when_it_succeeds(trained: Workspace) -> None:
    ws = trained
    old = ws.ledger.trained_run(ws.ledger.task("a").id)
    result = ws.retrain("a", epochs=2, seed=7)
    assert result["supersedes"] == old.id and result["task"] == "a"
    assert [(v["task"], v["identical"]) for v in result["verifications"]] == [("b", True)]
    current = ws.ledger.trained_run(ws.ledger.task("a").id)
    assert current.id == result["run_id"] != old.id
    assert current.config["train"]["epochs"] == 2
    status = {r["name"]: r for r in ws.status()}
    assert (
        status["a"]["status"] == "trained" and status["a"]["score"] == result["metrics"]["accuracy"]
    )
    assert all(path.is_file() for path in files_of(ws, old.id))  # kept, not loaded, until gc
    assert ws.artifact_files("a")["weights"].parent.name == f"run-{current.id}"
    assert ws.audit()["verdict"] == "clean"


def test_a_retrain_that_fails_verification_leaves_the_old_run_current(trained: Workspace) -> None:
    ws = trained
    old = ws.ledger.trained_run(ws.ledger.task("a").id)
    b = ws.ledger.task("b").id
    sql = "UPDATE evaluations SET logits_sha256 = 'x' WHERE kind = 'post-train' AND task_id = :b"
    with ws.ledger.engine.begin() as conn:  # as if b's recorded logits were different
        conn.execute(text(sql), {"b": b})
    with pytest.raises(VerificationFailed, match="'b'"):
        ws.retrain("a")
    failed = ws.ledger.runs(task_id=ws.ledger.task("a").id)[-1]
    assert failed.status == "failed" and ws.ledger.artifacts(failed.id) == []
    assert not ws.store.run_dir("a", failed.id).exists()
    assert ws.ledger.task("a").status == "trained"
    assert ws.ledger.trained_run(ws.ledger.task("a").id).id == old.id


def test_retrain_is_refused_before_anything_loads(trained: Workspace, tmp_path: Path) -> None:
    ws = trained
    ws.add_task("c", write_keyword_task(tmp_path / "c", seed=5))
    runs = len(ws.ledger.runs())
    with pytest.raises(TaskNotTrained, match="'c' is pending, not trained yet"):
        ws.retrain("c")
    with pytest.raises(TaskNotFound):
        ws.retrain("nope")
    with pytest.raises(TypeError, match="unknown training setting 'epoch'"):
        ws.retrain("a", epoch=3)
    assert len(ws.ledger.runs()) == runs  # nothing recorded
    ws.ledger.claim_retrain("a", {"method": "adapter", "config": {}, "versions": {}})
    with pytest.raises(TaskBusy, match="'a' is being trained right now"):
        ws.retrain("a")


def test_cli_retrain(trained: Workspace) -> None:
    result = cli(trained, "retrain", "b", "--epochs", "2", "-q")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("retrained b: accuracy ")
    assert "verification of the other trained tasks:" in result.stdout
    runs = trained.ledger.runs(task_id=trained.ledger.task("b").id)
    assert (
        f"run {runs[-1].id} is now b's current run; run {runs[0].id}'s files stay" in result.stdout
    )


# -- remove ------------------------------------------------------------------------------------


def test_remove_keeps_positions_gapless_and_the_history(trained: Workspace, tmp_path: Path) -> None:
    ws = trained
    ws.add_task("c", write_keyword_task(tmp_path / "c", seed=5))
    a = ws.ledger.task("a")
    result = cli(ws, "remove", "a")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "removed a from the sequence; its history (1 run) stays in the ledger, its files "
        "until `contlearn gc`\n"
    )
    assert [(t.name, t.position) for t in ws.tasks()] == [("b", 1), ("c", 2)]
    (gone,) = ws.ledger.tasks(removed=True)
    assert (gone.id, gone.position) == (a.id, None) and gone.removed_at is not None
    assert ws.ledger.runs(task_id=a.id) and ws.ledger.evaluations(task_id=a.id)
    assert all(path.is_file() for path in files_of(ws, ws.ledger.trained_run(a.id).id))
    assert [r["task"] for r in ws.audit()["tasks"]] == ["b"]
    with pytest.raises(TaskNotFound):
        ws.predict("a", [{"text": "good"}])
    ws.add_task("a", write_keyword_task(tmp_path / "a2", seed=9))  # the name is free again
    assert [t.name for t in ws.tasks()] == ["b", "c", "a"] and ws.ledger.task("a").id != a.id


def test_a_comparison_that_used_a_removed_task_still_renders(
    trained: Workspace, tmp_path: Path
) -> None:
    ws = trained
    results = ws.compare(methods=("adapter",))
    ws.remove("a")
    again, files = ws.rebuild_report(results["comparison_id"], tmp_path / "report")
    assert [t["name"] for t in again["tasks"]] == ["a", "b"]
    assert again["methods"]["adapter"]["matrix"] == results["methods"]["adapter"]["matrix"]
    assert files["html"].is_file()


def test_remove_is_refused_while_the_task_trains(two_tasks: Workspace) -> None:
    ws = two_tasks
    ws.ledger.claim_next_pending({"method": "adapter", "config": {}, "versions": {}})
    result = cli(ws, "remove", "a")
    assert result.exit_code == 1
    assert result.output == (
        "Error: task 'a' is being trained right now: wait for the run to finish "
        "(`contlearn runs a` shows it), then remove it\n"
    )
    assert [t.name for t in ws.tasks()] == ["a", "b"]


# -- gc ----------------------------------------------------------------------------------------


def test_gc_frees_superseded_and_removed_files_and_strays_only(trained: Workspace) -> None:
    ws = trained
    superseded = files_of(ws, ws.ledger.trained_run(ws.ledger.task("a").id).id)
    ws.retrain("a", epochs=1, seed=3)
    removed = files_of(ws, ws.ledger.trained_run(ws.ledger.task("b").id).id)
    ws.remove("b")
    stray = ws.task_dir("a") / "run-999" / ".adapter.safetensors.x1.tmp"  # a killed writer's
    stray.parent.mkdir()
    stray.write_bytes(b"partial")
    running = ws.ledger.claim_retrain("a", {"method": "adapter", "config": {}, "versions": {}})
    busy = ws.store.run_dir("a", running[1]) / ".adapter.safetensors.x2.tmp"  # still writing
    busy.parent.mkdir()
    busy.write_bytes(b"in progress")
    garbage = [*superseded, *removed, stray]
    expected = sum(p.stat().st_size for p in garbage)
    dry = ws.gc(dry_run=True)
    assert (dry["files"], dry["bytes"]) == (len(garbage), expected)
    assert all(p.is_file() for p in garbage)
    result = cli(ws, "gc", "--json")
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    # two runs' five files each (weights, config, logits, routing statistics) and the stray
    assert (done["artifacts"], done["files"], done["bytes"]) == (10, 11, expected)
    assert not any(p.exists() for p in garbage) and busy.is_file()
    assert not stray.parent.exists()  # emptied folders go too
    deleted = [a for r in ws.ledger.runs() for a in ws.ledger.artifacts(r.id) if a.deleted_at]
    assert len(deleted) == 10
    assert all(p.is_file() for p in ws.artifact_files("a").values())
    assert ws.audit()["verdict"] == "clean"
    assert cli(ws, "gc").stdout == "freed 0 bytes (0 files)\n"


# -- listings ----------------------------------------------------------------------------------


def test_runs_and_comparisons(trained: Workspace) -> None:
    ws = trained
    ws.retrain("a", epochs=1, seed=3)
    ws.audit()
    rows = json.loads(cli(ws, "runs", "--json").stdout)["runs"]
    assert [(r["task"], r["purpose"], r["current"]) for r in rows] == [
        ("a", "train", False),
        ("b", "train", True),
        ("a", "train", True),
        (None, "audit", False),
    ]
    assert rows[-1]["metric"] == "clean" and isinstance(rows[0]["metric"], float)
    mine = json.loads(cli(ws, "runs", "a", "--json").stdout)["runs"]
    assert [r["id"] for r in mine] == [rows[0]["id"], rows[2]["id"]]
    table = cli(ws, "runs").stdout.splitlines()
    assert table[0].split()[:6] == ["id", "task", "purpose", "method", "status", "current"]
    assert cli(ws, "comparisons").stdout == "no comparisons yet: `contlearn compare` runs one\n"
    ws.compare(methods=("adapter",))
    (row,) = json.loads(cli(ws, "comparisons", "--json").stdout)["comparisons"]
    assert (row["id"], row["methods"], row["tasks"], row["finished"]) == (
        1,
        ["adapter"],
        ["a", "b"],
        True,
    )


# -- the ledger, on both databases -------------------------------------------------------------


def test_remove_and_readd_on_both_databases(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    ledger = Ledger(engine)
    ledger.add_tasks([_spec("a"), _spec("b"), _spec("c")])
    ledger.remove_task("b")
    assert [(t.name, t.position) for t in ledger.tasks()] == [("a", 1), ("c", 2)]
    ledger.add_tasks([_spec("b")], position=1)
    assert [(t.name, t.position) for t in ledger.tasks()] == [("b", 1), ("a", 2), ("c", 3)]
    assert [t.name for t in ledger.tasks(removed=True)] == ["b"]
    ledger.remove_task("b")
    assert [t.name for t in ledger.tasks(removed=True)] == ["b", "b"]
    with pytest.raises(TaskNotFound):
        ledger.remove_task("b")
    engine.dispose()


def test_retrain_claims_and_garbage_on_both_databases(db_url: str) -> None:
    from contlearn.ledger.records import ArtifactRecord

    engine = make_engine(db_url)
    upgrade(engine)
    ledger = Ledger(engine)
    ledger.add_tasks([_spec("a")])
    values = {"method": "adapter", "config": {}, "versions": {}}

    def finish(run_id: int, status: str) -> None:
        task = ledger.task("a").id
        files = [ArtifactRecord(run_id, task, "weights", f"artifacts/a/run-{run_id}/w", "0", 1)]
        done = files if status == "succeeded" else []
        ledger.finish_run(run_id, status=status, task_status="trained", artifacts=done)

    task, first = ledger.claim_next_pending(values)
    finish(first, "succeeded")
    _, second, current = ledger.claim_retrain("a", values)
    assert current == first and ledger.task("a").status == "trained"
    with pytest.raises(TaskBusy):
        ledger.claim_retrain("a", values)
    ledger.finish_run(second, status="failed")
    assert ledger.trained_run(task.id).id == first and ledger.garbage_artifacts() == []
    _, third, _ = ledger.claim_retrain("a", values)
    finish(third, "succeeded")
    assert ledger.trained_run(task.id).id == third
    (old,) = ledger.garbage_artifacts()
    assert old.run_id == first
    ledger.mark_deleted([old.id])
    assert ledger.garbage_artifacts() == []
    engine.dispose()
