"""Training-step time of each built-in family relative to BERT at the same tiny size (hidden 64,
2 layers, 4 heads, feed-forward 128, batch 16, length 64, Houlsby adapters, fp32, this CPU):
how much a decoder or a newer encoder costs per step, shape for shape.

Example:
    python benchmarks/family_step.py
    python benchmarks/family_step.py --tiny   # tests' sizes, batch 2 x 8 tokens, one step each
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contlearn import kinds  # noqa: E402
from contlearn.config import TrainConfig  # noqa: E402
from contlearn.model.adapted import AdaptedModel  # noqa: E402
from contlearn.model.methods.registry import get_method  # noqa: E402
from contlearn.train.batching import Encoded  # noqa: E402
from contlearn.train.loop import optimizer_step  # noqa: E402
from tests.family_configs import CONFIGS, tiny_model  # noqa: E402

WIDER = {"hidden_size": 64, "intermediate_size": 128}
LABELS = ("bert", "deberta-v2", "modernbert", "gpt2", "llama", "qwen3", "gemma", "phi3")


def model_of(label: str, wider: bool = True):
    """The family's tiny test model, widened to hidden 64 unless ``wider`` is False."""
    if not wider:
        return tiny_model(label)
    model_type, values = CONFIGS[label]
    if label == "gpt2":
        values = values | {"n_embd": 64}
    else:
        values = values | WIDER | ({"head_dim": 16} if "head_dim" in values else {})
    CONFIGS[label] = (model_type, values)
    return tiny_model(label)


def step_seconds(
    label: str, batch: int, length: int, steps: int, warmup: int, wider: bool
) -> float:
    model = AdaptedModel(model_of(label, wider))
    model.add_task("t", num_outputs=2, adapter=get_method("houlsby").config({}))
    model.activate("t")
    model.train()
    rng = random.Random(0)
    ids = [[rng.randrange(4, 120) for _ in range(length)] for _ in range(batch)]
    encoded = Encoded(ids, None, 0)
    config = TrainConfig(batch_size=batch, epochs=1000, precision="fp32")
    params = model.trainable_parameters("t")
    step = optimizer_step(model, params, encoded, [0] * batch, config, kinds.get("classification"))
    every = list(range(batch))
    for _ in range(warmup):
        step(every)
    start = time.perf_counter()
    for _ in range(steps):
        step(every)
    return (time.perf_counter() - start) / steps


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="Test size: the suite runs it.")
    return parser.parse_args(argv)


def main() -> int:
    args = parse()
    torch.manual_seed(0)
    size = (2, 8, 1, 1, False) if args.tiny else (16, 64, 20, 3, True)
    times = {label: step_seconds(label, *size) for label in LABELS}
    print("| family | ms per step | relative to BERT |")
    print("|---|---:|---:|")
    for label, seconds in times.items():
        print(f"| {label} | {1000 * seconds:.1f} | {seconds / times['bert']:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
