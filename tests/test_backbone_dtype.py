"""A backbone loaded in bf16 (``init --backbone-dtype``): its weights in bf16 only, fingerprinted
as loaded, fp32 task modules meeting it under autocast on every family and method, whole
workspaces that train, verify and audit in bf16, the training precision it implies, and the
one-line refusals (a dtype the device cannot do, a precision that contradicts it) that write
nothing. A checkpoint stored in bf16 loads in the workspace's dtype, not the checkpoint's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from contlearn.api import Workspace
from contlearn.cli import main
from contlearn.model.adapted import AdaptedModel
from contlearn.model.backbone import load
from contlearn.model.methods.registry import get_method
from tests.conftest import invoke, save_family_backbone, write_keyword_task
from tests.family_configs import CONFIGS, tiny_model
from tests.test_family_matrix import CASES, inputs


def _train_step(model: AdaptedModel, name: str, seed: int) -> None:
    model.train()
    model.activate(name)
    opt = torch.optim.AdamW(model.trainable_parameters(name), lr=1e-2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(**inputs(seed)).float().square().mean()
    opt.zero_grad()
    loss.backward()
    for n, p in model.tasks[name].named_parameters():
        assert p.dtype == torch.float32 and p.grad is not None, n
        assert p.grad.dtype == torch.float32, n
    opt.step()


@pytest.mark.parametrize("label", CONFIGS)
def test_every_method_trains_in_fp32_on_a_bf16_backbone_of_the_family(label: str) -> None:
    model = AdaptedModel(tiny_model(label).to(torch.bfloat16))
    reference = AdaptedModel(tiny_model(label))
    batch = inputs()
    for method, options in CASES:
        cfg = get_method(method).config(options)
        model.add_task(method, num_outputs=2, adapter=cfg)
        _train_step(model, method, seed=5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    model.activate("houlsby")
    with torch.no_grad():
        houlsby = model(**batch)
    assert houlsby.dtype == torch.float32
    model.add_task("late", num_outputs=2, adapter=get_method("lora").config({}))
    _train_step(model, "late", seed=9)
    after = model.state_dict()
    unchanged = [k for k in before if not k.startswith("tasks.late.")]
    assert all(torch.equal(before[k], after[k]) for k in unchanged)  # isolation, bit for bit
    model.eval()
    with torch.no_grad():
        model.activate("houlsby")
        assert torch.equal(model(**batch), houlsby)
        # A head-only task reads the bf16 backbone: close to the fp32 model's, not equal.
        for m in (model, reference):
            m.add_task("probe", num_outputs=2, adapter=None)
            m.eval()  # the new head too
        reference.tasks["probe"].load_state_dict(model.tasks["probe"].state_dict())
        model.activate("probe")
        reference.activate("probe")
        assert torch.allclose(model(**batch), reference(**batch), atol=0.05)


def test_a_bf16_workspace_holds_no_fp32_copy_and_fingerprints_what_it_loaded(
    tiny_backbone: Path, tmp_path: Path
) -> None:
    half = Workspace.create(tmp_path / "half", backbone=str(tiny_backbone), backbone_dtype="bf16")
    full = Workspace.create(tmp_path / "full", backbone=str(tiny_backbone))
    recorded = half.ledger.backbone()
    assert recorded.dtype == "bfloat16" and full.ledger.backbone().dtype == "float32"
    assert recorded.fingerprint != full.ledger.backbone().fingerprint
    loaded = load(str(tiny_backbone), "bfloat16")
    assert loaded.fingerprint == recorded.fingerprint
    floats = [t for t in loaded.model.state_dict().values() if t.is_floating_point()]
    assert floats and all(t.dtype == torch.bfloat16 for t in floats)


def test_a_bf16_workspace_trains_verifies_and_audits_in_bf16(
    tiny_backbone: Path, tmp_path: Path
) -> None:
    ws = Workspace.create(tmp_path / "ws", backbone=str(tiny_backbone), backbone_dtype="bf16")
    for name, method, seed in (("a", "houlsby", 1), ("b", "lora", 2)):
        data = write_keyword_task(tmp_path / name, n_train=48, n_dev=16, seed=seed)
        ws.add_task(name, data, method=method)
    done = invoke(ws, "train-next", "--all", "--epochs", "1", "--max-length", "32", "--json", "-q")
    assert done.exit_code == 0, done.output
    first, second = json.loads(done.output)["runs"]
    assert [v["identical"] for v in second["verifications"]] == [True]
    run = ws.ledger.trained_run(ws.ledger.task("a").id)
    assert run.config["train"]["precision"] == "bf16"
    assert run.config["canonical_eval"]["dtype"] == "bfloat16" and run.config["pad"] == "own"
    (post,) = ws.ledger.evaluations(run_id=run.id, kind="post-train")
    assert post.recipe["dtype"] == "bfloat16"
    audit = subprocess.run(
        [sys.executable, "-m", "contlearn.cli", "audit", "--json", "-q", "-w", str(ws.root)],
        capture_output=True,
        text=True,
    )
    assert audit.returncode == 0 and json.loads(audit.stdout)["verdict"] == "clean", audit.stdout
    # The baseline that trains the backbone trains an fp32 copy of the same values, computing
    # in the adapter runs' precision.
    results = ws.compare(epochs=1, max_train_examples=16)
    assert results["backbone"]["dtype"] == "bfloat16"
    full = ws.ledger.runs(purpose="compare")
    assert full and all(r.status == "succeeded" for r in full)
    assert all(r.config["train"]["precision"] == "bf16" for r in full)


def test_a_precision_that_contradicts_the_backbone_is_refused_before_a_run(
    tiny_backbone: Path, tmp_path: Path
) -> None:
    ws = Workspace.create(tmp_path / "ws", backbone=str(tiny_backbone), backbone_dtype="bf16")
    ws.add_task("a", write_keyword_task(tmp_path / "a", n_train=16, n_dev=8))
    done = invoke(ws, "train-next", "--precision", "fp32")
    assert done.exit_code != 0
    assert done.output.strip().splitlines()[-1] == (
        "Error: --precision fp32: this workspace's backbone is loaded in bf16 (init "
        "--backbone-dtype), so its tasks compute in bf16: use --precision bf16 or auto"
    )
    assert ws.ledger.runs(purpose="train") == [] and ws.ledger.task("a").status == "pending"


def test_a_backbone_dtype_the_device_cannot_do_is_refused_and_nothing_is_written(
    tiny_backbone: Path, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    args = ["init", "-w", str(root), "--backbone", str(tiny_backbone), "--backbone-dtype", "fp16"]
    done = CliRunner().invoke(main, args)
    assert done.exit_code != 0
    assert done.output.strip().splitlines() == [
        "Error: --backbone-dtype fp16 needs a CUDA or MPS device, not cpu: use bf16 or fp32"
    ]
    assert not root.exists() or not any(root.iterdir())


def test_a_checkpoint_stored_in_bf16_loads_in_the_workspace_dtype(tmp_path: Path) -> None:
    folder = save_family_backbone(tmp_path / "bb", "llama")
    model = tiny_model("llama").to(torch.bfloat16)
    model.save_pretrained(folder)  # config.json now says bfloat16
    assert json.loads((folder / "config.json").read_text()).get("dtype") == "bfloat16"
    loaded = load(str(folder))
    assert {t.dtype for t in loaded.model.parameters()} == {torch.float32}
    ws = Workspace.create(tmp_path / "ws", backbone=str(folder))
    ws.add_task("a", write_keyword_task(tmp_path / "a", n_train=16, n_dev=8))
    ws.train_next(epochs=1, max_length=32)
    assert ws.ledger.task("a").status == "trained" and ws.ledger.backbone().dtype == "float32"
