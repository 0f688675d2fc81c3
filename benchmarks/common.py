"""What every benchmark process shares: thread setup, step timing, memory readings, synthetic
batches and the analytic FLOP count of a training step.

Standard library and torch only: the peer runner imports this module from the peer's virtual
environment, which has neither contlearn nor its dependencies.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

CLS_ID, SEP_ID, FIRST_WORD_ID = 101, 102, 1000  # BERT uncased vocabulary (MiniLM shares it)
BERT_BASE = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
}
# tests/conftest.py's tiny BERT (with BERT's vocabulary, which the synthetic batches draw from):
# every benchmark runs at this size in the test suite, so that none can rot unnoticed
TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}
RANDOM_SHAPES = {"bert-base": BERT_BASE, "tiny": TINY}  # backbones built from a config
BACKBONES = ("minilm", *RANDOM_SHAPES)


@dataclass(frozen=True)
class Shape:
    """What the FLOP count needs of an encoder: width, depth, feed-forward width, vocabulary."""

    hidden: int
    layers: int
    intermediate: int
    vocab: int

    @classmethod
    def of(cls, config) -> Shape:
        """The shape of a transformers BERT-like config."""
        return cls(
            config.hidden_size,
            config.num_hidden_layers,
            config.intermediate_size,
            config.vocab_size,
        )


def random_bert_config(name: str):
    """The transformers config of the random-weight backbone ``name`` (bert-base or tiny)."""
    from transformers import BertConfig

    return BertConfig(**RANDOM_SHAPES[name])


def set_threads(threads: int) -> int:
    import torch

    torch.set_num_threads(threads)
    return torch.get_num_threads()


def median(values: list[float]) -> float:
    return statistics.median(values)


def time_calls(call: Callable[[int], object], warmup: int, repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` calls ``call(i)``, after ``warmup`` untimed calls."""
    for i in range(warmup):
        call(i)
    times = []
    for i in range(warmup, warmup + repeats):
        start = time.perf_counter()
        call(i)
        times.append(time.perf_counter() - start)
    return times


