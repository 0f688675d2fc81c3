"""train-next: adapters trained in isolation, artifacts, verification, failures, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from sqlalchemy import text

from contlearn.api import Workspace
from contlearn.cli import main
from contlearn.errors import NoPendingTask, UnsupportedArchitecture, VerificationFailed
from contlearn.files import sha256_file
from tests.conftest import save_tiny_backbone, write_keyword_task


def test_train_all_verifies_earlier_tasks_identical(two_tasks: Workspace) -> None:
    ws = two_tasks
    first, second = ws.train_next(all_tasks=True)
    assert first["task"] == "a" and first["verifications"] == []
    (check,) = second["verifications"]
    assert check["task"] == "a" and check["identical"] is True
    assert check["now"] == first["metrics"] == check["recorded"]
    assert check["logits_sha256"] == first["logits_sha256"]
    assert [t.status for t in ws.tasks()] == ["trained", "trained"]
    with pytest.raises(NoPendingTask):
        ws.train_next()


def test_artifacts_match_the_ledger_and_hold_the_task_state(two_tasks: Workspace) -> None:
    ws = two_tasks
    (result,) = ws.train_next()
    task = ws.ledger.task("a")
    run = ws.ledger.trained_run(task.id)
    files = {a.role: a for a in ws.ledger.artifacts(run.id)}
    assert set(files) == {"weights", "config", "logits", "routing", "routing-meta"}
    for record in files.values():
        path = ws.root / record.path
        assert sha256_file(path) == record.sha256 and path.stat().st_size == record.bytes
    weights = files["weights"]
    assert weights.trainable_params == result["trainable_params"]
    d, m, layers = 32, 64, 2
    adapters = 2 * layers * (2 * m * d + d + m)
    layer_norms = 2 * layers * 2 * d
    head = d * d + d + d * 2 + 2
    assert weights.trainable_params == adapters + layer_norms + head
    meta = json.loads((ws.root / files["config"].path).read_text())
    assert meta["labels"] == ["neg", "pos"] and meta["backbone"]["fingerprint"]
    assert not list(ws.task_dir("a").glob("*.tmp"))


def test_optimizer_holds_exactly_the_task_parameters(two_tasks, monkeypatch) -> None:
    seen: list[set[int]] = []
    real = torch.optim.AdamW

    def spy(params, **kw):
        params = list(params)
        groups = [g["params"] if isinstance(g, dict) else [g] for g in params]
        seen.append({id(p) for group in groups for p in group})
        return real(params, **kw)

    monkeypatch.setattr(torch.optim, "AdamW", spy)
    from contlearn.runtime.context import open_context
    from contlearn.runtime.settings import resolve
    from contlearn.runtime.train_task import train_one

    ctx = open_context(two_tasks.ledger, two_tasks.store)
    claimed = two_tasks.ledger.claim_next_pending(
        {"method": "adapter", "config": {}, "versions": {}}
    )
    train_one(ctx, resolve(two_tasks.config, {}), *claimed)
    expected = {id(p) for p in ctx.model.tasks["a"].parameters()}
    assert seen == [expected]
    assert not any(id(p) in expected for p in ctx.model.backbone.parameters())


def _digest_in_fresh_process(root: Path, task: str) -> str:
    code = (
        "import sys\n"
        "from contlearn.api import Workspace\n"
        "from contlearn.runtime.context import open_context, read_task_data\n"
        "from contlearn.runtime.evaluate import evaluate_task\n"
        "from contlearn.runtime.verify import recorded_post_train\n"
        f"ws = Workspace.open({str(root)!r})\n"
        f"t = ws.ledger.task({task!r})\n"
        "ctx = open_context(ws.ledger, ws.store); meta = ctx.load_task(t)\n"
        "dev = ctx.encode(t, read_task_data(t).dev, meta['train']['max_length'])\n"
        "r = evaluate_task(ctx, t, dev, threads=recorded_post_train(ws.ledger, t).threads)\n"
        "print(r.logits_sha256)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_artifact_round_trip_in_a_fresh_process(two_tasks: Workspace) -> None:
    (result,) = two_tasks.train_next()
    assert _digest_in_fresh_process(two_tasks.root, "a") == result["logits_sha256"]


def test_a_failure_mid_training_leaves_the_task_pending(two_tasks, monkeypatch) -> None:
    from contlearn.kinds.classification import Classification

    calls = {"n": 0}
    real = Classification.loss

    def failing(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated crash mid-epoch")
        return real(*args, **kw)

    monkeypatch.setattr(Classification, "loss", failing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        two_tasks.train_next()
    task = two_tasks.ledger.task("a")
    assert task.status == "pending"
    (run,) = two_tasks.ledger.runs(purpose="train")
    assert run.status == "failed" and "simulated crash" in run.error
    assert two_tasks.ledger.artifacts(run.id) == []
    assert not list(two_tasks.task_dir("a").rglob("*"))  # not even an empty run folder
    monkeypatch.setattr(Classification, "loss", real)
    (result,) = two_tasks.train_next()  # a retry completes it
    assert result["task"] == "a" and two_tasks.ledger.task("a").status == "trained"


def test_a_changed_earlier_task_fails_the_run_loudly(two_tasks: Workspace) -> None:
    ws = two_tasks
    ws.train_next()
    with ws.ledger.engine.begin() as conn:  # pretend a's recorded logits were different
        conn.execute(text("UPDATE evaluations SET logits_sha256 = 'x' WHERE kind = 'post-train'"))
    with pytest.raises(VerificationFailed, match="'a'"):
        ws.train_next()
    assert ws.ledger.task("b").status == "pending"
    failed = ws.ledger.runs(purpose="train")[-1]
    assert failed.status == "failed" and ws.ledger.artifacts(failed.id) == []
    assert not list(ws.task_dir("b").rglob("*"))
    (verification,) = ws.ledger.evaluations(run_id=failed.id, kind="verification")
    assert verification.identical is False


def test_changed_data_is_refused_before_training(two_tasks: Workspace) -> None:
    source = Path(two_tasks.ledger.task("a").data_source) / "train.csv"
    source.write_text(source.read_text() + "good good,pos\n")
    with pytest.raises(Exception, match="changed since registration"):
        two_tasks.train_next()
    assert two_tasks.ledger.task("a").status == "pending"


@pytest.mark.parametrize("kind", ["roberta", "distilbert", "electra"])
def test_other_encoder_families_train_end_to_end(tmp_path: Path, kind: str) -> None:
    backbone = save_tiny_backbone(tmp_path / kind, kind)
    ws = Workspace.create(tmp_path / "ws", backbone=str(backbone))
    ws.add_task("a", write_keyword_task(tmp_path / "a", n_train=32, n_dev=16))
    ws.add_task("b", write_keyword_task(tmp_path / "b", n_train=32, n_dev=16, seed=3))
    _, second = ws.train_next(all_tasks=True, epochs=1, max_length=24)
    assert second["verifications"][0]["identical"] is True


def test_unsupported_architecture_is_refused_at_init(tmp_path: Path) -> None:
    from transformers import AlbertConfig, AlbertModel

    folder = tmp_path / "albert"
    config = AlbertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, vocab_size=50)
    AlbertModel(config).save_pretrained(folder)
    save_tiny_backbone(tmp_path / "tok").joinpath("vocab.txt")
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        (folder / name).write_bytes((tmp_path / "tok" / name).read_bytes())
    with pytest.raises(UnsupportedArchitecture, match="'albert'.*one shared layer module"):
        Workspace.create(tmp_path / "ws", backbone=str(folder))
    assert not (tmp_path / "ws" / "tasks.toml").exists()


def test_cli_train_next_json_and_table(two_tasks: Workspace) -> None:
    runner = CliRunner()
    out = runner.invoke(main, ["train-next", "-w", str(two_tasks.root), "--json"])
    assert out.exit_code == 0, out.output
    (run,) = json.loads(out.output)["runs"]
    assert run["task"] == "a" and run["examples_per_second"] > 0 and len(run["logits_sha256"]) == 64
    out = runner.invoke(main, ["train-next", "-w", str(two_tasks.root), "-q", "--epochs", "1"])
    assert out.exit_code == 0, out.output
    assert "trained b:" in out.output and "verification of earlier tasks" in out.output
    assert out.output.strip().splitlines()[-1].split()[-2:] == ["yes", "identical"]
    out = runner.invoke(main, ["train-next", "-w", str(two_tasks.root)])
    assert out.exit_code == 1 and "no pending task" in out.output


def test_a_run_is_determined_by_its_seed_not_by_what_ran_before(
    two_tasks: Workspace, tiny_backbone: Path, tmp_path: Path
) -> None:
    _, with_a = two_tasks.train_next(all_tasks=True)
    alone = Workspace.create(tmp_path / "alone", backbone=str(tiny_backbone))
    alone.config = two_tasks.config  # the same training settings
    alone.add_task("b", two_tasks.ledger.task("b").data_source)
    (only_b,) = alone.train_next()
    assert only_b["logits_sha256"] == with_a["logits_sha256"]
    curve = [{k: h[k] for k in ("epoch", "loss", "holdout")} for h in only_b["history"]]
    assert curve == [{k: h[k] for k in ("epoch", "loss", "holdout")} for h in with_a["history"]]


def _train_config(ws: Workspace, task: str) -> dict:
    return ws.ledger.trained_run(ws.ledger.task(task).id).config["train"]


def test_backbone_attention_dropout_switch_is_recorded_and_changes_training(
    two_tasks: Workspace, tiny_backbone: Path, tmp_path: Path
) -> None:
    from contlearn.runtime.context import open_context
    from contlearn.runtime.settings import resolve
    from contlearn.runtime.train_task import train_one

    ctx = open_context(two_tasks.ledger, two_tasks.store)
    before = [getattr(o, a) for o, a in ctx.model.attention_dropouts]
    claimed = two_tasks.ledger.claim_next_pending(
        {"method": "adapter", "config": {}, "versions": {}}
    )
    kept = train_one(ctx, resolve(two_tasks.config, {}), *claimed)
    assert _train_config(two_tasks, "a")["backbone_attention_dropout"] is True  # the default

    off_ws = Workspace.create(tmp_path / "off", backbone=str(tiny_backbone))
    (off_ws.root / "tasks.toml").write_text((two_tasks.root / "tasks.toml").read_text())
    off_ws.add_task("a", two_tasks.ledger.task("a").data_source)
    args = ["train-next", "-w", str(off_ws.root), "--json", "--no-backbone-attention-dropout"]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    (off,) = json.loads(out.output)["runs"]
    assert _train_config(off_ws, "a")["backbone_attention_dropout"] is False
    assert off["history"][0]["loss"] != kept.history[0]["loss"]  # the switch reached training

    claimed = two_tasks.ledger.claim_next_pending(
        {"method": "adapter", "config": {}, "versions": {}}
    )
    train_one(
        ctx,
        resolve(two_tasks.config, {"backbone_attention_dropout": False}),
        *claimed,
    )
    assert _train_config(two_tasks, "b")["backbone_attention_dropout"] is False
    assert [getattr(o, a) for o, a in ctx.model.attention_dropouts] == before == [0.1, 0.1]


def test_runs_recorded_before_the_setting_existed_kept_the_dropout(two_tasks: Workspace) -> None:
    from contlearn.config import recorded_train_config
    from contlearn.ops.compare import full_finetune_config

    two_tasks.train_next(backbone_attention_dropout=False)
    recorded = _train_config(two_tasks, "a")
    assert recorded_train_config(recorded).backbone_attention_dropout is False
    older = {k: v for k, v in recorded.items() if k != "backbone_attention_dropout"}
    assert recorded_train_config(older).backbone_attention_dropout is True
    run = two_tasks.ledger.trained_run(two_tasks.ledger.task("a").id)
    full = full_finetune_config(run, two_tasks.config.compare)
    assert full.backbone_attention_dropout is True  # the baseline trains the backbone as usual
    assert full.lr == two_tasks.config.compare.full_finetune_lr
