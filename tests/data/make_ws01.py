"""Build the release-0.1 workspace fixture in ``tests/data/ws01/`` (run once, with release 0.1).

The fixture is a workspace trained by contlearn 0.1.0 (commit ea6fa02): a tiny random BERT
backbone, two keyword tasks trained with Houlsby adapters, one audit and one finished
comparison, plus the data of a third task that the current code registers and trains on top.
``tests/test_release01.py`` opens a copy of it with the current code.

A ledger records absolute paths (the backbone folder, each task's data folder), so the fixture is
built under the fixed folder ``ROOT`` and the test rewrites that prefix in its copy. Only the CLI
is used, so the script runs against any release:

    PATH=/path/to/release-0.1/.venv/bin:$PATH python tests/data/make_ws01.py
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from tests.conftest import save_tiny_backbone, write_keyword_task  # noqa: E402

ROOT = Path("/tmp/contlearn-ws01")
OUT = HERE / "ws01"
SETTINGS = {
    "epochs = 3": "epochs = 4",
    "max_length = 128": "max_length = 32",
    "lr = 0.001": "lr = 0.02",
    "bottleneck = 64": "bottleneck = 8",
    "full_finetune_lr = 2e-05": "full_finetune_lr = 0.001",
}


def contlearn(*args: str) -> str:
    done = subprocess.run(["contlearn", *args], check=True, capture_output=True, text=True)
    return done.stdout


def build() -> dict:
    shutil.rmtree(ROOT, ignore_errors=True)
    backbone = save_tiny_backbone(ROOT / "backbone")
    ws = ROOT / "ws"
    contlearn("init", "-w", str(ws), "--backbone", str(backbone))
    config = (ws / "tasks.toml").read_text()
    for old, new in SETTINGS.items():
        config = config.replace(old, new)
    (ws / "tasks.toml").write_text(config)
    write_keyword_task(ROOT / "data" / "a", n_train=96, n_dev=16, seed=1)
    keywords = {"x": "cat", "y": "dog", "z": "news"}
    write_keyword_task(ROOT / "data" / "b", n_train=96, n_dev=16, seed=2, keywords=keywords)
    write_keyword_task(ROOT / "data" / "c", n_train=96, n_dev=16, seed=3)
    for name in ("a", "b"):
        contlearn("add-task", name, "--data", str(ROOT / "data" / name), "-w", str(ws))
    contlearn("train-next", "--all", "--quiet", "-w", str(ws))
    contlearn("audit", "--quiet", "-w", str(ws))
    contlearn("compare", "--quiet", "--out", str(ROOT / "report"), "-w", str(ws))
    shutil.rmtree(ROOT / "report")
    import torch

    return {
        "root": str(ROOT),
        "made_by": contlearn("--version").strip(),
        "torch_threads": torch.get_num_threads(),
        "status": json.loads(contlearn("status", "--json", "-w", str(ws))),
    }


def main() -> None:
    manifest = build()
    shutil.rmtree(OUT, ignore_errors=True)
    shutil.copytree(ROOT, OUT)
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
