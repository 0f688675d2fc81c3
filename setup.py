"""The build hook that puts the top-level ``migrations/`` (alembic's environment and revisions)
into the wheel as ``contlearn/ledger/migrations``, so an installed contlearn can create and
upgrade a ledger; everything else is in pyproject.toml. A source checkout (and an editable
install) reads ``migrations/`` where it is."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class BuildWithMigrations(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "contlearn" / "ledger" / "migrations"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(MIGRATIONS, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithMigrations})
