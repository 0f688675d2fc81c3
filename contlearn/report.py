"""The forgetting-comparison report: Markdown, HTML, JSON, CSV and PNG from a results dict.

The input is plain data (no database, no torch): the backbone, the tasks in training order and,
per method, its accuracy matrix ``R[i][j]`` (task j's dev metric after training task i), the
summary from :func:`contlearn.forgetting.summarize`, the bit-identical evaluation count and the
costs. Markdown and HTML are rendered from the same tables and sentences, so they carry the
same information; the HTML is self-contained (figures embedded as base64 data URIs) and escapes
every piece of text that comes from the results.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .artifacts import atomic_write
from .forgetting import summarize, validate_matrix

DPI = 110
FIGURES = ("heatmaps", "curves", "costs")
CAPTIONS = {
    "heatmaps": "Accuracy matrix R per method on one shared colour scale: row i is the model "
    "after training task i, column j the task evaluated; blank cells are tasks not yet trained.",
    "curves": "Each task's dev metric from its own training step to the end of the sequence; "
    "a flat line means the later tasks left it unchanged.",
    "costs": "Trainable parameters and bytes stored per task, per method (log scales).",
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
    "ACC",
    "BWT",
    "Forgetting",
    "Avg. incremental acc.",
    "Identical earlier-task evals",
    "Trainable params / task (mean)",
    "Total storage",
]
COST_HEADER = ["Task", "Trainable params", "Bytes stored", "Train seconds", "Examples / s"]
# Line style and marker per method in curves.png; other methods fall back to dotted.
STYLES = {"adapter": ("-", "o"), "full-finetune": ("--", "s")}


def write_report(results: dict, out_dir: Path) -> dict[str, Path]:
    """Write report.md/.html/.json, one matrix CSV per method and three PNGs into ``out_dir``.

    Each file is written atomically. Returns the paths by kind: md, html, json, heatmaps,
    curves, costs and ``csv_<method>`` per method.
    """
    _check(results)
    out_dir = Path(out_dir)
    pngs = {
        "heatmaps": _heatmaps_png(results),
        "curves": _curves_png(results),
        "costs": _costs_png(results),
    }
    files = {name: f"{name}.png" for name in FIGURES}
    images_b64 = {name: base64.b64encode(data).decode("ascii") for name, data in pngs.items()}
    outputs: dict[str, tuple[str, bytes]] = {name: (files[name], pngs[name]) for name in FIGURES}
    outputs["md"] = ("report.md", render_markdown(results, files).encode())
    outputs["html"] = ("report.html", render_html(results, images_b64).encode())
    outputs["json"] = ("report.json", json.dumps(results, indent=2, default=str).encode())
    for key in results["methods"]:
        outputs[f"csv_{key}"] = (f"matrix_{_slug(key)}.csv", _matrix_csv(results, key).encode())
    paths = {}
    for kind, (name, data) in outputs.items():
        paths[kind] = out_dir / name
        atomic_write(paths[kind], data)
    return paths


def render_markdown(results: dict, images: dict[str, str]) -> str:
    """The report as Markdown; ``images`` maps figure name to a file name relative to it."""
    lines = [f"# {_md(_title(results))}", ""]
    lines += [f"- **{label}:** {_md(value)}" for label, value in _overview(results)]
    lines += ["", "## Headline", "", *_md_table(HEADLINE_HEADER, _headline_rows(results))]
    lines += ["", "## What this shows", "", _md(" ".join(_findings(results)))]
    lines += ["", "## Definitions", "", _md(DEFINITIONS_NOTE), ""]
    lines += [f"- **{name}:** `{formula}`: {_md(text)}" for name, formula, text in DEFINITIONS]
    for key, method in results["methods"].items():
        lines += ["", f"## {_md(_label(key, method))}", "", "Accuracy matrix R:", ""]
        lines += _md_table(*_matrix_table(results, key))
        lines += ["", "Costs:", "", *_md_table(COST_HEADER, _cost_rows(results, key))]
    figures = [name for name in FIGURES if name in images]
    if figures:
        lines += ["", "## Figures"]
    for name in figures:
        lines += ["", f"![{name}]({images[name]})", "", f"*{_md(CAPTIONS[name])}*"]
    return "\n".join(lines) + "\n"


def render_html(results: dict, images_b64: dict[str, str]) -> str:
    """The report as one self-contained HTML page; ``images_b64`` maps figure name to PNG base64."""
    esc = html.escape
    title = esc(_title(results))
    parts = [f"<h1>{title}</h1>", "<ul>"]
    parts += [f"<li><b>{esc(k)}:</b> {esc(v)}</li>" for k, v in _overview(results)]
    parts += ["</ul>", "<h2>Headline</h2>", _html_table(HEADLINE_HEADER, _headline_rows(results))]
    parts += ["<h2>What this shows</h2>", f"<p>{esc(' '.join(_findings(results)))}</p>"]
    parts += ["<h2>Definitions</h2>", f"<p>{esc(DEFINITIONS_NOTE)}</p>", "<ul>"]
    parts += [
        f"<li><b>{esc(name)}:</b> <code>{esc(formula)}</code>: {esc(text)}</li>"
        for name, formula, text in DEFINITIONS
    ]
    parts.append("</ul>")
    for key, method in results["methods"].items():
        parts += [f"<h2>{esc(_label(key, method))}</h2>", "<p>Accuracy matrix R:</p>"]
        parts += [_html_table(*_matrix_table(results, key)), "<p>Costs:</p>"]
        parts.append(_html_table(COST_HEADER, _cost_rows(results, key)))
    figures = [name for name in FIGURES if name in images_b64]
    if figures:
        parts.append("<h2>Figures</h2>")
    parts += [_html_figure(name, images_b64[name]) for name in figures]
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem}"
    "table{border-collapse:collapse;margin:.5rem 0}"
    "th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}"
    "th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}"
    "img{max-width:100%}figcaption{font-style:italic;margin-top:.3rem}"
)


# --- the content both renderers share (plain text; each renderer escapes it) ---------------


def _title(results: dict) -> str:
    return f"Forgetting comparison #{results.get('comparison_id', '?')}"


def _overview(results: dict) -> list[tuple[str, str]]:
    """(label, value) lines: date, backbone, task sequence, config."""
    backbone = results.get("backbone") or {}
    fingerprint = str(backbone.get("fingerprint", ""))[:12]
    params = backbone.get("num_parameters")
    size = f", {params:,} parameters" if isinstance(params, int) else ""
    tasks = " → ".join(
        f"{task.get('position', i + 1)}. {task['name']} ({task.get('metric', '?')})"
        for i, task in enumerate(results["tasks"])
    )
    return [
        ("Date", str(results.get("created_at", "—"))),
        ("Backbone", f"{backbone.get('identity', '?')} (fingerprint {fingerprint}…{size})"),
        (f"Tasks, in training order (T = {len(results['tasks'])})", tasks),
        ("Config", _config_text(results.get("config") or {})),
    ]


def _config_text(config: dict) -> str:
    def value(v: Any) -> str:
        if isinstance(v, dict):
            return ", ".join(f"{k} {w}" for k, w in v.items())
        return str(v)

    return "; ".join(f"{key} {value(v)}" for key, v in config.items()) or "—"


def _headline_rows(results: dict) -> list[list[str]]:
    rows = []
    for key, method in results["methods"].items():
        summary = _summary(method)
        cost = method.get("cost") or {}
        rows.append(
            [
                _label(key, method),
                _num(summary["acc"]),
                _num(summary["bwt"], _missing(results)),
                _num(summary["forgetting"], _missing(results)),
                _num(summary["avg_incremental_acc"]),
                _identical(method.get("identical")),
                _params(_mean(cost.get("trainable_params"))),
                _bytes(cost.get("total_bytes")),
            ]
        )
    return rows


def _matrix_table(results: dict, key: str) -> tuple[list[str], list[list[str]]]:
    names = _names(results)
    matrix = results["methods"][key]["matrix"]
    rows = [
        [f"after {name}", *(_num(v, "") for v in row)]
        for name, row in zip(names, matrix, strict=True)
    ]
    return ["after task", *names], rows


def _cost_rows(results: dict, key: str) -> list[list[str]]:
    cost = results["methods"][key].get("cost") or {}
    columns = [
        [_params(v) for v in _per_task(results, cost.get("trainable_params"))],
        [_bytes(v) for v in _per_task(results, cost.get("bytes"))],
        [_num(v, "—", 1) for v in _per_task(results, cost.get("train_seconds"))],
        [_num(v, "—", 1) for v in _per_task(results, cost.get("examples_per_second"))],
    ]
    return [[name, *cells] for name, *cells in zip(_names(results), *columns, strict=True)]


def _findings(results: dict) -> list[str]:
    """The "what this shows" sentences, computed from the numbers."""
    sentences = [_method_finding(results, key, m) for key, m in results["methods"].items()]
    keys = list(results["methods"])
    if len(keys) >= 2:
        sentences += _comparison(results, keys[0], keys[1])
    return sentences


def _method_finding(results: dict, key: str, method: dict) -> str:
    summary = _summary(method)
    missing = _missing(results)
    text = (
        f"{_label(key, method)}: ACC {_num(summary['acc'])}, BWT {_num(summary['bwt'], missing)}, "
        f"forgetting {_num(summary['forgetting'], missing)}"
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
    label_a, label_b = _label(first, a), _label(second, b)
    acc_a, acc_b = _summary(a)["acc"], _summary(b)["acc"]
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
            f"Total storage: {_bytes(bytes_a)} for {label_a} vs {_bytes(bytes_b)} for {label_b} "
            f"({label_b} stores {bytes_b / bytes_a:.1f}x as much)."
        )
    return sentences


# --- formatting ------------------------------------------------------------------------------


def _num(value: Any, missing: str = "—", places: int = 4) -> str:
    if value is None:
        return missing
    value = round(float(value), places) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{value:.{places}f}"


def _missing(results: dict) -> str:
    """How a BWT or forgetting of None reads: expected with one task, otherwise unknown."""
    return "n/a (one task)" if len(results["tasks"]) == 1 else "—"


def _bytes(value: Any) -> str:
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


def _md(text: str) -> str:
    """Text from the results, safe in Markdown prose and tables (backslash escapes, one line)."""
    escaped = re.sub(r"([\\`\[\]<>|])", r"\\\1", " ".join(str(text).split()))
    return "\\" + escaped if escaped.startswith("#") else escaped


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(_md(h) for h in header) + " |"]
    lines.append("|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|")
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return lines


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def row(cells: Sequence[str], tag: str) -> str:
        return "<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>"

    body = "\n".join(row(cells, "td") for cells in rows)
    return f"<table>\n<thead>{row(header, 'th')}</thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _html_figure(name: str, b64: str) -> str:
    caption = html.escape(CAPTIONS[name])
    return (
        f'<figure><img src="data:image/png;base64,{b64}" alt="{html.escape(name)}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _matrix_csv(results: dict, key: str) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    names = _names(results)
    writer.writerow(["after_task", *names])
    for name, row in zip(names, results["methods"][key]["matrix"], strict=True):
        writer.writerow([name, *("" if v is None else v for v in row)])
    return buffer.getvalue()


# --- data access -----------------------------------------------------------------------------


def _check(results: dict) -> None:
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


def _names(results: dict) -> list[str]:
    return [str(task["name"]) for task in results["tasks"]]


def _label(key: str, method: dict) -> str:
    return str(method.get("label") or key)


def _summary(method: dict) -> dict[str, float | None]:
    return method.get("summary") or summarize(method["matrix"])


def _per_task(results: dict, values: Sequence[Any] | None) -> list[Any]:
    """A per-task cost list padded with None to T entries."""
    values = list(values or [])
    return (values + [None] * len(results["tasks"]))[: len(results["tasks"])]


def _mean(values: Sequence[Any] | None) -> float | None:
    present = [float(v) for v in values or [] if v is not None]
    return math.fsum(present) / len(present) if present else None


def _slug(key: str) -> str:
    """A method key as a safe file-name part."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", key) or "_"


