"""Reading one file into a table: csv and tsv, JSON arrays and JSON lines, parquet."""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from ..errors import BadData
from . import rules
from .columns import require_unique
from .files import extension
from .glue import COLA_COLUMNS, first_tsv_row, is_cola_row
from .messages import not_utf8, one_line, show, too_many_rows, unreadable
from .tables import Table


def read_table(source: Path, name: str, glue_task: str | None) -> Table:
    path, fmt = source / name, extension(name)
    if fmt in ("csv", "tsv"):
        headerless = glue_task == "cola" and is_cola_row(first_tsv_row(path))
        return _read_delimited(path, name, fmt == "tsv", COLA_COLUMNS if headerless else None)
    if fmt == "parquet":
        return _read_parquet(path, name)
    return _read_json(path, name)


def _read_delimited(path: Path, name: str, tsv: bool, columns: tuple[str, ...] | None) -> Table:
    """csv with the usual quoting, or tsv with none (GLUE's text holds bare quotes)."""
    rows, lines, blanks = _parse_delimited(path, name, tsv)
    if columns is None:
        columns = tuple(c.strip() for c in rows[0]) if rows else ()
        rows, lines = rows[1:], lines[1:]
    if len(rows) > rules.MAX_ROWS:
        raise too_many_rows(name)
    require_unique(name, columns)
    for row, line in zip(rows, lines, strict=True):
        if len(row) != len(columns):
            raise BadData(
                f"{name} line {line} has {len(row)} fields where {len(columns)} were expected; "
                f"check the delimiter ({'tab' if tsv else 'comma'}) and the quoting"
            )
    index = {c: i for i, c in enumerate(columns)}
    return Table(
        name,
        columns,
        len(rows),
        lambda c: [row[index[c]] for row in rows],
        lines,
        blank_lines=tuple(blanks),
    )


def _parse_delimited(
    path: Path, name: str, tsv: bool
) -> tuple[list[list[str]], list[int], list[int]]:
    """The rows, the line each starts on, and the blank lines (skipped)."""
    rows: list[list[str]] = []
    lines: list[int] = []
    blanks: list[int] = []
    quoting = csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter="\t" if tsv else ",", quoting=quoting, strict=True)
            end = 0  # the last line of the previous row: rows may span lines
            for row in reader:
                # csv gives [] for a blank line, typically the last one; [" "] for one of spaces
                if row and (len(row) > 1 or row[0].strip()):
                    rows.append(row)
                    lines.append(end + 1)
                    if (
                        len(rows) > rules.MAX_ROWS + 1
                    ):  # the header too; stop before memory runs out
                        raise too_many_rows(name)
                else:
                    blanks.append(reader.line_num)
                end = reader.line_num
    except UnicodeDecodeError as exc:
        raise not_utf8(path, name) from exc
    except csv.Error as exc:
        raise BadData(
            f"{name} line {reader.line_num}: {one_line(exc)}; check the quoting and the delimiter"
        ) from exc
    except OSError as exc:
        raise unreadable(name, exc) from exc
    return rows, lines, blanks


