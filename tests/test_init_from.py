"""``--init-from TASK|auto``: a new task's modules start as a copy of an earlier trained task's
(its head too when the label sets are equal); the copy starts at the source's score, the choice
is recorded in the run, the source's files stay byte-identical, and a bad source is one line
with nothing written."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from contlearn.runtime import init_from
from contlearn.runtime.context import open_context
from contlearn.runtime.evaluate import evaluate_task
from contlearn.runtime.settings import task_configs
from tests.conftest import invoke as cli
from tests.conftest import write_keyword_task


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def data_of(ws, name: str) -> Path:
    return Path(ws.ledger.task(name).data_source)


def test_a_copy_starts_at_the_source_score_before_any_step(trained) -> None:
    trained.add_task("a2", data_of(trained, "a"), init_from="a")
    task, source = trained.ledger.task("a2"), trained.ledger.task("a")
    ctx = open_context(trained.ledger, trained.store, "cpu")
    plan = init_from.plan(ctx, task, ["a"], "a", 32)
    assert plan.head and plan.chosen == "named" and plan.source == "a"
    _, adapter = task_configs(trained.config, task, {})
    ctx.model.add_task("a2", num_outputs=2, adapter=adapter, head="pooled")
    ctx.model.eval()
    before = ctx.model.task_state("a")
    init_from.apply(ctx, "a2", plan)
    split = ctx.dev_split(source, 32)
    theirs, ours = evaluate_task(ctx, source, split), evaluate_task(ctx, task, split)
    assert torch.equal(theirs.logits, ours.logits) and theirs.metrics == ours.metrics
    after = ctx.model.task_state("a")
    assert all(torch.equal(before[k], after[k]) for k in before)  # the source only read


def test_another_label_set_copies_the_modules_but_not_the_head(trained) -> None:
    trained.add_task("b2", data_of(trained, "b"), init_from="a")  # labels x, y, z vs pos, neg
    task = trained.ledger.task("b2")
    ctx = open_context(trained.ledger, trained.store, "cpu")
    plan = init_from.plan(ctx, task, ["a"], "a", 32)
    assert not plan.head
    _, adapter = task_configs(trained.config, task, {})
    ctx.model.add_task("b2", num_outputs=3, adapter=adapter, head="pooled")
    init_from.apply(ctx, "b2", plan)
    theirs, ours = ctx.model.task_state("a"), ctx.model.task_state("b2")
    body = [k for k in ours if not k.startswith("head.")]
    assert body and all(torch.equal(theirs[k], ours[k]) for k in body)
    heads = [k for k in ours if k.startswith("head.")]
    assert any(ours[k].shape[0] == 3 and theirs[k].shape[0] == 2 for k in heads)


def test_train_next_records_the_source_and_leaves_its_files_identical(trained) -> None:
    trained.add_task("a2", data_of(trained, "a"))
    before = file_hashes(trained.store.folder / "a")
    done = cli(trained, "train-next", "--init-from", "a", "--epochs", "1", "--json", "-q")
    assert done.exit_code == 0, done.output
    run = json.loads(done.output)["runs"][0]
    assert all(v["identical"] for v in run["verifications"])
    assert file_hashes(trained.store.folder / "a") == before
    recorded = trained.ledger.trained_run(trained.ledger.task("a2").id).config["init_from"]
    a_weights = trained.ledger.artifacts(trained.ledger.trained_run(trained.ledger.task("a").id).id)
    sha = next(r.sha256 for r in a_weights if r.role == "weights")
    assert recorded == {"source": "a", "weights_sha256": sha, "head": True, "chosen": "named"}
    audit = cli(trained, "audit", "--json", "-q")
    assert audit.exit_code == 0 and json.loads(audit.output)["verdict"] == "clean", audit.output


def test_auto_picks_the_most_similar_inputs_and_records_the_similarities(
    word_workspace, tmp_path: Path
) -> None:
    ws = word_workspace  # a tokenizer that tells the words apart
    b = {"x": "cat", "y": "dog", "z": "news"}
    for name, seed, keywords in (("a", 1, None), ("b", 2, b)):
        ws.add_task(
            name,
            write_keyword_task(tmp_path / name, n_train=24, n_dev=8, seed=seed, keywords=keywords),
        )
    ws.add_task("a2", tmp_path / "a", init_from="auto")
    done = cli(ws, "train-next", "--all", "--epochs", "1", "--json", "-q")
    assert done.exit_code == 0, done.output
    recorded = ws.ledger.trained_run(ws.ledger.task("a2").id).config["init_from"]
    assert recorded["chosen"] == "auto" and recorded["source"] == "a"
    sims = recorded["similarities"]
    assert set(sims) == {"a", "b"} and sims["a"] == max(sims.values())
    assert abs(sims["a"] - 1.0) < 1e-5  # the same training inputs


def _refused(ws, *args: str) -> str:
    runs, files = len(ws.ledger.runs()), file_hashes(ws.store.folder)
    done = cli(ws, "train-next", "--epochs", "1", *args)
    assert done.exit_code != 0
    assert len(ws.ledger.runs()) == runs and file_hashes(ws.store.folder) == files
    assert ws.ledger.task("c").status == "pending"
    lines = [line for line in done.output.splitlines() if line.strip()]
    assert len(lines) == 1, done.output
    return lines[0]


def test_bad_sources_are_one_line_with_nothing_written(trained) -> None:
    trained.add_task("c", data_of(trained, "a"))
    unknown = _refused(trained, "--init-from", "nope")
    assert "'nope': not a trained task other than 'c'" in unknown and "trained: a, b" in unknown
    assert "not a trained task" in _refused(trained, "--init-from", "c")
    other = _refused(trained, "--init-from", "a", "--method", "lora")
    assert "trained with method 'houlsby', this task trains with 'lora'" in other
    assert "--method houlsby" in other
    shape = _refused(trained, "--init-from", "a", "--bottleneck", "3")
    assert "option bottleneck is 64, this task's is 3: give --set bottleneck=64" in shape
    none = _refused(trained, "--init-from", "auto", "--method", "pfeiffer")
    assert "no trained task has method 'pfeiffer'" in none
