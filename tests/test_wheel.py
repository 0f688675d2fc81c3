"""contlearn installed from a built wheel, not from the source tree: the migrations travel inside
the package, so a user who installs the wheel can create a ledger and use it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_keyword_task

ROOT = Path(__file__).resolve().parent.parent
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout, installed (not editable) into its own folder.

    The build runs on a copy of the sources, so that it leaves nothing in the checkout."""
    out = tmp_path_factory.mktemp("wheel")
    source = out / "source"
    for folder in ("contlearn", "migrations"):
        shutil.copytree(ROOT / folder, source / folder, ignore=IGNORED)
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", str(source), "-w", str(out / "dist")],
        check=True,
        cwd=out,
        capture_output=True,
    )
    (wheel,) = (out / "dist").glob("contlearn-*.whl")
    target = out / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    return target


def run(target: Path, cwd: Path, *args: str) -> str:
    """``contlearn ARGS`` from the installed copy, in a fresh process outside the checkout."""
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("CONTLEARN_WORKSPACE", None)
    code = "import sys; from contlearn.cli import main; sys.exit(main())"
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_wheel_carries_the_migrations(installed: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(installed)}
    code = (
        "import contlearn, importlib.resources as r; "
        "print(contlearn.__file__); "
        "print(' '.join(sorted(p.name for p in (r.files('contlearn.ledger') / 'migrations' "
        "/ 'versions').iterdir() if p.name.endswith('.py'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    where, versions = done.stdout.splitlines()
    assert Path(where).is_relative_to(installed)  # not the checkout's source tree
    checkout = sorted(p.name for p in (ROOT / "migrations" / "versions").glob("*.py"))
    assert versions.split() == checkout  # the top-level migrations/, every revision
    assert not (ROOT / "contlearn" / "ledger" / "migrations").exists()  # one copy in the tree


def test_init_add_task_status_and_db_current_from_the_wheel(
    installed: Path, tmp_path: Path, tiny_backbone: Path
) -> None:
    data = write_keyword_task(tmp_path / "data")
    out = run(installed, tmp_path, "init", "-w", "ws", "--backbone", str(tiny_backbone))
    assert "created workspace" in out and (tmp_path / "ws" / "contlearn.db").is_file()
    out = run(installed, tmp_path, "add-task", "reviews", "--data", str(data), "-w", "ws")
    assert "added reviews (classification) at position 1" in out
    (task,) = json.loads(run(installed, tmp_path, "status", "--json", "-w", "ws"))["tasks"]
    assert (task["name"], task["status"]) == ("reviews", "pending")
    current = run(installed, tmp_path, "db", "current", "-w", "ws").split()
    assert current[0] == "current" and current[1] == current[3].rstrip(")")  # at head
    assert run(installed, tmp_path, "db", "upgrade", "-w", "ws").startswith(
        f"ledger at {current[1]}"
    )
