"""Prediction files: rows in from csv, tsv, jsonl, json or parquet (or jsonl on standard input),
blank lines skipped and counted; results out as jsonl or csv, written atomically."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.readers import json_row, json_value, read_table
from ..data.rules import FILE_FORMATS
from ..errors import BadData, ConfigError
from ..files import atomic_write

OUTPUT_FORMATS = ("jsonl", "csv")
STDIN = "-"


@dataclass(frozen=True)
class InputRows:
    """The rows read, in order, and the blank lines skipped on the way (by line number)."""

    rows: list[dict[str, Any]]
    blank_lines: tuple[int, ...]
    source: str


def read_rows(path: str) -> InputRows:
    """Rows from a csv, tsv, jsonl, json or parquet file (by extension), or jsonl on standard
    input for ``-``. Blank lines are skipped and counted. Raises :class:`BadData` for a missing,
    unreadable or empty input."""
    read = _stdin_rows() if path == STDIN else _file_rows(path)
    if not read.rows:
        raise BadData(
            f"{read.source} holds no rows (an empty file, or a header alone): nothing to "
            "predict; give one row per text to label"
        )
    return read


def _file_rows(path: str) -> InputRows:
    file = Path(path).expanduser()
    fmt = file.name.rsplit(".", 1)[-1].lower() if "." in file.name else ""
    if fmt not in FILE_FORMATS:
        raise BadData(
            f"cannot tell the format of {file} from its extension; name it .csv, .tsv, .jsonl, "
            ".json or .parquet, or pass - for jsonl on standard input"
        )
    if not file.is_file():
        raise BadData(f"input file {file} does not exist; pass an existing file with --input")
    table = read_table(file.parent, file.name, None)
    columns = [table.column(c) for c in table.columns]
    rows = [dict(zip(table.columns, values, strict=True)) for values in zip(*columns, strict=True)]
    return InputRows(rows, table.blank_lines, str(file))


def _stdin_rows() -> InputRows:
    rows, blanks = [], []
    for number, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            blanks.append(number)
            continue
        where = f"standard input line {number}"
        rows.append(json_row(json_value(line, where), where))
    return InputRows(rows, tuple(blanks), "standard input")


def write_rows(rows: Sequence[dict[str, Any]], path: str | Path | None, fmt: str = "jsonl") -> None:
    """Write results as jsonl or csv (one ``p_<label>`` column per label) to ``path``,
    atomically, or to standard output when ``path`` is None or ``-``."""
    if fmt not in OUTPUT_FORMATS:
        raise ConfigError(f"unknown output format {fmt!r}; use one of {', '.join(OUTPUT_FORMATS)}")
    text = _jsonl(rows) if fmt == "jsonl" else _csv(rows)
    if path is None or str(path) == STDIN:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        atomic_write(Path(path).expanduser(), text.encode("utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"cannot write {path}: {exc.strerror or exc}; pick another output"
        ) from exc


def _jsonl(rows: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def _csv(rows: Sequence[dict[str, Any]]) -> str:
    labels = dict.fromkeys(label for row in rows for label in row.get("probabilities") or {})
    leading = dict.fromkeys(k for row in rows for k in row if k not in ("label", "probabilities"))
    columns = [*leading, "label", *(f"p_{label}" for label in labels)]
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        probs = row.get("probabilities") or {}
        flat = {k: _cell(v) for k, v in row.items() if k != "probabilities"}
        writer.writerow({**flat, **{f"p_{label}": p for label, p in probs.items()}})
    return out.getvalue()


def _cell(value: Any) -> Any:
    """A csv cell: lists and objects (a tagging row's words and entities) as JSON."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, list | dict) else value
