"""`make gpu-scale-check`: mixed-task batches, the probe verification and the resident task
limit on a GPU, in a few minutes; writes figures for BENCHMARKS.md's section 10.

On a BERT-base-shape backbone with random weights built here from a config (nothing is
downloaded), with generated keyword tasks:

1. four tasks of four methods (houlsby, lora, ia3, topk) trained on the device, each later one
   verifying the earlier ones with ``--verify probe``; then ``audit`` (always full);
2. ``predict --task-field`` over all four with ``resident_tasks = 2`` (tasks leave the device
   for CPU memory and come back), against each task's own predictions;
3. examples/s of one task's batches, mixed batches of 16 Houlsby tasks, and the same rows
   grouped per task inside each batch (length 128, batches of 32, 64 and 256);
4. device memory with 16, 160 and 1,000 Houlsby tasks built.

Run it where the project is installed, or as scripts/gpu_check.py describes.
`--device cpu --shape tiny` runs the same steps on a CPU; `--tiny` (the test suite) runs them on
the CPU at the smallest size that still takes every step: two tasks (houlsby, then topk with its
options) of a few dozen rows, one resident task, length 16 and one batch size; its commands run
in this process (benchmarks/clirun.py), but for ``audit``, which runs in a new one, as users run
it: a new process spends seconds importing torch, more than the tiny work.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_check import backbone, cli, keyword_task  # noqa: E402

METHODS = (
    ("a", "houlsby", []),
    ("b", "lora", []),
    ("c", "ia3", []),
    ("d", "topk", ["--set", "k=1"]),
)


@dataclass(frozen=True)
class Size:
    """How much each step does: the workflow's tasks and rows, the throughput's batches."""

    methods: tuple = METHODS
    train_rows: int = 256
    dev_rows: int = 96
    words: int = 20
    length: int = 128
    batches: tuple[int, ...] = (32, 64, 256)
    warmup: int = 3
    repeats: int = 10


FULL = Size()
TINY = Size(METHODS[::3], 32, 16, 8, 16, (16,), 1, 1)  # houlsby and topk: two tasks


def workflow(work: Path, args: argparse.Namespace) -> dict:
    bb = backbone(work / "backbone", args.shape)
    ws, here = work / "ws", args.tiny
    size = args.size
    cli("init", "-w", str(ws), "--backbone", str(bb), here=here)
    for i, (name, method, extra) in enumerate(size.methods):
        data = keyword_task(work / name, i, size.train_rows, size.dev_rows, size.words)
        add = ("add-task", name, "--data", str(data), "--method", method, *extra)
        cli(*add, "-w", str(ws), here=here)
    runs = []
    for _ in size.methods:
        budget = ["--epochs", "1", "--max-length", "64", "--verify", "probe", "--json", "-q"]
        out = cli("train-next", "--device", args.device, *budget, "-w", str(ws), here=here).stdout
        runs += json.loads(out)["runs"]
    audit = json.loads(cli("audit", "--device", args.device, "--json", "-q", "-w", str(ws)).stdout)
    return {
        "verifications": [
            {
                "task": r["task"],
                "of": v["task"],
                "mode": v["mode"],
                "rerun": v["examples_rerun"],
                "identical": v["identical"],
            }
            for r in runs
            for v in r["verifications"]
        ],
        "audit": audit["verdict"],
        "predict": mixed_predict(ws, work, args.device, [m[0] for m in size.methods], here),
    }


def mixed_predict(ws: Path, work: Path, device: str, tasks: list[str], here: bool) -> dict:
    """``predict --task-field`` over ``tasks`` with half of them resident, against each task's
    own predictions (the commands in this process with ``here``)."""
    resident = f"resident_tasks = {len(tasks) // 2}"
    text = (ws / "tasks.toml").read_text().replace("resident_tasks = 64", resident)
    (ws / "tasks.toml").write_text(text)
    rows = [
        {"text": f"the movie was {w} news", "task": t}
        for w in ("good", "bad", "film")
        for t in tasks
    ]
    rows *= 8
    (work / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = [
        "--input",
        str(work / "rows.jsonl"),
        "--device",
        device,
        "--batch-size",
        "8",
        "-q",
        "-w",
        str(ws),
    ]
    mixed = [
        json.loads(x)
        for x in cli("predict", "--task-field", "task", *args, here=here).stdout.splitlines()
    ]
    same, worst = 0, 0.0
    for name in tasks:
        mine = [r for r in mixed if r["task"] == name]
        path = work / f"{name}.jsonl"
        texts = [{"text": rows[r["index"]]["text"]} for r in mine]
        path.write_text("".join(json.dumps(row) + "\n" for row in texts))
        own_args = ["--input", str(path), "--device", device, "-q", "-w", str(ws)]
        own = cli("predict", name, *own_args, here=here).stdout
        alone = [json.loads(x) for x in own.splitlines()]
        for m, a in zip(mine, alone, strict=True):
            same += m["label"] == a["label"]
            worst = max(
                worst, *(abs(m["probabilities"][k] - p) for k, p in a["probabilities"].items())
            )
    return {"rows": len(mixed), "same_label": same, "max_probability_change": worst}


def throughput(args: argparse.Namespace) -> list[dict]:
    import torch
    from gpu_check import SHAPES
    from transformers import BertConfig, BertModel

    from contlearn.model.adapted import AdaptedModel
    from contlearn.model.methods.houlsby import HoulsbyConfig

    device = torch.device(args.device)
    torch.manual_seed(0)
    model = AdaptedModel(BertModel(BertConfig(vocab_size=30522, **SHAPES[args.shape]))).to(device)
    for i in range(16):
        model.add_task(f"t{i:02d}", num_outputs=2, adapter=HoulsbyConfig())
    model.eval()
    out = []
    size = args.size
    for batch in size.batches:
        ids = torch.randint(1000, 30000, (batch, size.length), device=device)
        mask = torch.ones_like(ids)
        names = [f"t{i % 16:02d}" for i in range(batch)]

        def single(ids=ids, mask=mask):
            model.activate("t00")
            model(ids, mask)

        def mixed(ids=ids, mask=mask, names=names):
            model.forward_mixed(names, ids, mask)

        def grouped(ids=ids, mask=mask, names=names):
            for k in range(16):
                rows = torch.tensor(
                    [r for r, n in enumerate(names) if n == f"t{k:02d}"], device=device
                )
                model.activate(f"t{k:02d}")
                model(ids[rows], mask[rows])

        rates = {}
        with torch.no_grad():
            for name, run in (
                ("single_task", single),
                ("mixed", mixed),
                ("grouped_in_batch", grouped),
            ):
                rates[name] = batch / _timed(run, device, size.warmup, size.repeats)
        out.append({"batch": batch, "examples_per_second": rates})
    return out


def _timed(run, device, warmup: int, repeats: int) -> float:
    import torch

    for _ in range(warmup):
        run()
    seconds = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def memory(args: argparse.Namespace) -> list[dict]:
    import torch
    from gpu_check import SHAPES
    from transformers import BertConfig, BertModel

    from contlearn.model.adapted import AdaptedModel
    from contlearn.model.methods.houlsby import HoulsbyConfig

    if not args.device.startswith("cuda"):
        return []
    model = AdaptedModel(BertModel(BertConfig(vocab_size=30522, **SHAPES[args.shape]))).to(
        args.device
    )
    base = torch.cuda.memory_allocated()
    out = []
    for count in (16, 160, 1000):
        while len(model.tasks) < count:
            model.add_task(f"t{len(model.tasks):04d}", num_outputs=2, adapter=HoulsbyConfig())
        used = torch.cuda.memory_allocated() - base
        out.append({"tasks": count, "device_mb": used / 2**20, "mb_per_task": used / 2**20 / count})
    return out


def main() -> int:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--shape", default="bert-base")
    parser.add_argument("--tiny", action="store_true", help="CPU, tiny shape, two tasks (tests).")
    args = parser.parse_args()
    if args.tiny:
        args.device, args.shape = "cpu", "tiny"
    args.size = TINY if args.tiny else FULL
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="contlearn-gpu-scale-") as tmp:
        report = {"workflow": workflow(Path(tmp), args)}
    report["throughput"] = throughput(args)
    report["memory"] = memory(args)
    report["seconds"] = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_scale_check.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    flow = report["workflow"]
    ok = all(v["identical"] for v in flow["verifications"]) and flow["audit"] == "clean"
    return 0 if ok and flow["predict"]["same_label"] == flow["predict"]["rows"] else 1


if __name__ == "__main__":
    sys.exit(main())
