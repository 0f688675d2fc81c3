"""Inference cost of adapters, and how much of the computed work is real tokens.

Throughput: the plain backbone (an untouched second copy with a classifier head) against
contlearn's AdaptedModel with an adapter task and with a head-only task (the wrappers alone),
on the same GLUE dev examples and batch size, interleaved round by round; once with the
canonical evaluation recipe (``predict_logits``) and once with length-grouped batches.

Real-token share: real tokens over computed (padded) tokens on each GLUE dev split for naive
fixed-order batches, contlearn's length-grouped training batches and its canonical batches.

Example:
    python benchmarks/inference.py --backbone minilm --glue ../shared/data/glue --out inf.json
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import torch
from torch import nn

from common import BACKBONES, Shape, median, random_bert_config, set_threads, write_json
from contlearn.config import TrainConfig
from contlearn.eval.recipe import CANONICAL_BATCH_SIZE, predict_logits
from contlearn.model import backbone as bb
from contlearn.model.adapted import AdaptedModel
from contlearn.model.backbone import DEFAULT_BACKBONE
from contlearn.model.families import uses_token_types
from contlearn.model.heads import TaskHead
from contlearn.model.methods.houlsby import HoulsbyConfig
from contlearn.train.batching import (
    Encoded,
    canonical_batches,
    collate,
    encode,
    real_token_share,
    subsample,
    training_batches,
)

GLUE_TASKS = ("RTE", "MRPC", "SST-2")
TRAIN_BATCH = TrainConfig().batch_size
MAX_LENGTH = TrainConfig().max_length


class PlainClassifier(nn.Module):
    """The unmodified backbone and a head: what the adapted model is compared against."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = TaskHead(backbone.config.hidden_size, 2, dropout=0.1)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        hidden = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state  # [B, T, d]
        return self.head(hidden)


def backbones(name: str) -> tuple[nn.Module, nn.Module]:
    """Two independent copies of the backbone: one to adapt, one to keep plain."""
    if name == "minilm":
        return bb.load(DEFAULT_BACKBONE).model, bb.load(DEFAULT_BACKBONE).model
    from transformers import AutoModel

    copies = []
    for _ in range(2):
        torch.manual_seed(0)
        copies.append(AutoModel.from_config(random_bert_config(name)).eval())
    return copies[0], copies[1]


def glue_dev(glue: Path | None, model: nn.Module) -> dict[str, Encoded]:
    """Each GLUE dev split present, tokenized as contlearn does (MiniLM's uncased vocabulary,
    which BERT-base shares; max length 128)."""
    from transformers import AutoTokenizer

    from contlearn.data.task import load_task_data

    if glue is None or not glue.is_dir():
        return {}
    tokenizer = AutoTokenizer.from_pretrained(bb.resolve(DEFAULT_BACKBONE), local_files_only=True)
    types = uses_token_types(model)
    splits = {}
    for name in GLUE_TASKS:
        if (glue / name / "dev.tsv").is_file():
            dev = load_task_data(glue / name).dev
            splits[name] = encode(tokenizer, dev.texts, MAX_LENGTH, token_types=types)
    return splits


def synthetic_dev(count: int, vocab: int) -> Encoded:
    """Stand-in inputs when the GLUE folder is absent: lengths uniform in 8..128."""
    rng = random.Random(0)
    ids = [
        [101] + [rng.randrange(1000, vocab) for _ in range(rng.randint(6, MAX_LENGTH - 2))] + [102]
        for _ in range(count)
    ]
    return Encoded(ids, [[0] * len(s) for s in ids], pad_id=0)


def mixed_subset(splits: dict[str, Encoded], per_task: int) -> Encoded:
    """A fixed sample of up to ``per_task`` dev examples of every split, concatenated."""
    ids, types = [], []
    for enc in splits.values():
        for i in subsample(len(enc), per_task, seed=0):
            ids.append(enc.input_ids[i])
            types.append(enc.token_type_ids[i] if enc.token_type_ids else [0] * len(ids[-1]))
    pad = next(iter(splits.values())).pad_id
    return Encoded(ids, types, pad)


