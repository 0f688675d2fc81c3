"""The machine a benchmark run measured: CPU, cores, memory, threads, library versions, and its
fp32 matmul peak (the median time of a large ``torch.mm`` with the same thread count).

Example:
    python benchmarks/machine.py --threads 2 --out machine.json
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import torch

from common import median, set_threads, time_calls, write_json


def cpu_info() -> dict:
    """CPU model name and the vector extensions that decide its fp32 peak."""
    model, flags = "unknown", set()
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile")
    return {"model": model, "vector_extensions": [f for f in wanted if f in flags]}


def memory_gib() -> float:
    with open("/proc/meminfo", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    return 0.0


def versions() -> dict[str, str]:
    import transformers

    import contlearn

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "contlearn": contlearn.__version__,
    }


def matmul_gflops(size: int, repeats: int) -> dict:
    """Median GFLOP/s of an fp32 ``torch.mm`` of two size x size matrices."""
    torch.manual_seed(0)
    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    times = time_calls(lambda _: torch.mm(a, b, out=out), warmup=2, repeats=repeats)
    return {"size": size, "seconds": times, "gflops_per_second": 2 * size**3 / median(times) / 1e9}


def gpu() -> dict:
    if not torch.cuda.is_available():
        return {"available": False}
    return {"available": True, "name": torch.cuda.get_device_name(0)}


def measure(args: argparse.Namespace) -> dict:
    threads = set_threads(args.threads)
    runs = [matmul_gflops(size, args.repeats) for size in args.sizes]
    return {
        "cpu": cpu_info(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "memory_gib": memory_gib(),
        "torch_threads": threads,
        "kernel": platform.release(),
        "versions": versions(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "matmul": runs,
        "matmul_peak_gflops": max(r["gflops_per_second"] for r in runs),
        "gpu": gpu(),
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, required=True)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse()
    write_json(arguments.out, measure(arguments))
