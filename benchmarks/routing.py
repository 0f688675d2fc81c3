"""Prediction without a task name, measured (``contlearn routing``) on a trained workspace:

- the routing matrix after each task (the share of each earlier task's dev inputs routed to
  each task, and to none of these), with the routing accuracy after each task;
- "none of these": per task held out of a router over the others, the AUROC of the distance
  to the nearest task with the held-out task's dev inputs as the out-of-scope ones, the share
  of them answered with no task, and the share of in-scope inputs kept (95% by construction on
  the selection split);
- per task predicting classes, its primary dev metric with routing and with the true task
  given (a row routed to another task with the same labels can still be right: the two
  sentiment tasks of the demo);
- throughput: the same rows predicted with their task given and with routing, in one run.

Sequences: ``--workspace WS`` measures a workspace already trained (the demo's ``.demo/ws``:
bbc-topic, imdb-sentiment, rt-sentiment); ``--glue DIR`` trains RTE, MRPC, SST-2 and QNLI (in
that order, at most ``--train-examples`` each) on the packaged MiniLM into ``--out``/ws first,
or resumes it (GLUE's QNLI is its dev split alone: ``--out``/QNLI holds it cut in two, seeded,
``QNLI_DEV`` rows as dev and the rest as train); ``--tiny`` (the test suite) trains two
generated keyword tasks with disjoint vocabularies on tests' tiny BERT. Writes
``--out``/ROUTING.md and routing.json and prints the tables.

Example:
    python benchmarks/routing.py --workspace .demo/ws
    python benchmarks/routing.py --glue ../shared/data/glue --train-examples 2000
    python benchmarks/routing.py --tiny --out DIR
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "routing"
GLUE = ("RTE", "MRPC", "SST-2", "QNLI")
QNLI_DEV = 1000  # dev rows kept of QNLI's (the rest train)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--workspace", type=Path, help="A trained workspace to measure.")
    where.add_argument("--glue", type=Path, help="GLUE's folder: train RTE, MRPC, SST-2, QNLI.")
    where.add_argument("--tiny", action="store_true", help="Tests' tiny model (the test suite).")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--max-rows", type=int, default=1000, help="Dev rows per task measured.")
    parser.add_argument("--train-examples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default=None)
    return parser.parse_args(argv)


def glue_workspace(args: argparse.Namespace):
    """The GLUE sequence trained (or resumed) in ``--out``/ws on the packaged MiniLM."""
    from contlearn.api import Workspace

    ws_dir = args.out / "ws"
    if not (ws_dir / "tasks.toml").exists():
        Workspace.create(ws_dir)
    ws = Workspace.open(ws_dir)
    have = {t.name for t in ws.tasks()}
    for name in GLUE:
        if name.lower().replace("-", "") not in have:
            folder = qnli_split(args.glue, args.out) if name == "QNLI" else args.glue / name
            ws.add_task(name.lower().replace("-", ""), folder)
    settings = {"epochs": args.epochs, "max_train_examples": args.train_examples}
    if any(t.status != "trained" for t in ws.tasks()):
        ws.train_next(all_tasks=True, **settings)
    return ws


def qnli_split(glue: Path, out: Path) -> Path:
    """QNLI's dev.tsv cut in two under ``out``/QNLI: ``QNLI_DEV`` seeded rows as dev.tsv, the
    others as train.tsv, each with the header (written once; a rerun reads it again)."""
    import random

    folder = out / "QNLI"
    if not (folder / "dev.tsv").exists():
        header, *rows = (glue / "QNLI" / "dev.tsv").read_text(encoding="utf-8").splitlines()
        random.Random(0).shuffle(rows)
        folder.mkdir(parents=True, exist_ok=True)
        for split, part in (("train", rows[QNLI_DEV:]), ("dev", rows[:QNLI_DEV])):
            (folder / f"{split}.tsv").write_text("\n".join([header, *part]) + "\n", "utf-8")
    return folder


def tiny_workspace(out: Path):
    """Two keyword tasks with disjoint vocabularies, trained one epoch on tests' tiny BERT."""
    sys.path.insert(0, str(ROOT))
    from transformers import BertTokenizerFast

    from tests.conftest import fast_workspace, save_tiny_backbone, tiny_vocab
    from tests.test_routing import FILM, PETS, write_words_task

    backbone = save_tiny_backbone(out / "tiny-bert", seed=1)
    vocab = {word: i for i, word in enumerate(tiny_vocab())}
    BertTokenizerFast(vocab=vocab, do_lower_case=True).save_pretrained(backbone)
    ws = fast_workspace(out / "ws", backbone)
    ws.add_task("film", write_words_task(out / "film", FILM, {"pos": "good", "neg": "bad"}, 1))
    ws.add_task("pets", write_words_task(out / "pets", PETS, {"a": "cat", "b": "dog"}, 2))
    ws.train_next(all_tasks=True, epochs=1)
    return ws


def num(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def render(report: dict) -> list[str]:
    """The report as markdown tables."""
    names = report["tasks"]
    lines = ["### Routing matrix after each task", ""]
    for step in report["steps"]:
        shown = names[: names.index(step["after"]) + 1]
        lines += [f"After {step['after']} (accuracy {num(step['accuracy'])}):", ""]
        lines += ["| true \\ routed | " + " | ".join([*shown, "none"]) + " |"]
        lines += ["|---" * (len(shown) + 2) + "|"]
        for name, row in zip(shown, step["matrix"], strict=True):
            lines += [f"| {name} | " + " | ".join(num(v) for v in row) + " |"]
        lines += [""]
    lines += ["### None of these (each task held out of a router over the others)", ""]
    lines += ["| held out | AUROC | answered none | in-scope kept |", "|---|---|---|---|"]
    for name, v in report["out_of_scope"].items():
        lines += [
            f"| {name} | {num(v['auroc'])} | {num(v['none_share'])} | {num(v['in_scope_kept'])} |"
        ]
    lines += ["", "### End to end: each task's metric with routing and with its task given", ""]
    lines += ["| task | metric | task given | routed | routed to its own task |"]
    lines += ["|---|---|---|---|---|"]
    for name, v in report["end_to_end"].items():
        lines += [
            f"| {name} | {v['metric']} | {num(v['task_given'], '.4f')} | "
            f"{num(v['routed'], '.4f')} | {num(v.get('routed_to_own_task'))} |"
        ]
    t = report["throughput"]
    lines += [
        "",
        f"Throughput over the same {t['rows']} rows: {num(t['task_given_rows_per_s'], '.1f')} "
        f"rows/s with the task given, {num(t['routed_rows_per_s'], '.1f')} with routing "
        f"(routed / given: {num(t['ratio'])}).",
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if args.tiny:
        ws = tiny_workspace(args.out)
    elif args.glue is not None:
        ws = glue_workspace(args)
    else:
        from contlearn.api import Workspace

        ws = Workspace.open(args.workspace)
    report = ws.routing_report(device=args.device, max_rows=args.max_rows)
    record = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python benchmarks/routing.py", *(argv or sys.argv[1:])]),
        "workspace": str(ws.root),
        "load_average": os.getloadavg()[0],
        "wall_seconds": time.perf_counter() - start,
        "report": report,
    }
    (args.out / "routing.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    text = [f"Run {record['date']}, `{record['command']}`.", "", *render(report)]
    (args.out / "ROUTING.md").write_text("\n".join(text))
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
