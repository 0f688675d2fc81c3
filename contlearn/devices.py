"""Where models run, in what precision they train, and the recipe an evaluation ran under.

A device is named ``auto`` (CUDA if there is one, else MPS, else the CPU), ``cpu``, ``cuda``,
``cuda:N`` or ``mps``; one this machine lacks is refused in one line naming what it has.
Training precision is ``fp32``, ``bf16`` or ``fp16`` (autocast; ``fp16`` with a gradient
scaler; trainable parameters and optimizer state stay fp32); ``auto`` is bf16 on CUDA devices
that support it and fp32 elsewhere. A backbone loaded in bf16 or fp16 (``init
--backbone-dtype``) computes in that dtype, in training and evaluation alike. The canonical
evaluation is fp32 (or the backbone's low precision), with the choices that make it
reproducible on its device pinned, and its recipe recorded: PyTorch promises
bitwise equality only for the same operations on the same kind of device and software, so two
evaluations are compared bit for bit only when their recipes match.
"""

from __future__ import annotations

import functools
import os
import platform
import re
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from .errors import DeviceError

DEVICE_SPEC = re.compile(r"auto|cpu|mps|cuda(:\d{1,3})?")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"bf16": "bfloat16", "fp16": "float16"}
# The dtypes a backbone can be loaded in (``init --backbone-dtype``), by the names the ledger
# records (torch's).
BACKBONE_DTYPES = {"fp32": "float32", **DTYPES}
# cuBLAS needs a fixed workspace for deterministic results (CUDA >= 10.2); it must be set before
# the first cuBLAS call of the process.
CUBLAS_WORKSPACE = ":4096:8"
# What must be equal for two evaluations to be compared bit for bit.
RECIPE_KEYS = ("device", "model", "torch", "cuda", "cudnn", "dtype", "batch_size", "threads")
# The CPU instruction-set extensions that change which kernels torch, oneDNN and MKL run (and
# so the order of a reduction): the vector widths, fused multiply-add, the dot-product and
# bfloat16/fp16 extensions, and AMX's tiles.
ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx_vnni",
    "avx512f",
    "avx512bw",
    "avx512dq",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "sve",
    "sve2",
    "bf16",
    "i8mm",
)


def check_spec(spec: str) -> str:
    """``spec`` if it names a device at all (whether this machine has it is checked later)."""
    if not isinstance(spec, str) or not DEVICE_SPEC.fullmatch(spec):
        raise DeviceError(f"unknown device {spec!r}: use auto, cpu, cuda, cuda:N or mps")
    return spec


def resolve(spec: str = "auto") -> Any:
    """The ``torch.device`` that ``spec`` names on this machine; refuses one it lacks."""
    import torch

    check_spec(spec)
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("mps" if _mps_available() else "cpu")
    if spec == "mps" and not _mps_available():
        raise DeviceError(
            "no MPS device here (torch.backends.mps.is_available() is false): use --device cpu"
        )
    if spec.startswith("cuda"):
        return _cuda(spec)
    return torch.device(spec)


def _cuda(spec: str) -> Any:
    import torch

    if not torch.cuda.is_available():
        raise DeviceError(
            f"--device {spec}: no CUDA device here (torch.cuda.is_available() is false): use "
            "--device cpu, or auto"
        )
    count = torch.cuda.device_count()
    index = int(spec.split(":")[1]) if ":" in spec else torch.cuda.current_device()
    if index >= count:
        have = ", ".join(f"cuda:{i}" for i in range(count))
        raise DeviceError(
            f"--device {spec} does not exist: this machine has {count} CUDA device(s) ({have})"
        )
    return torch.device("cuda", index)


