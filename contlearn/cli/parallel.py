"""``train-next --nproc N``: start N data-parallel processes with ``torchrun`` running the same
command, and what a process started that way does differently (only rank 0 prints; a
termination signal from ``torchrun`` ends the run as a recorded failure)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import click

from .. import interrupts
from ..errors import ContlearnError, DeviceError
from ..train.world import World


def launch(nproc: int, device: str | None, opened: Callable[[], Any]) -> int:
    """Run the current command again under ``torchrun`` with ``nproc`` processes, without
    ``--nproc``; returns 0, or raises naming where the failure is recorded (a run whose
    process was killed before it could record it is recorded failed here, in the workspace
    ``opened`` gives)."""
    _check_gpus(nproc, device)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "contlearn.cli",
        *argv_of(click.get_current_context(), drop=("nproc",)),
    ]
    # A process that crashes in native code prints where it was (its Python stack).
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    code = subprocess.run(command, check=False, env=env).returncode
    if code != 0:
        opened().record_abandoned_runs(f"the data-parallel training stopped (torchrun exit {code})")
        raise ContlearnError(
            f"the data-parallel training stopped (torchrun exit {code}); a run it had not "
            "finished is recorded failed and its task is pending again: `contlearn runs` shows "
            "each run's status and error"
        )
    return 0


def _check_gpus(nproc: int, device: str | None) -> None:
    """One GPU per process on CUDA: refuse more processes than GPUs."""
    from .. import devices

    target = devices.resolve(device or "auto")
    if target.type != "cuda":
        return
    import torch

    count = torch.cuda.device_count()
    if nproc > count:
        raise DeviceError(
            f"--nproc {nproc} needs {nproc} CUDA devices (one per process) and this machine has "
            f"{count}: use --nproc {count}, or --device cpu"
        )


def argv_of(ctx: click.Context, drop: tuple[str, ...] = ()) -> list[str]:
    """The command line that gives the command its current parameters."""
    args = [ctx.info_name]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.name in drop or value is None or not isinstance(param, click.Option):
            continue
        args += _option(param, value)
    return args


def _option(param: click.Option, value: Any) -> list[str]:
    if param.multiple and isinstance(value, dict):  # --set KEY=VALUE, parsed
        return [arg for k, v in value.items() for arg in (param.opts[0], f"{k}={json.dumps(v)}")]
    if param.is_flag and param.secondary_opts:  # --x/--no-x
        return [param.opts[0] if value else param.secondary_opts[0]]
    if param.is_flag:
        return [param.opts[0]] if value else []
    return [param.opts[0], str(value)]


def join(world: World) -> None:
    """In a process ``torchrun`` started: a termination signal (sent when another rank fails)
    raises SystemExit at the next safe point (never inside a ledger transaction, such as the
    one recording the failure), so that the run is recorded failed and its task returned to
    pending."""
    if world.distributed:
        interrupts.raises(signal.SIGTERM, _terminated)


def _terminated(signum: int) -> BaseException:
    return SystemExit(128 + signum)


def leave_quickly() -> None:
    """End a process ``torchrun`` started once its work is recorded and printed, without the
    interpreter's teardown: the communication library's native threads can abort the process
    while Python objects are destroyed at exit (seen rarely with gloo), which would turn a
    finished run into a failed launch."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
