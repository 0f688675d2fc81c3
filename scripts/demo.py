"""`make demo`: a real continual-learning sequence, offline, on the packaged MiniLM backbone.

Prepares three task folders from data that ships in installed packages (or uses GLUE folders),
then runs the same commands a user would: init, add-task --from-config, train-next --all, audit,
compare (adapters, sequential fine-tuning, EWC and replay). Rerunning reuses what is done.
Every command is echoed before it runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTLEARN = [sys.executable, "-m", "contlearn.cli"]
DEMO_TASKS = ("bbc-topic", "imdb-sentiment", "rt-sentiment")
MAX_PER_CLASS = 500
GLUE_TASKS = (("rte", "RTE"), ("mrpc", "MRPC"), ("sst2", "SST-2"))
GLUE_SETTINGS = {"epochs": "3", "max_train_examples": "2000", "max_length": "128"}
# What fits in the demo's budget on 2 cores: joint and separate are `contlearn compare`'s too.
DEMO_METHODS = "adapter,sequential,ewc,replay"


def sh(
    *args: str, check: bool = True, capture: bool = False, echo: bool = True
) -> subprocess.CompletedProcess:
    if echo:
        print(f"\n$ contlearn {' '.join(args)}", flush=True)
    return subprocess.run(
        [*CONTLEARN, *args], check=check, text=True, capture_output=capture, cwd=ROOT
    )


def write_config(ws: Path, glue: Path | None) -> None:
    """The workspace's tasks.toml: the repository's demo config (GLUE entries with --glue)."""
    text = (ROOT / "tasks.toml").read_text()
    if glue is not None:
        text = text.split("[[task]]")[0].rstrip() + "\n"
        for name, folder in GLUE_TASKS:
            text += f'\n[[task]]\nname = "{name}"\ndata = "{(glue / folder).resolve()}"\n'
        for key, value in GLUE_SETTINGS.items():
            text = _set(text, key, value)
    (ws / "tasks.toml").write_text(text)


def _set(text: str, key: str, value: str) -> str:
    lines = [
        f"{key} = {value}" if line.startswith(f"{key} = ") else line for line in text.split("\n")
    ]
    return "\n".join(lines)


def prepare(ws: Path) -> None:
    for name in DEMO_TASKS:
        out = ws / "data" / name
        if not out.exists():
            sh(
                "datasets",
                "prepare",
                name,
                "--out",
                str(out),
                "--max-per-class",
                str(MAX_PER_CLASS),
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workspace", type=Path, default=ROOT / ".demo")
    parser.add_argument("--glue", type=Path, default=None, help="GLUE folder: RTE, MRPC, SST-2")
    args = parser.parse_args()
    ws = args.workspace.resolve()
    if args.glue is not None:
        ws = ws.with_name(ws.name + "-glue")
    start = time.perf_counter()
    w = ["-w", str(ws)]
    if not (ws / "tasks.toml").exists():
        sh("init", *w)
        write_config(ws, args.glue)
    if args.glue is None:
        prepare(ws)
    sh("add-task", "--from-config", *w)
    sh("status", *w)
    pending = json.loads(sh("status", "--json", *w, capture=True, echo=False).stdout)["tasks"]
    if any(t["status"] != "trained" for t in pending):
        sh("train-next", "--all", *w)
    audit = sh("audit", "-q", *w, check=False, capture=True)
    print(audit.stdout.strip())
    report = ws / "report"
    if report.exists():
        shutil.rmtree(report)
    sh("compare", "--methods", DEMO_METHODS, "--out", str(report), *w)
    print("\n== audit (every trained task re-evaluated) ==\n" + audit.stdout.strip())
    results = json.loads((report / "report.json").read_text())
    print("\n== forgetting ==")
    for name, method in results["methods"].items():
        s, ci = method["summary"], method.get("intervals") or {}
        print(
            f"{name:11s} ACC {s['acc']:.4f} {_ci(ci.get('acc'))}  BWT {_f(s['bwt'])} "
            f"{_ci(ci.get('bwt'))}  forgetting {_f(s['forgetting'])}"
        )
    print(f"\nreport: {report / 'report.html'}")
    print(f"demo finished in {time.perf_counter() - start:.0f} s")
    return audit.returncode


def _ci(interval: dict | None) -> str:
    return "" if not interval else "[{:.4f}, {:.4f}]".format(*interval["ci"])


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.4f}"


if __name__ == "__main__":
    sys.exit(main())