def token_shares(splits: dict[str, Encoded]) -> list[dict]:
    """Real-token share of each batching rule on each split."""
    rows = []
    for name, enc in splits.items():
        lengths = enc.lengths
        order = list(range(len(enc)))
        naive = [order[k : k + TRAIN_BATCH] for k in range(0, len(enc), TRAIN_BATCH)]
        rules = {
            "naive": naive,
            "grouped": training_batches(lengths, TRAIN_BATCH, TrainConfig().seed + 1),
            "canonical": canonical_batches(lengths, CANONICAL_BATCH_SIZE),
        }
        row = {"task": name, "examples": len(enc), "mean_length": sum(lengths) / len(enc)}
        row.update({rule: real_token_share(lengths, b) for rule, b in rules.items()})
        rows.append(row)
    return rows


@torch.no_grad()
def grouped_pass(model: nn.Module, encoded: Encoded) -> None:
    """Forward every example in length-grouped batches of the training batch size."""
    model.eval()
    for idx in training_batches(encoded.lengths, TRAIN_BATCH, seed=0):
        model(**collate(encoded, idx))


def canonical_pass(model: nn.Module, encoded: Encoded) -> None:
    predict_logits(model, encoded)


def variants(backbone: nn.Module, plain: nn.Module):
    """name -> a callable that prepares that model and returns it."""
    adapted = AdaptedModel(backbone)
    adapted.add_task("adapter", num_outputs=2, adapter=HoulsbyConfig())
    adapted.add_task("head", num_outputs=2, adapter=None)

    def using(task: str):
        def ready():
            adapted.activate(task)
            return adapted

        return ready

    return {"plain": lambda: plain, "adapter": using("adapter"), "head_only": using("head")}


def throughput(models: dict, encoded: Encoded, rounds: int) -> dict:
    """Examples/s of every model under both recipes: medians over interleaved rounds."""
    passes = {"canonical": canonical_pass, "grouped": grouped_pass}
    warm = Encoded(encoded.input_ids[:64], encoded.token_type_ids[:64], encoded.pad_id)
    times = {(r, m): [] for r in passes for m in models}
    for run in passes.values():
        for ready in models.values():
            run(ready(), warm)
    for _ in range(rounds):
        for recipe, run in passes.items():
            for name, ready in models.items():
                model = ready()
                times[recipe, name].append(_timed(run, model, encoded))
    return {
        recipe: {name: _rate(times[recipe, name], len(encoded)) for name in models}
        for recipe in passes
    }


def _rate(seconds: list[float], examples: int) -> dict:
    return {"seconds": seconds, "examples_per_second": examples / median(seconds)}


def _timed(run, model, encoded) -> float:
    start = time.perf_counter()
    run(model, encoded)
    return time.perf_counter() - start


def measure(args: argparse.Namespace) -> dict:
    threads = set_threads(args.threads)
    backbone, plain_backbone = backbones(args.backbone)
    plain = PlainClassifier(plain_backbone).eval()
    splits = glue_dev(args.glue, backbone)
    if splits:
        encoded = mixed_subset(splits, args.per_task)
    else:
        encoded = synthetic_dev(args.per_task * 3, backbone.config.vocab_size)
    models = variants(backbone, plain)
    return {
        "threads": threads,
        "backbone": args.backbone,
        "shape": Shape.of(backbone.config),
        "bottleneck": HoulsbyConfig().bottleneck,
        "inputs": "glue-dev" if splits else "synthetic",
        "glue_folder": str(args.glue) if args.glue else None,
        "examples": len(encoded),
        "mean_length": sum(encoded.lengths) / len(encoded),
        "batch_sizes": {"canonical": CANONICAL_BATCH_SIZE, "grouped": TRAIN_BATCH},
        "rounds": args.rounds,
        "throughput": throughput(models, encoded, args.rounds),
        "token_share": token_shares(splits),
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", choices=BACKBONES, default="minilm")
    parser.add_argument("--glue", type=Path, default=None)
    parser.add_argument("--per-task", type=int, default=160)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path, required=True)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse()
    write_json(arguments.out, measure(arguments))
