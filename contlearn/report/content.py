"""What every rendering of the forgetting-comparison report says, as plain text: the overview,
the headline table, the findings, the definitions, each method's matrix and costs, and the
formatting of numbers. Each renderer escapes it for its own format.

The input is plain data (no database, no torch): the backbone, the tasks in training order and,
per method, its accuracy matrix ``R[i][j]`` (task j's dev metric after training task i), the
summary from :func:`contlearn.eval.forgetting.summarize`, the bit-identical evaluation count and
the costs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from ..eval.forgetting import summarize, validate_matrix

FIGURES = ("heatmaps", "curves", "costs", "storage")


CAPTIONS = {
    "heatmaps": "Accuracy matrix R per method on one shared colour scale: row i is the model "
    "after training task i, column j the task evaluated; blank cells are tasks not yet trained.",
    "curves": "Each task's dev metric from its own training step to the end of the sequence; "
    "a flat line means the later tasks left it unchanged.",
    "costs": "Trainable parameters and bytes stored per task, per method (log scales).",
    "storage": "Final ACC (with its 95% interval where recorded) against the bytes stored to "
    "serve every task at the end (log scale); the number by each point is its forgetting.",
}


# (name, formula, what it means): the formulas of contlearn.forgetting, numbered 1..T here.
DEFINITIONS = (
    ("ACC", "ACC = (1/T) Σ_{j=1..T} R[T][j]", "the mean score over all tasks after the last one."),
    (
        "BWT",
        "BWT = 1/(T−1) Σ_{j<T} (R[T][j] − R[j][j])",
        "backward transfer (Lopez-Paz & Ranzato 2017): how the final model scores each earlier "
        "task compared with right after training it.",
    ),
    (
        "Forgetting",
        "F = 1/(T−1) Σ_{j<T} (max_{j≤l<T} R[l][j] − R[T][j])",
        "average forgetting (Chaudhry et al. 2018): how far each earlier task ended below its "
        "best score before the last task.",
    ),
    (
        "Forgetting (Avalanche)",
        "F_A = 1/(T−1) Σ_{j<T} (R[j][j] − R[T][j])",
        "Avalanche's forgetting: each earlier task's score right after training minus its final "
        "score (= −BWT).",
    ),
    (
        "FWT",
        "FWT = 1/(T−1) Σ_{j>1} (R[j][j] − ref[j])",
        "forward transfer against a per-task reference: the separate model's score on that task "
        "(a model fine-tuned on it alone) where separate ran, else the majority class's dev "
        "score (the report's overview says which).",
    ),
    (
        "Intransigence",
        "I = (1/T) Σ_j (joint[j] − R[j][j])",
        "intransigence (Chaudhry et al. 2018): how far each task's just-trained score stays below "
        "the joint multi-task model's, where joint ran.",
    ),
    (
        "95% interval",
        "percentile bootstrap",
        "dev examples resampled with replacement (seeded; the count is in the report's JSON), "
        "the same resamples for every quantity of a method, so BWT's interval is paired.",
    ),
    (
        "Average incremental accuracy",
        "A = (1/T) Σ_{i=1..T} (1/i) Σ_{j≤i} R[i][j]",
        "the mean, over training steps, of the mean score on the tasks seen so far.",
    ),
)


DEFINITIONS_NOTE = (
    "T tasks, numbered 1..T in training order; R[i][j] is task j's dev metric after training "
    "task i. A negative BWT or a positive forgetting means the method forgot. BWT and "
    "forgetting need an earlier task, so with one task they are n/a."
)


HEADLINE_HEADER = [
    "Method",
    "ACC [95% CI]",
    "BWT [95% CI]",
    "Forgetting (Chaudhry)",
    "Forgetting (Avalanche)",
    "FWT",
    "Intransigence",
    "Avg. incremental acc.",
    "Identical earlier-task evals",
    "Trainable params / task (mean)",
    "Total storage",
    "Train seconds",
]


COST_HEADER = ["Task", "Trainable params", "Bytes stored", "Train seconds", "Examples / s"]


def report_title(results: dict) -> str:
    return f"Forgetting comparison #{results.get('comparison_id', '?')}"


def overview(results: dict) -> list[tuple[str, str]]:
    """(label, value) lines: date, backbone, task sequence, config."""
    backbone = results.get("backbone") or {}
    fingerprint = str(backbone.get("fingerprint", ""))[:12]
    params = backbone.get("num_parameters")
    size = f", {params:,} parameters" if isinstance(params, int) else ""
    if backbone.get("dtype", "float32") != "float32":
        size += f", loaded in {backbone['dtype']}"
    tasks = " → ".join(
        f"{task.get('position', i + 1)}. {task['name']} ({task.get('metric', '?')})"
        for i, task in enumerate(results["tasks"])
    )
    return [
        ("Date", str(results.get("created_at", "—"))),
        ("Backbone", f"{backbone.get('identity', '?')} (fingerprint {fingerprint}…{size})"),
        (f"Tasks, in training order (T = {len(results['tasks'])})", tasks),
        ("Config", _config_text(results.get("config") or {})),
    ] + _reference_line(results)


def _reference_line(results: dict) -> list[tuple[str, str]]:
    """What FWT was measured against, in results that record it."""
    if "fwt_reference" not in results:
        return []
    return [("FWT reference", str(results["fwt_reference"] or "none (FWT not computed)"))]


def _config_text(config: dict) -> str:
    def value(v: Any) -> str:
        if isinstance(v, dict):
            return ", ".join(f"{k} {w}" for k, w in v.items())
        return str(v)

    return "; ".join(f"{key} {value(v)}" for key, v in config.items()) or "—"


def headline_rows(results: dict) -> list[list[str]]:
    rows = []
    for key, method in results["methods"].items():
        summary = method_summary(method)
        cost = method.get("cost") or {}
        ci = method.get("intervals") or {}
        missing = missing_text(results)
        seconds = [v for v in cost.get("train_seconds") or [] if v is not None]
        rows.append(
            [
                method_label(key, method),
                _num(summary["acc"]) + _ci(ci.get("acc")),
                _num(summary["bwt"], missing) + _ci(ci.get("bwt")),
                _num(summary["forgetting"], missing),
                _num(summary.get("forgetting_avalanche"), missing),
                _num(summary.get("fwt")),
                _num(summary.get("intransigence")),
                _num(summary["avg_incremental_acc"]),
                _identical(method.get("identical")),
                _params(mean(cost.get("trainable_params"))),
                format_bytes(cost.get("total_bytes")),
                _num(math.fsum(seconds), "—", 0) if seconds else "—",
            ]
        )
    return rows


def _ci(interval: dict | None) -> str:
    """`` [lo, hi]`` of a bootstrap interval, or nothing where none was recorded."""
    if not interval or interval.get("ci") is None:
        return ""
    low, high = interval["ci"]
    return f" [{_num(low)}, {_num(high)}]"


def matrix_table(results: dict, key: str) -> tuple[list[str], list[list[str]]]:
    names = task_names(results)
    matrix = results["methods"][key]["matrix"]
    rows = [
        [f"after {name}", *(_num(v, "") for v in row)]
        for name, row in zip(names, matrix, strict=True)
    ]
    return ["after task", *names], rows


def base_table(results: dict, key: str) -> tuple[list[str], list[list[str]]] | None:
    """The base model's row beside a method's matrix: its perplexity on the base reference set
    before any task and after each, and the share of its greedy answers identical to the base
    model's, every task switched off (None: nothing measured it)."""
    steps = results["methods"][key].get("base")
    reference = results.get("base_reference")
    if not steps or reference is None:
        return None
    names = task_names(results)
    header = ["base model", "before", *(f"after {name}" for name in names)]
    perplexity = ["perplexity", _num(reference["perplexity"])]
    perplexity += [_num(None if s is None else s["perplexity"]) for s in steps]
    same = ["answers identical", "100%"]
    same += ["—" if s is None else f"{s['answers_identical']:.0%}" for s in steps]
    return header, [perplexity, same]


