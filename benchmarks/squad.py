"""Extractive QA on SQuAD v1.1 at CPU scale: the comparison of Houlsby et al. 2019 (section 3.5,
adapters of size 64 against full fine-tuning, BERT-large: 90.4 and 90.7 F1) on the packaged
MiniLM, with LoRA beside them. ``contlearn tradeoff`` trains one ``extractive-qa`` task with each
method from scratch and records its dev F1 and exact match, trainable parameters and training
seconds. Writes benchmarks/out/squad/SQUAD.md (the data's sha256s and question counts, the
budget, the machine, the wall time, the table) and prints the table.

SQuAD is not shipped: ``--squad-train`` and ``--squad-dev`` take SQuAD JSON files. The task
folder (``train.json``, ``dev.json``) is assembled under the out folder from copies of them
(contlearn refuses links that leave a data folder), either cut to its first N questions with
``--train-questions N`` / ``--dev-questions N``; nothing is written into the repository
outside benchmarks/out.

``--tiny`` (the test suite) runs the same commands on tests' tiny BERT with a word tokenizer and a
generated SQuAD file (three training articles, two dev articles), everything under --out.

Example:
    python benchmarks/squad.py --squad-train /data/squad/train-v1.1.json \\
        --squad-dev /data/squad/dev-v1.1.json --max-train-examples 1500 --dev-questions 1000
    python benchmarks/squad.py --tiny --out DIR
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "squad"
CONTLEARN = [sys.executable, "-m", "contlearn.cli"]
TASK = "squad"
STAMP = "squad-data.json"  # in the workspace: what its task was registered from
# Houlsby et al. 2019, section 3.5 and figure 5: BERT-large on SQuAD v1.1 dev, F1.
PAPER = {"houlsby": "90.4 (adapters, size 64)", "full": "90.7 (full fine-tuning)"}
METHODS = ("houlsby", "lora", "full")  # Houlsby size 64, LoRA rank 8, full fine-tuning
TINY_FILLERS = ["the", "movie", "was", "very", "good", "bad", "this", "it", "is", "a", "news"]


@dataclass(frozen=True)
class Budget:
    """What each method trains with: questions, epochs, window length, learning rates."""

    max_train_examples: int
    epochs: int
    max_length: int
    batch_size: int
    adapter_lr: float
    full_lr: float
    train_questions: int  # the training file's first N questions (0: all of them)
    dev_questions: int  # 0: the whole dev file
    methods: tuple[str, ...] = METHODS

    def grid(self) -> str:
        """The trade-off grid: each method with its learning rate."""
        points = {
            "houlsby": f"houlsby:bottleneck=64:lr={self.adapter_lr}",
            "lora": f"lora:rank=8:lr={self.adapter_lr}",
            "full": f"full:lr={self.full_lr}",
        }
        return ",".join(points[m] for m in self.methods)

    def flags(self) -> list[str]:
        return [
            *("--epochs", str(self.epochs), "--max-length", str(self.max_length)),
            *("--max-train-examples", str(self.max_train_examples)),
            *("--batch-size", str(self.batch_size)),
        ]


TINY_BUDGET = Budget(40, 1, 32, 16, 1e-3, 5e-5, 44, 0)


def sh(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    print(f"$ contlearn {' '.join(args)}", flush=True)
    return subprocess.run(
        [*CONTLEARN, *args], check=True, text=True, capture_output=capture, cwd=ROOT
    )


# -- the data ---------------------------------------------------------------------------------
def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe(path: Path) -> dict:
    """A SQuAD file's path, sha256, bytes, article titles and question count."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    questions = sum(len(p["qas"]) for a in data for p in a["paragraphs"])
    return {
        "path": str(path),
        "sha256": sha256(path),
        "bytes": path.stat().st_size,
        "articles": len(data),
        "titles": [a.get("title", "") for a in data],
        "questions": questions,
    }


