"""The task kinds on real data, on the packaged MiniLM in one workspace:

1. NER alone: CoNLL-2003 trained with Houlsby adapters (bottleneck 64), LoRA (rank 8) and full
   fine-tuning (``contlearn tradeoff ner --grid houlsby:bottleneck=64,lora:rank=8,full``):
   entity F1, precision, recall, token accuracy, trainable parameters, training seconds.
2. A sequence of kinds, SST-2 (classification) -> NER (tagging) [-> SQuAD (extractive QA)]:
   adapters by ``train-next``, the five baselines by ``compare --methods all``; each task's
   final primary score, ACC and BWT with their bootstrap intervals, every verification and the
   audit.

Writes benchmarks/out/kinds/KINDS.md and kinds.json and prints the tables. The data is read
where it lies (never copied): CoNLL-2003 (train.txt, valid.txt: the whole validation split is
the dev split), GLUE's SST-2 folder, and with ``--squad`` a SQuAD folder (only where the
``extractive-qa`` kind is registered). Every task trains on at most ``--train-examples``
examples for ``--epochs`` epochs at ``--max-length`` tokens.

``--tiny`` (the test suite) runs the same steps on tests' tiny random BERT (with a tokenizer
that knows its words) with a generated keyword task and a generated tagging task, 1 epoch on 48
examples of at most 32 tokens, everything under --out.

Example:
    python benchmarks/kinds.py --conll ../shared/data/conll2003 --glue ../shared/data/glue
    python benchmarks/kinds.py --tiny --out DIR
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from common import set_settings

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "out" / "kinds"
CONTLEARN = [sys.executable, "-m", "contlearn.cli"]
GRID = "houlsby:bottleneck=64,lora:rank=8,full"
# The baselines' settings of benchmarks/baselines.py (README: the demo) and the default 1,000
# bootstrap resamples (entity F1 and SQuAD's scores are resampled from per-example counts).
COMPARE = {"full_finetune_lr": "5e-05", "bootstrap_resamples": "1000"}
TINY_COMPARE = COMPARE | {
    "replay_buffer": "8",
    "fisher_examples": "16",
    "bootstrap_resamples": "100",
}


@dataclass(frozen=True)
class Budget:
    """What every task trains on: at most ``examples`` examples, ``epochs`` epochs, at most
    ``max_length`` tokens."""

    examples: int
    epochs: int
    max_length: int

    def settings(self) -> dict[str, str]:
        return {
            "epochs": str(self.epochs),
            "max_train_examples": str(self.examples),
            "max_length": str(self.max_length),
        }

    def text(self) -> str:
        return (
            f"each task {self.epochs} epoch{'s' * (self.epochs > 1)} on at most "
            f"{self.examples:,} training examples of at most {self.max_length} tokens"
        )


TINY = Budget(examples=48, epochs=1, max_length=32)


# -- the workspace -----------------------------------------------------------------------
def open_workspace(ws: Path, budget: Budget, compare: dict[str, str], backbone: str | None):
    """The workspace at ``ws`` (created on ``backbone``, default the packaged MiniLM, with the
    budget and the baselines' settings written into its tasks.toml when new)."""
    from contlearn.api import Workspace

    if not (ws / "tasks.toml").exists():
        Workspace.create(ws, backbone=backbone)
        text = (ws / "tasks.toml").read_text()
        (ws / "tasks.toml").write_text(set_settings(set_settings(text, budget.settings()), compare))
    return Workspace.open(ws)


def add_tasks(workspace, tasks: list[tuple[str, Path]]) -> None:
    """Register the sequence's tasks the workspace lacks, in order."""
    have = {t.name for t in workspace.tasks()}
    for name, data in tasks:
        if name not in have:
            print(f"adding {name} from {data}", flush=True)
            workspace.add_task(name, data)


def real_tasks(args: argparse.Namespace) -> list[tuple[str, Path]]:
    """SST-2, CoNLL-2003 and (with ``--squad``, where the kind exists) SQuAD, where they lie."""
    tasks = [("sst2", args.glue / "SST-2"), ("ner", args.conll)]
    return tasks + ([("squad", args.squad)] if args.squad else [])


def tiny_tasks(out: Path, squad: Path | None) -> tuple[str, list[tuple[str, Path]]]:
    """Tests' tiny BERT with a tokenizer built from its vocabulary (the conftest tokenizer maps
    every word to [UNK] under transformers 5), a keyword task and a tagging task."""
    sys.path.insert(0, str(ROOT))
    from transformers import BertTokenizerFast

    from tests.conftest import save_tiny_backbone, tiny_vocab, write_keyword_task
    from tests.test_tagging import write_tagging_task

    backbone = save_tiny_backbone(out / "tiny-bert", seed=1)
    vocab = {word: i for i, word in enumerate(tiny_vocab())}
    BertTokenizerFast(vocab=vocab, do_lower_case=True).save_pretrained(backbone)
    tasks = [
        ("sst2", write_keyword_task(out / "data-sst2", n_train=48, n_dev=16)),
        ("ner", write_tagging_task(out / "data-ner", n_train=48, n_dev=16)),
    ]
    return str(backbone), tasks + ([("squad", squad)] if squad else [])


# -- 1. NER alone: adapters against full fine-tuning ---------------------------------------
def ner_methods(workspace) -> list[dict]:
    """The grid's points on ``ner`` (each a recorded ``tradeoff`` run, reused when finished),
    with every entity metric of the run."""
    result = workspace.tradeoff("ner", grid=GRID, on_point=_show_point)
    rows = []
    for point in result["points"]:
        run = workspace.ledger.run(point["run_id"]) if point["run_id"] else None
        metrics = (run.result or {}).get("metrics", {}) if run else {}
        rows.append({**point, "metrics": metrics})
    return rows


def _show_point(point: dict) -> None:
    print(f"ner, {point['label']}: {point['status']}, score {point['score']}", flush=True)


def ner_table(rows: list[dict]) -> list[str]:
    def num(value, spec: str = ".4f") -> str:
        return "—" if value is None else format(value, spec)

    lines = [
        "| method | entity F1 | precision | recall | token accuracy | trainable params | train s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        m = row["metrics"]
        lines.append(
            f"| {row['label']} (lr {row['lr']:g}) | {num(m.get('entity_f1'))} "
            f"| {num(m.get('entity_precision'))} | {num(m.get('entity_recall'))} "
            f"| {num(m.get('token_accuracy'))} | {num(row['trainable_params'], ',')} "
            f"| {num(row['seconds'], '.0f')} |"
        )
    return lines


# -- 2. the sequence: adapters and the five baselines --------------------------------------
def train_sequence(workspace) -> list[dict]:
    """``train-next --all``: each task's score and the verifications of the earlier ones."""
    results = workspace.train_next(all_tasks=True)
    return [
        {
            "task": r["task"],
            "metric": r["metric"],
            "score": r["metrics"][r["metric"]],
            "seconds": r["seconds"],
            "verifications": [
                {k: v[k] for k in ("task", "outcome", "mode", "examples_rerun")}
                for v in r["verifications"]
            ],
        }
        for r in results
    ]


def compare(workspace, out: Path) -> dict:
    """``compare --methods all`` (resumable: finished baselines are reused), its report written
    to ``out``/report, and its results as the report's JSON holds them."""
    report = out / "report"
    shutil.rmtree(report, ignore_errors=True)
    workspace.write_report(workspace.compare(methods=("all",)), report)
    return json.loads((report / "report.json").read_text())


def audit(ws: Path) -> dict:
    """``contlearn audit --json`` (the real CLI, exit code 1 on drift or tampering)."""
    print(f"$ contlearn audit --json -w {ws}", flush=True)
    done = subprocess.run(
        [*CONTLEARN, "audit", "--json", "-w", str(ws)], text=True, capture_output=True, cwd=ROOT
    )
    if done.returncode not in (0, 1):
        raise SystemExit(f"contlearn audit failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout)


def sequence_table(results: dict) -> list[str]:
    def ci(entry) -> str:
        if not entry:
            return "—"
        value = entry.get("value", entry.get("score"))
        return "{:.4f} [{:.3f}, {:.3f}]".format(value, *entry["ci"])

    names = [f"{t['name']} ({t['metric']})" for t in results["tasks"]]
    lines = [
        "| method | " + " | ".join(names) + " | ACC [95% CI] | BWT [95% CI] | train s |",
        "|---|" + "---|" * (len(names) + 2) + "---:|",
    ]
    for key, m in results["methods"].items():
        c = m.get("intervals") or {}
        tasks = c.get("tasks") or [{"score": v, "ci": (v, v)} for v in m["matrix"][-1]]
        seconds = sum(x for x in m["cost"]["train_seconds"] if x is not None)
        lines.append(
            f"| {key} | "
            + " | ".join(ci(t) for t in tasks)
            + f" | {ci(c.get('acc'))} | {ci(c.get('bwt'))} | {seconds:.0f} |"
        )
    return lines


def checks(trained: list[dict], results: dict, audit: dict) -> dict:
    """Every verification recorded while training the sequence, compare's count of identical
    adapter re-evaluations, and the audit's verdict."""
    outcomes = [v["outcome"] for r in trained for v in r["verifications"]]
    return {
        "verifications": outcomes,
        "all_identical": all(o == "identical" for o in outcomes),
        "compare_identical": results["methods"]["adapter"].get("identical"),
        "audit": audit["verdict"],
    }


def checks_line(check: dict) -> str:
    same = check["compare_identical"] or {}
    return (
        f"Verifications while training the sequence: {check['verifications'].count('identical')}"
        f" of {len(check['verifications'])} identical; compare's adapter re-evaluations: "
        f"{same.get('identical', '?')} of {same.get('total', '?')} identical; "
        f"`audit`: {check['audit']}."
    )


# -- the record ----------------------------------------------------------------------------
def machine() -> dict:
    """The CPU, cores, threads and versions (benchmarks/machine.py) and the load average."""
    import torch

    from machine import cpu_info, memory_gib, versions

    return {
        "cpu": cpu_info(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": round(memory_gib(), 1),
        "versions": versions(),
        "load_average_start": os.getloadavg()[0],
    }


def machine_line(info: dict) -> str:
    v = info["versions"]
    return (
        f"{info['cpu']['model']}, {info['usable_cpus']} usable cores, {info['torch_threads']} "
        f"torch threads, {info['memory_gib']} GiB; 1-minute load average "
        f"{info['load_average_start']:.1f} at the start, {info['load_average_end']:.1f} at the "
        f"end (the machine is shared); python {v['python']}, torch {v['torch']}, transformers "
        f"{v['transformers']}, contlearn {v['contlearn']}."
    )


def ner_section(rows: list[dict] | None) -> list[str]:
    """Step 1's table, or a line saying it was not run (``--sequence-only``)."""
    title = ["### NER (CoNLL-2003): adapters against full fine-tuning", ""]
    if rows is None:
        return [*title, "Not run (`--sequence-only`).", ""]
    return [*title, *ner_table(rows), ""]


def render(record: dict) -> list[str]:
    qa = "" if record["squad"] else " (SQuAD: not run, see `--squad`)"
    done = "" if "checks" in record else " (not finished: rerunning the command resumes it)"
    head = [
        f"Run {record['date']}, `{record['command']}`, {record['wall_seconds'] / 60:.1f} min"
        f"{done}.",
        "",
        f"Budget: {record['budget_text']}; tasks: {', '.join(record['tasks'])}{qa}.",
        "",
        f"Machine: {machine_line(record['machine'])}",
        "",
        *ner_section(record.get("ner")),
        "### The sequence " + " -> ".join(record["tasks"]) + ": adapters and the baselines",
        "",
    ]
    if "checks" not in record:
        return [*head, "Not finished."]
    return [
        *head,
        "Each task's final dev score with its 95% bootstrap interval (dev examples resampled; "
        "a tagging task's sentences whole), ACC and BWT:",
        "",
        *sequence_table(record["compare"]),
        "",
        checks_line(record["checks"]),
    ]


def save(out: Path, record: dict, start: float) -> list[str]:
    """Write kinds.json and KINDS.md as the run stands (after each step, so that a run cut
    short leaves what it measured); returns KINDS.md's lines."""
    record["wall_seconds"] = time.perf_counter() - start
    record["machine"]["load_average_end"] = os.getloadavg()[0]
    lines = render(record)
    out.mkdir(parents=True, exist_ok=True)
    (out / "kinds.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    (out / "KINDS.md").write_text("\n".join(lines) + "\n")
    return lines


def stage(start: float, name: str) -> None:
    print(f"[{time.perf_counter() - start:.0f} s] {name}", flush=True)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conll", type=Path, default=SHARED / "conll2003")
    parser.add_argument("--glue", type=Path, default=SHARED / "glue")
    parser.add_argument("--squad", type=Path, help="A SQuAD folder (train.json, dev.json).")
    parser.add_argument("--workspace", type=Path, default=ROOT / "benchmarks" / "out" / "ws-kinds")
    parser.add_argument("--out", type=Path, default=OUT, help="Where KINDS.md goes.")
    parser.add_argument("--train-examples", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--tiny", action="store_true", help="Tiny BERT, generated tasks (tests).")
    parser.add_argument(
        "--sequence-only", action="store_true", help="Skip step 1 (NER three ways); run step 2."
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> list[str]:
    """Every step, KINDS.md written after each; returns its lines."""
    start, out = time.perf_counter(), args.out.resolve()
    squad = args.squad.resolve() if args.squad else None
    if args.tiny:
        ws, budget, settings = out / "ws", TINY, TINY_COMPARE
        shutil.rmtree(ws, ignore_errors=True)
        backbone, tasks = tiny_tasks(out, squad)
    else:
        ws, settings, backbone = args.workspace.resolve(), COMPARE, None
        budget = Budget(args.train_examples, args.epochs, args.max_length)
        tasks = real_tasks(argparse.Namespace(**{**vars(args), "squad": squad}))
    workspace = open_workspace(ws, budget, settings, backbone)
    add_tasks(workspace, tasks)
    record = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python " + " ".join([str(Path(sys.argv[0]).as_posix()), *sys.argv[1:]]),
        "budget": asdict(budget),
        "budget_text": budget.text(),
        "tasks": [name for name, _ in tasks],
        "squad": squad is not None,
        "machine": machine(),
    }
    if not args.sequence_only:
        stage(start, "1. ner: " + GRID)
        record["ner"] = ner_methods(workspace)
        save(out, record, start)
    stage(start, "2. train-next --all")
    record["trained"] = train_sequence(workspace)
    stage(start, "2. compare --methods all")
    record["compare"] = compare(workspace, out)
    stage(start, "2. contlearn audit")
    record["checks"] = checks(record["trained"], record["compare"], audit(ws))
    stage(start, "done")
    return save(out, record, start)


def main() -> int:
    print("\n".join(run(parse())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
