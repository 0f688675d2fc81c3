"""One training-step measurement of contlearn, in a fresh process per configuration.

Adapter training: an AdaptedModel with an adapter task, AdamW over ``trainable_parameters``.
"adapter" trains as ``train-next`` does by default (the frozen backbone keeps its attention
dropout, as AdapterHub does); "adapter-nodrop" switches it off
(``--no-backbone-attention-dropout``), which lets PyTorch use its fused attention kernel.
Full fine-tuning: the same AdaptedModel with a head-only task and the backbone made trainable,
AdamW over backbone + head, exactly as ``contlearn.finetune`` sets it up. Each timed step is one
call of the product's own optimizer step (``contlearn.train.loop.optimizer_step``: collate,
forward, loss, zero_grad, backward, gradient clipping, AdamW, LR schedule, ``loss.item()``).

Example:
    python benchmarks/train_step.py --backbone minilm --method adapter --length 64 --out x.json
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch

from common import (
    grad_check,
    random_bert_config,
    set_threads,
    step_parser,
    step_record,
    synthetic_ids,
    synthetic_targets,
    write_json,
)
from contlearn import devices, kinds
from contlearn.config import CompareConfig, TrainConfig
from contlearn.model.adapted import AdaptedModel, count_parameters
from contlearn.model.methods.houlsby import HoulsbyConfig
from contlearn.train import loop as training
from contlearn.train.batching import Encoded

CLASSES = 2
KEEP_ATTENTION_DROPOUT = {  # per method: does the backbone keep its attention dropout?
    "adapter": TrainConfig().backbone_attention_dropout,  # train-next's default
    "adapter-nodrop": False,
    "full": True,
}


def load_backbone(name: str):
    """The packaged MiniLM through contlearn's own loader, or a random BERT (bert-base, tiny)."""
    if name == "minilm":
        from contlearn.model import backbone as bb

        return bb.load(bb.DEFAULT_BACKBONE).model
    from transformers import AutoModel

    torch.manual_seed(0)
    return AutoModel.from_config(random_bert_config(name))


def prepare(model: AdaptedModel, method: str, bottleneck: int) -> list[torch.nn.Parameter]:
    """Add and activate the task; return the parameters the optimizer updates."""
    adapter = None if method == "full" else HoulsbyConfig(bottleneck=bottleneck)
    model.add_task("bench", num_outputs=CLASSES, adapter=adapter)
    model.activate("bench")
    if adapter is not None:
        return model.trainable_parameters("bench")
    model.backbone.requires_grad_(True)  # as contlearn.ops.full_finetune does
    return list(model.backbone.parameters()) + model.trainable_parameters("bench")


def parameter_counts(model: AdaptedModel, params: list) -> dict[str, int]:
    task = model.tasks["bench"]
    parts = dict(task.named_children())  # houlsby: adapters, layer_norms; head-only: head
    return {
        "trainable": sum(p.numel() for p in params),
        "adapters": count_parameters(parts["adapters"]) if "adapters" in parts else 0,
        "layer_norm_copies": count_parameters(parts["layer_norms"])
        if "layer_norms" in parts
        else 0,
        "head": count_parameters(task.head),
        "backbone": count_parameters(model.backbone),
    }


def step_runner(model, params, args, steps: int):
    """A function that runs training step ``i`` with the product's own optimizer step."""
    config = TrainConfig(batch_size=args.batch, max_length=max(8, args.length), epochs=1)
    # the loop takes a resolved precision (fp32, bf16, fp16), as train-next hands it: "auto" is
    # resolved for the device first, as ModelContext.precision does for train-next
    precision = devices.resolve_precision(config.precision, torch.device("cpu"))
    config = replace(config, precision=precision)
    if args.method == "full":
        config = replace(config, lr=CompareConfig().full_finetune_lr)
    count = args.batch * steps
    ids = synthetic_ids(count, args.length, model.backbone.config.vocab_size, seed=0)
    encoded = Encoded(ids, [[0] * args.length for _ in ids], pad_id=0)
    targets = synthetic_targets(count, CLASSES, seed=0)
    step = training.optimizer_step(
        model, params, encoded, targets, config, kinds.get("classification")
    )
    return lambda i: step(list(range(i * args.batch, (i + 1) * args.batch)))


def measure(args: argparse.Namespace) -> dict:
    threads = set_threads(args.threads)
    backbone = load_backbone(args.backbone)
    model = AdaptedModel(backbone)
    params = prepare(model, args.method, args.bottleneck)
    model.train()
    step = step_runner(model, params, args, args.warmup + args.steps)
    with model.backbone_attention_dropout(keep=KEEP_ATTENTION_DROPOUT[args.method]):
        record = step_record(
            args, step, backbone.config, args.method, library="contlearn", threads=threads
        )
    return {**record, "params": parameter_counts(model, params), "grads": grad_check(params)}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    return step_parser(__doc__.splitlines()[0], with_method=True).parse_args(argv)


if __name__ == "__main__":
    arguments = parse()
    write_json(arguments.out, measure(arguments))