def _plain(text: str, width: int = 24) -> str:
    """Text for a matplotlib label: shortened, with ``$`` escaped so it is never mathtext."""
    text = str(text)
    text = text if len(text) <= width else text[: width - 1] + "…"
    return text.replace("$", r"\$")


# --- figures ---------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.15)
    _pyplot().close(fig)
    return buffer.getvalue()


def _heatmaps_png(results: dict) -> bytes:
    """One heatmap of R per method, side by side, on one colour scale taken from the data."""
    import numpy as np

    plt = _pyplot()
    methods = results["methods"]
    size = len(results["tasks"])
    grids = {key: _grid(method["matrix"]) for key, method in methods.items()}
    vmin, vmax = _colour_range(grids.values())
    side = min(8.5, max(3.6, 0.6 * size + 2.2))
    width = side * len(methods) + 1.2
    fig, axes = plt.subplots(
        1, len(methods), figsize=(width, side), squeeze=False, layout="constrained"
    )
    for ax, (key, grid) in zip(axes[0], grids.items(), strict=True):
        image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", vmin=vmin, vmax=vmax)
        _annotate(ax, grid, image)
        _task_axes(ax, results)
        ax.set_title(textwrap.fill(_plain(_label(key, methods[key]), 60), 32), fontsize=10)
    fig.colorbar(image, ax=list(axes[0]), label="dev metric", shrink=0.8)
    return _png(fig)


