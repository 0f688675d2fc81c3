"""The methods on real data (packaged MiniLM, GLUE, 2 CPU cores): every method on RTE -> MRPC ->
SST-2, the parameter/performance trade-off on SST-2 and MRPC, and the frozen-prefix cache.

Every figure comes from contlearn's own command line (subprocesses), each part into its own
JSON under benchmarks/out/methods/, and a Markdown summary (METHODS.md) beside them.

``--tiny --out DIR`` (the test suite) runs every part on tests' tiny random BERT with two
generated keyword tasks (40 train and 16 dev rows, 32 tokens, 1 epoch; 2 for the prefix part,
whose cache serves from the second epoch on): two methods, a two-point trade-off grid on one
task and the prefix variants leaving out layer 0 of 2, everything under DIR; the commands run
in this process (benchmarks/clirun.py): a new process spends seconds importing torch, more than
the tiny work.

Example:
    python benchmarks/methods.py                       # all parts: about an hour on 2 cores
    python benchmarks/methods.py --parts prefix        # one part
    python benchmarks/methods.py --parts sequence --methods lora,ia3
    python benchmarks/methods.py --report-only         # rebuild METHODS.md from the JSON
    python benchmarks/methods.py --tiny --out DIR      # the test suite's size
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import clirun

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
TINY_LENGTH = ("--max-length", "32")
TINY_KEYWORDS = {"a": {"pos": "good", "neg": "bad"}, "b": {"x": "cat", "y": "dog"}}


@dataclass(frozen=True)
class Plan:
    """What a run trains and where it writes: the tasks (name, data folder, the sequence
    table's column), each part's settings, the backbone ``init`` is given (none: the packaged
    MiniLM) and whether contlearn runs in this process."""

    out: Path
    tasks: tuple[tuple[str, Path, str], ...]
    sequence: tuple[tuple[str, str, tuple[str, ...]], ...] = SEQUENCE
    sequence_budget: tuple[str, ...] = SEQUENCE_BUDGET
    tradeoff_budget: tuple[tuple[str, str, str], ...] = tuple(
        (task, *budget) for task, budget in TRADEOFF_BUDGET.items()
    )
    grid: tuple[str, ...] = ()  # tradeoff's --grid (none: its default grid)
    length: tuple[str, ...] = ()  # tradeoff's --max-length (none: tasks.toml's)
    prefix_variants: tuple = PREFIX_VARIANTS
    prefix_budget: tuple[str, ...] = PREFIX_BUDGET
    prefix_tasks: tuple[str, ...] = ("mrpc", "sst2")
    backbone: tuple[str, ...] = ()
    here: bool = False

    def data(self, names: tuple[str, ...]) -> tuple[tuple[str, Path], ...]:
        """The tasks ``names``, in that order, with their data folders."""
        folders = {name: folder for name, folder, _ in self.tasks}
        return tuple((name, folders[name]) for name in names)


def full_plan(out: Path) -> Plan:
    headers = {"rte": "RTE acc", "mrpc": "MRPC F1", "sst2": "SST-2 acc"}
    return Plan(out, tuple((task, GLUE / folder, headers[task]) for task, folder in TASKS))


def tiny_plan(out: Path) -> Plan:
    """Tests' tiny BERT and two generated keyword tasks under ``out``, each part cut down."""
    leave_out = ("--set", "leave_out=0")
    return Plan(
        out,
        tuple((name, out / "data" / name, f"{name} acc") for name in TINY_KEYWORDS),
        sequence=(("houlsby", "1e-3", ()), ("lora", "1e-3", ())),
        sequence_budget=("--epochs", "1", "--max-train-examples", "40", *TINY_LENGTH),
        tradeoff_budget=(("a", "40", "1"),),
        grid=("--grid", "houlsby:bottleneck=4,full"),
        length=TINY_LENGTH,
        prefix_variants=(
            ("all layers", (), ()),
            ("top half", leave_out, ()),
            ("top half, prefix kept", leave_out, ("--cache-frozen-prefix",)),
        ),
        prefix_budget=("--epochs", "2", "--max-train-examples", "40", *TINY_LENGTH),
        prefix_tasks=("a", "b"),
        backbone=("--backbone", str(out / "tiny-bert")),
        here=True,
    )


def write_tiny_inputs(plan: Plan) -> None:
    """The tiny plan's backbone and task folders (tests/conftest.py's tiny BERT, keyword
    tasks of 40 train and 16 dev rows)."""
    sys.path.insert(0, str(HERE.parent))  # this checkout's contlearn and tests
    from tests.conftest import save_tiny_backbone, write_keyword_task

    save_tiny_backbone(Path(plan.backbone[1]))
    one_thread()
    for seed, (name, folder, _) in enumerate(plan.tasks):
        keywords = TINY_KEYWORDS[name]
        write_keyword_task(folder, n_train=40, n_dev=16, seed=seed, keywords=keywords)


def one_thread() -> None:
    """One torch thread for the tiny run's in-process commands: tiny matrices gain nothing
    from a second, and on a busy machine its waits doubled the run's CPU time."""
    import torch

    torch.set_num_threads(1)


def contlearn(plan: Plan, *args: str) -> str:
    run = clirun.in_this_process if plan.here else clirun.in_new_process
    done = run(args)
    if done.returncode != 0:
        raise SystemExit(f"contlearn {' '.join(args)}:\n{done.stderr[-2000:]}")
    return done.stdout


def workspace(plan: Plan, name: str, tasks: tuple[tuple[str, Path], ...], *method: str) -> Path:
    ws = plan.out / name
    shutil.rmtree(ws, ignore_errors=True)
    contlearn(plan, "init", "-w", str(ws), *plan.backbone)
    for task, folder in tasks:
        contlearn(plan, "add-task", task, "--data", str(folder), *method, "-w", str(ws))
    return ws


def sequence(plan: Plan, only: set[str] | None = None) -> None:
    for method, lr, options in plan.sequence:
        if only and method not in only:
            continue
        tasks = tuple((name, folder) for name, folder, _ in plan.tasks)
        ws = workspace(plan, f"ws-{method}", tasks, "--method", method, *options)
        args = ("train-next", "--all", *plan.sequence_budget, "--lr", lr, "--device", "cpu")
        runs = json.loads(contlearn(plan, *args, "--json", "-q", "-w", str(ws)))["runs"]
        write(plan, f"sequence-{method}.json", {"method": method, "lr": float(lr), "runs": runs})


def tradeoff(plan: Plan) -> None:
    ws = workspace(plan, "ws-tradeoff", plan.data(tuple(t for t, _, _ in plan.tradeoff_budget)))
    for task, examples, epochs in plan.tradeoff_budget:
        budget = ("--epochs", epochs, "--max-train-examples", examples, *plan.length)
        budget += ("--device", "cpu")
        out = plan.out / f"tradeoff-{task}"
        text = contlearn(
            plan,
            "tradeoff",
            task,
            *budget,
            *plan.grid,
            "--out",
            str(out),
            "--json",
            "-q",
            "-w",
            str(ws),
        )
        write(plan, f"tradeoff-{task}.json", {"examples": int(examples), **json.loads(text)})


def prefix(plan: Plan) -> None:
    rows = []
    for label, method, flags in plan.prefix_variants:
        ws = workspace(plan, f"ws-prefix-{len(rows)}", plan.data(plan.prefix_tasks), *method)
        args = (
            "train-next",
            "--all",
            *plan.prefix_budget,
            *flags,
            "--device",
            "cpu",
            "--json",
            "-q",
        )
        runs = json.loads(contlearn(plan, *args, "-w", str(ws)))["runs"]
        rows.append({"variant": label, "runs": runs})
    write(plan, "prefix.json", {"variants": rows})


def write(plan: Plan, name: str, data: dict) -> None:
    plan.out.mkdir(parents=True, exist_ok=True)
    (plan.out / name).write_text(json.dumps(data, indent=2) + "\n")


def read(plan: Plan, name: str) -> dict | None:
    path = plan.out / name
    return json.loads(path.read_text()) if path.exists() else None


def sequence_table(plan: Plan) -> list[str]:
    n = len(plan.tasks)
    lines = [
        "| method | lr | trainable / task | % of backbone | "
        + "".join(f"{header} | " for _, _, header in plan.tasks)
        + f"seconds ({n} tasks) | verifications identical |",
        "|---|---:|---:|---:|" + "---:|" * n + "---:|---|",
    ]
    for method, _, _ in plan.sequence:
        data = read(plan, f"sequence-{method}.json")
        if data is None:
            continue
        runs = {r["task"]: r for r in data["runs"]}
        checks = [v["identical"] for r in data["runs"] for v in r["verifications"]]
        score = {t: runs[t]["metrics"][runs[t]["metric"]] for t in runs}
        first = data["runs"][0]
        lines.append(
            f"| {method} | {data['lr']:g} | {first['trainable_params']:,} | "
            f"{first['trainable_pct']:.2f}% | "
            + "".join(f"{score[task]:.4f} | " for task, _, _ in plan.tasks)
            + f"{sum(r['seconds'] for r in data['runs']):.0f} | "
            f"{sum(checks)}/{len(checks)} |"
        )
    return lines


def tradeoff_table(plan: Plan, task: str) -> list[str]:
    data = read(plan, f"tradeoff-{task}.json")
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


def prefix_table(plan: Plan) -> list[str]:
    data = read(plan, "prefix.json")
    if data is None:
        return []
    epochs = plan.prefix_budget[plan.prefix_budget.index("--epochs") + 1]
    later_epochs = "2" if epochs == "2" else f"2-{epochs}"
    lines = [
        f"| variant | task | trainable | examples/s, epochs {later_epochs} | ratio to all layers "
        "| score |",
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


def report(plan: Plan) -> str:
    order = " -> ".join(header.rsplit(" ", 1)[0] for _, _, header in plan.tasks)
    prefix_order = " then ".join(
        header.rsplit(" ", 1)[0] for name, _, header in plan.tasks if name in plan.prefix_tasks
    )
    parts = [f"## Every method on {order}", ""]
    parts += [
        f"`train-next --all {' '.join(plan.sequence_budget)} --lr LR`, one workspace per method:",
        "",
        *sequence_table(plan),
        "",
        "## Trade-off (`contlearn tradeoff`)",
    ]
    for task, _, _ in plan.tradeoff_budget:
        parts += ["", *tradeoff_table(plan, task)]
    parts += [
        "",
        "## Frozen prefix (`--cache-frozen-prefix`)",
        "",
        f"houlsby, `train-next --all {' '.join(plan.prefix_budget)}` on {prefix_order}:",
        "",
        *prefix_table(plan),
    ]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="sequence,tradeoff,prefix")
    parser.add_argument("--methods", help="the sequence part's methods (default: all)")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--tiny", action="store_true", help="Tiny BERT, two tasks (tests).")
    parser.add_argument("--out", type=Path, default=OUT, help="Where the JSON and METHODS.md go.")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    plan = tiny_plan(out) if args.tiny else full_plan(out)
    if not args.report_only:
        if args.tiny:
            write_tiny_inputs(plan)
        elif not GLUE.is_dir():
            raise SystemExit(f"no GLUE folder at {GLUE}: set CONTLEARN_GLUE")
        only = set(args.methods.split(",")) if args.methods else None
        parts = {
            "sequence": lambda: sequence(plan, only),
            "tradeoff": lambda: tradeoff(plan),
            "prefix": lambda: prefix(plan),
        }
        for part in args.parts.split(","):
            parts[part.strip()]()
    text = report(plan)
    plan.out.mkdir(parents=True, exist_ok=True)
    (plan.out / "METHODS.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
