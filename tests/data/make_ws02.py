"""Build the release-0.2 workspace fixture in ``tests/data/ws02/`` (run once, with release 0.2).

The fixture holds two workspaces trained by contlearn at commit a15da4c (release 0.2's code,
before the task-kind ledger revision 0008). A workspace holds one backbone, and so one model
family; hence two:

- ``ws``: a tiny random BERT. Seven classification tasks, one per method (houlsby, pfeiffer,
  parallel, lora, ia3, topk, head), one regression task (numbers as labels, lora), a finished
  comparison with all six baselines (adapter, sequential, ewc, replay, joint, separate) on a
  tiny budget, and two tasks imported from folders that ``export`` wrote: the lora task as peft,
  the pfeiffer task as AdapterHub (houlsby's own LayerNorm copies have no place there). One audit.
- ``ws-llama``: a tiny random Llama decoder (family "llama") with a houlsby and a lora task.

``data/`` also holds a task per workspace that release 0.2 did not train, for the test to train
on top. ``tests/test_release02.py`` opens a copy of it with the current code.

A ledger records absolute paths (the backbone folder, each task's data folder), so the fixture is
built under the fixed folder ``ROOT`` and the test rewrites that prefix in its copy. Only the CLI
is used, in a subprocess that imports the release under ``PYTHONPATH``:

    git worktree add /tmp/contlearn-0.2 a15da4c
    PYTHONPATH=/tmp/contlearn-0.2 .venv/bin/python tests/data/make_ws02.py
"""

from __future__ import annotations

import csv
import json
import random
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from tests.conftest import (  # noqa: E402
    save_family_backbone,
    save_tiny_backbone,
    write_keyword_task,
)

ROOT = Path("/tmp/contlearn-ws02")
OUT = HERE / "ws02"
SETTINGS = {
    "max_length = 128": "max_length = 32",
    "lr = 0.001": "lr = 0.02",
    "bottleneck = 64": "bottleneck = 8",
    "full_finetune_lr = 2e-05": "full_finetune_lr = 0.001",
    "fisher_examples = 200": "fisher_examples = 16",
    "replay_buffer = 200": "replay_buffer = 16",
    "bootstrap_resamples = 1000": "bootstrap_resamples = 100",
}
# name -> (method, options, keywords); one task per method on the BERT workspace
BERT_TASKS = {
    "a": ("houlsby", (), {"pos": "good", "neg": "bad"}),
    "b": ("lora", ("rank=4",), {"x": "cat", "y": "dog", "z": "news"}),
    "c": ("ia3", (), {"yes": "yes", "no": "no"}),
    "d": ("topk", ("k=1",), {"s": "sport", "t": "tech"}),
    "e": ("head", (), {"t": "true", "f": "false"}),
    "f": ("pfeiffer", (), {"m": "money", "n": "news"}),
    "g": ("parallel", ("bottleneck=8",), {"s": "same", "o": "other"}),
}
LLAMA_TASKS = {
    "a": ("houlsby", (), {"pos": "good", "neg": "bad"}),
    "b": ("lora", ("rank=4",), {"x": "cat", "y": "dog"}),
}
COMPARE = ("--methods", "adapter,sequential,ewc,replay,joint,separate")
TRAIN = ("--epochs", "8")  # the tiny random backbones learn the keywords slowly
BUDGET = ("--epochs", "1", "--max-train-examples", "32")


def contlearn(*args: str) -> str:
    """``contlearn ARGS`` with the release on PYTHONPATH (run from ROOT: the current folder
    must not put this checkout's package first)."""
    command = [sys.executable, "-c", "from contlearn.cli import main; main(prog_name='contlearn')"]
    command += args
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    return done.stdout


def release_commit() -> str:
    """The commit of the contlearn package the subprocess imports."""
    code = "import contlearn, pathlib; print(pathlib.Path(contlearn.__file__).parent)"
    done = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
    )
    git = ["git", "-C", done.stdout.strip(), "rev-parse", "HEAD"]
    return subprocess.run(git, check=True, capture_output=True, text=True).stdout.strip()