def _grid(matrix):
    """R as a float array, NaN where an entry is None (masked in the heatmap)."""
    import numpy as np

    return np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)


def _colour_range(grids) -> tuple[float, float]:
    import numpy as np

    values = np.concatenate([grid[~np.isnan(grid)] for grid in grids])
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-9:
        pad = 0.05 * max(1.0, abs(low))
        low, high = low - pad, high + pad
    return low, high


def _annotate(ax, grid, image) -> None:
    size = grid.shape[0]
    fontsize = 9 if size <= 6 else 7
    for (i, j), value in _cells(grid):
        shade = image.norm(value)
        colour = "black" if shade > 0.55 else "white"
        ax.text(j, i, f"{value:.3f}", ha="center", va="center", color=colour, fontsize=fontsize)


def _cells(grid):
    import numpy as np

    for (i, j), value in np.ndenumerate(grid):
        if not np.isnan(value):
            yield (i, j), float(value)


def _task_axes(ax, results: dict) -> None:
    names = [_plain(name) for name in _names(results)]
    ticks = range(len(names))
    ax.set_xticks(ticks, names, rotation=35, ha="right", rotation_mode="anchor")
    ax.set_yticks(ticks, names)
    ax.set_xlabel("task evaluated")
    ax.set_ylabel("after training")


