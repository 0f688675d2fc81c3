"""What several commands share: ``--workspace``/``--db`` with one-line errors, ``--json``,
``--quiet``, the training settings of ``train-next`` and ``retrain`` and the budget of
``compare``, each one decorator."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .. import faults, interrupts
from ..devices import PRECISIONS
from ..errors import ContlearnError

WORKSPACE_HELP = "Workspace folder (default: $CONTLEARN_WORKSPACE or the current folder)."


class UsageProblem(click.ClickException):
    """A one-line error that is the caller's usage (exit code 2), such as an unknown task."""

    exit_code = 2


class Failed(click.ClickException):
    """A one-line error with the exit code of its kind (``contlearn --help`` lists them)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Stopped(click.ClickException):
    """SIGINT (exit 130, "Aborted!" as click says it) or SIGTERM (143), as one line."""

    def __init__(self, exc: KeyboardInterrupt) -> None:
        signum = getattr(exc, "signum", 2)
        self.exit_code = 128 + signum
        name = "SIGINT" if signum == 2 else str(exc)
        super().__init__(
            f"{'Aborted!' if signum == 2 else 'Terminated:'} stopped by {name} at a safe point: "
            "a run in progress is recorded interrupted and its task left as it was (pending); "
            "run the command again to continue"
        )

    def show(self, file: Any = None) -> None:
        click.echo(self.message, err=True)


def fail_cleanly(func: Callable) -> Callable:
    """Turn library errors into one-line click errors with their exit codes, and SIGINT or
    SIGTERM into a stop at a safe point (exit 130 or 143)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with interrupts.handled():
                result = func(*args, **kwargs)
                interrupts.checkpoint()  # a signal held back by the last transaction
                return result
        except KeyboardInterrupt as exc:
            raise Stopped(exc) from exc
        except ContlearnError as exc:
            raise Failed(str(exc), exc.exit_code) from exc
        except OSError as exc:
            named = faults.os_fault(exc, "using")
            if named is None:
                raise
            raise Failed(str(named), named.exit_code) from exc
        except Exception as exc:
            named = _database_fault(exc)
            if named is not None:
                raise Failed(str(named), named.exit_code) from exc
            message = _database_error(exc)
            if message is None:
                raise
            raise click.ClickException(message) from exc

    return wrapper


def _database_fault(exc: Exception) -> ContlearnError | None:
    """A locked, full or read-only ledger met while opening it (before any session could
    name it), as its named error."""
    from sqlalchemy.exc import SQLAlchemyError

    from ..ledger.engine import busy_timeout

    if not isinstance(exc, SQLAlchemyError):
        return None
    return faults.database_fault(exc, "database", busy_timeout())


def _database_error(exc: Exception) -> str | None:
    """One line for a database error that reached the CLI unnamed, else None. Opening a ledger
    (engine, migrations) can fail before any session scope could name it: a --db that is not a
    database, a directory, an unknown dialect."""
    from sqlalchemy.exc import SQLAlchemyError

    if not isinstance(exc, SQLAlchemyError):
        return None
    cause = getattr(exc, "orig", None) or exc  # the driver's error, without SQL and links
    detail = " ".join(str(cause).split())[:200]
    return (
        f"cannot use the ledger database ({type(cause).__name__}: {detail}); "
        "check --db, $CONTLEARN_DB or db in tasks.toml"
    )


def workspace_options(func: Callable) -> Callable:
    """``--workspace/-w`` and ``--db`` on every command that opens a workspace."""
    func = click.option("--db", "db", default=None, help="Ledger URL (overrides tasks.toml).")(func)
    func = click.option(
        "--workspace",
        "-w",
        "workspace",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="CONTLEARN_WORKSPACE",
        default=Path("."),
        show_default=False,
        help=WORKSPACE_HELP,
    )(func)
    return fail_cleanly(func)