def write_score_task(folder: Path, *, n_train: int = 96, n_dev: int = 16, seed: int = 0) -> Path:
    """A csv regression task: the label is a number that grows with "good" and falls with "bad"
    (never all whole numbers, so the task reads as regression)."""
    rng = random.Random(seed)
    fillers = ["the", "movie", "film", "was", "very", "cat", "dog", "this", "it", "is"]
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", n_train), ("dev", n_dev)):
        with open(folder / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            for _ in range(count):
                good, bad = rng.randint(0, 2), rng.randint(0, 2)
                words = rng.sample(fillers, 3) + ["good"] * good + ["bad"] * bad
                rng.shuffle(words)
                writer.writerow([" ".join(words), 2.5 + good - bad + rng.choice((0.25, 0.5))])
    return folder


def configure(ws: Path) -> None:
    config = (ws / "tasks.toml").read_text()
    for old, new in SETTINGS.items():
        config = config.replace(old, new)
    (ws / "tasks.toml").write_text(config)


def add_tasks(ws: Path, data: Path, tasks: dict, seed: int) -> None:
    for offset, (name, (method, options, keywords)) in enumerate(tasks.items()):
        folder = write_keyword_task(
            data / name, n_train=96, n_dev=16, seed=seed + offset, keywords=keywords
        )
        sets = [arg for option in options for arg in ("--set", option)]
        contlearn("add-task", name, "--data", str(folder), "--method", method, *sets, "-w", str(ws))


def build_bert() -> dict:
    ws, data = ROOT / "ws", ROOT / "data" / "bert"
    backbone = save_tiny_backbone(ROOT / "backbone")
    contlearn("init", "-w", str(ws), "--backbone", str(backbone))
    configure(ws)
    add_tasks(ws, data, BERT_TASKS, seed=1)
    write_score_task(data / "r", seed=11)
    contlearn("add-task", "r", "--data", str(data / "r"), "--method", "lora", "-w", str(ws))
    contlearn("train-next", "--all", *TRAIN, "--quiet", "-w", str(ws))
    report = ("--out", str(ROOT / "report"))
    done = json.loads(
        contlearn("compare", *COMPARE, *BUDGET, *report, "-q", "--json", "-w", str(ws))
    )
    shutil.rmtree(ROOT / "report")
    exports = ROOT / "exports"
    contlearn("export", "b", "--format", "peft", "--out", str(exports / "b-peft"), "-w", str(ws))
    contlearn(
        "export", "f", "--format", "adapterhub", "--out", str(exports / "f-hub"), "-w", str(ws)
    )
    for name, source, task in (("b_peft", "b-peft", "b"), ("f_hub", "f-hub", "f")):
        folders = ("--from", str(exports / source), "--data", str(data / task))
        contlearn("import-adapter", name, *folders, "-q", "-w", str(ws))
    contlearn("audit", "--quiet", "-w", str(ws))
    write_keyword_task(data / "new", n_train=96, n_dev=16, seed=21)
    return {**recorded(ws), "comparison_id": done["comparison_id"]}


def build_llama() -> dict:
    ws, data = ROOT / "ws-llama", ROOT / "data" / "llama"
    backbone = save_family_backbone(ROOT / "backbone-llama", "llama")
    contlearn("init", "-w", str(ws), "--backbone", str(backbone))
    configure(ws)
    add_tasks(ws, data, LLAMA_TASKS, seed=31)
    contlearn("train-next", "--all", *TRAIN, "--quiet", "-w", str(ws))
    write_keyword_task(data / "new", n_train=96, n_dev=16, seed=41)
    return recorded(ws)


def recorded(ws: Path) -> dict:
    """The status rows, the ledger's schema revision and each task's trained evaluation: the
    logits digest and metrics of the run that trained (or imported) it."""
    query = (
        "SELECT t.name, e.logits_sha256, e.metrics FROM evaluations e "
        "JOIN tasks t ON t.id = e.task_id JOIN runs r ON r.id = e.run_id "
        "WHERE e.kind = 'post-train' AND r.purpose != 'audit' ORDER BY e.id"
    )
    with closing(sqlite3.connect(ws / "contlearn.db")) as conn:
        rows = conn.execute(query).fetchall()
        (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return {
        "revision": revision,
        "status": json.loads(contlearn("status", "--json", "-w", str(ws))),
        "trained": {name: {"logits_sha256": d, "metrics": json.loads(m)} for name, d, m in rows},
    }


def main() -> None:
    import torch

    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    manifest = {
        "root": str(ROOT),
        "made_by": contlearn("--version").strip(),
        "made_by_commit": release_commit(),
        "torch_threads": torch.get_num_threads(),
        "workspaces": {"ws": build_bert(), "ws-llama": build_llama()},
    }
    shutil.rmtree(OUT, ignore_errors=True)
    shutil.copytree(ROOT, OUT)
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