def cost_rows(results: dict, key: str) -> list[list[str]]:
    cost = results["methods"][key].get("cost") or {}
    columns = [
        [_params(v) for v in per_task(results, cost.get("trainable_params"))],
        [format_bytes(v) for v in per_task(results, cost.get("bytes"))],
        [_num(v, "—", 1) for v in per_task(results, cost.get("train_seconds"))],
        [_num(v, "—", 1) for v in per_task(results, cost.get("examples_per_second"))],
    ]
    return [[name, *cells] for name, *cells in zip(task_names(results), *columns, strict=True)]


def findings(results: dict) -> list[str]:
    """The "what this shows" sentences, computed from the numbers."""
    sentences = [_method_finding(results, key, m) for key, m in results["methods"].items()]
    keys = list(results["methods"])
    if len(keys) >= 2:
        sentences += _comparison(results, keys[0], keys[1])
    return sentences


def _method_finding(results: dict, key: str, method: dict) -> str:
    summary = method_summary(method)
    missing = missing_text(results)
    text = (
        f"{method_label(key, method)}: ACC {_num(summary['acc'])}, "
        f"BWT {_num(summary['bwt'], missing)}, forgetting {_num(summary['forgetting'], missing)}"
    )
    identical = method.get("identical")
    if identical and identical.get("total"):
        k, n = identical["identical"], identical["total"]
        text += (
            f", every earlier-task evaluation bit-identical ({k}/{n})"
            if k == n
            else f", {k} of {n} earlier-task evaluations bit-identical"
        )
    return text + "; " + _verdict(summary["bwt"])


