"""The ledger's schema: migrations, autogenerate parity, newer-schema refusal, transactions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import inspect, text

from contlearn.cli import main
from contlearn.errors import LedgerError, SchemaError, TaskExists
from contlearn.ledger.engine import (
    alembic_config,
    current_revision,
    head_revision,
    make_engine,
    upgrade,
)
from contlearn.ledger.schema import Base
from contlearn.ledger.store import Ledger


def test_empty_database_upgrades_to_head_without_drift(db_url: str) -> None:
    engine = make_engine(db_url)
    assert current_revision(engine) is None
    assert upgrade(engine) == (None, head_revision())
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert {"tasks", "runs", "artifacts", "evaluations", "backbones"} <= set(
        inspect(engine).get_table_names()
    )


def test_head_read_from_the_migration_files_is_alembics() -> None:
    assert head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_status_json_on_a_ledger_at_head_imports_neither_alembic_nor_torch(workspace) -> None:
    """``status --json`` (BENCHMARKS.md: <= 1 s with 1,000 tasks) pays for no migration tooling
    and no model library when the ledger is already current."""
    workspace.ledger.add_tasks([_spec(f"t{i}") for i in range(3)])
    code = (
        "import json, sys\n"
        "from contlearn.cli import main\n"
        "try:\n"
        "    main(['status', '--json', '-w', sys.argv[1]])\n"
        "except SystemExit as done:\n"
        "    assert not done.code, done.code\n"
        "heavy = ('alembic', 'torch', 'transformers', 'numpy')\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(heavy))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(workspace.root)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    listing, imported = done.stdout.rsplit("\n", 2)[:2]
    assert [t["name"] for t in json.loads(listing)["tasks"]] == ["t0", "t1", "t2"]
    assert json.loads(imported) == []


def test_sqlite_pragmas(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'l.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000


def test_newer_schema_is_refused(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    with pytest.raises(SchemaError, match="newer than this contlearn"):
        upgrade(engine)


def test_db_commands(workspace) -> None:
    runner = CliRunner()
    out = runner.invoke(main, ["db", "current", "-w", str(workspace.root)]).output
    assert f"current {head_revision()}" in out
    out = runner.invoke(main, ["db", "upgrade", "-w", str(workspace.root)]).output
    assert f"ledger at {head_revision()}" in out


def _spec(name: str) -> dict:
    return {
        "name": name,
        "data_source": "/d",
        "data_format": "csv",
        "glue_task": None,
        "data_files": ["train.csv"],
        "data_fingerprint": "0" * 64,
        "train_rows": 1,
        "dev_rows": 1,
        "text_fields": ["text"],
        "label_field": "label",
        "problem_type": "classification",
        "labels": ["a", "b"],
        "metric": "accuracy",
        "metrics": ["accuracy"],
        "settings": {},
    }


def test_a_failed_transaction_leaves_no_trace(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    ledger = Ledger(engine)
    ledger.add_tasks([_spec("a"), _spec("b")])
    with pytest.raises(TaskExists):
        ledger.add_tasks([_spec("c"), _spec("a")], position=1)  # c inserted, then a clashes
    assert [(t.name, t.position) for t in ledger.tasks()] == [("a", 1), ("b", 2)]
    with pytest.raises(LedgerError):
        ledger.add_tasks([{**_spec("d"), "train_rows": None}])  # NOT NULL violated mid-insert
    assert [t.name for t in ledger.tasks()] == ["a", "b"]


def test_claim_marks_training_and_opens_a_run(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    ledger = Ledger(engine)
    ledger.add_tasks([_spec("a"), _spec("b")])
    task, run_id = ledger.claim_next_pending({"method": "adapter", "config": {}, "versions": {}})
    assert task.name == "a" and ledger.task("a").status == "training"
    ledger.finish_run(run_id, status="failed", task_status="pending", error="boom")
    assert ledger.task("a").status == "pending" and ledger.run(run_id).error == "boom"


def test_a_run_whose_process_died_is_taken_over(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    ledger = Ledger(engine)
    ledger.add_tasks([_spec("a"), _spec("b")])
    values = {"method": "adapter", "config": {}, "versions": {}, "host": "h", "pid": 1}
    task, dead_run = ledger.claim_next_pending(values)
    again, run_id = ledger.claim_next_pending(values, lambda run: run.id == dead_run)
    assert again.name == "a" and run_id != dead_run  # a, not b: a's worker is gone
    abandoned = ledger.run(dead_run)
    assert abandoned.status == "failed" and "abandoned" in abandoned.error
    other, _ = ledger.claim_next_pending(values, lambda run: False)
    assert other.name == "b" and ledger.task("a").status == "training"


def test_ordering_and_insertion_on_both_databases(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    ledger = Ledger(engine)
    ledger.add_tasks([_spec("a"), _spec("b")])
    ledger.add_tasks([_spec("x"), _spec("y")], position=2)
    assert [(t.name, t.position) for t in ledger.tasks()] == [
        ("a", 1),
        ("x", 2),
        ("y", 3),
        ("b", 4),
    ]


def test_a_revision_1_ledger_is_upgraded_in_place_with_its_data(two_tasks) -> None:
    from contlearn.api import Workspace
    from contlearn.ledger.engine import downgrade

    two_tasks.train_next(all_tasks=True, epochs=1)
    before = two_tasks.status()
    engine = two_tasks.ledger.engine
    downgrade(engine, "0001")
    assert current_revision(engine) == "0001"
    assert "ix_runs_task_id" not in {i["name"] for i in inspect(engine).get_indexes("runs")}
    reopened = Workspace.open(two_tasks.root)  # opening applies the pending migration
    assert current_revision(reopened.ledger.engine) == head_revision() != "0001"
    assert "ix_runs_task_id" in {i["name"] for i in inspect(engine).get_indexes("runs")}
    assert reopened.status() == before
    assert reopened.audit()["verdict"] == "clean"
