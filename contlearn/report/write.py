"""Writing a report folder: every file of the report, each written atomically."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from ..files import atomic_write
from .content import FIGURES, check_results, slug
from .figures import costs_png, curves_png, heatmaps_png
from .text import matrix_csv, render_html, render_markdown


def write_report(results: dict, out_dir: Path) -> dict[str, Path]:
    """Write report.md/.html/.json, one matrix CSV per method and three PNGs into ``out_dir``.

    Each file is written atomically. Returns the paths by kind: md, html, json, heatmaps,
    curves, costs and ``csv_<method>`` per method.
    """
    check_results(results)
    out_dir = Path(out_dir)
    pngs = {
        "heatmaps": heatmaps_png(results),
        "curves": curves_png(results),
        "costs": costs_png(results),
    }
    files = {name: f"{name}.png" for name in FIGURES}
    images_b64 = {name: base64.b64encode(data).decode("ascii") for name, data in pngs.items()}
    outputs: dict[str, tuple[str, bytes]] = {name: (files[name], pngs[name]) for name in FIGURES}
    outputs["md"] = ("report.md", render_markdown(results, files).encode())
    outputs["html"] = ("report.html", render_html(results, images_b64).encode())
    outputs["json"] = ("report.json", json.dumps(results, indent=2, default=str).encode())
    for key in results["methods"]:
        outputs[f"csv_{key}"] = (f"matrix_{slug(key)}.csv", matrix_csv(results, key).encode())
    paths = {}
    for kind, (name, data) in outputs.items():
        paths[kind] = out_dir / name
        atomic_write(paths[kind], data)
    return paths
