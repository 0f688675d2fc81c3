"""`make gpu-check`: contlearn on a GPU, end to end, in a few minutes; writes figures for
BENCHMARKS.md's GPU section.

On a BERT-base-shape backbone with random weights built here from a config (nothing is
downloaded) and small generated keyword tasks, it runs the commands a user runs:

1. `train-next --device cuda --precision bf16` trains task a;
2. a second process reloads task a and re-evaluates it: the logits digest must be identical;
3. `audit --device cuda` (the recorded recipe: bit-identical) and `audit --device cpu` (another
   device: reported as such, passing only on identical predictions);
4. `train-next --nproc 1 --device cuda` trains task b under torchrun and NCCL, verifying a;
5. contlearn's own training step, adapters vs full fine-tuning, bf16, length 128, batch 32:
   examples/s and MFU against a bf16 matmul measured on the same GPU (and the nominal peak).

Run it where the project is installed (`make gpu-check`), or on a machine with torch and
transformers but without the project: `pip install --no-deps --no-index --find-links WHEELS
contlearn sqlalchemy alembic click tqdm safetensors` first (the wheels built here), then
`python scripts/gpu_check.py --out OUT`. `--device cpu --shape tiny` runs the same steps on a CPU
in under a minute (gloo instead of NCCL, fp32). `--tiny` (the test suite) is that with a few dozen
rows and a few steps, and runs the commands of steps 1 and 3 in this process (the second process
and torchrun of steps 2 and 4 are new processes still): each new process spends seconds
importing torch, more than the tiny work.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import clirun  # noqa: E402
from common import BERT_BASE, Shape, train_flops  # noqa: E402

SHAPES = {
    "bert-base": BERT_BASE,
    "tiny": {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
    },
}
WORDS = [
    *("good", "bad", "great", "awful", "movie", "film", "the", "a", "is", "was", "not", "very"),
    *("cat", "dog", "sport", "news", "tech", "money"),
]
NOMINAL_BF16_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0}  # dense, vendor figures


def cli(*args: str, env: dict | None = None, here: bool = False) -> subprocess.CompletedProcess:
    """``contlearn ARGS`` in a new process, or in this one with ``here`` (benchmarks/clirun.py);
    a failure ends the check with the command's standard error."""
    done = clirun.in_this_process(args) if here else clirun.in_new_process(args, env=env)
    if done.returncode != 0:
        raise SystemExit(f"contlearn {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done


def backbone(folder: Path, shape: str) -> Path:
    """A BERT of ``shape`` with random weights and a WordPiece tokenizer, saved like a hub model."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    letters = list("abcdefghijklmnopqrstuvwxyz0123456789")
    vocab = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *WORDS,
        *letters,
        *(f"##{c}" for c in letters),
    ]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), max_position_embeddings=512, **SHAPES[shape])
    BertModel(config).save_pretrained(folder)
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    return folder


def keyword_task(folder: Path, seed: int, n_train: int, n_dev: int, words: int) -> Path:
    """A csv task whose label is a keyword somewhere in a text of ``words`` words."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", n_train), ("dev", n_dev)):
        with open(folder / f"{split}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            for _ in range(count):
                label = rng.choice(["pos", "neg"])
                text = [rng.choice(WORDS[4:]) for _ in range(words)]
                text[rng.randrange(words)] = "good" if label == "pos" else "bad"
                writer.writerow([" ".join(text), label])
    return folder


def reevaluate_in_a_new_process(ws: Path, task: str, device: str) -> str:
    code = (
        "import sys\n"
        "from contlearn.api import Workspace\n"
        "from contlearn.runtime.context import open_context\n"
        "from contlearn.runtime.verify import reproduce\n"
        "ws = Workspace.open(sys.argv[1])\n"
        "ctx = open_context(ws.ledger, ws.store, sys.argv[3])\n"
        "check = reproduce(ctx, ws.ledger.task(sys.argv[2]))\n"
        "print(check.now.logits_sha256, check.recorded.logits_sha256, check.same_recipe)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(ws), task, device], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    now, recorded, same = done.stdout.split()
    return {
        "now": now,
        "recorded": recorded,
        "identical": now == recorded,
        "same_recipe": same == "True",
    }


def workflow(work: Path, args: argparse.Namespace) -> dict:
    """Steps 1-4: train, re-evaluate elsewhere, audit on two devices, train under torchrun."""
    bb = backbone(work / "backbone", args.shape)
    ws, here = work / "ws", args.tiny
    cli("init", "-w", str(ws), "--backbone", str(bb), here=here)
    for name, seed in (("a", 1), ("b", 2)):
        data = keyword_task(work / name, seed, args.train_rows, 256, args.words)
        cli("add-task", name, "--data", str(data), "-w", str(ws), here=here)
    precision = "bf16" if args.device.startswith("cuda") else "fp32"
    budget = ["--epochs", "1", "--max-length", "128", "--precision", precision, "--json", "-q"]
    start = time.perf_counter()
    train = cli("train-next", "--device", args.device, *budget, "-w", str(ws), here=here)
    trained, seconds = json.loads(train.stdout), time.perf_counter() - start
    again = reevaluate_in_a_new_process(ws, "a", args.device)
    audit = ("audit", "--json", "-q", "-w", str(ws))
    same = json.loads(cli(*audit, "--device", args.device, here=here).stdout)
    cpu = json.loads(cli(*audit, "--device", "cpu", here=here).stdout)
    nproc = cli("train-next", "--nproc", "1", "--device", args.device, *budget, "-w", str(ws))
    (parallel,) = json.loads(nproc.stdout)["runs"]
    (run,) = trained["runs"]
    return {
        "train": {
            "metrics": run["metrics"],
            "seconds": run["seconds"],
            "wall_seconds": seconds,
            "examples_per_second": run["examples_per_second"],
            "precision": precision,
        },
        "second_process": again,
        "audit_same_device": {
            "verdict": same["verdict"],
            "recipes": [t["recipe"] for t in same["tasks"]],
        },
        "audit_cpu": {
            "verdict": cpu["verdict"],
            "recipes": [t["recipe"] for t in cpu["tasks"]],
            "notes": [n for t in cpu["tasks"] for n in t["notes"]],
        },
        "nproc_1": {
            "world_size": parallel["world_size"],
            "verifications": parallel["verifications"],
            "allreduce_bytes_per_step": parallel["allreduce_bytes_per_step"],
        },
    }


def step_throughput(args: argparse.Namespace, method: str) -> dict:
    """Step 5 for one method: contlearn's optimizer step on synthetic full-length batches."""
    import torch
    from transformers import BertConfig, BertModel

    from contlearn import kinds
    from contlearn.config import TrainConfig
    from contlearn.devices import resolve
    from contlearn.model.adapted import AdaptedModel
    from contlearn.model.methods.houlsby import HoulsbyConfig
    from contlearn.train.batching import Encoded
    from contlearn.train.loop import optimizer_step

    device = resolve(args.device)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, max_position_embeddings=512, **SHAPES[args.shape])
    model = AdaptedModel(BertModel(config)).to(device)
    model.add_task("t", num_outputs=2, adapter=None if method == "full" else HoulsbyConfig())
    model.activate("t")
    params = model.trainable_parameters("t")
    if method == "full":
        model.backbone.requires_grad_(True)
        params = list(model.backbone.parameters()) + params
    batch, length = args.batch, args.length
    ids = [
        [101] + [random.randrange(1000, 30000) for _ in range(length - 2)] + [102]
        for _ in range(batch)
    ]
    encoded = Encoded(ids, [[0] * length] * batch, 0)
    precision = "bf16" if device.type == "cuda" else "fp32"
    train_cfg = TrainConfig(batch_size=batch, epochs=1000, precision=precision)
    step = optimizer_step(
        model, params, encoded, [0] * batch, train_cfg, kinds.get("classification"), device=device
    )
    every = list(range(batch))
    for _ in range(args.warmup):
        step(every)
    _sync(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        step(every)
    _sync(device)
    seconds = (time.perf_counter() - start) / args.steps
    flops = train_flops(
        Shape.of(config), batch, length, "full" if method == "full" else "adapter", 64
    )
    return {
        "method": method,
        "step_seconds": seconds,
        "examples_per_second": batch / seconds,
        "tflops_per_second": flops["total"] / seconds / 1e12,
        "trainable_params": sum(p.numel() for p in params),
    }


def matmul_peak(device_spec: str) -> float:
    """bf16 (fp32 on a CPU) matmul TFLOP/s on this device: the ceiling MFU is measured against."""
    import torch

    from contlearn.devices import resolve

    device = resolve(device_spec)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    n = 8192 if device.type == "cuda" else 1024
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    _sync(device)
    start, repeats = time.perf_counter(), 20
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e12


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def describe_device(spec: str) -> dict:
    import torch

    from contlearn.devices import device_model, resolve

    device = resolve(spec)
    found = {"device": device.type, "model": device_model(device), "torch": torch.__version__}
    if device.type == "cuda":
        found |= {
            "cuda": torch.version.cuda,
            "capability": ".".join(map(str, torch.cuda.get_device_capability(device))),
        }
    return found


def markdown(report: dict) -> str:
    """The GPU section of BENCHMARKS.md."""
    d, w = report["device"], report["workflow"]
    return "\n".join([_heading(report), "", *_workflow_lines(d, w), "", *_throughput_lines(report)])


def _heading(report: dict) -> str:
    d = report["device"]
    versions = f"torch {d['torch']}"
    if d["device"] == "cuda":
        versions += f", CUDA {d.get('cuda')}, capability {d.get('capability')}"
    return (
        f"Run {report['date']} on {d['model']} ({d['device']}, {versions}), "
        f"`scripts/gpu_check.py --shape {report['shape']}`, {report['seconds']:.0f} s in all."
    )


def _workflow_lines(d: dict, w: dict) -> list[str]:
    train, again, nproc = w["train"], w["second_process"], w["nproc_1"]
    same, cpu = w["audit_same_device"], w["audit_cpu"]
    backend = "NCCL" if d["device"] == "cuda" else "gloo"
    digest = "identical" if again["identical"] else "DIFFERENT"
    return [
        f"- `train-next --precision {train['precision']}`: task a, {train['metrics']}, "
        f"{train['seconds']:.2f} s of training ({train['examples_per_second']:.0f} examples/s).",
        f"- Re-evaluated in a second process: logits digest {digest} "
        f"(same recipe: {again['same_recipe']}).",
        f"- `audit --device {d['device']}`: {same['verdict']} ({', '.join(same['recipes'])}); "
        f"`audit --device cpu`: {cpu['verdict']} ({', '.join(cpu['recipes'])}).",
        *(f"  - {note}" for note in cpu["notes"]),
        f"- `train-next --nproc 1` (torchrun, {backend}): task b trained, verification of a "
        f"{[v['identical'] for v in nproc['verifications']]}, "
        f"{nproc['allreduce_bytes_per_step']:,} bytes all-reduced per step.",
    ]


def _throughput_lines(report: dict) -> list[str]:
    rows, nominal, ceiling = (
        report["throughput"],
        report.get("nominal_tflops"),
        report["matmul_tflops"],
    )
    precision = "bf16 autocast" if report["device"]["device"] == "cuda" else "fp32"
    lines = [
        f"Training step, {report['shape']} shape, length {report['length']}, batch "
        f"{report['batch']}, {precision}; matmul ceiling measured here {ceiling:.3g} TFLOP/s"
        + (f", nominal {nominal:.0f}" if nominal else "")
        + ":",
        "",
        "| method | examples/s | TFLOP/s | MFU (measured ceiling) | MFU (nominal) | trainable |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        tflops = row["tflops_per_second"]
        nom = f"{tflops / nominal:.1%}" if nominal else "n/a"
        lines.append(
            f"| {row['method']} | {row['examples_per_second']:.0f} | {tflops:.3g} | "
            f"{tflops / ceiling:.1%} | {nom} | {row['trainable_params']:,} |"
        )
    ratio = rows[0]["examples_per_second"] / rows[1]["examples_per_second"]
    return [*lines, "", f"Adapters / full fine-tuning throughput: {ratio:.2f}x.", ""]


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="bert-base")
    parser.add_argument("--train-rows", type=int, default=2048)
    parser.add_argument("--words", type=int, default=100)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--tiny", action="store_true", help="CPU, tiny shape, few rows (tests).")
    args = parser.parse_args(argv)
    if args.tiny:
        args.device, args.shape, args.train_rows, args.words = "cpu", "tiny", 48, 10
        args.length, args.batch, args.warmup, args.steps = 32, 8, 1, 2
    return args


def main(argv: list[str] | None = None) -> int:
    import tempfile

    args = parse(argv)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="contlearn-gpu-") as tmp:
        flow = workflow(Path(tmp), args)
    device = describe_device(args.device)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "device": device,
        "shape": args.shape,
        "length": args.length,
        "batch": args.batch,
        "workflow": flow,
        "throughput": [step_throughput(args, m) for m in ("adapter", "full")],
        "matmul_tflops": matmul_peak(args.device),
        "nominal_tflops": next(
            (v for k, v in NOMINAL_BF16_TFLOPS.items() if k in device["model"]), None
        ),
    }
    report["seconds"] = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (args.out / "gpu_check.md").write_text(markdown(report))
    print(markdown(report))
    return 0 if passed(flow) else 1


def passed(flow: dict) -> bool:
    """Every check held: the digest reproduced, both audits clean, the earlier task verified."""
    verified = all(v["identical"] for v in flow["nproc_1"]["verifications"])
    audits = flow["audit_same_device"]["verdict"] == flow["audit_cpu"]["verdict"] == "clean"
    return flow["second_process"]["identical"] and audits and verified


if __name__ == "__main__":
    sys.exit(main())
