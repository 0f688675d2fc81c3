"""Run contlearn's benchmark suite and write BENCHMARKS.md (``make bench``).

Every configuration runs in a fresh subprocess that writes one JSON file to benchmarks/out/;
``report.py`` then turns those files into BENCHMARKS.md. Sections: the machine and its fp32
matmul peak, training (adapters vs full fine-tuning), the peer (AdapterHub ``adapters`` in its own
virtual environment), inference and real-token share, growth (audit, CLI), GPU.

The tiny run (the test suite) runs the jobs between the two machine jobs in this process instead
(``Plan.jobs_here``): a new process spends seconds importing torch and transformers, more than a
tiny job's work.

Example:
    python benchmarks/run.py                 # full run: about 15 min on 2 idle cores
    python benchmarks/run.py --quick         # MiniLM, length 64, few steps: a few minutes
    python benchmarks/run.py --report-only   # rebuild the Markdown from benchmarks/out/
    python benchmarks/run.py --tiny --out DIR  # every job on a tiny random BERT (the tests)
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time
import traceback
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

import report
from common import write_json

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
PEER_DIR = HERE / "peer"
PEER_PYTHON = PEER_DIR / ".venv" / "bin" / "python"
PEER_READY = PEER_DIR / ".venv" / ".installed"
GLUE = Path(os.environ.get("CONTLEARN_GLUE", str(ROOT.parent / "shared" / "data" / "glue")))


@dataclass(frozen=True)
class Plan:
    """What one run measures, and how many repetitions it affords."""

    mode: str
    backbones: tuple[str, ...] = ("minilm", "bert-base")
    lengths: tuple[int, ...] = (64, 128)
    steps: dict[str, tuple[int, int]] = field(  # backbone -> (warm-up steps, timed steps)
        default_factory=lambda: {"minilm": (2, 10), "bert-base": (1, 5)}
    )
    install_peer: bool = True
    bottleneck: int = 64  # divides every hidden size measured (AdapterHub's reduction factor)
    methods: tuple[str, ...] = ("adapter", "adapter-nodrop", "full")
    matmul_sizes: tuple[int, ...] = (2048, 4096)
    matmul_repeats: int = 7
    inference_per_task: dict[str, int] = field(  # backbone -> GLUE dev examples per task
        default_factory=lambda: {"minilm": 160, "bert-base": 48}
    )
    inference_rounds: int = 5
    dev_rows: int = 256
    audit_repeats: int = 3
    cli_repeats: int = 5
    task_counts: tuple[int, ...] = (1, 4, 16)  # trained tasks at which the audit is timed
    registered_tasks: int = 1000  # tasks registered when the CLI's start-up is timed
    jobs_here: bool = False  # the training, inference and growth jobs in this process


FULL = Plan("full")
QUICK = Plan(
    "quick",
    backbones=("minilm",),
    lengths=(64,),
    steps={"minilm": (1, 3)},
    install_peer=False,
    matmul_repeats=5,
    inference_per_task={"minilm": 32},
    inference_rounds=2,
    dev_rows=64,
    audit_repeats=2,
    cli_repeats=3,
)
# Every job at the smallest size that still exercises it: tests/test_benchmarks.py runs this.
TINY = Plan(
    "tiny",
    backbones=("tiny",),
    lengths=(16,),
    steps={"tiny": (1, 1)},
    install_peer=False,
    bottleneck=16,
    methods=("adapter", "full"),  # adapter-nodrop is the same step with one flag
    matmul_sizes=(64,),
    matmul_repeats=1,
    inference_per_task={"tiny": 4},
    inference_rounds=1,
    dev_rows=8,
    audit_repeats=1,
    cli_repeats=1,
    task_counts=(1, 2),
    registered_tasks=20,
    jobs_here=True,
)


def child_env() -> dict[str, str]:
    """Offline, quiet tokenizers; the thread count is set inside each child."""
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.pop("CONTLEARN_WORKSPACE", None)
    return env


def run_job(name: str, command: list[str], log: list[dict], out: Path, **env: str) -> bool:
    """Run one benchmark process; its output goes to OUT/logs/NAME.log. True on success."""
    (out / "logs").mkdir(parents=True, exist_ok=True)
    print(f"[bench] {name} ...", flush=True)
    load, start = os.getloadavg()[0], time.perf_counter()
    with open(out / "logs" / f"{name}.log", "w", encoding="utf-8") as err:
        done = subprocess.run(command, cwd=ROOT, env={**child_env(), **env}, stdout=err, stderr=err)
    seconds = time.perf_counter() - start
    ok = done.returncode == 0
    log.append(
        {
            "name": name,
            "seconds": seconds,
            "ok": ok,
            "returncode": done.returncode,
            "load_average": [load, os.getloadavg()[0]],  # 1-minute, at start and end
        }
    )
    print(f"[bench] {name}: {'ok' if ok else 'FAILED'} in {seconds:.0f} s", flush=True)
    return ok


def run_here(name: str, module: str, args: list, log: list[dict], out: Path) -> bool:
    """Run the job ``module`` (a script here with ``parse``, ``measure`` and an ``--out``) in
    this process, its output to OUT/logs/NAME.log; the logged entry says ``in_process``."""
    (out / "logs").mkdir(parents=True, exist_ok=True)
    print(f"[bench] {name} (in this process) ...", flush=True)
    load, start, threads = os.getloadavg()[0], time.perf_counter(), torch.get_num_threads()
    log_file = out / "logs" / f"{name}.log"
    with open(log_file, "w", encoding="utf-8") as err, redirect_stdout(err), redirect_stderr(err):
        ok = _measure_here(module, [str(a) for a in args])
    torch.set_num_threads(threads)  # the job set its own
    seconds = time.perf_counter() - start
    entry = {"name": name, "seconds": seconds, "ok": ok, "returncode": 0 if ok else 1}
    log.append(entry | {"load_average": [load, os.getloadavg()[0]], "in_process": True})
    print(f"[bench] {name}: {'ok' if ok else 'FAILED'} in {seconds:.0f} s", flush=True)
    return ok


def _measure_here(module: str, argv: list[str]) -> bool:
    """What the script's ``__main__`` does; a failure's traceback goes to the log."""
    try:
        job = importlib.import_module(module)
        args = job.parse(argv)
        write_json(args.out, job.measure(args))
        return True
    except (Exception, SystemExit):
        traceback.print_exc()
        return False


def job(plan: Plan, name: str, module: str, args: list, log: list[dict], out: Path) -> bool:
    """The job ``module`` (benchmarks/MODULE.py ARGS) in a new process, or here for
    ``plan.jobs_here``."""
    if plan.jobs_here:
        return run_here(name, module, args, log, out)
    return run_job(name, script(f"{module}.py", *args), log, out)


def script(name: str, *args: object, python: Path | str = sys.executable) -> list[str]:
    return [str(python), str(HERE / name), *(str(a) for a in args)]


def machine(plan: Plan, threads: int, log: list[dict], out: Path, name: str) -> None:
    """The machine and its matmul peak; run first and last, the report takes the higher peak
    (a peak measured while other processes held the CPU would flatter every share)."""
    sizes = [str(s) for s in plan.matmul_sizes]
    args = ["--threads", threads, "--repeats", plan.matmul_repeats, "--sizes", *sizes]
    run_job(name, script("machine.py", *args, "--out", out / f"{name}.json"), log, out)


def peer_ready(plan: Plan, log: list[dict], out: Path) -> bool:
    """Install the peer's virtual environment (full runs) or use it if present (quick runs)."""
    if PEER_READY.exists():
        recorded = PEER_DIR / ".venv" / ".install_seconds"
        seconds = float(recorded.read_text()) if recorded.exists() else None
        write_json(out / "peer-setup.json", {"ok": True, "seconds": seconds, "this_run": False})
        return True
    if not plan.install_peer:
        return False
    base = getattr(sys, "_base_executable", sys.executable)  # same Python as this venv's
    start = time.perf_counter()
    ok = run_job("peer-setup", ["bash", str(PEER_DIR / "setup.sh")], log, out, PYTHON=base)
    seconds = time.perf_counter() - start
    write_json(out / "peer-setup.json", {"ok": ok, "seconds": seconds, "this_run": True})
    return ok and PEER_READY.exists()


