"""``contlearn tradeoff``: a grid of methods trained on one task as recorded ``tradeoff`` runs
that never touch the task's artifact, resumable, rendered to files; bad grids refused up
front."""

from __future__ import annotations

import json

import pytest

from contlearn.api import Workspace
from contlearn.errors import ConfigError
from contlearn.ops.tradeoff import DEFAULT_GRID, Point, parse_grid
from tests.conftest import invoke as cli

GRID = "houlsby:bottleneck=2,lora:rank=2:lr=0.01,head,full"


def test_the_default_grid_is_the_issue_s_grid() -> None:
    labels = [p.label for p in parse_grid(DEFAULT_GRID, num_layers=6)]
    assert labels == [
        *(f"houlsby bottleneck={m}" for m in (2, 8, 64, 256)),
        "pfeiffer bottleneck=64",
        *(f"lora rank={r}" for r in (1, 8, 64)),
        "ia3",
        "topk k=1",
        "topk k=3",
        "head",
        "full fine-tuning",
    ]


def test_a_point_s_lr_is_its_own() -> None:
    assert parse_grid("lora:rank=4:lr=2e-3") == [Point("lora", {"rank": 4}, 0.002)]


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ("", "names no point"),
        ("nope", "--grid point 'nope': unknown method 'nope'"),
        ("lora:rank=0", "rank must be a positive integer"),
        ("lora:rank", "'rank' is not key=value"),
        ("houlsby:bottleneck=8,houlsby:bottleneck=8", "repeats the point 'houlsby bottleneck=8'"),
        ("full:rank=2", "full fine-tuning takes only lr"),
        ("head:lr=-1", "lr must be a positive number"),
        ("topk:k=3", "topk k=3, but the backbone has 2 layers"),
    ],
)
def test_bad_grids_are_refused_before_anything_runs(
    trained: Workspace, grid: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_grid(grid, num_layers=2)
    before = len(trained.ledger.runs())
    result = cli(trained, "tradeoff", "a", "--grid", grid)
    assert result.exit_code == 1 and message in result.output and result.output.count("\n") == 1
    assert len(trained.ledger.runs()) == before


def test_a_grid_trains_recorded_runs_leaves_the_task_alone_and_resumes(
    trained: Workspace, tmp_path
) -> None:
    task = trained.ledger.task("a")
    current = trained.ledger.trained_run(task.id)
    result = trained.tradeoff("a", grid=GRID, epochs=1)
    points = {p["label"]: p for p in result["points"]}
    assert [p["status"] for p in result["points"]] == ["finished"] * 4
    backbone = trained.ledger.backbone().num_parameters
    assert result["backbone"]["parameters"] == backbone and result["metric"] == "accuracy"
    head, full = points["head"], points["full fine-tuning"]
    assert head["trainable_params"] < points["lora rank=2"]["trainable_params"]
    assert full["trainable_params"] == backbone + head["trainable_params"]
    assert points["lora rank=2"]["lr"] == 0.01 and full["lr"] == 2e-5
    assert all(0 <= p["score"] <= 1 for p in result["points"])
    runs = trained.ledger.runs(purpose="tradeoff")
    assert len(runs) == 4 and {r.status for r in runs} == {"succeeded"}
    assert trained.ledger.trained_run(task.id).id == current.id  # the task's own run stays
    assert trained.audit()["verdict"] == "clean"
    again = cli(trained, "tradeoff", "a", "--grid", GRID, "--epochs", "1", "--json", "-q")
    assert again.exit_code == 0 and len(trained.ledger.runs(purpose="tradeoff")) == 4
    assert json.loads(again.output)["points"] == result["points"]
    out = tmp_path / "to"
    shown = cli(trained, "tradeoff", "a", "--grid", GRID, "--epochs", "1", "-q", "--out", str(out))
    assert shown.exit_code == 0 and "lora rank=2" in shown.output
    assert sorted(p.name for p in out.iterdir()) == [
        "tradeoff.html",
        "tradeoff.json",
        "tradeoff.md",
        "tradeoff.png",
    ]
    longer = trained.tradeoff("a", grid="head", epochs=2)  # another budget: a new point
    assert longer["points"][0]["run_id"] not in {r.id for r in runs}
