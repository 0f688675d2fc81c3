"""A workspace trained on one machine and copied to another with the same CPU model name: its
tasks, whose weights are proven unchanged, replay as "equivalent" (every prediction and metric
the same, the logits a few ulps away), do not fail the audit or block training, and
``audit --adopt-host`` makes this host's logits their reference, bit for bit from then on. A
replay that changes a prediction still fails.

The fixture is trained here, then made "trained elsewhere": its post-train recipe names another
host and its recorded dev logits are perturbed by 1e-6 (the predictions kept), as the kernels of
another CPU give them.
"""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file, save_file
from sqlalchemy import text

from contlearn import files
from contlearn.api import Workspace
from contlearn.errors import VerificationFailed
from tests.conftest import invoke as cli
from tests.conftest import write_keyword_task


def trained_elsewhere(ws: Workspace, task: str, *, flip: bool = False) -> None:
    """Rewrite ``task``'s recorded post-train evaluation as another host would have made it:
    its recipe names a host with 96 cores and its logits are 1e-6 away (``flip``: and the
    first row's prediction changed too)."""
    ledger = ws.ledger
    run = ledger.trained_run(ledger.task(task).id)
    (post,) = ledger.evaluations(run_id=run.id, kind="post-train")
    logits_file = next(a for a in ledger.artifacts(run.id) if a.role == "logits")
    path = ws.root / logits_file.path
    logits = load_file(path)["logits"]
    moved = logits + 1e-6
    assert (moved.argmax(-1) == logits.argmax(-1)).all()  # the predictions kept
    if flip:
        moved[0] = moved[0].flip(-1)
    save_file({"logits": moved.contiguous()}, path)
    recipe = {**post.recipe, "host": {**post.recipe["host"], "cores": 96}}
    with ledger.engine.begin() as conn:
        conn.execute(
            text("UPDATE artifacts SET sha256 = :s, bytes = :b WHERE id = :id"),
            {"s": files.sha256_file(path), "b": path.stat().st_size, "id": logits_file.id},
        )
        conn.execute(
            text("UPDATE evaluations SET recipe = :r, logits_sha256 = :d WHERE run_id = :run"),
            {"r": json.dumps(recipe), "d": "0" * 64, "run": run.id},
        )


def _rows(result) -> dict[str, dict]:
    return {row["task"]: row for row in json.loads(result.stdout)["tasks"]}


def test_a_moved_workspace_audits_as_equivalent(trained: Workspace) -> None:
    trained_elsewhere(trained, "a")
    result = cli(trained, "audit", "--json", "-q")
    assert result.exit_code == 0, result.output
    rows = _rows(result)
    assert json.loads(result.stdout)["verdict"] == "clean"
    assert (rows["a"]["outcome"], rows["a"]["recipe"], rows["a"]["ok"]) == (
        "equivalent",
        "different",
        True,
    )
    (note,) = rows["a"]["notes"]
    assert note.startswith("task 'a': reproduced on a different machine (another host: cores): ")
    assert "100.0% of predictions identical, max |logit change| 1.0" in note
    assert (rows["b"]["outcome"], rows["b"]["recipe"]) == ("identical", "same")
    table = cli(trained, "audit", "-q").stdout
    assert "equivalent" in table and "verdict: clean" in table


def test_a_moved_workspace_keeps_training(trained: Workspace, tmp_path) -> None:
    trained_elsewhere(trained, "a")
    trained.add_task("c", write_keyword_task(tmp_path / "c", seed=6))
    (result,) = trained.train_next(epochs=1)
    outcomes = {v["task"]: (v["identical"], v["outcome"]) for v in result["verifications"]}
    assert outcomes == {"a": (True, "equivalent"), "b": (True, "identical")}
    assert trained.ledger.task("c").status == "trained"


