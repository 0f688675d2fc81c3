"""Prediction files: rows in from csv, tsv, jsonl, json or parquet (or jsonl on standard input),
results out as jsonl or csv, written atomically."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..data.readers import json_row, json_value, read_table
from ..data.rules import FILE_FORMATS
from ..errors import BadData, ConfigError
from ..files import atomic_write

OUTPUT_FORMATS = ("jsonl", "csv")
STDIN = "-"


def read_rows(path: str) -> Iterator[dict[str, Any]]:
    """Rows from a csv, tsv, jsonl, json or parquet file (by extension), or jsonl on standard
    input for ``-``. Raises :class:`BadData` for a missing or unreadable file."""
    if path == STDIN:
        return _stdin_rows()
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
    return (dict(zip(table.columns, values, strict=True)) for values in zip(*columns, strict=True))


def _stdin_rows() -> Iterator[dict[str, Any]]:
    for number, line in enumerate(sys.stdin, start=1):
        if line.strip():
            where = f"standard input line {number}"
            yield json_row(json_value(line, where), where)


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
    columns = ["id"] if any("id" in row for row in rows) else []
    columns += ["task", "label", *(f"p_{label}" for label in labels)]
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        probs = row.get("probabilities") or {}
        flat = {k: v for k, v in row.items() if k != "probabilities"}
        writer.writerow({**flat, **{f"p_{label}": p for label, p in probs.items()}})
    return out.getvalue()
