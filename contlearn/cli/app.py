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
        contlearn add-task rte --data ./RTE
        contlearn train-next --all --epochs 3 --max-train-examples 2000
        contlearn audit
    """
