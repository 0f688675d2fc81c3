"""The report as text: Markdown, one self-contained HTML page (figures embedded as base64 data
URIs, every piece of text from the results escaped) and a CSV per accuracy matrix. Markdown and
HTML render the same content, so they carry the same information."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Sequence

from .content import (
    CAPTIONS,
    COST_HEADER,
    DEFINITIONS,
    DEFINITIONS_NOTE,
    FIGURES,
    HEADLINE_HEADER,
    base_table,
    cost_rows,
    findings,
    headline_rows,
    matrix_table,
    method_label,
    overview,
    report_title,
    task_names,
)


def render_markdown(results: dict, images: dict[str, str]) -> str:
    """The report as Markdown; ``images`` maps figure name to a file name relative to it."""
    lines = [f"# {md_escape(report_title(results))}", ""]
    lines += [f"- **{label}:** {md_escape(value)}" for label, value in overview(results)]
    lines += ["", "## Headline", "", *md_table(HEADLINE_HEADER, headline_rows(results))]
    lines += ["", "## What this shows", "", md_escape(" ".join(findings(results)))]
    lines += ["", "## Definitions", "", md_escape(DEFINITIONS_NOTE), ""]
    lines += [f"- **{name}:** `{f}`: {md_escape(text)}" for name, f, text in DEFINITIONS]
    for key, method in results["methods"].items():
        lines += ["", f"## {md_escape(method_label(key, method))}", "", "Accuracy matrix R:", ""]
        lines += md_table(*matrix_table(results, key))
        base = base_table(results, key)
        if base is not None:
            lines += ["", "Base model (every task switched off):", "", *md_table(*base)]
        lines += ["", "Costs:", "", *md_table(COST_HEADER, cost_rows(results, key))]
    figures = [name for name in FIGURES if name in images]
    if figures:
        lines += ["", "## Figures"]
    for name in figures:
        lines += ["", f"![{name}]({images[name]})", "", f"*{md_escape(CAPTIONS[name])}*"]
    return "\n".join(lines) + "\n"


def render_html(results: dict, images_b64: dict[str, str]) -> str:
    """The report as one self-contained HTML page; ``images_b64`` maps figure name to PNG base64."""
    esc = html.escape
    title = esc(report_title(results))
    parts = [f"<h1>{title}</h1>", "<ul>"]
    parts += [f"<li><b>{esc(k)}:</b> {esc(v)}</li>" for k, v in overview(results)]
    parts += ["</ul>", "<h2>Headline</h2>", html_table(HEADLINE_HEADER, headline_rows(results))]
    parts += ["<h2>What this shows</h2>", f"<p>{esc(' '.join(findings(results)))}</p>"]
    parts += ["<h2>Definitions</h2>", f"<p>{esc(DEFINITIONS_NOTE)}</p>", "<ul>"]
    parts += [
        f"<li><b>{esc(name)}:</b> <code>{esc(formula)}</code>: {esc(text)}</li>"
        for name, formula, text in DEFINITIONS
    ]
    parts.append("</ul>")
    for key, method in results["methods"].items():
        parts += [f"<h2>{esc(method_label(key, method))}</h2>", "<p>Accuracy matrix R:</p>"]
        parts.append(html_table(*matrix_table(results, key)))
        base = base_table(results, key)
        if base is not None:
            parts += ["<p>Base model (every task switched off):</p>", html_table(*base)]
        parts.append("<p>Costs:</p>")
        parts.append(html_table(COST_HEADER, cost_rows(results, key)))
    figures = [name for name in FIGURES if name in images_b64]
    if figures:
        parts.append("<h2>Figures</h2>")
    parts += [_html_figure(name, images_b64[name]) for name in figures]
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


CSS = (
    "body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem}"
    "table{border-collapse:collapse;margin:.5rem 0}"
    "th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}"
    "th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}"
    "img{max-width:100%}figcaption{font-style:italic;margin-top:.3rem}"
)


def md_escape(text: str) -> str:
    """Text from the results, safe in Markdown prose and tables (backslash escapes, one line)."""
    escaped = re.sub(r"([\\`\[\]<>|])", r"\\\1", " ".join(str(text).split()))
    return "\\" + escaped if escaped.startswith("#") else escaped


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(md_escape(h) for h in header) + " |"]
    lines.append("|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|")
    lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    return lines


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
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


def matrix_csv(results: dict, key: str) -> str:
    """A method's matrix, a row per step; where the base model was measured, two more columns
    (its perplexity and share of greedy answers identical to it after that step, every task
    switched off) and a last row ``before`` with the recorded reference and no task scores."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    names = task_names(results)
    steps = results["methods"][key].get("base")
    reference = results.get("base_reference")
    base = bool(steps) and reference is not None
    writer.writerow(["after_task", *names, *(BASE_COLUMNS if base else ())])
    rows = zip(names, results["methods"][key]["matrix"], steps or [None] * len(names), strict=True)
    for name, row, step in rows:
        cells = [name, *("" if v is None else v for v in row)]
        writer.writerow(cells + (_base_cells(step) if base else []))
    if base:
        writer.writerow(["before", *[""] * len(names), reference["perplexity"], 1.0])
    return buffer.getvalue()


BASE_COLUMNS = ("base_perplexity", "base_answers_identical")


def _base_cells(step: dict | None) -> list:
    return ["", ""] if step is None else [step["perplexity"], step["answers_identical"]]
