"""The optimizer's weight-decay rule: structural (by parameter shape), recorded per run, and
replayed as recorded by runs made before the rule existed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from contlearn.api import Workspace
from contlearn.cli import main
from contlearn.config import TrainConfig, recorded_train_config
from contlearn.model.adapted import AdaptedModel
from contlearn.model.methods.houlsby import HoulsbyConfig
from contlearn.train.optim import make_optimizer, parameter_groups
from tests.conftest import tiny_adapted


def task_parameters() -> tuple[AdaptedModel, list[torch.nn.Parameter]]:
    model = tiny_adapted()
    model.add_task("a", num_outputs=3, adapter=HoulsbyConfig(bottleneck=4))
    return model, model.trainable_parameters("a")


def test_norms_and_biases_are_not_decayed_by_default() -> None:
    model, params = task_parameters()
    decayed, plain = parameter_groups(params, TrainConfig())
    task = model.tasks["a"]
    matrices = [m.weight for m in task.modules() if isinstance(m, torch.nn.Linear)]
    others = [p for p in params if all(p is not w for w in matrices)]
    assert [id(p) for p in decayed["params"]] == [id(p) for p in matrices]
    assert [id(p) for p in plain["params"]] == [id(p) for p in others]
    norms = [p for n in task.layer_norms.values() for p in n.parameters()]
    assert {id(p) for p in norms} <= {id(p) for p in plain["params"]}
    assert (decayed["weight_decay"], plain["weight_decay"]) == (TrainConfig().weight_decay, 0.0)


def test_the_release_01_rule_decays_everything() -> None:
    _, params = task_parameters()
    groups = parameter_groups(params, TrainConfig(decay_norms_and_biases=True))
    assert [id(p) for p in groups] == [id(p) for p in params]


@pytest.mark.parametrize("everything", [False, True])
def test_a_step_without_gradient_only_decays(everything: bool) -> None:
    """With zero gradients AdamW's update is zero, so a step shows the decay alone."""
    _, params = task_parameters()
    config = TrainConfig(lr=0.1, weight_decay=0.5, warmup_ratio=0.0)
    config = replace(config, decay_norms_and_biases=everything)
    optimizer, _ = make_optimizer(params, config, total_steps=10)
    before = [p.detach().clone() for p in params]
    for p in params:
        p.grad = torch.zeros_like(p)
    optimizer.step()
    for p, old in zip(params, before, strict=True):
        if p.ndim >= 2 or everything:
            assert torch.equal(p, old * (1 - 0.1 * 0.5))
        else:
            assert torch.equal(p, old)


def test_runs_before_the_setting_read_as_decaying_everything() -> None:
    recorded = {k: v for k, v in vars(TrainConfig()).items() if k != "decay_norms_and_biases"}
    assert recorded_train_config(recorded).decay_norms_and_biases is True
    assert recorded_train_config({**recorded, "decay_norms_and_biases": False}) == TrainConfig()


def _weights_sha(ws: Workspace, task: str) -> str:
    run = ws.ledger.trained_run(ws.ledger.task(task).id)
    return next(a.sha256 for a in ws.ledger.artifacts(run.id) if a.role == "weights")


def test_the_rule_is_recorded_and_reaches_training(
    workspace: Workspace, tmp_path: Path, tiny_backbone: Path
) -> None:
    from tests.conftest import write_keyword_task

    data = write_keyword_task(tmp_path / "data")
    shas = {}
    for flag in ("--no-decay-norms-and-biases", "--decay-norms-and-biases"):
        ws = Workspace.create(tmp_path / flag, backbone=str(tiny_backbone))
        (ws.root / "tasks.toml").write_text((workspace.root / "tasks.toml").read_text())
        ws.add_task("a", data)
        out = CliRunner().invoke(main, ["train-next", "-w", str(ws.root), "--json", flag])
        assert out.exit_code == 0, out.output
        run = ws.ledger.trained_run(ws.ledger.task("a").id)
        meta = json.loads(ws.artifact_files("a")["config"].read_text())
        expected = flag == "--decay-norms-and-biases"
        assert run.config["train"]["decay_norms_and_biases"] is expected
        assert meta["train"]["decay_norms_and_biases"] is expected
        shas[flag] = _weights_sha(ws, "a")
    assert len(set(shas.values())) == 2  # the rule changed what was trained
    default = workspace
    default.add_task("a", data)
    default.train_next()
    assert _weights_sha(default, "a") == shas["--no-decay-norms-and-biases"]
