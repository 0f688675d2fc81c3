"""The ``contlearn`` command group; the other modules of this package add its commands."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="contlearn")
def main() -> None:
    """contlearn: learn NLP tasks one after another without forgetting.

    Each task gets its own bottleneck adapter on one frozen backbone; the ledger proves that
    training a new task leaves every earlier task's predictions bit-identical.

    \b
    Example:
        contlearn init
        contlearn add-task rte --data ../shared/data/glue/RTE
        contlearn train-next --all --epochs 3 --max-train-examples 2000
        contlearn audit

    \b
    Exit codes:
        0    done
        1    an error the message names (bad data, a failed verification, ...)
        2    usage: an unknown task or option
        3    no space left on the device (files or the ledger)
        4    a read-only file system, or a permission refused
        5    the ledger is locked past the busy timeout, or its server is unreachable
        6    out of memory on the accelerator
        130  stopped by SIGINT (Ctrl-C), 143 by SIGTERM: the run is recorded interrupted
    Every error is one line naming the fault and the fix; the run it ended is recorded failed
    (or interrupted) when the ledger can be reached, and nothing is left half-written.
    """