def _mps_available() -> bool:
    import torch

    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def resolve_precision(spec: str, device: Any, backbone: str = "float32") -> str:
    """The training precision ``spec`` means on ``device``; refuses one the device cannot do.
    A backbone loaded in bf16 or fp16 (``backbone``, torch's dtype name) computes in its own
    precision: ``auto`` means it, and any other is refused."""
    if spec not in PRECISIONS:
        raise DeviceError(f"unknown precision {spec!r}: use {', '.join(PRECISIONS)}")
    if backbone != "float32":
        own = short_dtype(backbone)
        if spec not in ("auto", own):
            raise DeviceError(
                f"--precision {spec}: this workspace's backbone is loaded in {own} (init "
                f"--backbone-dtype), so its tasks compute in {own}: use --precision {own} or auto"
            )
        spec = own
    if spec == "auto":
        return "bf16" if device.type == "cuda" and _cuda_bf16(device) else "fp32"
    check_low_precision(spec, device, "--precision")
    return spec


def short_dtype(name: str) -> str:
    """``bf16`` for ``bfloat16``: the name a user types for a dtype torch names."""
    return {v: k for k, v in BACKBONE_DTYPES.items()}[name]


def check_backbone_dtype(spec: str, device: Any) -> str:
    """torch's name for the backbone dtype ``spec`` (fp32, bf16, fp16); refuses an unknown one
    or one ``device`` cannot compute in."""
    if spec not in BACKBONE_DTYPES:
        raise DeviceError(
            f"unknown backbone dtype {spec!r}: use {', '.join(BACKBONE_DTYPES)} (--backbone-dtype)"
        )
    check_low_precision(spec, device, "--backbone-dtype")
    return BACKBONE_DTYPES[spec]


def check_low_precision(spec: str, device: Any, flag: str) -> None:
    """Refuse bf16 or fp16 on a device that cannot compute in it (``flag`` names the option)."""
    if spec == "fp16" and device.type not in ("cuda", "mps"):
        raise DeviceError(
            f"{flag} fp16 needs a CUDA or MPS device, not {device.type}: use bf16 or fp32"
        )
    if spec == "bf16" and device.type == "mps":
        raise DeviceError(f"{flag} bf16 is not supported on MPS: use fp16 or fp32")
    if spec == "bf16" and device.type == "cuda" and not _cuda_bf16(device):
        name = device_model(device)
        raise DeviceError(f"{flag} bf16: {name} cannot compute in bfloat16: use fp16 or fp32")


def _cuda_bf16(device: Any) -> bool:
    import torch

    with torch.cuda.device(device):
        return torch.cuda.is_bf16_supported()


def autocast(device: Any, precision: str) -> Any:
    """The autocast context of a training step (none for fp32)."""
    import torch

    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=getattr(torch, DTYPES[precision]))


def grad_scaler(device: Any, precision: str) -> Any | None:
    """fp16 training scales the loss so that small gradients do not flush to zero."""
    import torch

    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


def prepare(device: Any) -> None:
    """What must happen before the first CUDA work of the process: cuBLAS's fixed workspace."""
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)


@contextmanager
def reproducible(device: Any) -> Iterator[dict[str, Any]]:
    """Within the block, the kernels that make an evaluation reproducible on ``device``:
    on CUDA deterministic algorithms, TF32 off, cuDNN benchmarking off and the math SDPA
    backend; restored afterwards. Yields what was pinned, for the recipe."""
    if device.type != "cuda":
        yield {}
        return
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
    torch.use_deterministic_algorithms(True)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield {"deterministic": True, "tf32": False, "sdpa": "math"}
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[1:3]
        torch.backends.cudnn.benchmark = saved[3]