def _curves_png(results: dict) -> bytes:
    """One panel per task: its metric from its own training step on, one line per method."""
    plt = _pyplot()
    names = _names(results)
    size = len(names)
    cols = min(size, 3)
    rows = math.ceil(size / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.9 * cols, 3.1 * rows + 0.6), squeeze=False, layout="constrained"
    )
    for j, ax in enumerate(axes.flat):
        if j >= size:
            ax.set_visible(False)
            continue
        _curve_panel(ax, results, j)
    handles = [
        plt.Line2D([], [], color="0.3", linestyle=_style(key)[0], marker=_style(key)[1])
        for key in results["methods"]
    ]
    labels = [_plain(_label(k, m), 60) for k, m in results["methods"].items()]
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), frameon=False)
    return _png(fig)


def _curve_panel(ax, results: dict, j: int) -> None:
    task = results["tasks"][j]
    names = _names(results)
    colour = f"C{j % 10}"
    steps = list(range(j, len(names)))
    for key, method in results["methods"].items():
        linestyle, marker = _style(key)
        values = [method["matrix"][i][j] for i in steps]
        ax.plot(steps, values, color=colour, linestyle=linestyle, marker=marker, markersize=5)
    ax.set_title(f"{_plain(task['name'])} ({_plain(task.get('metric', '?'))})", fontsize=10)
    ax.set_xlim(-0.4, len(names) - 0.6)
    labels = [f"after {_plain(name, 14)}" for name in names]
    ax.set_xticks(range(len(names)), labels, rotation=35, ha="right", rotation_mode="anchor")
    ax.margins(y=0.15)
    ax.grid(alpha=0.3)