def training(plan: Plan, threads: int, peer: bool, log: list[dict], out: Path) -> None:
    """Adapters, full fine-tuning and the peer, side by side per backbone and length."""
    for backbone in plan.backbones:
        warmup, steps = plan.steps[backbone]
        for length in plan.lengths:
            common = ["--backbone", backbone, "--length", length, "--threads", threads]
            common += ["--warmup", warmup, "--steps", steps, "--bottleneck", plan.bottleneck]
            for method in plan.methods:
                name = f"train-{backbone}-{method}-{length}"
                args = [*common, "--method", method, "--out", out / f"{name}.json"]
                job(plan, name, "train_step", args, log, out)
            if peer:
                name = f"peer-{backbone}-{length}"
                args = [*common, "--out", out / f"{name}.json"]
                run_job(name, script("peer_step.py", *args, python=PEER_PYTHON), log, out)


def inference(plan: Plan, threads: int, log: list[dict], out: Path) -> None:
    """Adapted vs plain backbone, per backbone; the real-token share comes with each."""
    for backbone, per_task in plan.inference_per_task.items():
        name = f"inference-{backbone}"
        args = ["--backbone", backbone, "--threads", threads, "--per-task", per_task]
        args += ["--rounds", plan.inference_rounds, "--out", out / f"{name}.json"]
        if GLUE.is_dir() and plan is not TINY:  # the tiny run's inputs are synthetic
            args += ["--glue", GLUE]
        job(plan, name, "inference", args, log, out)