def first_questions(document: dict, count: int) -> dict:
    """The SQuAD document cut after its first ``count`` questions, in file order."""
    kept, left = [], count
    for article in document["data"]:
        paragraphs = []
        for paragraph in article["paragraphs"]:
            if left <= 0:
                break
            qas = paragraph["qas"][:left]
            left -= len(qas)
            paragraphs.append(paragraph | {"qas": qas})
        if paragraphs:
            kept.append(article | {"paragraphs": paragraphs})
    return document | {"data": kept}


def task_folder(folder: Path, files: dict[str, tuple[Path, int]]) -> Path:
    """``folder`` holding a copy of each split's file (``train.json``, ``dev.json``), cut to
    its first N questions where N is given (0: whole): contlearn refuses links out of a data
    folder, and nothing of SQuAD is written into the repository outside benchmarks/out."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for split, (path, questions) in files.items():
        if not questions:
            shutil.copyfile(path, folder / f"{split}.json")
            continue
        document = json.loads(path.read_text(encoding="utf-8"))
        text = json.dumps(first_questions(document, questions), ensure_ascii=False)
        (folder / f"{split}.json").write_text(text, encoding="utf-8")
    return folder


def tiny_squad(folder: Path) -> tuple[Path, Path]:
    """Two SQuAD v1.1 files of generated articles (three to train on, two for dev): contexts of
    filler words holding one animal, the answer to "which animal"."""
    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, articles in (("train-tiny.json", 3), ("dev-tiny.json", 2)):
        data = []
        for a in range(articles):
            paragraphs = []
            for q in range(8 if name.startswith("dev") else 16):
                words = rng.choices(TINY_FILLERS, k=10)
                animal = rng.choice(["cat", "dog"])
                words.insert(rng.randrange(len(words) + 1), animal)
                context = " ".join(words)
                answer = {"text": animal, "answer_start": context.index(animal)}
                qa = {"id": f"{name[:3]}-{a}-{q}", "question": "which animal", "answers": [answer]}
                paragraphs.append({"context": context, "qas": [qa]})
            data.append({"title": f"{name[:3]}-article-{a}", "paragraphs": paragraphs})
        path = folder / name
        path.write_text(json.dumps({"version": "1.1", "data": data}), encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


# -- the workspace ----------------------------------------------------------------------------
def tiny_backbone(folder: Path) -> Path:
    """tests' tiny BERT with a WordPiece tokenizer that knows its words (as tests/conftest.py's
    ``word_backbone``: the default tiny tokenizer reads every word as [UNK])."""
    sys.path.insert(0, str(ROOT))
    from transformers import BertTokenizerFast

    from tests.conftest import save_tiny_backbone, tiny_vocab

    folder = save_tiny_backbone(folder, seed=1)
    vocab = {word: i for i, word in enumerate(tiny_vocab())}
    BertTokenizerFast(vocab=vocab, do_lower_case=True).save_pretrained(folder)
    return folder


def register(ws: Path, data: Path, budget: Budget, backbone: Path | None) -> bool:
    """A workspace (the packaged MiniLM, or ``backbone``) holding the one QA task: the one
    already at ``ws`` when it was made for the same data, backbone and length (True; the
    trade-off then reuses the points it finished), else a fresh one (False)."""
    stamp = {
        "train": sha256(data / "train.json"),
        "dev": sha256(data / "dev.json"),
        "backbone": str(backbone),
        "max_length": budget.max_length,
    }
    made = ws / STAMP
    if made.is_file() and json.loads(made.read_text()) == stamp:
        print(f"reusing {shown(ws)}: same data, backbone and length", flush=True)
        return True
    shutil.rmtree(ws, ignore_errors=True)
    sh("init", "-w", str(ws), *(("--backbone", str(backbone)) if backbone else ()))
    sh("add-task", TASK, "--data", str(data), "--max-length", str(budget.max_length), "-w", str(ws))
    made.write_text(json.dumps(stamp))
    return False


def shown(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it, else as it is."""
    return str(path.relative_to(ROOT)) if ROOT in path.parents else str(path)


