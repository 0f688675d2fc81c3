"""The ``fusion`` method (AdapterFusion): a task attends over earlier pfeiffer tasks' frozen
adapters and its own; the earlier tasks' files and verification stay identical, its artifact
names their weights by sha256 and loading checks them, no gradient reaches them, ``remove`` of a
task it reads and its export are refused in one line, and it serves mixed-task batches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from contlearn.errors import ArtifactError
from contlearn.model.methods.fusion import FusionConfig
from contlearn.model.methods.pfeiffer import PfeifferConfig
from contlearn.runtime import fusion
from tests.conftest import copy_workspace, fast_workspace, settled, tiny_adapted, write_keyword_task
from tests.conftest import invoke as cli
from tests.test_init_from import file_hashes

KEYWORDS = {
    "a": {"pos": "good", "neg": "bad"},
    "b": {"x": "cat", "y": "dog", "z": "news"},
    "f": {"pos": "good", "neg": "bad"},
}


@pytest.fixture(scope="session")
def fused_once(tmp_path_factory: pytest.TempPathFactory, word_backbone: Path) -> Path:
    """Pfeiffer tasks a and b, then f fusing both, trained once a session; ``hashes``: a's and
    b's files before f trained."""
    base = tmp_path_factory.mktemp("fused")
    ws = fast_workspace(base / "ws", word_backbone)
    for i, name in enumerate("ab"):
        data = write_keyword_task(
            base / name, n_train=48, n_dev=16, seed=i, keywords=KEYWORDS[name]
        )
        ws.add_task(name, data, method="pfeiffer", options={"bottleneck": 8})
    ws.train_next(all_tasks=True, epochs=1)
    before = {name: file_hashes(ws.store.folder / name) for name in "ab"}
    (base / "before.json").write_text(json.dumps(before))
    data = write_keyword_task(base / "f", n_train=48, n_dev=16, seed=5, keywords=KEYWORDS["f"])
    ws.add_task("f", data, method="fusion", options={"fuse": ["a", "b"], "bottleneck": 8})
    ws.train_next(epochs=1)
    return settled(ws)


@pytest.fixture()
def fused(fused_once: Path, tmp_path: Path):
    return copy_workspace(fused_once, tmp_path / "ws")


def _current(ws, name: str):
    return ws.ledger.trained_run(ws.ledger.task(name).id)


def _weights_sha(ws, name: str) -> str:
    return next(a.sha256 for a in ws.ledger.artifacts(_current(ws, name).id) if a.role == "weights")


def test_fusion_leaves_the_fused_tasks_identical_and_names_their_hashes(
    fused, fused_once: Path
) -> None:
    before = json.loads((fused_once.parent / "before.json").read_text())
    assert {name: file_hashes(fused.store.folder / name) for name in "ab"} == before
    run = _current(fused, "f")
    verified = run.result["verifications"]
    assert {v["task"] for v in verified} == {"a", "b"} and all(v["identical"] for v in verified)
    hashes = {name: _weights_sha(fused, name) for name in "ab"}
    assert run.config["fused"] == hashes and run.config["adapter"]["fuse"] == ["a", "b"]
    config = next(a for a in fused.ledger.artifacts(run.id) if a.role == "config")
    assert json.loads((fused.store.root / config.path).read_text())["fused"] == hashes
    weights = next(a for a in fused.ledger.artifacts(run.id) if a.role == "weights")
    keys = fused.store.load_tensors(weights.path)
    assert {k.split(".")[0] for k in keys} == {"adapters", "fusion", "head"}


def test_a_later_task_verifies_the_fusion_task_identical_and_audit_is_clean(
    fused, tmp_path: Path
) -> None:
    data = write_keyword_task(tmp_path / "c", n_train=32, n_dev=16, seed=9)
    fused.add_task("c", data)
    done = cli(fused, "train-next", "--epochs", "1", "--json", "-q")
    assert done.exit_code == 0, done.output
    verified = json.loads(done.output)["runs"][0]["verifications"]
    assert {v["task"] for v in verified} == {"a", "b", "f"}
    assert all(v["identical"] for v in verified)
    audit = cli(fused, "audit", "--json", "-q")
    assert audit.exit_code == 0 and json.loads(audit.output)["verdict"] == "clean", audit.output


def test_the_default_fuses_every_trained_pfeiffer_task(fused, tmp_path: Path) -> None:
    data = write_keyword_task(tmp_path / "g", n_train=32, n_dev=16, seed=3)
    fused.add_task("g", data, method="fusion", options={"bottleneck": 4})
    done = cli(fused, "train-next", "--epochs", "1", "-q")
    assert done.exit_code == 0, done.output
    assert _current(fused, "g").config["adapter"]["fuse"] == ["a", "b"]  # not f, a fusion


def test_removing_a_fused_task_is_refused_until_the_fusion_task_goes(fused) -> None:
    refused = cli(fused, "remove", "a")
    assert refused.exit_code != 0 and len(refused.output.strip().splitlines()) == 1
    assert "fusion task(s) f read its adapters: remove 'f' first" in refused.output
    assert fused.ledger.task("a").position is not None
    retrain = cli(fused, "retrain", "b", "--epochs", "1")
    assert retrain.exit_code != 0 and "cannot retrain task 'b'" in retrain.output
    assert cli(fused, "remove", "f").exit_code == 0
    assert cli(fused, "remove", "a").exit_code == 0


def test_export_refuses_fusion_in_one_line(fused, tmp_path: Path) -> None:
    for fmt in ("adapterhub", "peft"):
        done = cli(fused, "export", "f", "--format", fmt, "--out", str(tmp_path / fmt))
        assert done.exit_code != 0 and len(done.output.strip().splitlines()) == 1, done.output
        assert "method 'fusion' cannot be exported" in done.output
        assert not (tmp_path / fmt).exists()


