"""Loading a backbone in bf16 (``init --backbone-dtype bf16``) against fp32: the memory it takes
while loading and once loaded, and a Houlsby training step on this CPU. A BERT-base-shape model
(random weights, 110M parameters, stored in fp32 safetensors) is loaded in a fresh process per
dtype; a thread samples the process's resident memory (VmRSS: allocated tensors and the mapped
checkpoint's pages alike) every 2 ms to find its peak while loading.

``--tiny`` (the test suite) measures the three rows one after another in one child process:
a new process spends seconds importing torch, and a tiny model's memory figures say nothing.

Example:
    python benchmarks/backbone_dtype.py
    python benchmarks/backbone_dtype.py --tiny   # tests' tiny BERT, batch 2 x 16, one step
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHAPES = {  # name -> (BERT config, batch, length, timed steps)
    "bert-base": (
        {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12},
        *(8, 128, 3),
    ),
    "tiny": (
        {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2},
        *(2, 16, 1),
    ),
}
INTERMEDIATE = {"bert-base": 3072, "tiny": 64}


def save_backbone(folder: Path, shape: str) -> None:
    import torch
    from transformers import AutoModel, BertConfig, BertTokenizerFast

    from tests.conftest import tiny_vocab

    torch.manual_seed(0)
    (folder / "vocab.txt").write_text("\n".join(tiny_vocab()) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    config = BertConfig(**SHAPES[shape][0], intermediate_size=INTERMEDIATE[shape])
    AutoModel.from_config(config).save_pretrained(folder)


def rss_mb(field: str = "VmRSS") -> float:
    """The process's resident memory (anonymous and mapped file pages) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(folder: str, dtype: str, precision: str, shape: str) -> dict:
    """In this process: load the backbone in ``dtype``, then time a training step in
    ``precision``."""
    import torch

    from contlearn import kinds
    from contlearn.config import TrainConfig
    from contlearn.model.adapted import AdaptedModel
    from contlearn.model.backbone import load
    from contlearn.model.methods.registry import get_method
    from contlearn.train.batching import Encoded
    from contlearn.train.loop import optimizer_step

    torch.set_num_threads(torch.get_num_threads())
    fields = ("RssAnon", "VmRSS")
    before = {f: rss_mb(f) for f in fields}
    peak, done = dict.fromkeys(fields, 0.0), threading.Event()

    def sample() -> None:
        while not done.is_set():
            for f in fields:
                peak[f] = max(peak[f], rss_mb(f))
            time.sleep(0.002)

    watcher = threading.Thread(target=sample)
    watcher.start()
    loaded = load(folder, dtype)
    done.set()
    watcher.join()
    after = {f: rss_mb(f) - before[f] for f in fields}
    weights = sum(t.numel() * t.element_size() for t in loaded.model.state_dict().values())
    model = AdaptedModel(loaded.model)
    model.add_task("t", num_outputs=2, adapter=get_method("houlsby").config({}))
    model.activate("t")
    model.train()
    _, batch, length, steps = SHAPES[shape]
    ids = [[5 + (i * 7 + j) % 90 for j in range(length)] for i in range(batch)]
    config = TrainConfig(batch_size=batch, epochs=1000, precision=precision)
    params = model.trainable_parameters("t")
    step = optimizer_step(
        model, params, Encoded(ids, None, 0), [0] * batch, config, kinds.get("classification")
    )
    every = list(range(batch))
    step(every)
    start = time.perf_counter()
    for _ in range(steps):
        step(every)
    return {
        "dtype": dtype,
        "precision": precision,
        "weights_mb": weights / 2**20,
        "anon_peak_mb": peak["RssAnon"] - before["RssAnon"],
        "anon_after_mb": after["RssAnon"],
        "rss_peak_mb": peak["VmRSS"] - before["VmRSS"],
        "rss_after_mb": after["VmRSS"],
        "step_s": (time.perf_counter() - start) / steps,
    }


ROWS = (("float32", "fp32"), ("float32", "bf16"), ("bfloat16", "bf16"))  # (dtype, precision)


def measure_in_children(folder: str, shape: str, one_child: bool) -> list[dict]:
    """Each row of ROWS measured in a new process (all of them in one with ``one_child``)."""
    pairs = [f"{dtype}:{precision}" for dtype, precision in ROWS]
    groups = [pairs] if one_child else [[pair] for pair in pairs]
    rows = []
    for group in groups:
        child = [sys.executable, __file__, "--child", folder, shape, *group]
        out = subprocess.run(child, capture_output=True, text=True, check=True).stdout
        rows += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return rows


def main() -> int:
    if sys.argv[1:2] == ["--child"]:  # a measuring child: FOLDER SHAPE DTYPE:PRECISION...
        folder, shape, *pairs = sys.argv[2:]
        for pair in pairs:
            print(json.dumps(measure(folder, *pair.split(":"), shape)), flush=True)
        return 0
    tiny = sys.argv[1:] == ["--tiny"]
    shape = "tiny" if tiny else "bert-base"
    _, batch, length, _ = SHAPES[shape]
    with tempfile.TemporaryDirectory() as tmp:
        save_backbone(Path(tmp), shape)
        rows = measure_in_children(tmp, shape, one_child=tiny)
    fp32 = rows[0]
    print(f"{shape} BERT shape, Houlsby step at batch {batch} x {length} tokens, this CPU")
    print("MB added by loading: anonymous memory (allocated tensors) and resident memory (also")
    print("the checkpoint's mapped pages, which fp32 weights are read from without a copy).")
    print()
    print(
        "| backbone dtype | training precision | weights | anonymous peak | anonymous after "
        "| resident peak | resident after | step s | step vs fp32 |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['dtype']} | {r['precision']} | {r['weights_mb']:.0f} | "
            f"{r['anon_peak_mb']:.0f} | {r['anon_after_mb']:.0f} | "
            f"{r['rss_peak_mb']:.0f} | {r['rss_after_mb']:.0f} | "
            f"{r['step_s']:.2f} | {r['step_s'] / fp32['step_s']:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
