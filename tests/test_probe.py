"""Verification whose cost stays flat: the probe mode (hashes of the backbone, every earlier
task's files and in-memory tensors, and a seeded sample of canonical dev batches re-run bit for
bit), ``auto`` choosing between full and probe, and the per-process cache of encoded dev
splits."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from contlearn.config import VerifyConfig
from contlearn.errors import BackboneMismatch, BadData, VerificationFailed
from contlearn.runtime.context import open_context
from contlearn.runtime.probe import probe_plan, recorded
from contlearn.runtime.verify import verify_earlier
from tests.conftest import (
    copy_workspace,
    fast_workspace,
    invoke,
    settled,
    write_keyword_task,
)


def _three(workspace, data: Path):
    """Three keyword tasks (a, b trained; c pending), 40 dev rows each, their folders under
    ``data``."""
    for i, name in enumerate("abc"):
        task = write_keyword_task(data / name, seed=i, n_train=48, n_dev=40)
        workspace.add_task(name, task)
    workspace.train_next(epochs=1)
    workspace.train_next(epochs=1)
    return workspace


@pytest.fixture(scope="module")
def three_once(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    base = tmp_path_factory.mktemp("probe")
    return settled(_three(fast_workspace(base / "ws", tiny_backbone), base))


@pytest.fixture()
def three(three_once: Path, tmp_path: Path):
    """A copy of the module's three tasks (a, b trained; c pending), 40 dev rows each; their
    data folders are shared."""
    return copy_workspace(three_once, tmp_path / "ws")


@pytest.fixture()
def three_own(workspace, tmp_path: Path):
    """The three tasks built for this test, their data folders under ``tmp_path``."""
    return _three(workspace, tmp_path)


def _verifications(ws, name: str) -> list:
    run = ws.ledger.trained_run(ws.ledger.task(name).id)
    return [e for e in ws.ledger.evaluations(run_id=run.id) if e.kind == "verification"]


def test_probe_mode_records_what_it_rechecked_and_the_audit_stays_clean(three) -> None:
    result = invoke(three, "train-next", "--epochs", "1", "--verify", "probe")
    assert result.exit_code == 0, result.output
    assert "probe" in result.output
    records = _verifications(three, "c")
    assert [r.mode for r in records] == ["probe", "probe"]
    assert all(r.identical for r in records)
    # one canonical batch of each earlier task: 40 dev rows are batches of 32 and 8
    assert all(r.example_count in (32, 8) for r in records)
    assert all("tensors in memory match them" in r.findings[0] for r in records)
    assert all("identical" in r.findings[1] and "bit for bit" in r.findings[1] for r in records)
    recorded = {r.task_id: r.primary_value for r in records}
    for name in "ab":
        task = three.ledger.task(name)
        post = [e for e in three.ledger.evaluations(task_id=task.id) if e.kind == "post-train"]
        assert recorded[task.id] == post[-1].primary_value
    assert invoke(three, "audit").exit_code == 0


def test_auto_is_full_up_to_the_bound_and_probe_beyond(three) -> None:
    three.train_next(epochs=1)  # c, under the default bound (80 earlier dev rows): full
    assert {r.mode for r in _verifications(three, "c")} == {"full"}
    assert all(r.example_count == 40 for r in _verifications(three, "c"))
    text = (three.root / "tasks.toml").read_text()
    assert "full_max_examples = 10000" in text  # init writes the setting, with its default
    (three.root / "tasks.toml").write_text(text.replace("= 10000", "= 100"))
    data = write_keyword_task(three.root.parent / "d", seed=9, n_train=48, n_dev=40)
    three = type(three).open(three.root)
    three.add_task("d", data)
    three.train_next(epochs=1)  # 120 earlier dev rows > 100: probe
    assert {r.mode for r in _verifications(three, "d")} == {"probe"}


def test_the_probe_catches_a_tampered_earlier_artifact(three) -> None:
    weights = next(three.task_dir("a").rglob("adapter.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x01")
    result = invoke(three, "train-next", "--epochs", "1", "--verify", "probe")
    assert result.exit_code != 0
    assert "was modified" in result.output and "'a'" in result.output
    assert three.ledger.task("c").status == "pending"


def _context_with_c_claimed(ws):
    ctx = open_context(ws.ledger, ws.store, "cpu")
    for name in "ab":
        ctx.load_task(ws.ledger.task(name))
    return ctx, ws.ledger.task("c")


PROBE = VerifyConfig(mode="probe")


def test_the_probe_catches_a_changed_backbone_weight(three) -> None:
    ctx, current = _context_with_c_claimed(three)
    with torch.no_grad():
        next(ctx.model.backbone.parameters()).view(-1)[0] += 1e-3
    with pytest.raises(BackboneMismatch):
        verify_earlier(ctx, current, settings=PROBE)


def test_the_probe_catches_a_changed_earlier_task_tensor(three) -> None:
    ctx, current = _context_with_c_claimed(three)
    with torch.no_grad():
        next(ctx.model.tasks["b"].parameters()).view(-1)[0] += 1e-6
    records = verify_earlier(ctx, current, settings=PROBE)
    by_task = {three.ledger.task_by_id(r.task_id).name: r for r in records}
    assert by_task["a"].identical and not by_task["b"].identical
    assert "tensors in memory differ" in by_task["b"].findings[0]
    from contlearn.runtime.verify import require_identical

    with pytest.raises(VerificationFailed, match="'b'"):
        require_identical(three.ledger, current, records)


def test_the_probe_sample_is_seeded_and_bounded(three) -> None:
    ctx, current = _context_with_c_claimed(three)
    earlier = [three.ledger.task("a"), three.ledger.task("b")]
    facts = recorded(ctx, earlier)
    one = probe_plan(current, facts, budget=1)
    assert len(one) == 1 and one == probe_plan(current, facts, budget=1)
    both = probe_plan(current, facts, budget=10_000)
    assert set(both) == {t.id for t in earlier}
    assert all(0 <= batch < 2 for batch in both.values())  # 40 rows: batches 0 and 1
    # over successive new tasks the one-batch sample moves between the earlier tasks
    plans = {tuple(probe_plan(replace(current, id=i), facts, 1)) for i in range(8)}
    assert plans == {(earlier[0].id,), (earlier[1].id,)}


def test_a_full_verification_reads_each_dev_split_once_per_process(three_own, tmp_path) -> None:
    three = three_own
    ctx, current = _context_with_c_claimed(three)
    verify_earlier(ctx, current, settings=VerifyConfig(mode="full"))
    assert len(ctx.splits) == 2
    for name in "ab":  # the files are gone; the cached encodings still serve
        for f in (tmp_path / name).iterdir():
            f.unlink()
    records = verify_earlier(ctx, current, settings=VerifyConfig(mode="full"))
    assert all(r.identical for r in records)
    fresh = open_context(three.ledger, three.store, "cpu")
    with pytest.raises(BadData, match="no training split"):  # a fresh process reads again
        fresh.dev_split(three.ledger.task("a"), 32)


def test_a_bad_verify_setting_is_refused_before_anything_runs(three) -> None:
    result = invoke(three, "train-next", "--verify", "sometimes")
    assert result.exit_code == 2 and "sometimes" in result.output
    text = (three.root / "tasks.toml").read_text()
    (three.root / "tasks.toml").write_text(text.replace('mode = "auto"', 'mode = "never"'))
    result = invoke(three, "train-next")
    assert result.exit_code == 1
    assert "verify mode must be one of auto, full, probe, got 'never'" in result.output
    assert three.ledger.task("c").status == "pending"


def test_runs_say_how_each_training_run_verified(three) -> None:
    assert invoke(three, "train-next", "--epochs", "1", "--verify", "probe").exit_code == 0
    rows = {r["task"]: r for r in three.runs()}
    assert rows["a"]["verified"] == {"full": 0, "probe": 0, "examples_rerun": 0, "identical": True}
    assert rows["b"]["verified"]["full"] == 1 and rows["b"]["verified"]["examples_rerun"] == 40
    assert rows["c"]["verified"]["probe"] == 2 and rows["c"]["verified"]["full"] == 0
    table = invoke(three, "runs").output
    assert "1 full (40 rows)" in table and "2 probe (" in table