def test_bad_fuse_lists_are_one_line_with_nothing_written(fused, tmp_path: Path) -> None:
    data = write_keyword_task(tmp_path / "h", n_train=16, n_dev=8, seed=4)
    fused.add_task("h", data)
    runs, files = len(fused.ledger.runs()), file_hashes(fused.store.folder)
    for fuse, says in (
        ("nope", "'nope', which is not a trained task"),
        ("a,f", "'f', which is not a pfeiffer task with shared norms"),
    ):
        done = cli(fused, "train-next", "--fuse", fuse, "--epochs", "1")
        assert done.exit_code != 0 and len(done.output.strip().splitlines()) == 1, done.output
        assert says in done.output
    assert len(fused.ledger.runs()) == runs and file_hashes(fused.store.folder) == files


def test_loading_checks_the_fused_weights_hashes(fused) -> None:
    task = fused.ledger.task("f")
    config = next(a for a in fused.ledger.artifacts(_current(fused, "f").id) if a.role == "config")
    meta = json.loads((fused.store.root / config.path).read_text())
    assert [t.name for t in fusion.check_recorded(fused.ledger, task, meta)] == ["a", "b"]
    meta["fused"]["a"] = "0" * 64
    with pytest.raises(ArtifactError, match="fuses 'a' weights 000000000000, but 'a' now has"):
        fusion.check_recorded(fused.ledger, task, meta)


def test_fusion_serves_mixed_task_batches(fused) -> None:
    rows = [{"text": t, "task": n} for t in ("good film", "bad cat", "the dog") for n in "abf"]
    mixed = fused.predict(None, rows, task_field="task")
    for name in "abf":
        mine = [i for i, r in enumerate(rows) if r["task"] == name]
        alone = fused.predict(name, [rows[i] for i in mine])
        for i, one in zip(mine, alone, strict=True):
            assert mixed[i]["label"] == one["label"]
            for label, p in one["probabilities"].items():
                assert abs(mixed[i]["probabilities"][label] - p) < 1e-5


def test_no_gradient_reaches_the_fused_adapters_and_a_forward_is_deterministic() -> None:
    model = tiny_adapted()
    model.add_task("a", num_outputs=2, adapter=PfeifferConfig(bottleneck=4))
    model.add_task("f", num_outputs=2, adapter=FusionConfig(fuse=("a",), bottleneck=4))
    before = {k: v.clone() for k, v in model.tasks["a"].state_dict().items()}
    model.activate("f")
    ids, mask = torch.randint(0, 50, (2, 5)), torch.ones(2, 5, dtype=torch.long)
    model(ids, mask).sum().backward()
    assert all(p.grad is None for p in model.tasks["a"].parameters())
    own = [p for p in model.tasks["f"].parameters() if p.grad is not None]
    assert own and len(own) == len(list(model.tasks["f"].parameters()))
    state = model.tasks["a"].state_dict()
    assert all(torch.equal(before[k], state[k]) for k in before)
    assert set(model.tasks["f"].state_dict()) >= {"fusion.0.value.weight", "adapters.1.up.bias"}
    assert not any(k.startswith("a.") for k in model.tasks["f"].state_dict())


def test_serve_answers_mixed_rows_of_a_fusion_task_and_the_tasks_it_reads(fused) -> None:
    from tests.test_serve import call, thread_server

    items = [{"task": n, "text": t} for t in ("good film", "bad cat") for n in "fab"]
    with thread_server(fused) as base:
        status, body = call(base, "POST", "/v1/predict", {"items": items}, token=None)
    assert status == 200, body
    expected = fused.predict(None, items, task_field="task")
    assert [p["task"] for p in body["predictions"]] == [i["task"] for i in items]
    for got, want in zip(body["predictions"], expected, strict=True):
        assert got["label"] == want["label"]
        assert all(
            abs(got["probabilities"][k] - p) < 1e-6 for k, p in want["probabilities"].items()
        )


@pytest.mark.parametrize("label", ["bert", "llama"])  # a post-LN and a pre-LN family
def test_fusing_a_copy_of_ones_own_adapter_computes_that_pfeiffer_task(label: str) -> None:
    """Every adapter's output the same (the own adapter a copy of the fused one) and the value
    projection the identity: whatever the attention weighs, the fusion task computes what the
    pfeiffer task computes (the formula at each site is Pfeiffer's with the fused output)."""
    from contlearn.model.adapted import AdaptedModel
    from tests.family_configs import VOCAB, tiny_model

    model = AdaptedModel(tiny_model(label)).eval()
    model.add_task("a", num_outputs=2, adapter=PfeifferConfig(bottleneck=4))
    model.add_task("f", num_outputs=2, adapter=FusionConfig(fuse=("a",), bottleneck=4))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.tasks["a"].parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.3)
        own = model.tasks["f"]
        own.adapters.load_state_dict(model.tasks["a"].adapters.state_dict())
        own.head.load_state_dict(model.tasks["a"].head.state_dict())
        for attention in own.fusion.values():
            attention.value.weight.copy_(torch.eye(attention.value.weight.shape[0]))
    ids = torch.randint(4, VOCAB, (2, 7), generator=g)
    mask = torch.ones_like(ids)
    with torch.no_grad():
        model.activate("a")
        theirs = model(ids, mask)
        model.activate("f")
        ours = model(ids, mask)
    assert torch.allclose(theirs, ours, atol=1e-5)
