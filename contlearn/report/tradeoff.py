"""The parameter/performance trade-off of ``contlearn tradeoff TASK`` (Houlsby et al. 2019,
section 3.4 and Figure 3): a table and a figure of each configuration's dev metric against its
trainable parameters, measured against full fine-tuning, and the folder that holds them.

The input is plain data: the task, its metric, the backbone and one point per configuration
(label, method, trainable parameters, share of the backbone, score, seconds, status, error). The
finished point of method ``"full"``, if any, is the reference.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from ..files import atomic_write, json_bytes
from .content import plain
from .figures import png_bytes, pyplot
from .text import CSS, html_table, md_escape, md_table

FILES = ("tradeoff.json", "tradeoff.md", "tradeoff.html", "tradeoff.png")

HEADER = [
    "Configuration",
    "Method",
    "Trainable params",
    "% of backbone",
    "Dev metric",
    "Δ vs full fine-tuning",
    "Seconds",
    "Status",
]

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "p")


def tradeoff_markdown(result: dict) -> str:
    """The trade-off as Markdown: a title, one row per configuration, fewest parameters first."""
    lines = [f"# {md_escape(_title(result))}", "", *md_table(HEADER, _rows(result))]
    return "\n".join([*lines, "", md_escape(_reference_note(result))]) + "\n"


def tradeoff_html(result: dict) -> str:
    """The trade-off as one HTML page: the same table, and the figure read from tradeoff.png."""
    title = html.escape(_title(result))
    body = "\n".join(
        [
            f"<h1>{title}</h1>",
            html_table(HEADER, _rows(result)),
            f"<p>{html.escape(_reference_note(result))}</p>",
            f'<figure><img src="tradeoff.png" alt="{html.escape(_figure_title(result))}"></figure>',
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def write_tradeoff(result: dict, out: Path) -> list[Path]:
    """Write tradeoff.json, .md, .html and .png into ``out`` (created if needed), each atomically
    and replacing any earlier one; returns their paths in that order."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    contents = (
        json_bytes(result),
        tradeoff_markdown(result).encode(),
        tradeoff_html(result).encode(),
        tradeoff_png(result),
    )
    paths = [out / name for name in FILES]
    for path, data in zip(paths, contents, strict=True):
        atomic_write(path, data)
    return paths


def _title(result: dict) -> str:
    backbone = result.get("backbone") or {}
    params = backbone.get("parameters")
    size = f" ({params:,} parameters)" if isinstance(params, int) else ""
    return (
        f"Parameter/performance trade-off: {result.get('task', '?')}, "
        f"dev {result.get('metric', '?')}, backbone {backbone.get('name', '?')}{size}"
    )


def _figure_title(result: dict) -> str:
    return f"{result.get('task', '?')}: {result.get('metric', '?')} vs trainable parameters"


def _sorted_points(result: dict) -> list[dict]:
    """The points, fewest trainable parameters first; points without a count go last."""
    points = result.get("points") or []
    return sorted(
        points, key=lambda p: (p.get("trainable_params") is None, p.get("trainable_params") or 0)
    )


def _reference(result: dict) -> dict | None:
    """The first finished full fine-tuning point with a score, or None."""
    for point in result.get("points") or []:
        if point.get("method") == "full" and _scored(point):
            return point
    return None


def _scored(point: dict) -> bool:
    return point.get("status") == "finished" and point.get("score") is not None


def _rows(result: dict) -> list[list[str]]:
    ref = _reference(result)
    ref_score = None if ref is None else float(ref["score"])
    return [_row(point, ref_score) for point in _sorted_points(result)]


def _row(point: dict, ref_score: float | None) -> list[str]:
    score = point.get("score") if _scored(point) else None
    delta = None if score is None or ref_score is None else float(score) - ref_score
    return [
        str(point.get("label") or point.get("method") or "?"),
        str(point.get("method") or "?"),
        _count(point.get("trainable_params")),
        _percent(point.get("percent_of_backbone")),
        _fixed(score, 4),
        _fixed(delta, 4, sign=True),
        _fixed(point.get("seconds"), 1),
        _status(point),
    ]


