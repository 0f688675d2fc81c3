"""Writing a comparison's report where the workspace keeps them, and rebuilding one later from
the ledger alone."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ContlearnError
from ..ledger.store import Ledger
from ..report.write import write_report
from .compare import build_results

REPORTS_DIR = "reports"


def default_report_dir(root: Path) -> Path:
    """``reports/<UTC time>/`` in the workspace folder ``root``."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return root / REPORTS_DIR / stamp


def write_comparison_report(
    ledger: Ledger, root: Path, results: dict[str, Any], out: Path | None = None
) -> dict[str, Path]:
    """Render the report files for ``results`` and record where they are."""
    files = write_report(results, Path(out) if out else default_report_dir(root))
    ledger.set_report_path(results["comparison_id"], str(files["html"].parent))
    return files


def rebuild_report(
    ledger: Ledger, root: Path, comparison_id: int | None = None, out: Path | None = None
) -> tuple[dict[str, Any], dict[str, Path]]:
    """The report of a finished comparison (the latest by default), from the ledger alone."""
    done = ledger.comparisons(status="done")
    if comparison_id is not None:
        done = [c for c in done if c["id"] == comparison_id]
    if not done:
        raise ContlearnError("no finished comparison in the ledger: run `contlearn compare` first")
    results = build_results(ledger, done[-1]["id"])
    return results, write_comparison_report(ledger, root, results, out)
