"""``contlearn ARGS`` for the benchmark and check scripts: in a new process, as users run it, or
in this one through click's runner, for the tiny runs of the test suite, where the seconds a new
Python takes to import torch and transformers outweigh the work (each tiny run still starts one
process, so that the installed command is exercised too).

Both return a ``subprocess.CompletedProcess`` with the exit code, standard output and standard
error, so that the caller reads the result the same way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path


def in_new_process(
    args: Sequence[str], *, env: dict | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """``python -m contlearn.cli ARGS`` in a new process."""
    command = [sys.executable, "-m", "contlearn.cli", *args]
    return subprocess.run(
        command, capture_output=True, text=True, env=env or os.environ.copy(), cwd=cwd
    )


def in_this_process(args: Sequence[str]) -> subprocess.CompletedProcess:
    """The same command run by click's runner in this process; an exception the command did
    not turn into an exit code comes back as exit 1 with its traceback on standard error."""
    from click.testing import CliRunner

    from contlearn.cli import main

    result = CliRunner().invoke(main, list(args))
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return subprocess.CompletedProcess(
        ["contlearn", *args], result.exit_code, result.stdout, stderr
    )