def _style(key: str) -> tuple[str, str]:
    return STYLES.get(key, (":", "^"))


def _costs_png(results: dict) -> bytes:
    """Trainable parameters and bytes stored per task, grouped bars per method, log scales."""
    plt = _pyplot()
    size = len(results["tasks"])
    fig, axes = plt.subplots(
        1,
        2,
        figsize=(min(16.0, max(9.0, 1.6 * size + 5)), 4.2),
        squeeze=False,
        layout="constrained",
    )
    specs = (
        ("trainable_params", "trainable parameters per task", _short_count),
        ("bytes", "bytes stored per task", _bytes),
    )
    for ax, (field, title, fmt) in zip(axes[0], specs, strict=True):
        handles = _bar_panel(ax, results, field, fmt)
        ax.set_title(title, fontsize=10)
    labels = [_cost_legend(k, m) for k, m in results["methods"].items()]
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), frameon=False)
    return _png(fig)


def _bar_panel(ax, results: dict, field: str, fmt) -> list:
    """Grouped bars of one cost field; returns one bar container per method (for the legend)."""
    import numpy as np

    names = _names(results)
    count = len(results["methods"])
    width = 0.8 / count
    rotation = 90 if len(names) * count > 8 else 0
    containers, drawn = [], []
    for n, method in enumerate(results["methods"].values()):
        raw = _per_task(results, (method.get("cost") or {}).get(field))
        # Non-positive or missing costs have no bar on a log scale.
        heights = [float(v) if v is not None and v > 0 else math.nan for v in raw]
        x = np.arange(len(names)) + (n - (count - 1) / 2) * width
        bars = ax.bar(x, heights, width, color=f"C{n}")
        texts = ["" if math.isnan(h) else fmt(h) for h in heights]
        ax.bar_label(bars, texts, fontsize=7, padding=2, rotation=rotation)
        containers.append(bars)
        drawn += [h for h in heights if not math.isnan(h)]
    ax.set_xticks(range(len(names)), [_plain(name) for name in names], rotation=20, ha="right")
    _log_axis(ax, drawn, fmt)
    return containers


def _log_axis(ax, values: list[float], fmt) -> None:
    """Log y axis from a power of ten well below the smallest bar, ticks labelled with ``fmt``."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_yscale("log")
    if values:
        ax.set_ylim(10 ** math.floor(math.log10(min(values) / 2)), max(values) * 6)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: fmt(value)))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.grid(axis="y", alpha=0.3)


def _short_count(value: Any) -> str:
    value = float(value)
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.0f}"


def _cost_legend(key: str, method: dict) -> str:
    total = (method.get("cost") or {}).get("total_bytes")
    suffix = f" (total stored {_bytes(total)})" if total is not None else ""
    return _plain(_label(key, method), 60) + suffix
