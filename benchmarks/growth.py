"""How contlearn's bookkeeping grows with the number of tasks.

``contlearn audit`` wall time with 1, 4 and 16 trained tasks (keyword tasks with small dev sets
on a tiny random BERT, trained for one step each), per dev example, to show that it grows
linearly in the total number of dev examples; and ``contlearn --help`` / ``contlearn status
--json`` wall time with 1,000 registered tasks. Every time is the median of several runs of the
installed ``contlearn`` command in a fresh process.

Example:
    python benchmarks/growth.py --dev-rows 64 --out growth.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import median, write_json

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.conftest builds the tiny backbone and keyword tasks

from contlearn.api import Workspace  # noqa: E402
from tests.conftest import save_tiny_backbone, write_keyword_task  # noqa: E402

FAST_TRAINING = {"epochs = 3": "epochs = 1", "max_length = 128": "max_length = 32"}


def contlearn_command() -> list[str]:
    """The installed console script next to this interpreter (as users run it)."""
    script = Path(sys.executable).with_name("contlearn")
    return [str(script)] if script.exists() else [sys.executable, "-m", "contlearn.cli"]


def timed_runs(
    args: list[str], repeats: int, *, fails: bool = False
) -> tuple[list[float], list[str]]:
    """Wall seconds and stdout of ``repeats`` runs of the contlearn command (which must fail,
    exit 1, with ``fails``)."""
    env = {k: v for k, v in os.environ.items() if k != "CONTLEARN_WORKSPACE"}
    times, outputs = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(contlearn_command() + args, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - start)
        if done.returncode != (1 if fails else 0):
            raise RuntimeError(f"contlearn {' '.join(args)}: exit {done.returncode}: {done.stderr}")
        outputs.append(done.stdout)
    return times, outputs


def new_workspace(root: Path, backbone: Path) -> Workspace:
    """A workspace on the tiny backbone whose training defaults take seconds."""
    Workspace.create(root, backbone=str(backbone))
    text = (root / "tasks.toml").read_text(encoding="utf-8")
    for old, new in FAST_TRAINING.items():
        text = text.replace(old, new)
    (root / "tasks.toml").write_text(text, encoding="utf-8")
    return Workspace.open(root)


def grow_to(ws: Workspace, data: Path, count: int, dev_rows: int) -> None:
    """Register keyword tasks until there are ``count``, then train every pending one."""
    for k in range(len(ws.tasks()), count):
        folder = write_keyword_task(data / f"t{k:02d}", n_train=32, n_dev=dev_rows, seed=k)
        ws.add_task(f"t{k:02d}", folder)
    ws.train_next(all_tasks=True)


def audit_growth(
    work: Path, backbone: Path, dev_rows: int, repeats: int, counts: list[int]
) -> list[dict]:
    """Audit wall time (median of ``repeats``) at each task count of ``counts``."""
    ws = new_workspace(work / "audit-ws", backbone)
    rows = []
    for count in counts:
        grow_to(ws, work / "data", count, dev_rows)
        times, outputs = timed_runs(["audit", "-q", "--json", "-w", str(ws.root)], repeats)
        results = [json.loads(out) for out in outputs]
        inside = [result["seconds"] for result in results]
        examples = results[0]["examples"]
        rows.append(
            {
                "tasks": count,
                "verdicts": sorted({result["verdict"] for result in results}),
                "dev_examples": examples,
                "wall_seconds": times,
                "median_wall_seconds": median(times),
                "wall_ms_per_example": 1000 * median(times) / examples,
                "in_process_seconds": inside,
                "median_in_process_seconds": median(inside),
            }
        )
    return rows


def task_spec(name: str) -> dict:
    """A plausible registered task, as ``contlearn add-task`` would record it."""
    return {
        "name": name,
        "data_source": f"/data/{name}",
        "data_format": "csv",
        "glue_task": None,
        "data_files": ["train.csv", "dev.csv"],
        "data_fingerprint": "0" * 64,
        "train_rows": 1000,
        "dev_rows": 200,
        "text_fields": ["text"],
        "label_field": "label",
        "problem_type": "classification",
        "labels": ["negative", "positive"],
        "metric": "accuracy",
        "metrics": ["accuracy"],
        "settings": {},
    }


def cli_latency(work: Path, backbone: Path, tasks: int, repeats: int) -> dict:
    """``--help``, ``status --json`` and an error that needs no model (``predict`` of an
    untrained task) wall time with ``tasks`` registered tasks."""
    ws = new_workspace(work / "cli-ws", backbone)
    ws.ledger.add_tasks([task_spec(f"task-{i:04d}") for i in range(tasks)])
    help_times, _ = timed_runs(["--help"], repeats)
    status_times, outputs = timed_runs(["status", "--json", "-w", str(ws.root)], repeats)
    listed = len(json.loads(outputs[-1])["tasks"])
    rows = work / "rows.jsonl"
    rows.write_text('{"text": "good"}\n', encoding="utf-8")
    predict = ["predict", "task-0000", "--input", str(rows), "-w", str(ws.root)]
    error_times, _ = timed_runs(predict, repeats, fails=True)
    return {
        "registered_tasks": tasks,
        "listed_by_status": listed,
        "help_seconds": help_times,
        "median_help_seconds": median(help_times),
        "status_json_seconds": status_times,
        "median_status_json_seconds": median(status_times),
        "untrained_predict_seconds": error_times,
        "median_untrained_predict_seconds": median(error_times),
    }


def measure(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="contlearn-bench-") as tmp:
        work = Path(tmp)
        backbone = save_tiny_backbone(work / "tiny-bert")
        audits = audit_growth(work, backbone, args.dev_rows, args.audit_repeats, args.task_counts)
        cli = cli_latency(work, backbone, args.tasks, args.cli_repeats)
    return {
        "backbone": "tiny random BERT (hidden 32, 2 layers)",
        "dev_rows_per_task": args.dev_rows,
        "audit": audits,
        "cli": cli,
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev-rows", type=int, default=256)
    parser.add_argument("--audit-repeats", type=int, default=3)
    parser.add_argument("--task-counts", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--cli-repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse()
    write_json(arguments.out, measure(arguments))