def _count(value: Any) -> str:
    return "—" if value is None else f"{round(value):,}"


def _percent(value: Any) -> str:
    """Two decimals; a share too small for two decimals keeps two significant digits."""
    if value is None:
        return "—"
    value = float(value)
    return f"{value:.2g}%" if 0 < abs(value) < 0.005 else f"{value:.2f}%"


def _fixed(value: Any, places: int, sign: bool = False) -> str:
    if value is None:
        return "—"
    value = round(float(value), places) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{value:+.{places}f}" if sign else f"{value:.{places}f}"


def _status(point: dict) -> str:
    status = str(point.get("status") or "?")
    lines = str(point.get("error") or "").strip().splitlines()
    return f"{status}: {lines[0]}" if status == "failed" and lines else status


def _reference_note(result: dict) -> str:
    ref = _reference(result)
    if ref is None:
        return "No finished full fine-tuning run, so there is no Δ to report."
    return (
        f"Δ is the dev metric minus full fine-tuning's ({_fixed(ref['score'], 4)} with "
        f"{_count(ref.get('trainable_params'))} trainable parameters)."
    )


def tradeoff_png(result: dict) -> bytes:
    """Dev metric against trainable parameters (log x axis): one line per method in order of
    parameters, full fine-tuning as a dashed horizontal line; unscored points are left out."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
    series = _series(result)
    for n, (method, points) in enumerate(series.items()):
        _plot_method(ax, method, points, n)
    ref = _reference(result)
    if ref is not None:
        _plot_reference(ax, ref)
    if series or ref is not None:
        ax.set_xscale("log")
        ax.legend(fontsize=8, loc="best")
    else:
        _empty_note(ax)
    ax.set_title(plain(_figure_title(result), 80), fontsize=10)
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel(f"dev {plain(result.get('metric', '?'))}")
    ax.grid(alpha=0.3)
    return png_bytes(fig)


def _empty_note(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    note = "no finished point with a score yet"
    ax.text(0.5, 0.5, note, ha="center", va="center", transform=ax.transAxes, color="0.4")


def _series(result: dict) -> dict[str, list[dict]]:
    """The plottable points of each method but full fine-tuning, fewest parameters first."""
    series: dict[str, list[dict]] = {}
    for point in _sorted_points(result):
        if point.get("method") != "full" and _scored(point) and _positive(point):
            series.setdefault(str(point.get("method") or "?"), []).append(point)
    return series


def _positive(point: dict) -> bool:
    """Whether the point has a place on a log axis."""
    params = point.get("trainable_params")
    return params is not None and params > 0


def _plot_method(ax, method: str, points: list[dict], n: int) -> None:
    x = [p["trainable_params"] for p in points]
    y = [float(p["score"]) for p in points]
    marker = MARKERS[n % len(MARKERS)]
    ax.plot(x, y, color=f"C{n % 10}", marker=marker, markersize=6, label=plain(method, 40))
    for point, xi, yi in zip(points, x, y, strict=True):
        if text := _size_part(point):
            ax.annotate(
                plain(text, 20), (xi, yi), textcoords="offset points", xytext=(4, 5), fontsize=7
            )


def _size_part(point: dict) -> str:
    """A point's label without its method's name in front ("houlsby m=64" reads "m=64"); empty
    when the label is just the method's name (the legend already says it)."""
    label = str(point.get("label") or "")
    method = str(point.get("method") or "")
    return label[len(method) :].strip() if method and label.startswith(method) else label


def _plot_reference(ax, ref: dict) -> None:
    score = float(ref["score"])
    params = ref.get("trainable_params")
    size = f" ({params:,} params)" if isinstance(params, int) else ""
    ax.axhline(score, color="black", linestyle="--", linewidth=1, label=f"full fine-tuning{size}")
    if _positive(ref):
        ax.plot([params], [score], color="black", marker="*", markersize=10, linestyle="none")