def device_model(device: Any) -> str:
    """The device's model: the GPU's name, or the CPU's."""
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple " + platform.machine()
    return _cpu_model()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def recipe(
    device: Any,
    *,
    batch_size: int,
    threads: int | None,
    pinned: dict | None = None,
    dtype: str = "float32",
) -> dict:
    """What an evaluation ran under: device class and model (with the compute capability of a
    GPU), torch / CUDA / cuDNN versions, the dtype it computed in (float32, or a backbone's
    low precision), batch size, CPU threads, pinned kernels."""
    import torch

    found = {
        "device": device.type,
        "model": device_model(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
        "dtype": dtype,
        "batch_size": batch_size,
        "threads": threads if device.type == "cpu" else None,
    }
    if device.type == "cuda":
        found["capability"] = ".".join(map(str, torch.cuda.get_device_capability(device)))
    if device.type == "cpu":
        found["host"] = host_identity()
    return {**found, **(pinned or {})}


@functools.cache
def host_identity() -> dict[str, Any]:
    """What decides the CPU kernels an evaluation runs, beyond the CPU's model name (which
    "AMD EPYC" or a virtual machine's generic name leaves ambiguous): the micro-architecture
    (vendor, family, model number, stepping), torch's dispatch level (``get_cpu_capability``:
    DEFAULT, AVX2, AVX512...), the ISA extensions oneDNN and MKL dispatch on, the logical core
    count and cache sizes their GEMMs block for, and the MKL and oneDNN builds. Two hosts that
    agree on all of it run the same kernels with the same blocking."""
    import torch

    info = _cpuinfo()
    flags = set(info.get("flags", info.get("Features", "")).split())
    return {
        "arch": platform.machine(),
        "cpu": "/".join(info.get(k, "?") for k in ("vendor_id", "cpu family", "model", "stepping")),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "isa": [f for f in ISA_FLAGS if f in flags],
        "cores": os.cpu_count(),
        "caches": _caches(),
        **_math_libraries(torch.__config__.show()),
    }


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo (empty where there is none)."""
    found: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return found
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        found.setdefault(key.strip(), value.strip())
    return found


def _caches() -> list[str]:
    """``L1d 48K``, ``L2 1024K``...: the first CPU's caches, as sysfs lists them."""
    found = []
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind, size = (
                (index / name).read_text().strip() for name in ("level", "type", "size")
            )
        except OSError:
            continue
        found.append(f"L{level}{ {'Data': 'd', 'Instruction': 'i'}.get(kind, '') } {size}")
    return found


def _math_libraries(config: str) -> dict[str, str | None]:
    """The MKL and oneDNN builds torch was linked with, from ``torch.__config__.show()``."""
    mkl = re.search(r"Math Kernel Library Version (\S+)", config)
    onednn = re.search(r"MKL-DNN v(\S+)", config)
    return {"mkl": mkl and mkl.group(1), "onednn": onednn and onednn.group(1)}


def same_recipe(recorded: dict, now: dict) -> bool:
    """Whether two evaluations ran the same operations on the same kind of device and software,
    so that their logits must be equal bit for bit. A recipe recorded before recipes named the
    device model holds fewer keys; only those it holds are compared. A CPU recipe recorded
    without the host's identity (releases 0.1 and 0.2) cannot prove it ran on this host, so it
    is never the same as one that names a host."""
    if now.get("host") is not None and recorded.get("host") != now["host"]:
        return False
    return all(now.get(k) == recorded[k] for k in RECIPE_KEYS if k in recorded)


def other_host(recorded: dict, now: dict) -> str | None:
    """How the CPU host of ``now`` differs from ``recorded``'s (None when it does not, or the
    device is not the CPU): a short phrase for notes."""
    if now.get("host") is None or recorded.get("device", "cpu") != "cpu":
        return None
    was = recorded.get("host")
    if was is None:
        return "a host not recorded"
    changed = [k for k in now["host"] if was.get(k) != now["host"][k]]
    return ("another host: " + ", ".join(changed)) if changed else None


def legacy_recipe(*, torch_version: str | None, batch_size: int, threads: int | None) -> dict:
    """The recipe of an evaluation recorded before recipes were (release 0.1 and its
    successors up to 0.2): the CPU, fp32, the run's batch size and thread count."""
    known = {"device": "cpu", "dtype": "float32", "batch_size": batch_size, "threads": threads}
    return known | ({"torch": torch_version} if torch_version else {})


def describe(recipe_: dict) -> str:
    """``cuda NVIDIA H200`` or ``cpu Intel(R) Xeon(R) ..., 2 threads``."""
    threads = f", {recipe_['threads']} threads" if recipe_.get("threads") else ""
    return f"{recipe_.get('device', '?')} {recipe_.get('model', '?')}{threads}"
