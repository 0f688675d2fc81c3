"""Every way of learning a sequence on real data: five tasks on the packaged MiniLM, in order
bbc-topic -> imdb-sentiment -> SST-2 -> rt-sentiment -> MRPC (the demo corpora and GLUE
folders, used where they are), adapters trained by ``train-next`` and the five baselines by
``compare --methods all``. Writes benchmarks/out/baselines/BASELINES.md (the table and the
report's figures) and prints the table.

``--tiny`` (the test suite) runs the same commands on tests' tiny random BERT with two
generated keyword tasks (48 train and 16 dev rows, 1 epoch, 32 tokens), everything under --out;
every command but ``compare`` in this process (benchmarks/clirun.py): a new process spends
seconds importing torch, more than the tiny work.

Example:
    python benchmarks/baselines.py --glue ../shared/data/glue
    python benchmarks/baselines.py --tiny --out DIR
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import clirun
from common import set_settings

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "baselines"
SEQUENCE = (
    ("bbc-topic", None),
    ("imdb-sentiment", None),
    ("sst2", "SST-2"),
    ("rt-sentiment", None),
    ("mrpc", "MRPC"),
)
# Each task: 2 epochs on at most 1,000 examples of at most 96 tokens (the demo's budget);
# adapters at 1e-3, the baselines at 5e-5 (README: the demo).
SETTINGS = {"epochs": "2", "max_train_examples": "1000", "max_length": "96"}
COMPARE = {"full_finetune_lr": "5e-05", "replay_buffer": "500", "ewc_lambda": "100000.0"}
TINY_SETTINGS = {"epochs": "1", "max_train_examples": "48", "max_length": "32"}
TINY_COMPARE = COMPARE | {"replay_buffer": "8"}


def sh(*args: str, capture: bool = False, here: bool = False) -> subprocess.CompletedProcess:
    """``contlearn ARGS`` in a new process (its output shown unless ``capture``), or in this one
    with ``here`` (its output shown after it); a failure raises CalledProcessError."""
    print(f"$ contlearn {' '.join(args)}", flush=True)
    if not here:
        return subprocess.run(
            [sys.executable, "-m", "contlearn.cli", *args],
            check=True,
            text=True,
            capture_output=capture,
            cwd=ROOT,
        )
    done = clirun.in_this_process(args)
    if not capture:
        print(done.stdout, end="", flush=True)
        print(done.stderr, end="", file=sys.stderr, flush=True)
    done.check_returncode()
    return done


def setup(ws: Path, glue: Path) -> None:
    w = ["-w", str(ws)]
    if not (ws / "tasks.toml").exists():
        sh("init", *w)
        text = (ws / "tasks.toml").read_text()
        (ws / "tasks.toml").write_text(set_settings(set_settings(text, SETTINGS), COMPARE))
    have = {t["name"] for t in json.loads(sh("status", "--json", *w, capture=True).stdout)["tasks"]}
    for name, folder in SEQUENCE:
        if name in have:
            continue
        if folder is None:
            data = ws / "data" / name
            if not data.exists():
                sh("datasets", "prepare", name, "--out", str(data), "--max-per-class", "500")
        else:
            data = glue / folder
        sh("add-task", name, "--data", str(data), *w)


def setup_tiny(ws: Path) -> None:
    """The tiny run's workspace: tests' tiny BERT and two generated keyword tasks."""
    sys.path.insert(0, str(ROOT))
    from tests.conftest import save_tiny_backbone, write_keyword_task

    shutil.rmtree(ws, ignore_errors=True)
    backbone = save_tiny_backbone(ws.parent / "tiny-bert")
    sh("init", "-w", str(ws), "--backbone", str(backbone), here=True)
    text = (ws / "tasks.toml").read_text()
    (ws / "tasks.toml").write_text(set_settings(set_settings(text, TINY_SETTINGS), TINY_COMPARE))
    keywords = ({"pos": "good", "neg": "bad"}, {"x": "cat", "y": "dog"})
    for seed, words in enumerate(keywords):
        data = write_keyword_task(
            ws.parent / f"data-{seed}", n_train=48, n_dev=16, seed=seed, keywords=words
        )
        sh("add-task", f"task{seed}", "--data", str(data), "-w", str(ws), here=True)


def table(results: dict) -> list[str]:
    def num(v):
        return "—" if v is None else f"{v:.4f}"

    def ci(entry):
        return "" if not entry else " [{:.3f}, {:.3f}]".format(*entry["ci"])

    lines = [
        "| method | ACC [95% CI] | BWT [95% CI] | forgetting (Chaudhry) | FWT | intransigence "
        "| params / task | storage | train s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, m in results["methods"].items():
        s, c, cost = m["summary"], m.get("intervals") or {}, m["cost"]
        params = sum(cost["trainable_params"]) / len(cost["trainable_params"])
        seconds = sum(x for x in cost["train_seconds"] if x is not None)
        lines.append(
            f"| {key} | {num(s['acc'])}{ci(c.get('acc'))} | {num(s['bwt'])}{ci(c.get('bwt'))} "
            f"| {num(s['forgetting'])} | {num(s.get('fwt'))} | {num(s.get('intransigence'))} "
            f"| {params:,.0f} | {cost['total_bytes'] / 1e6:.1f} MB | {seconds:.0f} |"
        )
    return lines


def final_scores(results: dict) -> list[str]:
    names = [t["name"] for t in results["tasks"]]
    lines = ["| method | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for key, m in results["methods"].items():
        lines.append(f"| {key} | " + " | ".join(f"{v:.4f}" for v in m["matrix"][-1]) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--glue", type=Path, default=ROOT.parent / "shared" / "data" / "glue")
    parser.add_argument("--workspace", type=Path, default=ROOT / "benchmarks" / "out" / "ws5")
    parser.add_argument("--out", type=Path, default=OUT, help="Where BASELINES.md goes.")
    parser.add_argument("--tiny", action="store_true", help="Tiny BERT, two tasks (tests).")
    args = parser.parse_args()
    out = args.out.resolve()
    if args.tiny:
        args.workspace = out / "ws"
    ws, w = args.workspace.resolve(), ["-w", str(args.workspace.resolve())]
    start = time.perf_counter()
    setup_tiny(ws) if args.tiny else setup(ws, args.glue.resolve())
    sh("train-next", "--all", "-q", *w, here=args.tiny)
    trained = time.perf_counter() - start
    report = out / "report"
    if report.exists():
        shutil.rmtree(report)
    sh("compare", "--methods", "all", "-q", "--out", str(report), *w)
    results = json.loads((report / "report.json").read_text())
    names = ", ".join(t["name"] for t in results["tasks"])
    budget = (
        f"Two tasks on tests' tiny random BERT ({names}); each 1 epoch on 48 examples of at most "
        "32 tokens"
        if args.tiny
        else f"Five tasks on MiniLM ({names}); each 2 epochs on at most 1,000 examples of at most "
        "96 tokens"
    )
    lines = [
        f"{budget}, selection "
        f"{results['config'].get('selection', '?')}; adapters (Houlsby, lr 1e-3) trained in "
        f"{trained:.0f} s, all of it in {time.perf_counter() - start:.0f} s on this CPU.",
        "",
        *table(results),
        "",
        "Final dev scores (after the last task; joint: its one model):",
        "",
        *final_scores(results),
    ]
    out.mkdir(parents=True, exist_ok=True)
    (out / "BASELINES.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
