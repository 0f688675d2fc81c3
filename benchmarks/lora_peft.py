"""Training throughput of contlearn's LoRA against peft's, on the same causal LM and batches,
side by side in one process.

(a) contlearn: an ``AdaptedModel`` on the folder's ``AutoModel`` backbone (loaded by
``contlearn.model.backbone.load``) with one generation task: LoRA rank 8, alpha 16, dropout 0
on the query and value projections, the ``lm`` head, each step the product's own
``contlearn.train.loop.optimizer_step`` (collate, forward, the generation kind's loss on the
response tokens, backward, gradient clipping, AdamW, LR schedule).
(b) peft: ``AutoModelForCausalLM`` from the same folder wrapped by ``peft.get_peft_model`` with
``LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0)``; the
model's own loss (cross-entropy, shifted inside) on the same labels (-100 on the prompt and the
padding), then the same clipping, AdamW groups and schedule (``contlearn.train.optim``).

Both get the same batches (rt-sentiment prepared ``--form generation``, encoded with the
backbone's tokenizer and chat template by the generation kind; ``--synthetic``: random ids,
first half prompt), in fp32, on the same torch threads. The steps alternate (a b, b a, a b,
...: each goes first in every other round) so that a change of the machine's load hits both
alike. Tokens/s counts the real (unpadded) tokens of each batch. Both sides start as the base
model (LoRA's B is zero), so their first-step losses agree: the proof they compute the same
loss on the same data.

Writes ``lora-peft.json`` and ``LORA_PEFT.md`` under ``--out`` and prints the table.

Example:
    python benchmarks/lora_peft.py --batch 8 --length 128 --steps 10 --backbone DIR
    python benchmarks/lora_peft.py --tiny --out DIR
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "lora-peft"
# the SmolLM2 folder ``contlearn init`` converted from the GGUF in ``make demo-llm``
SMOLLM2 = ROOT / "benchmarks" / "out" / "generation-demo" / "ws-lora" / "backbone"
RANK, ALPHA, DROPOUT = 8, 16.0, 0.0
PEFT_TARGETS = ["q_proj", "v_proj"]  # peft's default target_modules for Llama
TASK = "bench"


# -- data ------------------------------------------------------------------------------------
def rt_rows(out: Path, count: int) -> tuple[list[tuple[str, str]], list[str]]:
    """``count`` training rows of rt-sentiment prepared as generation data under ``out``."""
    from contlearn.data.prepare import prepare_dataset

    folder = out / "data" / "rt"
    if not (folder / "train.jsonl").is_file():
        prepare_dataset("rt-sentiment", folder, form="generation", max_per_class=count)
    lines = (folder / "train.jsonl").read_text(encoding="utf-8").splitlines()[:count]
    rows = [json.loads(line) for line in lines]
    return [("user", r["prompt"]) for r in rows], [r["response"] for r in rows]


def encoded_rows(args: argparse.Namespace, tokenizer, vocab: int, count: int):
    """The ``count`` training rows both sides train on, as the generation kind encodes them
    (each row's target: its number of prompt tokens)."""
    from contlearn import kinds
    from contlearn.train.batching import Encoded

    if args.synthetic:
        rng = random.Random(0)
        ids = [[rng.randrange(5, vocab) for _ in range(args.length)] for _ in range(count)]
        return Encoded(ids, None, 0, targets=[args.length // 2] * count)
    texts, responses = rt_rows(args.out, count)
    kind = kinds.get("generation")
    return kind.encode(tokenizer, texts, args.length, False, targets=responses)


def peft_labels(encoded, idx: list[int], width: int) -> torch.Tensor:
    """[B, T] labels for a causal LM's own (shifting) loss: the response tokens, -100 on the
    prompt and the padding."""
    labels = torch.full((len(idx), width), -100, dtype=torch.long)
    for row, i in enumerate(idx):
        ids, start = encoded.input_ids[i], encoded.targets[i]
        labels[row, start : len(ids)] = torch.tensor(ids[start:], dtype=torch.long)
    return labels


# -- the two sides ---------------------------------------------------------------------------
def train_config(args: argparse.Namespace):
    """contlearn's defaults (lr, warm-up, weight decay, clipping) in fp32, no head dropout."""
    from contlearn.config import TrainConfig

    return TrainConfig(
        batch_size=args.batch, max_length=args.length, epochs=1, precision="fp32", dropout=0.0
    )


def contlearn_side(args, loaded, encoded, config) -> tuple[Callable, list]:
    """The step function of contlearn's LoRA task, and its trainable parameters."""
    from contlearn import kinds
    from contlearn.model.adapted import AdaptedModel
    from contlearn.model.methods.lora import LoraConfig
    from contlearn.train.loop import optimizer_step

    model = AdaptedModel(loaded.model, output_embeddings=loaded.output_embeddings)
    lora = LoraConfig(rank=RANK, alpha=ALPHA, dropout=DROPOUT, targets=("query", "value"))
    model.add_task(TASK, num_outputs=0, adapter=lora, dropout=0.0, head="lm")
    model.activate(TASK)
    model.train()
    params = model.trainable_parameters(TASK)
    kind = kinds.get("generation")
    return optimizer_step(model, params, encoded, encoded.targets, config, kind), params


def peft_side(args, encoded, config, total_steps: int) -> tuple[Callable, list]:
    """The step function of peft's LoRA on the folder's causal LM, and its trainable
    parameters: the same AdamW groups, schedule and clipping as contlearn's step."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from contlearn.train.batching import collate
    from contlearn.train.optim import make_optimizer

    base = AutoModelForCausalLM.from_pretrained(args.backbone, dtype=torch.float32)
    base.config.use_cache = False
    peft_config = LoraConfig(
        r=RANK,
        lora_alpha=int(ALPHA),
        target_modules=PEFT_TARGETS,
        lora_dropout=DROPOUT,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, peft_config)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer, scheduler = make_optimizer(params, config, total_steps)

    def step(idx: list[int]) -> torch.Tensor:
        batch = collate(encoded, idx)
        labels = peft_labels(encoded, idx, batch["input_ids"].shape[1])
        loss = model(**batch, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        scheduler.step()
        return loss.detach().double()

    return step, params


# -- timing ----------------------------------------------------------------------------------
def alternate(sides: dict[str, Callable], batches: list[list[int]], warmup: int) -> dict:
    """Each side's losses and step seconds over ``batches``, the sides alternating per batch
    and taking turns to go first (a b, b a, a b, ...: neither always runs after the other);
    the first ``warmup`` batches are run but not timed."""
    seen = {name: {"losses": [], "seconds": []} for name in sides}
    for i, idx in enumerate(batches):
        order = list(sides.items())
        for name, step in order if i % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            loss = float(step(idx))
            seconds = time.perf_counter() - start
            seen[name]["losses"].append(loss)
            if i >= warmup:
                seen[name]["seconds"].append(seconds)
    return seen


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "stdev": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def summarise(seen: dict, tokens: list[int], params: dict[str, list]) -> dict:
    """Per side: tokens/s per timed step, its median and spread, the losses; and the ratio
    contlearn/peft per round (the two steps of one batch) and overall."""
    sides = {}
    for name, record in seen.items():
        rates = [t / s for t, s in zip(tokens, record["seconds"], strict=True)]
        sides[name] = {
            "trainable_parameters": sum(p.numel() for p in params[name]),
            "first_loss": record["losses"][0],
            "losses": record["losses"],
            "step_seconds": record["seconds"],
            "tokens_per_second": rates,
            "tokens_per_second_summary": spread(rates),
            "overall_tokens_per_second": sum(tokens) / sum(record["seconds"]),
        }
    ours, theirs = sides["contlearn"], sides["peft"]
    ratios = [
        a / b for a, b in zip(ours["tokens_per_second"], theirs["tokens_per_second"], strict=True)
    ]
    overall = ours["overall_tokens_per_second"] / theirs["overall_tokens_per_second"]
    return {
        "sides": sides,
        "ratio_per_round": spread(ratios),
        "ratio_overall": overall,
        "first_loss_difference": abs(ours["first_loss"] - theirs["first_loss"]),
    }


def profile(sides: dict[str, Callable], idx: list[int], out: Path) -> dict[str, str]:
    """One more step of each side under torch's profiler: the operators with the most self
    CPU time, written to ``profile-{side}.txt`` (where the step's time goes)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiler

    written = {}
    for name, step in sides.items():
        with profiler(activities=[ProfilerActivity.CPU]) as prof:
            float(step(idx))
        text = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
        path = out / f"profile-{name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written[name] = str(path)
    return written


# -- report ----------------------------------------------------------------------------------
def table(record: dict) -> str:
    sides, ratio = record["results"]["sides"], record["results"]["ratio_per_round"]
    rows = [
        "| side | trainable params | first-step loss | median tokens/s | min-max tokens/s "
        "| all timed tokens / all timed seconds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, side in sides.items():
        rate = side["tokens_per_second_summary"]
        rows.append(
            f"| {name} | {side['trainable_parameters']:,} | {side['first_loss']:.6f} | "
            f"{rate['median']:,.1f} | {rate['min']:,.1f}-{rate['max']:,.1f} | "
            f"{side['overall_tokens_per_second']:,.1f} |"
        )
    rows.append(
        f"\ncontlearn / peft tokens/s, per round: median {ratio['median']:.3f}x "
        f"(min {ratio['min']:.3f}x, max {ratio['max']:.3f}x); overall "
        f"{record['results']['ratio_overall']:.3f}x; first-step losses differ by "
        f"{record['results']['first_loss_difference']:.1e}; over {record['steps']} timed "
        f"rounds of batch {record['batch']}, length <= {record['length']} "
        f"({record['data']}; {record['real_tokens_per_batch']:.0f} real tokens per batch on "
        f"average), {record['threads']} threads, load average before "
        f"{record['load_before']}, after {record['load_after']}"
    )
    return "\n".join(rows)


def write(out: Path, record: dict) -> str:
    out.mkdir(parents=True, exist_ok=True)
    (out / "lora-peft.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    text = "### Training throughput: contlearn's LoRA vs peft's\n\n" + table(record) + "\n"
    (out / "LORA_PEFT.md").write_text(text, encoding="utf-8")
    return text


# -- main ------------------------------------------------------------------------------------
def tiny_backbone(out: Path) -> Path:
    """tests' tiny random Llama (untied output projection) with its tokenizer, under ``out``."""
    sys.path.insert(0, str(ROOT))
    from tests.conftest import save_causal_backbone

    return save_causal_backbone(out / "tiny-llama", "llama")


def measure(args: argparse.Namespace) -> dict:
    from contlearn.model import backbone as bb
    from contlearn.train.batching import collate

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load_before = os.getloadavg()
    loaded = bb.load(str(args.backbone))
    rounds = args.warmup + args.steps
    encoded = encoded_rows(
        args, loaded.tokenizer, loaded.model.config.vocab_size, args.batch * rounds
    )
    batches = [list(range(i * args.batch, (i + 1) * args.batch)) for i in range(rounds)]
    config = train_config(args)
    ours, our_params = contlearn_side(args, loaded, encoded, config)
    theirs, their_params = peft_side(args, encoded, config, rounds)
    sides = {"contlearn": ours, "peft": theirs}
    seen = alternate(sides, batches, args.warmup)
    tokens = [int(collate(encoded, idx)["attention_mask"].sum()) for idx in batches]
    profiles = profile(sides, batches[-1], args.out) if args.profile else {}
    results = summarise(
        seen, tokens[args.warmup :], {"contlearn": our_params, "peft": their_params}
    )
    return {
        "backbone": str(args.backbone),
        "data": "synthetic ids" if args.synthetic else "rt-sentiment --form generation",
        "batch": args.batch,
        "length": args.length,
        "warmup": args.warmup,
        "steps": args.steps,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "peft": __import__("peft").__version__,
        "transformers": __import__("transformers").__version__,
        "lora": {"rank": RANK, "alpha": ALPHA, "dropout": DROPOUT, "targets": PEFT_TARGETS},
        "real_tokens_per_batch": statistics.mean(tokens[args.warmup :]),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "results": results,
        "profiles": profiles,
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", type=Path, default=SMOLLM2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--synthetic", action="store_true", help="random ids, not rt-sentiment")
    parser.add_argument("--profile", action="store_true", help="profile one more step each")
    parser.add_argument("--tiny", action="store_true", help="tests' tiny random Llama")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if not args.tiny and not (args.backbone / "config.json").is_file():
        parser.error(f"no model folder at {args.backbone}: run `make demo-llm`, or give --backbone")
    if args.tiny:
        args.backbone = tiny_backbone(args.out)
        args.batch, args.length, args.warmup, args.steps = 2, 24, 1, 2
    return args


if __name__ == "__main__":
    arguments = parse()
    print(write(arguments.out, measure(arguments)), end="")