def recorded(ws: Path) -> dict[int, dict]:
    """Each trade-off run's recorded dev metrics and wall seconds (training, the holdout and
    the dev evaluation), by run id."""
    sys.path.insert(0, str(ROOT))
    from contlearn.api import Workspace

    ledger = Workspace.open(ws).ledger
    runs = ledger.runs(purpose="tradeoff", task_id=ledger.task(TASK).id)
    return {
        r.id: {
            "metrics": (r.result or {}).get("metrics", {}),
            "wall": (r.finished_at - r.started_at).total_seconds() if r.finished_at else None,
        }
        for r in runs
    }


# -- the report -------------------------------------------------------------------------------
def table(points: list[dict], runs: dict[int, dict]) -> list[str]:
    lines = [
        "| method | lr | F1 | EM | trainable params | % of backbone | train s | run s "
        "| paper, BERT-large F1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for p in points:
        run = runs.get(p["run_id"], {})
        f1, em = (run.get("metrics", {}).get(k) for k in ("qa_f1", "qa_exact_match"))
        paper = PAPER.get(p["method"], "—")
        if p["method"] == "houlsby" and p["options"].get("bottleneck") != 64:
            paper = "—"
        lines.append(
            f"| {p['label']} | {p['lr']:g} | {pct(f1)} | {pct(em)} "
            f"| {p['trainable_params'] or 0:,} | {p['percent_of_backbone'] or 0:.2f} "
            f"| {p['seconds'] or 0:.0f} | {run.get('wall') or 0:.0f} | {paper} |"
        )
    return lines


def pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def data_lines(files: dict[str, dict], used: dict[str, dict], note: str | None) -> list[str]:
    """The data's table (each file, and the cut of it the task read where one was made), the
    articles the splits share, and ``note``."""
    lines = [
        "| split | file | articles | questions | bytes | sha256 |",
        "|---|---|---:|---:|---:|---|",
    ]
    for split, info in files.items():
        lines.append(row(split, info))
        if split in used:
            lines.append(row(f"{split} (the task's copy: first questions)", used[split]))
    shared = sorted(set(files["train"]["titles"]) & set(files["dev"]["titles"]))
    lines += [
        "",
        f"Article titles shared by the training and dev files: {len(shared)}"
        + (f" ({', '.join(shared[:5])})" if shared else " (disjoint articles)")
        + ".",
    ]
    return lines + ([note] if note else [])


def row(split: str, info: dict) -> str:
    return (
        f"| {split} | `{shown(Path(info['path']))}` | {info['articles']} | {info['questions']:,} "
        f"| {info['bytes']:,} | `{info['sha256']}` |"
    )


def machine() -> str:
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{model}, {os.cpu_count()} cores (load average at the end {load}), {platform.system()}"


def budget_line(budget: Budget, backbone: str) -> str:
    dev = f"the first {budget.dev_questions:,}" if budget.dev_questions else "all"
    pool = f"the first {budget.train_questions:,}" if budget.train_questions else "all"
    return (
        f"{backbone}; each method trained from scratch on at most {budget.max_train_examples:,} "
        f"training questions (a seeded subsample of {pool} questions of the training file, "
        f"after the 10% holdout that picks the best epoch), {budget.epochs} epoch(s), "
        f"windows of {budget.max_length} tokens "
        f"(doc stride {budget.max_length // 3}), batch {budget.batch_size}; adapters at lr "
        f"{budget.adapter_lr:g}, full fine-tuning at {budget.full_lr:g}; scored on {dev} dev "
        "questions with SQuAD's official F1 and exact match, shown x100 as in the paper."
    )


# -- the run ----------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--squad-train", type=Path, help="SQuAD JSON to train on.")
    parser.add_argument("--squad-dev", type=Path, help="SQuAD JSON to evaluate on.")
    parser.add_argument("--out", type=Path, default=OUT, help="Where SQUAD.md and the ws go.")
    parser.add_argument("--max-train-examples", type=int, default=1500)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--adapter-lr", type=float, default=1e-3)
    parser.add_argument("--full-lr", type=float, default=5e-5)
    parser.add_argument(
        "--train-questions", type=int, default=0, help="The training file's first N (0: all)."
    )
    parser.add_argument("--dev-questions", type=int, default=0, help="0: the whole dev file.")
    parser.add_argument(
        "--methods", default=",".join(METHODS), help="Comma-separated: houlsby, lora, full."
    )
    parser.add_argument("--note", help="A sentence about the data, written under its table.")
    parser.add_argument("--tiny", action="store_true", help="Tiny BERT, generated data (tests).")
    return parser.parse_args()


def check_out(out: Path) -> None:
    """The out folder lies under benchmarks/out or outside the repository, never in it."""
    inside = out == ROOT or ROOT in out.parents
    allowed = ROOT / "benchmarks" / "out"
    if inside and out != allowed and allowed not in out.parents:
        sys.exit(
            f"--out {out} is inside the repository: use benchmarks/out/... or a folder outside"
        )


def budget_of(args: argparse.Namespace) -> Budget:
    """The run's budget from the command line; a missing file or an unknown method ends the
    run in one line before anything is written."""
    if args.squad_train is None or args.squad_dev is None:
        sys.exit("--squad-train and --squad-dev are needed (SQuAD JSON files), or --tiny")
    for path in (args.squad_train, args.squad_dev):
        if not path.is_file():
            sys.exit(f"{path} is not a file: pass SQuAD JSON files (e.g. dev-v1.1.json)")
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    if not methods or set(methods) - set(METHODS):
        sys.exit(f"--methods {args.methods!r}: choose among {', '.join(METHODS)}")
    return Budget(
        args.max_train_examples,
        args.epochs,
        args.max_length,
        args.batch_size,
        args.adapter_lr,
        args.full_lr,
        args.train_questions,
        args.dev_questions,
        methods,
    )


def main() -> int:
    args = parse_args()
    out = args.out.resolve()
    check_out(out)
    start = time.perf_counter()
    backbone = None
    if args.tiny:
        args.squad_train, args.squad_dev = tiny_squad(out / "tiny-data")
        backbone = tiny_backbone(out / "tiny-bert")
    budget = TINY_BUDGET if args.tiny else budget_of(args)
    paths = {"train": args.squad_train.resolve(), "dev": args.squad_dev.resolve()}
    cuts = {"train": budget.train_questions, "dev": budget.dev_questions}
    data = task_folder(out / "data" / TASK, {k: (paths[k], cuts[k]) for k in paths})
    ws = out / "ws"
    earlier = set(recorded(ws)) if register(ws, data, budget, backbone) else set()
    report = out / "tradeoff"
    shutil.rmtree(report, ignore_errors=True)
    w = ("-w", str(ws))
    sh("tradeoff", TASK, "--grid", budget.grid(), *budget.flags(), "-q", "--out", str(report), *w)
    points = json.loads((report / "tradeoff.json").read_text())["points"]
    runs = recorded(ws)
    trained = sum(p["run_id"] not in earlier for p in points)
    files = {split: describe(path) for split, path in paths.items()}
    used = {split: describe(data / f"{split}.json") for split in paths if cuts[split]}
    name = "tests' tiny random BERT (word tokenizer)" if args.tiny else "MiniLM-L6 (packaged)"
    lines = [
        budget_line(budget, name),
        "",
        *table(points, runs),
        "",
        "Data:",
        "",
        *data_lines(files, used, args.note),
        "",
        f"Machine: {machine()}. Wall time of this invocation: "
        f"{time.perf_counter() - start:.0f} s, {trained} of {len(points)} points trained in it "
        "(the others reused from the same workspace). train s: the recorded training time "
        "(the holdout evaluation included); run s: the whole point, the dev evaluation included.",
    ]
    out.mkdir(parents=True, exist_ok=True)
    (out / "SQUAD.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
