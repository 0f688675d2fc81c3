"""Choosing a task's method: add-task --method/--set, [[task]] method/options and the
workspace's [adapter] default in tasks.toml, train-next --method; one workspace mixing every
method, verified and audited in a fresh process; bad choices one line with nothing written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from contlearn.api import Workspace
from contlearn.model.methods.registry import METHODS
from tests.conftest import invoke as cli
from tests.conftest import write_keyword_task

ALL = {
    "houlsby": ["--set", "bottleneck=4", "--set", "leave_out=0"],
    "pfeiffer": ["--set", "bottleneck=8", "--set", "nonlinearity=gelu"],
    "parallel": ["--set", "scaling=2.0"],
    "lora": ["--set", "rank=2", "--set", "targets=query,value,ffn_output"],
    "ia3": [],
    "topk": ["--set", "k=1"],
    "head": [],
    "fusion": [],  # reads pfeiffer's adapters (the one pfeiffer task with shared norms)
}


def test_every_method_in_one_workspace_trains_verifies_and_audits_in_a_fresh_process(
    workspace: Workspace, tmp_path: Path
) -> None:
    assert set(ALL) == set(METHODS)
    for i, (method, options) in enumerate(ALL.items()):
        data = write_keyword_task(tmp_path / method, n_train=32, n_dev=16, seed=i)
        added = cli(
            workspace, "add-task", method, "--data", str(data), "--method", method, *options
        )
        assert added.exit_code == 0 and f"method {method}" in added.output, added.output
    done = cli(workspace, "train-next", "--all", "--epochs", "1", "--json", "-q")
    assert done.exit_code == 0, done.output
    runs = json.loads(done.output)["runs"]
    assert [r["task"] for r in runs] == list(ALL)
    for n, run in enumerate(runs):  # each verified every task before it, bit for bit
        assert len(run["verifications"]) == n and all(v["identical"] for v in run["verifications"])
    recorded = {t.name: workspace.ledger.trained_run(t.id).config for t in workspace.tasks()}
    assert {name: c["method"] for name, c in recorded.items()} == {m: m for m in ALL}
    assert recorded["lora"]["adapter"]["targets"] == ["query", "value", "ffn_output"]
    assert recorded["houlsby"]["adapter"]["leave_out"] == [0]
    status = json.loads(cli(workspace, "status", "--json").output)["tasks"]
    assert [row["method"] for row in status] == list(ALL)
    audit = subprocess.run(
        [sys.executable, "-m", "contlearn.cli", "audit", "--json", "-q", "-w", str(workspace.root)],
        capture_output=True,
        text=True,
    )
    assert audit.returncode == 0 and json.loads(audit.stdout)["verdict"] == "clean", audit.stdout


def test_tasks_toml_chooses_methods_per_task_and_for_the_workspace(
    workspace: Workspace, tmp_path: Path
) -> None:
    a = write_keyword_task(tmp_path / "a", n_train=24, n_dev=8, seed=1)
    b = write_keyword_task(tmp_path / "b", n_train=24, n_dev=8, seed=2)
    path = workspace.root / "tasks.toml"
    text = path.read_text().replace('method = "houlsby"', 'method = "lora"')
    text = text.replace("bottleneck = 64\n", "rank = 4\n")  # the [adapter] table is lora's now
    for key in ("nonlinearity", "init_std"):
        text = "\n".join(line for line in text.splitlines() if not line.startswith(key)) + "\n"
    text += f'\n[[task]]\nname = "a"\ndata = "{a}"\n'
    text += (
        f'\n[[task]]\nname = "b"\ndata = "{b}"\nmethod = "ia3"\noptions = {{ targets = ["key"] }}\n'
    )
    path.write_text(text)
    ws = Workspace.open(workspace.root)
    assert ws.sync() == ["a", "b"]
    assert [r["method"] for r in ws.status()] == ["lora", "ia3"]
    ws.train_next(all_tasks=True, epochs=1)
    configs = [ws.ledger.trained_run(ws.ledger.task(n).id).config for n in ("a", "b")]
    assert configs[0]["method"] == "lora" and configs[0]["adapter"]["rank"] == 4
    assert configs[1]["method"] == "ia3" and configs[1]["adapter"]["targets"] == ["key"]


def test_train_next_method_overrides_the_task_s_own(two_tasks: Workspace) -> None:
    done = cli(two_tasks, "train-next", "--method", "lora", "--set", "rank=3", "--epochs", "1")
    assert done.exit_code == 0, done.output
    run = two_tasks.ledger.trained_run(two_tasks.ledger.task("a").id)
    assert run.config["method"] == "lora" and run.config["adapter"]["rank"] == 3
    assert [r["method"] for r in two_tasks.status()] == ["lora", "houlsby"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add-task", "c", "--method", "lora", "--set", "rank=0"], "rank must be a positive"),
        (
            ["add-task", "c", "--method", "lora", "--set", "bottleneck=8"],
            "has no option 'bottleneck'",
        ),
        (["add-task", "c", "--method", "topk", "--set", "k=9"], "the backbone has 2 layers"),
        (["add-task", "c", "--set", "leave_out=5"], "leave_out names layer 5"),
        (["add-task", "c", "--method", "nope"], "Invalid value for '--method'"),
        (["add-task", "c", "--set", "rank"], "'rank' is not KEY=VALUE"),
        (["train-next", "--set", "rank=4"], "give --method NAME with --set"),
        (["train-next", "--method", "ia3", "--set", "targets=nope"], "each target must be one of"),
    ],
)
def test_bad_method_choices_are_one_line_and_write_nothing(
    two_tasks: Workspace, tmp_path: Path, args: list[str], message: str
) -> None:
    if args[0] == "add-task":
        args = [*args, "--data", str(write_keyword_task(tmp_path / "c", seed=5))]
    before = len(two_tasks.tasks()), len(two_tasks.ledger.runs())
    result = cli(two_tasks, *args)
    assert result.exit_code != 0 and message in result.output, result.output
    assert result.output.strip().splitlines()[-1].startswith("Error")
    assert (len(two_tasks.tasks()), len(two_tasks.ledger.runs())) == before