def _read_json(path: Path, name: str) -> Table:
    """A JSON array of objects, or JSON lines (one object per line), whatever the extension."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise not_utf8(path, name) from exc
    except OSError as exc:
        raise unreadable(name, exc) from exc
    if text.lstrip().startswith("["):
        rows = json_value(text, name)
        if not isinstance(rows, list):  # trailing text is a JSONDecodeError, so this is rare
            raise BadData(f"{name} is not a JSON array of objects; write one object per row")
        if len(rows) > rules.MAX_ROWS:
            raise too_many_rows(name)
        return _object_table(name, [json_row(v, f"{name} row {i + 1}") for i, v in enumerate(rows)])
    # Split on "\n" only: str.splitlines would also split inside text at U+2028 and friends.
    parts = text.split("\n")
    parts = parts[:-1] if parts and parts[-1] == "" else parts  # the final newline ends a line
    numbered = [(i + 1, line) for i, line in enumerate(parts) if line.strip()]
    blanks = tuple(i + 1 for i, line in enumerate(parts) if not line.strip())
    if len(numbered) > rules.MAX_ROWS:
        raise too_many_rows(name)
    if len(numbered) > 1 and _one_object(text):
        raise BadData(
            f"{name} holds one JSON object over several lines, not rows; write a JSON array "
            "of objects ([{...}, ...]) or JSON lines (one object per line)"
        )
    rows = [
        json_row(json_value(line, f"{name} line {i}"), f"{name} line {i}") for i, line in numbered
    ]
    return replace(_object_table(name, rows, [i for i, _ in numbered]), blank_lines=blanks)


def _one_object(text: str) -> bool:
    """Whether ``text`` is a single JSON object (JSON lines stop parsing at the second line)."""
    try:
        return isinstance(json.loads(text), dict)
    except (RecursionError, ValueError):
        return False


def json_value(text: str, where: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        line = f" line {exc.lineno}" if exc.lineno > 1 else ""
        raise BadData(
            f"{where}{line}: invalid JSON ({exc.msg}, column {exc.colno}); fix or remove it"
        ) from exc
    except _DuplicateKey as exc:
        raise BadData(
            f"{where}: duplicated key {show(exc.args[0])} in one object; remove one"
        ) from exc
    except (RecursionError, ValueError) as exc:  # too deep, or an int of over 4300 digits
        raise BadData(f"{where}: JSON that Python cannot hold ({one_line(exc)})") from exc


class _DuplicateKey(ValueError):
    """A JSON object naming one key twice (``json`` alone would silently keep the last)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _DuplicateKey(next(k for k, n in Counter(k for k, _ in pairs).items() if n > 1))
    return obj


def json_row(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadData(f"{where}: expected a JSON object (one row), got {type(value).__name__}")
    return value


def _object_table(name: str, rows: list[dict[str, Any]], lines: list[int] | None = None) -> Table:
    # A key missing from a row reads as None, which validation reports as a missing value.
    columns = tuple(dict.fromkeys(k for row in rows for k in row))
    return Table(name, columns, len(rows), lambda c: [row.get(c) for row in rows], lines)


def _read_parquet(path: Path, name: str) -> Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as parquet:
            columns = tuple(parquet.schema_arrow.names)
            require_unique(name, columns)  # before reading: pyarrow may trip on them first
            if parquet.metadata.num_rows > rules.MAX_ROWS:
                raise too_many_rows(name)
            table = parquet.read()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise BadData(
            f"{name} is not a readable parquet file ({one_line(exc)}); re-save it with "
            "pandas.DataFrame.to_parquet or pyarrow"
        ) from exc
    names = listed_class_names(parquet.schema_arrow.metadata)
    return Table(
        name, columns, table.num_rows, partial(arrow_values, table, name), class_names=names
    )


def listed_class_names(metadata: dict[bytes, bytes] | None) -> dict[str, tuple[str, ...]]:
    """The ClassLabel names of each column of lists of ints (``ner_tags``), as ``datasets``'
    ``to_parquet`` records them in the file's schema metadata; {} where it recorded none."""
    try:
        features = json.loads((metadata or {}).get(b"huggingface", b"{}"))["info"]["features"]
    except (KeyError, RecursionError, TypeError, ValueError):
        return {}
    if not isinstance(features, dict):
        return {}
    listed = {field: _listed_names(feature) for field, feature in features.items()}
    return {field: names for field, names in listed.items() if names is not None}


def _listed_names(feature: Any) -> tuple[str, ...] | None:
    """A list feature's ClassLabel names ({"feature": {"_type": "ClassLabel", ...}}), or None."""
    inner = feature.get("feature") if isinstance(feature, dict) else None
    if not isinstance(inner, dict) or inner.get("_type") != "ClassLabel":
        return None
    names = inner.get("names")
    return tuple(str(n) for n in names) if isinstance(names, list) else None


def arrow_values(table: Any, name: str, column: str) -> list[Any]:
    import pyarrow as pa

    try:
        return table.column(column).to_pylist()
    except (pa.ArrowException, UnicodeDecodeError, ValueError) as exc:
        raise BadData(f"{name}: cannot read column {column!r} ({one_line(exc)})") from exc
