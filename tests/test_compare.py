"""compare: adapter matrix from the ledger, sequential full fine-tuning, resume, report files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from contlearn.api import Workspace
from contlearn.cli import main
from contlearn.errors import ContlearnError
from contlearn.ops.full_finetune import checkpoint_path
from tests.conftest import invoke, write_keyword_task


@pytest.fixture()
def three(workspace: Workspace, tmp_path: Path) -> Workspace:
    for i, name in enumerate(("a", "b", "c")):
        workspace.add_task(name, write_keyword_task(tmp_path / name, n_train=48, n_dev=16, seed=i))
    return workspace


def test_compare_refuses_untrained_tasks(three: Workspace) -> None:
    with pytest.raises(ContlearnError, match="train-next --all"):
        three.compare()


def test_adapter_matrix_comes_from_recorded_runs(three: Workspace) -> None:
    runs = three.train_next(all_tasks=True, epochs=1)
    results = three.compare(methods=("adapter",))
    method = results["methods"]["adapter"]
    matrix = method["matrix"]
    assert [matrix[i][i] for i in range(3)] == [r["metrics"][r["metric"]] for r in runs]
    for i in range(3):
        for j in range(i):
            assert matrix[i][j] == matrix[j][j]  # identical after every later task
        for j in range(i + 1, 3):
            assert matrix[i][j] is None
    assert method["summary"]["bwt"] == 0.0 and method["summary"]["forgetting"] == 0.0
    assert method["identical"] == {"identical": 3, "total": 3}
    assert all(p > 0 for p in method["cost"]["trainable_params"])


def test_full_finetune_sequence_records_every_evaluation(three: Workspace) -> None:
    three.train_next(all_tasks=True, epochs=1)
    results = three.compare(methods=("adapter", "sequential"))
    full = results["methods"]["sequential"]
    cid = results["comparison_id"]
    runs = [r for r in three.ledger.runs(purpose="compare") if r.comparison_id == cid]
    assert [r.method for r in runs] == ["sequential"] * 3
    assert all(r.config["family"] == "bert" for r in runs)
    assert all(r.status == "succeeded" for r in runs)
    evaluations = [e for r in runs for e in three.ledger.evaluations(run_id=r.id)]
    assert len(evaluations) == 6 and {e.kind for e in evaluations} == {"comparison"}
    assert all(full["matrix"][i][j] is not None for i in range(3) for j in range(i + 1))
    assert full["identical"] is None
    backbone = three.ledger.backbone().num_parameters
    assert all(p > backbone for p in full["cost"]["trainable_params"])
    assert not checkpoint_path(three.store, cid).parent.exists()  # temporary files removed
    assert three.ledger.comparison(cid)["status"] == "done"
    audit = three.audit()
    assert audit["verdict"] == "clean"  # the baseline never touched the adapters' backbone


def test_an_interrupted_comparison_resumes_from_the_last_finished_task(
    three: Workspace, monkeypatch
) -> None:
    import contlearn.ops.full_finetune as finetune

    three.train_next(all_tasks=True, epochs=1)
    real = finetune._train_and_evaluate
    calls = {"n": 0}

    def crash_on_second(ctx, settings, cid, task, so_far, progress, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C during task b
        return real(ctx, settings, cid, task, so_far, progress, **kw)

    monkeypatch.setattr(finetune, "_train_and_evaluate", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        three.compare(methods=("adapter", "sequential"))
    (running,) = three.ledger.comparisons(status="running")
    assert checkpoint_path(three.store, running["id"]).is_file()
    monkeypatch.setattr(finetune, "_train_and_evaluate", real)
    results = three.compare(methods=("adapter", "sequential"))
    assert results["comparison_id"] == running["id"]
    runs = [r for r in three.ledger.runs(purpose="compare") if r.comparison_id == running["id"]]
    by_task = [(three.ledger.task_by_id(r.task_id).name, r.status) for r in runs]
    assert by_task == [("a", "succeeded"), ("b", "succeeded"), ("c", "succeeded")]  # a not redone
    assert not checkpoint_path(three.store, running["id"]).parent.exists()


def test_a_wider_comparison_reads_a_finished_baselines_runs_instead_of_training_it(
    three: Workspace, tmp_path: Path
) -> None:
    """Adding a method to a finished comparison trains only the new one: the baseline it
    already ran (same tasks, adapter runs and settings) is read from the earlier comparison,
    with the same matrix and intervals; another setting trains it again."""
    three.train_next(all_tasks=True, epochs=1)
    first = three.compare(methods=("adapter", "sequential"))
    planned = three.plan_comparison(methods=("adapter", "sequential", "joint"))
    assert planned["config"]["reused"] == {"sequential": first["comparison_id"]}
    assert any(f"comparison {first['comparison_id']}'s runs" in n for n in planned["notes"])
    wider = three.compare(methods=("adapter", "sequential", "joint"))
    assert wider["comparison_id"] != first["comparison_id"]

    def trained(method: str) -> int:
        return sum(r.method == method for r in three.ledger.runs(purpose="compare"))

    assert (trained("sequential"), trained("joint")) == (3, 1)
    now, before = wider["methods"]["sequential"], first["methods"]["sequential"]
    assert now["matrix"] == before["matrix"] and now["intervals"] == before["intervals"]
    for key in ("acc", "bwt", "forgetting"):  # intransigence: joint is its reference now
        assert now["summary"][key] == before["summary"][key]
    assert "joint" in wider["methods"] and any("reusing" in n for n in wider["notes"])
    listed = invoke(three, "comparisons").output
    assert f"sequential from {first['comparison_id']}" in listed
    rebuilt, _ = three.rebuild_report(wider["comparison_id"], tmp_path / "report")
    assert rebuilt["methods"]["sequential"]["matrix"] == first["methods"]["sequential"]["matrix"]
    again = three.compare(methods=("adapter", "sequential", "joint"))
    assert again["comparison_id"] == wider["comparison_id"] and trained("sequential") == 3
    three.compare(methods=("adapter", "sequential"), lr=1e-4)  # another learning rate
    assert trained("sequential") == 6


def test_cli_compare_writes_the_report_and_report_rebuilds_it(
    three: Workspace, tmp_path: Path
) -> None:
    three.train_next(all_tasks=True, epochs=1)
    out = tmp_path / "report"
    runner = CliRunner()
    result = runner.invoke(main, ["compare", "-w", str(three.root), "-q", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "adapter" in result.output and "sequential" in result.output
    assert "3/3" in result.output
    for name in ("report.md", "report.html", "report.json", "heatmaps.png", "curves.png"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "report.json").read_text())
    again, files = three.rebuild_report(out=tmp_path / "again")
    assert json.loads(json.dumps(again, default=str)) == saved
    assert files["html"].is_file()
    result = runner.invoke(main, ["report", "-w", str(three.root), "--json", "--out", str(out)])
    assert result.exit_code == 0 and json.loads(result.output)["comparison_id"] == 1