def test_the_probe_on_a_moved_workspace_says_equivalent(trained: Workspace, tmp_path) -> None:
    trained_elsewhere(trained, "a")
    trained.add_task("c", write_keyword_task(tmp_path / "c", seed=6))
    result = cli(trained, "train-next", "--epochs", "1", "--verify", "probe", "-q")
    assert result.exit_code == 0, result.output
    c = trained.ledger.task("c").id
    records = {
        trained.ledger.task_by_id(r.task_id).name: r
        for r in trained.ledger.evaluations(kind="verification")
        if r.after_task_id == c
    }
    assert records["a"].mode == "probe" and records["a"].identical
    assert records["a"].example_count > 0  # two small tasks: each one's batch is re-run
    assert records["a"].outcome == "equivalent" and records["b"].outcome == "identical"
    assert "predictions (another recipe): equivalent" in records["a"].findings[1]


def test_adopting_the_host_makes_later_checks_bit_for_bit(trained: Workspace, tmp_path) -> None:
    trained_elsewhere(trained, "a")
    adopted = cli(trained, "audit", "--adopt-host", "--json", "-q")
    assert adopted.exit_code == 0, adopted.output
    rows = _rows(adopted)
    assert rows["a"]["adopted"] and not rows["b"]["adopted"]  # b was recorded on this host
    (reference,) = trained.ledger.evaluations(kind="host-reference")
    assert reference.task_id == trained.ledger.task("a").id and reference.recipe["host"]
    again = _rows(cli(trained, "audit", "--json", "-q"))
    assert (again["a"]["outcome"], again["a"]["recipe"]) == ("identical", "same")
    assert again["a"]["reference"] == f"host (audit run {reference.run_id})"
    # the adopted reference survives gc, and the post-train record is kept as history
    trained.gc()
    host_logits = [a for a in trained.ledger.artifacts(reference.run_id) if a.role == "host-logits"]
    assert (trained.root / host_logits[0].path).is_file()
    assert trained.ledger.evaluations(task_id=reference.task_id, kind="post-train")
    # and the probe of a new task's verification compares it bit for bit with that reference
    trained.add_task("c", write_keyword_task(tmp_path / "c", seed=6))
    result = cli(trained, "train-next", "--epochs", "1", "--verify", "probe", "-q")
    assert result.exit_code == 0, result.output
    c = trained.ledger.task("c").id
    records = [r for r in trained.ledger.evaluations(kind="verification") if r.after_task_id == c]
    probed = {trained.ledger.task_by_id(r.task_id).name: r for r in records}
    assert probed["a"].outcome == "identical" and probed["b"].outcome == "identical"
    assert "bit for bit: identical" in probed["a"].findings[1]


def test_a_tampered_host_reference_is_refused(trained: Workspace) -> None:
    trained_elsewhere(trained, "a")
    cli(trained, "audit", "--adopt-host", "-q")
    (reference,) = trained.ledger.evaluations(kind="host-reference")
    (host_logits,) = [
        a for a in trained.ledger.artifacts(reference.run_id) if a.role == "host-logits"
    ]
    (trained.root / host_logits.path).write_bytes(b"not the logits")
    result = cli(trained, "audit", "--json", "-q")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["verdict"] == "tampered"


def test_a_flipped_prediction_on_a_moved_workspace_still_fails(
    trained: Workspace, tmp_path
) -> None:
    trained_elsewhere(trained, "a", flip=True)
    result = cli(trained, "audit", "--adopt-host", "--json", "-q")
    assert result.exit_code == 1
    rows = _rows(result)
    assert (rows["a"]["outcome"], rows["a"]["ok"], rows["a"]["adopted"]) == (
        "changed",
        False,
        False,
    )
    assert "not every prediction and metric value reproduced" in rows["a"]["findings"][0]
    assert not trained.ledger.evaluations(kind="host-reference")
    trained.add_task("c", write_keyword_task(tmp_path / "c", seed=6))
    with pytest.raises(VerificationFailed, match="earlier task 'a' no longer reproduces"):
        trained.train_next(epochs=1)
