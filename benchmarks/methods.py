"""The methods on real data (packaged MiniLM, GLUE, 2 CPU cores): every method on RTE -> MRPC ->
SST-2, the parameter/performance trade-off on SST-2 and MRPC, and the frozen-prefix cache.

Every figure comes from contlearn's own command line (subprocesses), each part into its own
JSON under benchmarks/out/methods/, and a Markdown summary (METHODS.md) beside them.

Example:
    python benchmarks/methods.py                       # all parts: about an hour on 2 cores
    python benchmarks/methods.py --parts prefix        # one part
    python benchmarks/methods.py --parts sequence --methods lora,ia3
    python benchmarks/methods.py --report-only         # rebuild METHODS.md from the JSON
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "methods"
GLUE = Path(os.environ.get("CONTLEARN_GLUE", str(HERE.parent.parent / "shared" / "data" / "glue")))
TASKS = (("rte", "RTE"), ("mrpc", "MRPC"), ("sst2", "SST-2"))
# method, learning rate, options: the sequence part's settings (lr suited to each method)
SEQUENCE = (
    ("houlsby", "1e-3", ()),
    ("pfeiffer", "1e-3", ()),
    ("parallel", "1e-3", ()),
    ("lora", "1e-3", ()),
    ("ia3", "5e-3", ()),
    ("topk", "1e-4", ()),
    ("head", "2e-3", ()),
)
SEQUENCE_BUDGET = ("--epochs", "2", "--max-train-examples", "1000")
TRADEOFF_BUDGET = {"sst2": ("4000", "2"), "mrpc": ("2000", "2")}  # examples, epochs
PREFIX_VARIANTS = (
    ("all layers", (), ()),
    ("top half", ("--set", "leave_out=0,1,2"), ()),
    ("top half, prefix kept", ("--set", "leave_out=0,1,2"), ("--cache-frozen-prefix",)),
)
PREFIX_BUDGET = ("--epochs", "3", "--max-train-examples", "2000")


def contlearn(*args: str) -> str:
    command = [sys.executable, "-m", "contlearn.cli", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"contlearn {' '.join(args)}:\n{done.stderr[-2000:]}")
    return done.stdout


def workspace(name: str, tasks: tuple[tuple[str, str], ...], *method: str) -> Path:
    ws = OUT / name
    shutil.rmtree(ws, ignore_errors=True)
    contlearn("init", "-w", str(ws))
    for task, folder in tasks:
        contlearn("add-task", task, "--data", str(GLUE / folder), *method, "-w", str(ws))
    return ws


def sequence(only: set[str] | None = None) -> None:
    for method, lr, options in SEQUENCE:
        if only and method not in only:
            continue
        ws = workspace(f"ws-{method}", TASKS, "--method", method, *options)
        args = ("train-next", "--all", *SEQUENCE_BUDGET, "--lr", lr, "--device", "cpu")
        runs = json.loads(contlearn(*args, "--json", "-q", "-w", str(ws)))["runs"]
        write(f"sequence-{method}.json", {"method": method, "lr": float(lr), "runs": runs})


def tradeoff() -> None:
    ws = workspace("ws-tradeoff", (("sst2", "SST-2"), ("mrpc", "MRPC")))
    for task, (examples, epochs) in TRADEOFF_BUDGET.items():
        budget = ("--epochs", epochs, "--max-train-examples", examples, "--device", "cpu")
        out = OUT / f"tradeoff-{task}"
        text = contlearn(
            "tradeoff", task, *budget, "--out", str(out), "--json", "-q", "-w", str(ws)
        )
        write(f"tradeoff-{task}.json", {"examples": int(examples), **json.loads(text)})


def prefix() -> None:
    rows = []
    for label, method, flags in PREFIX_VARIANTS:
        ws = workspace(f"ws-prefix-{len(rows)}", TASKS[1:], *method)
        args = ("train-next", "--all", *PREFIX_BUDGET, *flags, "--device", "cpu", "--json", "-q")
        rows.append({"variant": label, "runs": json.loads(contlearn(*args, "-w", str(ws)))["runs"]})
    write("prefix.json", {"variants": rows})


def write(name: str, data: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / name).write_text(json.dumps(data, indent=2) + "\n")


def read(name: str) -> dict | None:
    path = OUT / name
    return json.loads(path.read_text()) if path.exists() else None


def sequence_table() -> list[str]:
    lines = [
        "| method | lr | trainable / task | % of backbone | RTE acc | MRPC F1 | SST-2 acc "
        "| seconds (3 tasks) | verifications identical |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for method, _, _ in SEQUENCE:
        data = read(f"sequence-{method}.json")
        if data is None:
            continue
        runs = {r["task"]: r for r in data["runs"]}
        checks = [v["identical"] for r in data["runs"] for v in r["verifications"]]
        score = {t: runs[t]["metrics"][runs[t]["metric"]] for t in runs}
        first = data["runs"][0]
        lines.append(
            f"| {method} | {data['lr']:g} | {first['trainable_params']:,} | "
            f"{first['trainable_pct']:.2f}% | {score['rte']:.4f} | {score['mrpc']:.4f} | "
            f"{score['sst2']:.4f} | {sum(r['seconds'] for r in data['runs']):.0f} | "
            f"{sum(checks)}/{len(checks)} |"
        )
    return lines


def tradeoff_table(task: str) -> list[str]:
    data = read(f"tradeoff-{task}.json")
    if data is None:
        return []
    full = next((p["score"] for p in data["points"] if p["method"] == "full"), None)
    lines = [
        f"{task} ({data['examples']} training examples, metric {data['metric']}):",
        "",
        "| point | lr | trainable | % of backbone | score | Δ vs full | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for p in sorted(data["points"], key=lambda p: p["trainable_params"] or 0):
        delta = "—" if full is None or p["score"] is None else f"{p['score'] - full:+.4f}"
        score = "—" if p["score"] is None else f"{p['score']:.4f}"
        lines.append(
            f"| {p['label']} | {p['lr']:g} | {p['trainable_params'] or 0:,} | "
            f"{p['percent_of_backbone'] or 0:.3g}% | {score} | {delta} | {p['seconds'] or 0:.0f} |"
        )
    return lines


def prefix_table() -> list[str]:
    data = read("prefix.json")
    if data is None:
        return []
    lines = [
        "| variant | task | trainable | examples/s, epochs 2-3 | ratio to all layers | score |",
        "|---|---|---:|---:|---:|---:|",
    ]
    base: dict[str, float] = {}
    for variant in data["variants"]:
        for run in variant["runs"]:
            later = run["history"][1:]
            examples = run["examples_per_second"] * run["seconds"] / len(run["history"])
            speed = examples * len(later) / sum(h["seconds"] for h in later)
            base.setdefault(run["task"], speed)
            lines.append(
                f"| {variant['variant']} | {run['task']} | {run['trainable_params']:,} | "
                f"{speed:.1f} | {speed / base[run['task']]:.2f}x | "
                f"{run['metrics'][run['metric']]:.4f} |"
            )
    return lines


def report() -> str:
    parts = [
        "## Every method on RTE -> MRPC -> SST-2",
        "",
        f"`train-next --all {' '.join(SEQUENCE_BUDGET)} --lr LR`, one workspace per method:",
        "",
        *sequence_table(),
        "",
        "## Trade-off (`contlearn tradeoff`)",
        "",
        *tradeoff_table("sst2"),
        "",
        *tradeoff_table("mrpc"),
        "",
        "## Frozen prefix (`--cache-frozen-prefix`)",
        "",
        f"houlsby, `train-next --all {' '.join(PREFIX_BUDGET)}` on MRPC then SST-2:",
        "",
        *prefix_table(),
    ]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="sequence,tradeoff,prefix")
    parser.add_argument("--methods", help="the sequence part's methods (default: all)")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    if not args.report_only:
        if not GLUE.is_dir():
            raise SystemExit(f"no GLUE folder at {GLUE}: set CONTLEARN_GLUE")
        only = set(args.methods.split(",")) if args.methods else None
        parts = {"sequence": lambda: sequence(only), "tradeoff": tradeoff, "prefix": prefix}
        for part in args.parts.split(","):
            parts[part.strip()]()
    text = report()
    write_text = OUT / "METHODS.md"
    OUT.mkdir(parents=True, exist_ok=True)
    write_text.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