def growth(plan: Plan, log: list[dict], out: Path) -> None:
    args = ["--dev-rows", plan.dev_rows, "--audit-repeats", plan.audit_repeats]
    args += ["--task-counts", *plan.task_counts, "--tasks", plan.registered_tasks]
    args += ["--cli-repeats", plan.cli_repeats, "--out", out / "growth.json"]
    job(plan, "growth", "growth", args, log, out)


def clear_results(out: Path) -> None:
    """Remove the previous run's results and logs so that a report never mixes two runs."""
    out.mkdir(parents=True, exist_ok=True)
    for path in [*out.glob("*.json"), *out.glob("logs/*.log")]:
        path.unlink()


def run(plan: Plan, threads: int, out: Path = OUT) -> bool:
    """Every job of ``plan``; False if any of them failed."""
    load = os.getloadavg()[0]
    if load > 0.5:
        print(
            f"[bench] warning: load average {load:.1f}: other processes are using the CPU, "
            "so every figure will be less reliable",
            flush=True,
        )
    clear_results(out)
    log: list[dict] = []
    started, start = time.strftime("%Y-%m-%d %H:%M:%S %Z"), time.perf_counter()
    machine(plan, threads, log, out, "machine")
    peer = peer_ready(plan, log, out)
    if not peer:
        print(f"[bench] no peer venv ({PEER_READY} missing): the AdapterHub jobs are skipped")
    training(plan, threads, peer, log, out)
    inference(plan, threads, log, out)
    growth(plan, log, out)
    machine(plan, threads, log, out, "machine-end")
    meta = {"plan": asdict(plan), "threads": threads, "peer_installed": peer, "jobs": log}
    meta.update(started=started, seconds=time.perf_counter() - start)
    write_json(out / "run.json", meta)
    return all(job["ok"] for job in log)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="Reduced run for development.")
    sizes.add_argument("--tiny", action="store_true", help="Every job on a tiny BERT (tests).")
    parser.add_argument("--report-only", action="store_true", help="Only rebuild the Markdown.")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--md", type=Path, help="Markdown output (default: see --quick).")
    parser.add_argument("--out", type=Path, default=OUT, help="Results folder (benchmarks/out).")
    return parser.parse_args(argv)


def main() -> None:
    args = parse()
    plan = QUICK if args.quick else TINY if args.tiny else FULL
    # only a full run into benchmarks/out writes the repository's BENCHMARKS.md
    repository = plan is FULL and args.out.resolve() == OUT
    md = args.md or (ROOT / "BENCHMARKS.md" if repository else args.out / "BENCHMARKS.md")
    ok = args.report_only or run(plan, args.threads, args.out)
    report.write(args.out, md)
    print(f"[bench] wrote {md}")
    print(json.dumps(report.targets_summary(args.out), indent=2))
    if not ok:
        sys.exit(f"[bench] some jobs failed: see {args.out / 'logs'}")


if __name__ == "__main__":
    main()