def json_option(help: str) -> Callable[[Callable], Callable]:
    """``--json``: print what the command returns as JSON instead of a table or sentence."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def quiet_option(func: Callable) -> Callable:
    """``--quiet/-q``: no progress bars and no time estimates."""
    return click.option("--quiet", "-q", is_flag=True, help="No progress bars.")(func)


def show_bars(quiet: bool, as_json: bool = False) -> bool:
    """Progress bars: unless --quiet or --json, and only on a terminal. In a file or a pipe
    they are carriage-return noise that the time estimate and notes land inside."""
    return not quiet and not as_json and sys.stderr.isatty()


PRECISION = click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    help="Training precision: autocast bf16/fp16 or fp32 (default from tasks.toml: auto, bf16 "
    "on CUDA devices that support it, else fp32).",
)
BUDGET = (
    click.option("--epochs", type=click.IntRange(1), help="Epochs (default from tasks.toml)."),
    click.option(
        "--max-train-examples",
        type=click.IntRange(0),
        help="Train on a deterministic subsample of N examples (0: all).",
    ),
    click.option("--batch-size", type=click.IntRange(1), help="Training batch size."),
    click.option("--max-length", type=click.IntRange(8, 4096), help="Max tokens per example."),
    click.option("--seed", type=int, help="Random seed."),
)
ADAPTER_SETTINGS = (
    click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Learning rate."),
    click.option("--bottleneck", type=click.IntRange(1), help="Adapter size m."),
    click.option(
        "--backbone-attention-dropout/--no-backbone-attention-dropout",
        default=None,
        help="Keep the frozen backbone's attention dropout while training (default from "
        "tasks.toml: kept); --no-... trains faster with PyTorch's fused attention.",
    ),
    click.option(
        "--cache-frozen-prefix/--no-cache-frozen-prefix",
        default=None,
        help="When the method leaves the lowest layers alone (leave_out, topk, head): run them "
        "without dropout and reuse their outputs from the second epoch on (default from "
        "tasks.toml: off).",
    ),
    click.option(
        "--selection",
        type=click.Choice(["holdout", "dev"]),
        help="What picks the best epoch: holdout (default from tasks.toml: a seeded 10% of the "
        "training split, at most 1,000 rows, not trained on) or dev (the reported split).",
    ),
    click.option(
        "--decay-norms-and-biases/--no-decay-norms-and-biases",
        default=None,
        help="Apply weight decay to LayerNorm weights and biases too (default from "
        "tasks.toml: no, only weight matrices decay; runs before this setting decayed "
        "everything).",
    ),
)


def parse_sets(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> Any:
    """``--set KEY=VALUE`` pairs as a dict (None when none): a TOML value (16, 0.5, true,
    "text", [1, 2]), else a comma-separated list (query,value or 0,1,2), else the text."""
    if not values:
        return None
    options: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE, e.g. rank=16", param=param)
        options[key.strip()] = _value(raw.strip())
    return options


def _value(raw: str) -> Any:
    import tomllib

    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        pass
    if "," in raw:
        return [_value(part.strip()) for part in raw.split(",") if part.strip()]
    return raw


def method_options(func: Callable) -> Callable:
    """``--method NAME`` and ``--set KEY=VALUE`` (the method's options)."""
    from ..model.methods.registry import METHODS

    return _apply(
        (
            click.option(
                "--method",
                type=click.Choice(list(METHODS)),
                help="Parameter-efficient method (default from tasks.toml: houlsby).",
            ),
            click.option(
                "--set",
                "options",
                multiple=True,
                callback=parse_sets,
                metavar="KEY=VALUE",
                help="A method option, repeatable: --set rank=16 --set targets=query,value.",
            ),
            click.option(
                "--fuse",
                callback=_names,
                metavar="TASK,TASK",
                help="The fusion method's earlier tasks (pfeiffer adapters), comma-separated; "
                "implies --method fusion (default with --method fusion: every trained pfeiffer "
                "task with shared norms).",
            ),
            click.option(
                "--init-from",
                metavar="TASK|auto",
                help="Start the task's modules as a copy of an earlier trained task's (same "
                "method and options; its head too when the label sets are equal), or auto: "
                "the one whose training inputs are most similar.",
            ),
        ),
        func,
        fused,
    )


def _names(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise click.BadParameter(f"{value!r} names no task", param=param)
    return names


def fused(func: Callable) -> Callable:
    """``--fuse a,b`` as the ``fuse`` option of method fusion (``--method`` defaults to it)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        names = kwargs.pop("fuse", None)
        if names is not None:
            kwargs["options"] = {**(kwargs.get("options") or {}), "fuse": names}
            kwargs["method"] = kwargs.get("method") or "fusion"
        return func(*args, **kwargs)

    return wrapper


def apply_options(options: tuple[Callable, ...]) -> Callable[[Callable], Callable]:
    """A decorator applying ``options`` in order."""
    return functools.partial(_apply, options)


def _apply(
    options: tuple[Callable, ...], func: Callable, inner: Callable | None = None
) -> Callable:
    """``options`` applied to ``func`` (first wrapped in ``inner``, which sees their values)."""
    func = func if inner is None else inner(func)
    for option in reversed(options):
        func = option(func)
    return func


def training_options(func: Callable) -> Callable:
    """The settings of one adapter training run; any not given comes from ``tasks.toml``."""
    return method_options(_apply((*BUDGET, *ADAPTER_SETTINGS, PRECISION), func))


def device_option(func: Callable) -> Callable:
    """``--device``: where the models run."""
    return click.option(
        "--device",
        default=None,
        help="auto (CUDA, else MPS, else the CPU), cpu, cuda, cuda:N or mps (default from "
        "tasks.toml: auto).",
    )(func)


def budget_options(func: Callable) -> Callable:
    """How much the full fine-tuning baseline trains, and its learning rate."""
    lr = click.option(
        "--lr",
        type=click.FloatRange(min=0, min_open=True),
        help="Full fine-tuning learning rate (default: full_finetune_lr in tasks.toml).",
    )
    return _apply((*BUDGET, lr, PRECISION), func)


def given(values: dict[str, Any]) -> dict[str, Any]:
    """The options the user gave (click passes the others as None)."""
    return {k: v for k, v in values.items() if v is not None}


def open_workspace(workspace: Path, db: str | None) -> Any:
    from ..api import Workspace

    return Workspace.open(workspace, db=db)
