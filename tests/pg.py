"""A throwaway PostgreSQL server on 127.0.0.1 for the tests (Debian's postgresql package).

``.ci/run`` and ``make test`` install the package when it is missing. The server runs as the
``postgres`` system user when the tests run as root (initdb refuses root), in a temporary folder,
and is stopped when the test session ends.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        path = shutil.which("initdb")
        if path is None:
            raise RuntimeError(
                "PostgreSQL server binaries not found: install Debian's postgresql package "
                "(`make test` and .ci/run do this)"
            )
        return Path(path).parent
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a URL ``postgresql+psycopg://postgres@127.0.0.1:PORT/postgres``."""
    bindir, port = pg_bin(), _free_port()
    folder = Path(tempfile.mkdtemp(prefix="contlearn-pg-"))
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    run = lambda *a: subprocess.run(_as_postgres(list(a)), check=True, capture_output=True)  # noqa: E731
    run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    options = f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off -c max_connections=50"
    start = [str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log")]
    run(*start, "-w", "start")
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    _SERVERS[url] = (start, port)
    try:
        _wait_ready(bindir, port)
        yield url
    finally:
        subprocess.run(
            _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)


_SERVERS: dict[str, tuple[list[str], int]] = {}  # server URL -> its pg_ctl command, port


def stop_server(url: str) -> None:
    """Stop the server of ``url`` at once (``pg_ctl stop -m immediate``), as a crash would."""
    start, _port = _SERVERS[url.rsplit("/", 1)[0] + "/postgres"]
    subprocess.run(_as_postgres([*start[:3], "-m", "immediate", "stop"]), check=True)


def start_server(url: str) -> None:
    """Start the server of ``url`` again, with the options it first had."""
    start, port = _SERVERS[url.rsplit("/", 1)[0] + "/postgres"]
    subprocess.run(_as_postgres([*start, "-w", "start"]), check=True, capture_output=True)
    _wait_ready(Path(start[0]).parent, port)


def _wait_ready(bindir: Path, port: int, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ok = subprocess.run(
            [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True
        )
        if ok.returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError("PostgreSQL did not start")


def create_database(server_url: str, name: str) -> str:
    """A fresh database on the server; returns its URL."""
    import psycopg

    plain = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"
