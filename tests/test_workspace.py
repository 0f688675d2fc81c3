"""Workspace creation, task registration, ordering, transactions and status, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from contlearn.api import Workspace
from contlearn.cli import main
from tests.fixtures_data import write_glue_task, write_table_task


def run(*args: str, ok: bool = True):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def dump(ws: Workspace) -> list[tuple]:
    """Every row of every ledger table, to prove a failed command changed nothing."""
    tables = ["backbones", "tasks", "runs", "artifacts", "evaluations", "comparisons"]
    with ws.ledger.engine.connect() as conn:
        return [tuple(r) for t in tables for r in conn.execute(text(f"SELECT * FROM {t}"))]


def test_init_records_backbone_and_refuses_existing(tmp_path: Path, tiny_backbone: Path) -> None:
    root = tmp_path / "ws"
    out = run("init", "-w", str(root), "--backbone", str(tiny_backbone)).output
    assert "created workspace" in out
    ws = Workspace.open(root)
    bb = ws.ledger.backbone()
    assert bb.model_type == "bert" and len(bb.fingerprint) == 64
    assert bb.versions["torch"].startswith("2.13")
    assert (root / "tasks.toml").is_file() and (root / "artifacts").is_dir()
    before = (root / "tasks.toml").read_text(), dump(ws)
    again = run("init", "-w", str(root), "--backbone", str(tiny_backbone), ok=False)
    assert again.exit_code == 1 and "already a contlearn workspace" in again.output
    assert ((root / "tasks.toml").read_text(), dump(ws)) == before


def test_init_with_bad_backbone_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    result = run("init", "-w", str(root), "--backbone", str(tmp_path), ok=False)
    assert result.exit_code == 1 and "config.json" in result.output
    assert not (root / "tasks.toml").exists() and not (root / "contlearn.db").exists()


def test_commands_outside_a_workspace_say_so(tmp_path: Path) -> None:
    result = run("status", "-w", str(tmp_path), ok=False)
    assert result.exit_code == 1 and "contlearn init" in result.output


def test_add_task_glue_and_status_json(workspace: Workspace, tmp_path: Path) -> None:
    rte = write_glue_task(tmp_path / "data", "rte", n_train=40, n_dev=12)
    out = run("add-task", "rte", "--data", str(rte), "-w", str(workspace.root)).output
    added = "added rte (classification) at position 1: 40 train / 12 dev rows, 2 labels"
    assert f"{added}, metric accuracy" in out
    status = json.loads(run("status", "--json", "-w", str(workspace.root)).output)
    (task,) = status["tasks"]
    assert task["name"] == "rte" and task["position"] == 1 and task["status"] == "pending"
    assert (task["train_rows"], task["dev_rows"]) == (40, 12)
    assert task["labels"] == ["entailment", "not_entailment"] and task["metric"] == "accuracy"
    record = workspace.ledger.task("rte")
    assert record.text_fields == ["sentence1", "sentence2"] and len(record.data_fingerprint) == 64


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "json", "parquet"])
def test_add_task_table_formats(workspace: Workspace, tmp_path: Path, fmt: str) -> None:
    folder = write_table_task(tmp_path / fmt, fmt)
    run("add-task", "t", "--data", str(folder), "-w", str(workspace.root))
    task = workspace.ledger.task("t")
    assert task.data_format == fmt and task.train_rows > 0 and task.labels


def test_ordering_append_and_insert(workspace: Workspace, tmp_path: Path) -> None:
    data = write_glue_task(tmp_path / "d", "sst2", n_train=20, n_dev=8)
    for name in ("a", "b", "c"):
        run("add-task", name, "--data", str(data), "-w", str(workspace.root))
    run("add-task", "x", "--data", str(data), "--position", "2", "-w", str(workspace.root))
    run("add-task", "y", "--data", str(data), "--position", "1", "-w", str(workspace.root))
    before = dump(workspace)
    beyond = run(
        "add-task", "z", "--data", str(data), "--position", "7", "-w", str(workspace.root), ok=False
    )
    assert beyond.exit_code == 1 and beyond.output == (
        "Error: position 7 is beyond the end of the sequence (5 tasks): give 1 to 6, "
        "or no position to append\n"
    )
    assert dump(workspace) == before
    run("add-task", "z", "--data", str(data), "--position", "6", "-w", str(workspace.root))
    tasks = workspace.tasks()
    assert [t.name for t in tasks] == ["y", "a", "x", "b", "c", "z"]
    assert [t.position for t in tasks] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bad/../name"], "invalid task name"),
        (["../escape"], "invalid task name"),
        (["UPPER"], "invalid task name"),
        (["ok", "--data", "/no/such/folder"], "does not exist"),
    ],
)
def test_bad_add_task_is_one_line_and_changes_nothing(
    workspace: Workspace, tmp_path: Path, args: list[str], message: str
) -> None:
    data = write_glue_task(tmp_path / "d", "rte", n_train=10, n_dev=4)
    if "--data" not in args:
        args = [*args, "--data", str(data)]
    before = dump(workspace)
    result = run("add-task", *args, "-w", str(workspace.root), ok=False)
    assert result.exit_code == 1 and message in result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert dump(workspace) == before


def test_duplicate_name_refused(workspace: Workspace, tmp_path: Path) -> None:
    data = write_glue_task(tmp_path / "d", "rte", n_train=10, n_dev=4)
    run("add-task", "rte", "--data", str(data), "-w", str(workspace.root))
    before = dump(workspace)
    result = run("add-task", "rte", "--data", str(data), "-w", str(workspace.root), ok=False)
    assert result.exit_code == 1 and "already registered" in result.output
    assert dump(workspace) == before


def test_from_config_registers_in_order_all_or_nothing(
    workspace: Workspace, tmp_path: Path
) -> None:
    good = write_glue_task(tmp_path / "g", "mrpc", n_train=16, n_dev=6)
    missing = tmp_path / "missing"
    toml = workspace.root / "tasks.toml"
    base = toml.read_text()
    toml.write_text(
        base + f'\n[[task]]\nname = "m"\ndata = "{good}"\n\n[[task]]\nname = "n"\n'
        f'data = "{missing}"\n'
    )
    before = dump(workspace)
    result = run("add-task", "--from-config", "-w", str(workspace.root), ok=False)
    assert result.exit_code == 1 and "does not exist" in result.output
    assert dump(workspace) == before  # the good first task was not registered either
    toml.write_text(
        base + f'\n[[task]]\nname = "m"\ndata = "{good}"\n\n[[task]]\nname = "n"\n'
        f'data = "{good}"\nmetric = "accuracy"\n'
    )
    run("add-task", "--from-config", "-w", str(workspace.root))
    assert [(t.name, t.metric) for t in workspace.tasks()] == [("m", "f1"), ("n", "accuracy")]
    out = run("add-task", "--from-config", "-w", str(workspace.root)).output
    assert "nothing to add" in out


def test_status_table(workspace: Workspace, tmp_path: Path) -> None:
    data = write_glue_task(tmp_path / "d", "stsb", n_train=20, n_dev=8)
    run("add-task", "sts", "--data", str(data), "-w", str(workspace.root))
    out = run("status", "-w", str(workspace.root)).output
    assert out.splitlines()[0].split() == [
        "position",
        "name",
        "status",
        "method",
        "kind",
        "rows",
        "labels",
        "metric",
        "score",
        "fields",
    ]
    assert out.splitlines()[1].split()[3] == "houlsby"
    assert "regression" in out and "pearson" in out and "20/8" in out
    assert out.splitlines()[1].split()[-3:] == ["sentence1,sentence2", "->", "score"]


def test_every_command_has_help_with_an_example() -> None:
    def walk(group, prefix=()):
        for name, cmd in group.commands.items():
            yield (*prefix, name), cmd
            if hasattr(cmd, "commands"):
                yield from walk(cmd, (*prefix, name))

    for path, _cmd in walk(main):
        out = run(*path, "--help").output
        assert "Example:" in out, path
