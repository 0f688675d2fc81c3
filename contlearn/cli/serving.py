"""``serve``: answer for every trained task over HTTP."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from .app import main
from .options import device_option, open_workspace, workspace_options


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@device_option
@click.option(
    "--max-batch",
    type=click.IntRange(1),
    default=32,
    show_default=True,
    help="Rows per forward at most; 1 turns dynamic batching off.",
)
@click.option(
    "--max-wait-ms",
    type=click.FloatRange(0, 10_000),
    default=5.0,
    show_default=True,
    help="How long a request waits for others to join its batch.",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Require 'Authorization: Bearer TOKEN', the token being this file's first line.",
)
@click.option(
    "--poll-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=2.0,
    show_default=True,
    help="How often the ledger is read for newly trained tasks.",
)
@click.option(
    "--threads",
    type=click.IntRange(1),
    help="CPU threads per forward (default: half the cores, 1 to 4; one thread per core "
    "oversubscribes cores that other processes share).",
)
@click.option("--max-body-bytes", type=click.IntRange(1), default=1 << 20, show_default=True)
@click.option(
    "--max-rows", type=click.IntRange(1), default=64, show_default=True, help="Per request."
)
@click.option(
    "--max-text-chars",
    type=click.IntRange(1),
    default=10_000,
    show_default=True,
    help="Per text field.",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds a connection has to send a request's head (408 and closed after).",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds to receive a whole request body (408 after).",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1),
    default=256,
    show_default=True,
    help="Connections open at once; one more is answered 503 and closed.",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(1, 1024),
    default=256,
    show_default=True,
    help="The most tokens a generation request may ask for (its max_tokens).",
)
@workspace_options
def serve(
    workspace: Path, db: str | None, token_file: Path | None, device: str | None, **settings
) -> None:
    """Serve every trained task over HTTP from one backbone in memory, until SIGTERM or Ctrl-C.

    Concurrent requests are batched together (rows of several tasks in one batch); tasks
    trained while the server runs are served once their artifact verifies. Endpoints: POST
    /v1/tasks/TASK/predict, POST /v1/predict (mixed tasks), GET /v1/tasks, GET /healthz,
    GET /metrics; for generation tasks POST /v1/tasks/TASK/generate and the OpenAI-compatible
    POST /v1/chat/completions, POST /v1/completions and GET /v1/models. It listens on
    127.0.0.1 unless --host says otherwise.

    \b
    Example:
        contlearn serve --port 8000 --token-file token.txt
        curl -s localhost:8000/v1/tasks/sst2/predict -H "Authorization: Bearer $(cat token.txt)" \\
             -d '{"inputs": [{"sentence": "a gripping, funny film"}]}'
    """
    from ..serve.config import ServeConfig, read_token

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s:     %(message)s")
    logging.getLogger("contlearn").setLevel(logging.INFO)  # what it serves, refuses, reloads
    ws = open_workspace(workspace, db)
    token = read_token(str(token_file)) if token_file is not None else None
    given = {k: v for k, v in settings.items() if v is not None}  # --threads: the default
    config = ServeConfig(device=device or ws.config.device, token=token, **given)
    from ..serve.runner import run  # torch: only once the settings are known to be good

    run(ws, config)
