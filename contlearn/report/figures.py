"""The report's figures as PNG bytes: the accuracy matrices as heatmaps, each task's curve over
the sequence, and the costs per task (matplotlib, Agg backend)."""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .content import format_bytes, method_label, method_summary, per_task, plain, task_names

DPI = 110


@dataclass(frozen=True)
class PlotStyle:
    """How a method is drawn: its line style (curves.png) and marker (curves and storage)."""

    linestyle: Any
    marker: str


# A method the caller gives no style for (each comparison method gives its own).
DEFAULT_STYLE = PlotStyle(":", "^")
Styles = Mapping[str, PlotStyle]


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.15)
    pyplot().close(fig)
    return buffer.getvalue()


def heatmaps_png(results: dict) -> bytes:
    """One heatmap of R per method, side by side, on one colour scale taken from the data."""
    import numpy as np

    plt = pyplot()
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
        ax.set_title(textwrap.fill(plain(method_label(key, methods[key]), 60), 32), fontsize=10)
    fig.colorbar(image, ax=list(axes[0]), label="dev metric", shrink=0.8)
    return png_bytes(fig)


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
    names = [plain(name) for name in task_names(results)]
    ticks = range(len(names))
    ax.set_xticks(ticks, names, rotation=35, ha="right", rotation_mode="anchor")
    ax.set_yticks(ticks, names)
    ax.set_xlabel("task evaluated")
    ax.set_ylabel("after training")


def curves_png(results: dict, styles: Styles | None = None) -> bytes:
    """One panel per task: its metric from its own training step on, one line per method."""
    plt = pyplot()
    names = task_names(results)
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
        _curve_panel(ax, results, j, styles)
    drawn = [_style(key, styles) for key in results["methods"]]
    handles = [
        plt.Line2D([], [], color="0.3", linestyle=s.linestyle, marker=s.marker) for s in drawn
    ]
    labels = [plain(method_label(k, m), 60) for k, m in results["methods"].items()]
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), frameon=False)
    return png_bytes(fig)


def _curve_panel(ax, results: dict, j: int, styles: Styles | None) -> None:
    task = results["tasks"][j]
    names = task_names(results)
    colour = f"C{j % 10}"
    steps = list(range(j, len(names)))
    for key, method in results["methods"].items():
        style = _style(key, styles)
        values = [method["matrix"][i][j] for i in steps]
        line, marker = style.linestyle, style.marker
        ax.plot(steps, values, color=colour, linestyle=line, marker=marker, markersize=5)
    ax.set_title(f"{plain(task['name'])} ({plain(task.get('metric', '?'))})", fontsize=10)
    ax.set_xlim(-0.4, len(names) - 0.6)
    labels = [f"after {plain(name, 14)}" for name in names]
    ax.set_xticks(range(len(names)), labels, rotation=35, ha="right", rotation_mode="anchor")
    ax.margins(y=0.15)
    ax.grid(alpha=0.3)


def _style(key: str, styles: Styles | None) -> PlotStyle:
    return (styles or {}).get(key, DEFAULT_STYLE)


def costs_png(results: dict) -> bytes:
    """Trainable parameters and bytes stored per task, grouped bars per method, log scales."""
    plt = pyplot()
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
        ("bytes", "bytes stored per task", format_bytes),
    )
    for ax, (field, title, fmt) in zip(axes[0], specs, strict=True):
        handles = _bar_panel(ax, results, field, fmt)
        ax.set_title(title, fontsize=10)
    labels = [_cost_legend(k, m) for k, m in results["methods"].items()]
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), frameon=False)
    return png_bytes(fig)


def _bar_panel(ax, results: dict, field: str, fmt) -> list:
    """Grouped bars of one cost field; returns one bar container per method (for the legend)."""
    import numpy as np

    names = task_names(results)
    count = len(results["methods"])
    width = 0.8 / count
    rotation = 90 if len(names) * count > 8 else 0
    containers, drawn = [], []
    for n, method in enumerate(results["methods"].values()):
        raw = per_task(results, (method.get("cost") or {}).get(field))
        # Non-positive or missing costs have no bar on a log scale.
        heights = [float(v) if v is not None and v > 0 else math.nan for v in raw]
        x = np.arange(len(names)) + (n - (count - 1) / 2) * width
        bars = ax.bar(x, heights, width, color=f"C{n}")
        texts = ["" if math.isnan(h) else fmt(h) for h in heights]
        ax.bar_label(bars, texts, fontsize=7, padding=2, rotation=rotation)
        containers.append(bars)
        drawn += [h for h in heights if not math.isnan(h)]
    ax.set_xticks(range(len(names)), [plain(name) for name in names], rotation=20, ha="right")
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
    suffix = f" (total stored {format_bytes(total)})" if total is not None else ""
    return plain(method_label(key, method), 60) + suffix


def storage_png(results: dict, styles: Styles | None = None) -> bytes:
    """Final ACC against total storage (log x), one point per method, with its interval and
    its forgetting written beside it."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.6), layout="constrained")
    for i, (key, method) in enumerate(results["methods"].items()):
        total = (method.get("cost") or {}).get("total_bytes")
        acc = method_summary(method)["acc"]
        if not total or acc is None:
            continue
        ci = (method.get("intervals") or {}).get("acc") or {}
        low, high = ci.get("ci") or (acc, acc)
        ax.errorbar(
            [total],
            [acc],
            yerr=[[acc - low], [high - acc]],
            fmt=_style(key, styles).marker,
            color=f"C{i % 10}",
            capsize=4,
            label=plain(method_label(key, method), 48),
        )
        lost = method_summary(method).get("forgetting")
        text = "forgetting n/a" if lost is None else f"forgetting {lost:+.3f}"
        ax.annotate(text, (total, acc), textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: format_bytes(v)))
    ax.xaxis.set_minor_formatter(FuncFormatter(_sparse_bytes))
    ax.set_xlabel("bytes stored to serve every task (log)")
    ax.set_ylabel("final ACC")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="best")
    return png_bytes(fig)


def _sparse_bytes(value: float, _position: Any) -> str:
    """Minor tick labels of a log axis at 2, 3 and 5 times a power of ten (the others crowd)."""
    leading = f"{value:.0e}"[0]
    return format_bytes(value) if leading in "235" else ""
