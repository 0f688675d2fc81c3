"""The parameter/performance trade-off rendered from hand-built result dicts."""

from __future__ import annotations

import json

from contlearn.report.tradeoff import (
    tradeoff_html,
    tradeoff_markdown,
    tradeoff_png,
    write_tradeoff,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def point(label, method, params, score, status="finished", error=None):
    return {
        "label": label,
        "method": method,
        "options": {},
        "trainable_params": params,
        "percent_of_backbone": 100.0 * params / 22_713_216,
        "score": score,
        "seconds": None if score is None else 41.25,
        "run_id": None if score is None else 7,
        "status": status,
        "error": error,
    }


def result(*points):
    return {
        "task": "sst2",
        "metric": "accuracy",
        "backbone": {"name": "all-MiniLM-L6-v2", "parameters": 22_713_216},
        "points": list(points),
    }


FULL = point("full fine-tuning", "full", 22_713_216, 0.9)
BIG = point("houlsby m=64", "houlsby", 753_026, 0.861)
SMALL = point("houlsby m=8", "houlsby", 99_842, 0.9125)
FAILED = point("lora r=8", "lora", 147_456, None, "failed", "CUDA out of memory\ntraceback")


def table_rows(markdown: str) -> list[list[str]]:
    """The body rows of the Markdown table, as lists of cells."""
    lines = [line for line in markdown.splitlines() if line.startswith("| ")][1:]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_rows_sorted_by_parameters_with_signed_delta_against_full() -> None:
    rows = table_rows(tradeoff_markdown(result(FULL, BIG, SMALL)))
    assert [row[0] for row in rows] == ["houlsby m=8", "houlsby m=64", "full fine-tuning"]
    assert rows[0][2:6] == ["99,842", "0.44%", "0.9125", "+0.0125"]
    assert rows[1][4:6] == ["0.8610", "-0.0390"]
    assert rows[2][3:6] == ["100.00%", "0.9000", "+0.0000"]


def test_title_names_task_metric_and_backbone() -> None:
    title = tradeoff_markdown(result(BIG)).splitlines()[0]
    assert title.startswith("# ") and all(w in title for w in ("sst2", "accuracy", "MiniLM"))


def test_failed_point_shows_its_error_and_no_metric() -> None:
    (row,) = [r for r in table_rows(tradeoff_markdown(result(FULL, FAILED))) if r[1] == "lora"]
    assert row[4:6] == ["—", "—"]
    assert row[7] == "failed: CUDA out of memory"


def test_without_a_finished_full_run_every_delta_is_a_dash() -> None:
    pending_full = point("full fine-tuning", "full", 22_713_216, None, "pending")
    rows = table_rows(tradeoff_markdown(result(BIG, SMALL, pending_full)))
    assert [row[5] for row in rows] == ["—", "—", "—"]


def test_tiny_share_of_the_backbone_keeps_two_significant_digits() -> None:
    (row,) = table_rows(tradeoff_markdown(result(point("bitfit", "bitfit", 820, 0.8))))
    assert row[3] == "0.0036%"


def test_png_is_rendered_for_the_usual_one_point_and_no_score_cases() -> None:
    for case in (result(FULL, BIG, SMALL, FAILED), result(BIG), result(FAILED), result()):
        assert tradeoff_png(case).startswith(PNG_SIGNATURE)


def test_html_escapes_labels_and_embeds_the_figure_file() -> None:
    page = tradeoff_html(result(point("<script>alert(1)</script>", "houlsby", 10, 0.5)))
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '<img src="tradeoff.png"' in page


def test_write_tradeoff_writes_four_files_and_replaces_them(tmp_path) -> None:
    out = tmp_path / "new" / "tradeoff"
    first = result(FULL, BIG)
    paths = write_tradeoff(first, out)
    names = ["tradeoff.json", "tradeoff.md", "tradeoff.html", "tradeoff.png"]
    assert [p.name for p in paths] == names and all(p.parent == out for p in paths)
    assert json.loads(paths[0].read_text()) == first
    assert paths[3].read_bytes().startswith(PNG_SIGNATURE)
    second = result(SMALL)
    write_tradeoff(second, out)
    assert json.loads(paths[0].read_text()) == second
    assert "houlsby m=64" not in paths[1].read_text() and "houlsby m=8" in paths[1].read_text()
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