def _verdict(bwt: float | None) -> str:
    if bwt is None:
        return "with one task there is no earlier task to forget."
    if round(bwt, 4) < 0:
        return (
            f"it forgot: earlier tasks ended {-bwt:.4f} below their just-trained scores on average."
        )
    if round(bwt, 4) > 0:
        return "earlier tasks ended above their just-trained scores on average."
    return "earlier tasks ended where they were right after training."


def _comparison(results: dict, first: str, second: str) -> list[str]:
    a, b = results["methods"][first], results["methods"][second]
    label_a, label_b = method_label(first, a), method_label(second, b)
    acc_a, acc_b = method_summary(a)["acc"], method_summary(b)["acc"]
    diff = round(acc_a - acc_b, 4)
    relation = "higher than" if diff > 0 else "lower than" if diff < 0 else "equal to"
    sentences = [
        f"Final ACC with {label_a} is {relation} with {label_b} "
        f"({_num(acc_a)} vs {_num(acc_b)}, difference {_num(acc_a - acc_b)})."
    ]
    bytes_a = (a.get("cost") or {}).get("total_bytes")
    bytes_b = (b.get("cost") or {}).get("total_bytes")
    if bytes_a and bytes_b:
        sentences.append(
            f"Total storage: {format_bytes(bytes_a)} for {label_a} vs "
            f"{format_bytes(bytes_b)} for {label_b} "
            f"({label_b} stores {bytes_b / bytes_a:.1f}x as much)."
        )
    return sentences


def _num(value: Any, missing: str = "—", places: int = 4) -> str:
    if value is None:
        return missing
    value = round(float(value), places) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{value:.{places}f}"


def missing_text(results: dict) -> str:
    """How a BWT or forgetting of None reads: expected with one task, otherwise unknown."""
    return "n/a (one task)" if len(results["tasks"]) == 1 else "—"


def format_bytes(value: Any) -> str:
    if value is None:
        return "—"
    size, unit = float(value), "B"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            break
        size /= 1000
    return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"


def _params(value: Any) -> str:
    return "—" if value is None else f"{round(value):,}"


def _identical(identical: dict | None) -> str:
    return "—" if not identical else f"{identical['identical']} / {identical['total']}"


def check_results(results: dict) -> None:
    """Raise ValueError unless every method's matrix is a valid T x T matrix for T tasks."""
    if not results.get("methods"):
        raise ValueError("the results hold no method to report")
    size = len(results["tasks"])
    for key, method in results["methods"].items():
        if len(method["matrix"]) != size:
            raise ValueError(
                f"method {key!r}: matrix has {len(method['matrix'])} rows, {size} tasks"
            )
        validate_matrix(method["matrix"])


def task_names(results: dict) -> list[str]:
    return [str(task["name"]) for task in results["tasks"]]


def method_label(key: str, method: dict) -> str:
    return str(method.get("label") or key)


def method_summary(method: dict) -> dict[str, float | None]:
    return method.get("summary") or summarize(method["matrix"])


def per_task(results: dict, values: Sequence[Any] | None) -> list[Any]:
    """A per-task cost list padded with None to T entries."""
    values = list(values or [])
    return (values + [None] * len(results["tasks"]))[: len(results["tasks"])]


def mean(values: Sequence[Any] | None) -> float | None:
    present = [float(v) for v in values or [] if v is not None]
    return math.fsum(present) / len(present) if present else None


def slug(key: str) -> str:
    """A method key as a safe file-name part."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", key) or "_"


def plain(text: str, width: int = 24) -> str:
    """Text for a matplotlib label: shortened, with ``$`` escaped so it is never mathtext."""
    text = str(text)
    text = text if len(text) <= width else text[: width - 1] + "…"
    return text.replace("$", r"\$")
