"""Writing a report folder: every file of the report, each written atomically.

A folder keeps a manifest (``.contlearn-report.json``) of the files a report wrote there, so
that writing a new report into it removes the files of the earlier one that the new one does
not write (a method's matrix CSV, say), and never a file contlearn did not write."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from ..faults import require_space
from ..files import atomic_write
from .content import FIGURES, check_results, slug
from .figures import Styles, costs_png, curves_png, heatmaps_png, storage_png
from .text import matrix_csv, render_html, render_markdown


def write_report(results: dict, out_dir: Path, styles: Styles | None = None) -> dict[str, Path]:
    """Write report.md/.html/.json, one matrix CSV per method and three PNGs into ``out_dir``;
    ``styles``: each method's line and marker in the figures (by its key in the results).

    Each file is written atomically. Returns the paths by kind: md, html, json, heatmaps,
    curves, costs and ``csv_<method>`` per method.
    """
    check_results(results)
    outputs = _render(results, styles)
    return _write(Path(out_dir), outputs)


MANIFEST = ".contlearn-report.json"


def _render(results: dict, styles: Styles | None) -> dict[str, tuple[str, bytes]]:
    """Every file of the report by kind: (file name, bytes)."""
    pngs = {
        "heatmaps": heatmaps_png(results),
        "curves": curves_png(results, styles),
        "costs": costs_png(results),
        "storage": storage_png(results, styles),
    }
    files = {name: f"{name}.png" for name in FIGURES}
    images_b64 = {name: base64.b64encode(data).decode("ascii") for name, data in pngs.items()}
    outputs: dict[str, tuple[str, bytes]] = {name: (files[name], pngs[name]) for name in FIGURES}
    outputs["md"] = ("report.md", render_markdown(results, files).encode())
    outputs["html"] = ("report.html", render_html(results, images_b64).encode())
    outputs["json"] = ("report.json", json.dumps(results, indent=2, default=str).encode())
    for key in results["methods"]:
        outputs[f"csv_{key}"] = (f"matrix_{slug(key)}.csv", matrix_csv(results, key).encode())
    return outputs


def _write(out_dir: Path, outputs: dict[str, tuple[str, bytes]]) -> dict[str, Path]:
    """Write the files, remove what an earlier report there wrote and this one does not, then
    record the new manifest. A disk without room for them all is refused before any is
    written, so a full disk never leaves half a report."""
    require_space(out_dir, sum(len(data) for _, data in outputs.values()), f"the report {out_dir}")
    earlier = _manifest(out_dir)
    paths = {}
    for kind, (name, data) in outputs.items():
        paths[kind] = out_dir / name
        atomic_write(paths[kind], data)
    names = sorted(name for name, _ in outputs.values())
    for stale in sorted(set(earlier) - set(names)):
        (out_dir / stale).unlink(missing_ok=True)
    atomic_write(out_dir / MANIFEST, json.dumps({"files": names}, indent=2).encode())
    return paths


def _manifest(out_dir: Path) -> list[str]:
    """The plain file names an earlier report wrote into ``out_dir`` (none if unreadable)."""
    try:
        files = json.loads((out_dir / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [f for f in files if isinstance(f, str) and f and "/" not in f and f not in (".", "..")]