# -- memory ----------------------------------------------------------------------------------
def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def memory_kib() -> dict[str, int]:
    """Resident set now (VmRSS), its peak (VmHWM) and getrusage's ru_maxrss, in KiB."""
    return {
        "rss": _status_kib("VmRSS"),
        "hwm": _status_kib("VmHWM"),
        "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux clear_refs 5), so that the peak read later is the
    peak of what ran since, not of model loading. False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def measured_memory(baseline: dict[str, int], after: dict[str, int], reset: bool) -> dict:
    """Peak RSS (MiB) during the timed work, raw and minus the post-load baseline."""
    mib = 1024.0
    return {
        "baseline_rss_mib": baseline["rss"] / mib,
        "peak_rss_mib": after["hwm"] / mib,
        "peak_delta_mib": (after["hwm"] - baseline["rss"]) / mib,
        "ru_maxrss_mib": after["ru_maxrss"] / mib,
        "peak_was_reset_after_load": reset,
    }


# -- data ------------------------------------------------------------------------------------
def synthetic_ids(count: int, length: int, vocab: int, seed: int) -> list[list[int]]:
    """``count`` sequences of exactly ``length`` tokens: [CLS] random words [SEP]."""
    rng = random.Random(seed)
    words = length - 2
    return [
        [CLS_ID] + [rng.randrange(FIRST_WORD_ID, vocab) for _ in range(words)] + [SEP_ID]
        for _ in range(count)
    ]


def synthetic_targets(count: int, classes: int, seed: int) -> list[int]:
    rng = random.Random(seed + 1)
    return [rng.randrange(classes) for _ in range(count)]


# -- FLOPs -----------------------------------------------------------------------------------
FLOP_FORMULA = """\
N = B*T tokens per step, d hidden, f feed-forward width, L layers, m bottleneck, C classes.
Multiply-adds per token and layer: weights W = 4*d^2 + 2*d*f (Q, K, V, attention output, FFN in
and out), attention A = 2*T*d (scores Q.K^T and context P.V), adapters M = 4*d*m (two d->m->d).
Forward FLOPs: F_W = 2*N*L*W, F_A = 2*N*L*A, F_ad = 2*N*L*M, F_head = 2*B*(d^2 + d*C).
Backward of a matmul with a trainable weight: 2x its forward (input and weight grads); with a
frozen weight: 1x (input grads only); of attention scores and context: 2x (both operands).
Full fine-tuning: total = 3 * (F_W + F_A + F_head).
Adapters: total = (F_W + F_A + F_ad + F_head) + (F_W - S_W) + 2*(F_A - S_A) + 2*(F_ad + F_head),
where nothing below layer 1's attention-output adapter trains, so the backward of layer 1's
Q, K, V, attention and output projection is never computed: S_W = 2*N*4*d^2, S_A = 2*N*A.
Not counted: embedding look-ups, LayerNorm, GELU, softmax, dropout and the optimizer
(element-wise work, about 1% of the FLOPs at these sizes)."""


def train_flops(shape: Shape, batch: int, length: int, method: str, bottleneck: int) -> dict:
    """Analytic FLOPs of one training step (see FLOP_FORMULA); method "adapter" or "full"."""
    d, f, layers, classes = shape.hidden, shape.intermediate, shape.layers, 2
    tokens = batch * length
    weights = 2 * tokens * layers * (4 * d * d + 2 * d * f)
    attention = 2 * tokens * layers * (2 * length * d)
    head = 2 * batch * (d * d + d * classes)
    if method == "full":
        forward = weights + attention + head
        return {"forward": forward, "backward": 2 * forward, "total": 3 * forward}
    adapters = 2 * tokens * layers * 4 * d * bottleneck
    skip_weights, skip_attention = 2 * tokens * 4 * d * d, 2 * tokens * 2 * length * d
    forward = weights + attention + adapters + head
    backward = (weights - skip_weights) + 2 * (attention - skip_attention)
    backward += 2 * (adapters + head)
    return {"forward": forward, "backward": backward, "total": forward + backward}


def grad_check(params: list) -> dict:
    """How many trainable tensors received a gradient in the last step, and whether all of those
    are finite: a check that the timed steps really back-propagated into the adapters."""
    import torch

    grads = [p.grad for p in params if p.grad is not None]
    return {
        "tensors": len(params),
        "with_grad": len(grads),
        "finite": all(bool(torch.isfinite(g).all()) for g in grads),
    }


def set_settings(text: str, values: dict[str, str]) -> str:
    """``text`` (a tasks.toml) with each ``key = ...`` line set to ``key = value``."""
    for key, value in values.items():
        text = re.sub(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
    return text


def write_json(path: str | Path, obj: object) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=_plain) + "\n", encoding="utf-8")


def _plain(obj: object) -> object:
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    return str(obj)


def step_parser(description: str, *, with_method: bool) -> argparse.ArgumentParser:
    """The options every training-step benchmark takes."""
    import torch

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--backbone", choices=BACKBONES, default="minilm")
    if with_method:
        parser.add_argument(
            "--method", choices=["adapter", "adapter-nodrop", "full"], default="adapter"
        )
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--bottleneck", type=int, default=64)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    return parser


def step_record(
    args: argparse.Namespace,
    step: Callable[[int], object],
    config: object,
    method: str,
    **fields: object,
) -> dict:
    """Time ``step`` (after warm-up) with its memory peak, and the record both benchmarks write."""
    baseline = memory_kib()
    reset = reset_peak()
    times = time_calls(step, args.warmup, args.steps)
    memory = measured_memory(baseline, memory_kib(), reset)
    kind = "full" if method == "full" else "adapter"
    flops = train_flops(Shape.of(config), args.batch, args.length, kind, args.bottleneck)
    step_s = median(times)
    return {
        **fields,
        "backbone": args.backbone,
        "method": method,
        "length": args.length,
        "batch": args.batch,
        "bottleneck": args.bottleneck,
        "shape": asdict(Shape.of(config)),
        "attn_implementation": config._attn_implementation,
        "warmup": args.warmup,
        "step_seconds": times,
        "median_step_seconds": step_s,
        "examples_per_second": args.batch / step_s,
        "flops": flops,
        "gflops_per_second": flops["total"] / step_s / 1e9,
        "memory": memory,
    }
