"""Writing a comparison's report where the workspace keeps them, and rebuilding one later from
the ledger alone."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ContlearnError
from ..ledger.store import Ledger
from ..report.write import write_report
from .baselines.registry import plot_styles
from .compare import build_results
from .history import require_comparison

REPORTS_DIR = "reports"


def default_report_dir(root: Path) -> Path:
    """``reports/<UTC time>/`` in the workspace folder ``root``."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return root / REPORTS_DIR / stamp


def write_comparison_report(
    ledger: Ledger, root: Path, results: dict[str, Any], out: Path | None = None
) -> dict[str, Path]:
    """Render the report files for ``results`` and record where they are: relative to the
    workspace folder ``root`` when inside it (as artifacts are), else absolute."""
    folder = (Path(out) if out else default_report_dir(root)).resolve()
    files = write_report(results, folder, plot_styles())
    ledger.set_report_path(results["comparison_id"], recorded_path(root, folder))
    return files


def recorded_path(root: Path, folder: Path) -> str:
    """``folder`` as the ledger records a report: relative to ``root`` if inside it."""
    root = root.resolve()
    return str(folder.relative_to(root)) if folder.is_relative_to(root) else str(folder)


def rebuild_report(
    ledger: Ledger, root: Path, comparison_id: int | None = None, out: Path | None = None
) -> tuple[dict[str, Any], dict[str, Path]]:
    """The report of a finished comparison (the latest by default), from the ledger (and the
    adapters' recorded dev logits, for their confidence intervals)."""
    if comparison_id is None:
        done = ledger.comparisons(status="done")
        if not done:
            raise ContlearnError(
                "no finished comparison in the ledger: run `contlearn compare` first"
            )
        comparison_id = done[-1]["id"]
    elif require_comparison(ledger, comparison_id)["status"] != "done":
        raise ContlearnError(
            f"comparison {comparison_id} is not finished: `contlearn compare` resumes it"
        )
    from ..artifacts import ArtifactStore

    results = build_results(ledger, comparison_id, ArtifactStore(root))
    return results, write_comparison_report(ledger, root, results, out)
