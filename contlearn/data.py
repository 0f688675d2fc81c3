"""Task data: a folder on disk -> validated train and dev splits.

This module owns reading a task's data folder, in one of three layouts: GLUE's original TSV
layout (``train.tsv`` + ``dev.tsv``, the task recognised by folder name or header row); a folder
of ``train.*`` and ``validation.*`` / ``dev.*`` files in csv, tsv, jsonl, json or parquet; or a
``datasets`` ``save_to_disk`` folder. It chooses the text and label columns, validates every row,
decides classification or regression and the metrics, and fingerprints the bytes it read so that
a later run can prove it trains on the same data. Every problem a user can fix raises
:class:`~contlearn.errors.BadData` with a one-line message naming the problem and the fix.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import logging
import math
import os
import re
import stat
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from .config import METRICS
from .errors import BadData

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 2 * 1024**3
# Rows per split: 2 GiB of "a,b" lines would be ~500M rows, tens of GiB once held as lists.
MAX_ROWS = 5_000_000
FILE_FORMATS = ("csv", "tsv", "jsonl", "json", "parquet")
REGRESSION_METRICS = ("pearson", "spearman")
CLASSIFICATION_METRICS = tuple(m for m in METRICS if m not in REGRESSION_METRICS)
_CHUNK = 1 << 20
_TRAIN_STEMS = ("train",)
_DEV_STEMS = ("validation", "dev")
_SHOWN_NAMES = 20  # column or file names listed in one message

# Inference: known text pairs win over single text columns; names compare case-insensitively.
_TEXT_PAIRS = (
    ("sentence1", "sentence2"),
    ("question", "sentence"),
    ("question1", "question2"),
    ("premise", "hypothesis"),
    ("#1 string", "#2 string"),
)
_TEXT_SINGLES = ("sentence", "text", "question", "review", "content", "document")
_LABEL_NAMES = (
    "label",
    "labels",
    "gold_label",
    "score",
    "quality",
    "is_duplicate",
    "target",
    "class",
    "category",
    "sentiment",
)
_INT = re.compile(r"[+-]?\d{1,18}", re.ASCII)  # longer runs of digits sort as strings
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)
_NAN = re.compile(r"[+-]?nan", re.ASCII | re.IGNORECASE)  # how str() and numpy write a hole
_INF = re.compile(r"[+-]?inf(inity)?", re.ASCII | re.IGNORECASE)


@dataclass(frozen=True)
class Split:
    """One split's rows: ``texts[i]`` holds row i's text fields in order, ``labels[i]`` its label
    (a ``str`` class for classification, a ``float`` for regression)."""

    texts: tuple[tuple[str, ...], ...]
    labels: tuple


@dataclass(frozen=True)
class TaskData:
    """A task's validated data and everything needed to check later that it is unchanged."""

    source: Path
    format: str
    glue_task: str | None
    files: tuple[str, ...]
    fingerprint: str
    text_fields: tuple[str, ...]
    label_field: str
    problem_type: str
    labels: tuple[str, ...] | None
    metrics: tuple[str, ...]
    train: Split
    dev: Split

    @property
    def metric(self) -> str:
        """The primary metric: the one that selects and compares models."""
        return self.metrics[0]


@dataclass(frozen=True)
class _Glue:
    """How one GLUE task lays out its TSV files. ``header`` is the start of its header row (None:
    the file has no header row)."""

    header: tuple[str, ...] | None
    text_fields: tuple[str, ...]
    label_field: str
    metrics: tuple[str, ...]


_COLA_COLUMNS = ("source", "label", "original label", "sentence")
_NLI_HEADER = ("index", "sentence1", "sentence2", "label")
_STSB_HEADER = ("index", "genre", "filename", "year", "old_index", "source1", "source2")
GLUE_TASKS = {
    "cola": _Glue(None, ("sentence",), "label", ("matthews", "accuracy")),
    "sst2": _Glue(("sentence", "label"), ("sentence",), "label", ("accuracy",)),
    "mrpc": _Glue(
        ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"),
        ("#1 String", "#2 String"),
        "Quality",
        ("f1", "accuracy"),
    ),
    "stsb": _Glue(
        (*_STSB_HEADER, "sentence1", "sentence2", "score"),
        ("sentence1", "sentence2"),
        "score",
        REGRESSION_METRICS,
    ),
    "qqp": _Glue(
        ("id", "qid1", "qid2", "question1", "question2", "is_duplicate"),
        ("question1", "question2"),
        "is_duplicate",
        ("f1", "accuracy"),
    ),
    # MNLI's header goes on with parse trees and a varying number of annotator labels.
    "mnli": _Glue(
        ("index", "promptID", "pairID", "genre"),
        ("sentence1", "sentence2"),
        "gold_label",
        ("accuracy",),
    ),
    "qnli": _Glue(
        ("index", "question", "sentence", "label"), ("question", "sentence"), "label", ("accuracy",)
    ),
    "rte": _Glue(_NLI_HEADER, ("sentence1", "sentence2"), "label", ("accuracy",)),
    "wnli": _Glue(_NLI_HEADER, ("sentence1", "sentence2"), "label", ("accuracy",)),
}


@dataclass(frozen=True)
class _Table:
    """One split as read: its column names and a getter for one column's values."""

    file: str  # how messages name it: a file relative to the folder, or a datasets split
    columns: tuple[str, ...]
    rows: int
    column: Callable[[str], list[Any]]
    lines: Sequence[int] | None = None  # each row's first line in a text file; None: row numbers

    def where(self, i: int) -> str:
        if self.lines is None:
            return f"{self.file} row {i + 1}"
        return f"{self.file} line {self.lines[i]}"


@dataclass(frozen=True)
class _Folder:
    """What a data folder holds: its layout, the files it read, and the two splits."""

    format: str
    glue_task: str | None
    files: tuple[str, ...]
    train: _Table
    dev: _Table


# ---------------------------------------------------------------------------------------------
# The entry points


def load_task_data(
    path: str | Path,
    *,
    text_fields: Sequence[str] | str | None = None,
    label_field: str | None = None,
    metric: str | None = None,
) -> TaskData:
    """Read and validate the task data in folder ``path``.

    ``text_fields`` / ``label_field`` name the columns to use (``text_fields`` may also be one
    comma-separated string); left out, they come from the GLUE task or are inferred from common
    column names. ``metric`` becomes the primary metric. Raises :class:`BadData`.
    """
    source = _data_folder(path)
    folder = _read_folder(source)
    glue = GLUE_TASKS.get(folder.glue_task or "")
    texts, label = _choose_fields(folder.train, glue, text_fields, label_field)
    for table in (folder.train, folder.dev):
        _require_columns(table, (*texts, label))
    train_texts, dev_texts = _texts(folder.train, texts), _texts(folder.dev, texts)
    vocab, train_labels, dev_labels = _labels(folder, label)
    data = TaskData(
        source=source,
        format=folder.format,
        glue_task=folder.glue_task,
        files=folder.files,
        fingerprint=data_fingerprint(source, folder.files),
        text_fields=texts,
        label_field=label,
        problem_type="regression" if vocab is None else "classification",
        labels=vocab,
        metrics=_metrics(glue, vocab is None, metric),
        train=Split(train_texts, train_labels),
        dev=Split(dev_texts, dev_labels),
    )
    log.info("read %s: %d train / %d dev rows", data.source, folder.train.rows, folder.dev.rows)
    return data


def data_fingerprint(source: Path, files: Sequence[str]) -> str:
    """sha256 over each file in sorted order: its relative name, NUL, its size in decimal, NUL,
    its bytes (streamed). The size keeps one file's bytes from running into the next name."""
    digest = hashlib.sha256()
    for name in sorted(files):
        path = Path(source) / name
        try:
            digest.update(f"{name}\0{path.stat().st_size}\0".encode())
            with path.open("rb") as f:
                for chunk in iter(partial(f.read, _CHUNK), b""):
                    digest.update(chunk)
        except OSError as exc:
            raise _unreadable(name, exc) from exc
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# The folder: which layout, which files


def _data_folder(path: str | Path) -> Path:
    folder = Path(path).expanduser()
    if not folder.exists():
        raise BadData(f"data folder {folder} does not exist; pass the folder that holds the data")
    if not folder.is_dir():
        raise BadData(f"{folder} is a file, not a folder; pass the folder that holds the data")
    return folder.resolve()


def _read_folder(source: Path) -> _Folder:
    if (source / "dataset_dict.json").is_file():
        folder = _read_saved_dataset(source)
    else:
        folder = _read_file_folder(source)
    for table in (folder.train, folder.dev):
        if table.rows == 0:
            raise BadData(f"{table.file} in {source} has no data rows; add rows to it")
        if table.rows > MAX_ROWS:  # the readers of text files stop earlier, as they read
            raise _too_many_rows(table.file)
    return folder


def _read_file_folder(source: Path) -> _Folder:
    names = _folder_files(source)
    train = _one_file(source, names, _TRAIN_STEMS, "training")
    _check_file(source, train)
    glue_task = _glue_task(source, train)
    matched = [n for n in names if n.lower() == "dev_matched.tsv"]
    if glue_task == "mnli" and matched:
        dev = matched[0]  # MNLI's dev split; dev_mismatched is a second test of the same task
    else:
        dev = _one_file(source, names, _DEV_STEMS, "validation")
    _check_file(source, dev)
    fmt = "glue" if glue_task else _extension(train)
    train_table = read_table(source, train, glue_task)
    dev_table = read_table(source, dev, glue_task)
    return _Folder(fmt, glue_task, tuple(sorted({train, dev})), train_table, dev_table)


def _folder_files(source: Path) -> list[str]:
    try:
        # A folder named like a data file stays listed, so that _check_file can name it.
        entries = source.iterdir()
        return sorted(
            p.name for p in entries if not p.is_dir() or _extension(p.name) in FILE_FORMATS
        )
    except OSError as exc:
        raise _unreadable(str(source), exc) from exc


def _one_file(source: Path, names: list[str], stems: tuple[str, ...], split: str) -> str:
    wanted = {f"{stem}.{ext}" for stem in stems for ext in FILE_FORMATS}
    found = [n for n in names if n.lower() in wanted]
    if len(found) > 1:
        raise BadData(
            f"{len(found)} {split} files in {source}: {' and '.join(found)}; keep only one of them"
        )
    if not found:
        example = " or ".join(f"{stem}.<{'|'.join(FILE_FORMATS)}>" for stem in stems)
        raise BadData(
            f"no {split} split in {source}: found {_listing(names) or 'no files'}; "
            f"add {example} (or point at a datasets save_to_disk folder)"
        )
    return found[0]


def _extension(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower()


def _check_file(source: Path, name: str) -> None:
    """Refuse a file that leads outside the folder (the fingerprint would not cover what is read
    there, nor could another copy of the folder reproduce it), that is not a regular file (a
    named pipe would block the read forever) or that is too large to hold."""
    _check_inside(source, name)
    try:
        info = (source / name).stat()
    except OSError as exc:
        raise _unreadable(name, exc) from exc
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a pipe, socket or device"
        raise BadData(f"{name} in {source} is {kind}; replace it with a regular file of data")
    size = info.st_size
    if size > MAX_FILE_BYTES:
        raise BadData(
            f"{name} is {size} bytes, over the {MAX_FILE_BYTES}-byte limit (MAX_FILE_BYTES); "
            "split it or sample it into a smaller file"
        )


def _check_inside(source: Path, name: str) -> None:
    try:
        target = (source / name).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop, before Python 3.13
        raise BadData(f"cannot resolve {name} in {source} ({exc}); fix or remove the link") from exc
    if not target.is_relative_to(source):
        raise BadData(
            f"{name} in {source} is a symlink to {target}, outside the data folder; "
            "copy the data into the folder instead"
        )


# ---------------------------------------------------------------------------------------------
# GLUE's original layout


def _glue_task(source: Path, train: str) -> str | None:
    """The GLUE task of a folder holding ``train.tsv``: by folder name ("SST-2" -> sst2), else by
    the header row. RTE and WNLI share a header, so that header alone names no task."""
    if train.lower() != "train.tsv":
        return None
    name = re.sub(r"[-_\s]", "", source.name.lower())
    if name in GLUE_TASKS:
        return name
    head = tuple(_first_tsv_row(source / train))
    matches = [t for t, g in GLUE_TASKS.items() if g.header and head[: len(g.header)] == g.header]
    return matches[0] if len(matches) == 1 else None


def _first_tsv_row(path: Path) -> list[str]:
    # Only a peek to recognise the layout: the full read reports bad bytes with their offset.
    try:
        with path.open(encoding="utf-8-sig", errors="replace") as f:
            return f.readline().rstrip("\r\n").split("\t")
    except OSError as exc:
        raise _unreadable(path.name, exc) from exc


def _is_cola_row(row: list[str]) -> bool:
    """CoLA's files have no header: a first row of 4 fields with a 0/1 label is data."""
    return len(row) == 4 and row[1] in ("0", "1")


# ---------------------------------------------------------------------------------------------
# Reading one file


def read_table(source: Path, name: str, glue_task: str | None) -> _Table:
    path, fmt = source / name, _extension(name)
    if fmt in ("csv", "tsv"):
        headerless = glue_task == "cola" and _is_cola_row(_first_tsv_row(path))
        return _read_delimited(path, name, fmt == "tsv", _COLA_COLUMNS if headerless else None)
    if fmt == "parquet":
        return _read_parquet(path, name)
    return _read_json(path, name)


def _read_delimited(path: Path, name: str, tsv: bool, columns: tuple[str, ...] | None) -> _Table:
    """csv with the usual quoting, or tsv with none (GLUE's text holds bare quotes)."""
    rows, lines = _parse_delimited(path, name, tsv)
    if columns is None:
        columns = tuple(c.strip() for c in rows[0]) if rows else ()
        rows, lines = rows[1:], lines[1:]
    if len(rows) > MAX_ROWS:
        raise _too_many_rows(name)
    _require_unique(name, columns)
    for row, line in zip(rows, lines, strict=True):
        if len(row) != len(columns):
            raise BadData(
                f"{name} line {line} has {len(row)} fields where {len(columns)} were expected; "
                f"check the delimiter ({'tab' if tsv else 'comma'}) and the quoting"
            )
    index = {c: i for i, c in enumerate(columns)}
    return _Table(name, columns, len(rows), lambda c: [row[index[c]] for row in rows], lines)


def _parse_delimited(path: Path, name: str, tsv: bool) -> tuple[list[list[str]], list[int]]:
    rows: list[list[str]] = []
    lines: list[int] = []
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
                    if len(rows) > MAX_ROWS + 1:  # + 1: the header; stop before memory runs out
                        raise _too_many_rows(name)
                end = reader.line_num
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, name) from exc
    except csv.Error as exc:
        raise BadData(
            f"{name} line {reader.line_num}: {_one_line(exc)}; check the quoting and the delimiter"
        ) from exc
    except OSError as exc:
        raise _unreadable(name, exc) from exc
    return rows, lines


def _read_json(path: Path, name: str) -> _Table:
    """A JSON array of objects, or JSON lines (one object per line), whatever the extension."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, name) from exc
    except OSError as exc:
        raise _unreadable(name, exc) from exc
    if text.lstrip().startswith("["):
        rows = json_value(text, name)
        if not isinstance(rows, list):  # trailing text is a JSONDecodeError, so this is rare
            raise BadData(f"{name} is not a JSON array of objects; write one object per row")
        if len(rows) > MAX_ROWS:
            raise _too_many_rows(name)
        return _object_table(name, [json_row(v, f"{name} row {i + 1}") for i, v in enumerate(rows)])
    # Split on "\n" only: str.splitlines would also split inside text at U+2028 and friends.
    numbered = [(i + 1, line) for i, line in enumerate(text.split("\n")) if line.strip()]
    if len(numbered) > MAX_ROWS:
        raise _too_many_rows(name)
    if len(numbered) > 1 and _one_object(text):
        raise BadData(
            f"{name} holds one JSON object over several lines, not rows; write a JSON array "
            "of objects ([{...}, ...]) or JSON lines (one object per line)"
        )
    rows = [
        json_row(json_value(line, f"{name} line {i}"), f"{name} line {i}") for i, line in numbered
    ]
    return _object_table(name, rows, [i for i, _ in numbered])


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
            f"{where}: duplicated key {_show(exc.args[0])} in one object; remove one"
        ) from exc
    except (RecursionError, ValueError) as exc:  # too deep, or an int of over 4300 digits
        raise BadData(f"{where}: JSON that Python cannot hold ({_one_line(exc)})") from exc


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


def _object_table(name: str, rows: list[dict[str, Any]], lines: list[int] | None = None) -> _Table:
    # A key missing from a row reads as None, which validation reports as a missing value.
    columns = tuple(dict.fromkeys(k for row in rows for k in row))
    return _Table(name, columns, len(rows), lambda c: [row.get(c) for row in rows], lines)


def _read_parquet(path: Path, name: str) -> _Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as parquet:
            columns = tuple(parquet.schema_arrow.names)
            _require_unique(name, columns)  # before reading: pyarrow may trip on them first
            if parquet.metadata.num_rows > MAX_ROWS:
                raise _too_many_rows(name)
            table = parquet.read()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise BadData(
            f"{name} is not a readable parquet file ({_one_line(exc)}); re-save it with "
            "pandas.DataFrame.to_parquet or pyarrow"
        ) from exc
    return _Table(name, columns, table.num_rows, partial(_arrow_values, table, name))


def _arrow_values(table: Any, name: str, column: str) -> list[Any]:
    import pyarrow as pa

    try:
        return table.column(column).to_pylist()
    except (pa.ArrowException, UnicodeDecodeError, ValueError) as exc:
        raise BadData(f"{name}: cannot read column {column!r} ({_one_line(exc)})") from exc


# ---------------------------------------------------------------------------------------------
# A folder written by datasets' save_to_disk


def _read_saved_dataset(source: Path) -> _Folder:
    files = _all_files(source)
    splits = _load_dataset_dict(source)
    dev_names = [s for s in _DEV_STEMS if s in splits]
    if "train" not in splits or len(dev_names) != 1:
        need = "a train split" if "train" not in splits else "one validation (or dev) split"
        raise BadData(
            f"the saved dataset in {source} has splits {_listing(list(splits))}; it needs {need}: "
            "re-save a DatasetDict with train and validation"
        )
    train, dev = (_dataset_table(splits[s], s) for s in ("train", dev_names[0]))
    return _Folder("datasets", None, files, train, dev)


def _all_files(source: Path) -> tuple[str, ...]:
    """Every file under ``source``, checked; symlinked folders are not walked into (a link that
    stays inside only repeats files already listed; one that leaves is refused)."""
    files = []
    for root, dirs, names in os.walk(source):
        base = Path(root).relative_to(source)
        for d in dirs:
            _check_inside(source, (base / d).as_posix())
        dirs[:] = sorted(d for d in dirs if not (source / base / d).is_symlink())
        files += [(base / n).as_posix() for n in names]
    for name in files:
        _check_file(source, name)
    return tuple(sorted(files))


def _load_dataset_dict(source: Path) -> Any:
    import datasets  # slow to import: only for folders that need it

    _check_saved_splits(source)
    try:
        splits = datasets.load_from_disk(str(source))
    except Exception as exc:  # noqa: BLE001
        # datasets reads its json and arrow files deep inside; a damaged folder surfaces as
        # whatever broke there (KeyError, IndexError, ArrowInvalid, ...), never as one type.
        raise BadData(
            f"cannot load the saved dataset in {source} ({type(exc).__name__}: "
            f"{_one_line(exc)}); re-save it with DatasetDict.save_to_disk"
        ) from exc
    if not isinstance(splits, datasets.DatasetDict):
        raise BadData(f"{source} holds a single Dataset; re-save it as a DatasetDict with splits")
    return splits


def _check_saved_splits(source: Path) -> None:
    """Refuse what datasets would trip on or follow out of the folder: each split named in
    dataset_dict.json is a folder here, and each data file its state.json lists is in that
    folder. An empty split lists none (save_to_disk writes no arrow file for it), and datasets
    cannot load that."""
    for split in _saved_list(source, "dataset_dict.json", "splits"):
        if not _plain_name(split) or not (source / split).is_dir():
            raise _bad_saved(
                source, f"dataset_dict.json names split {_show(split)}, no folder here"
            )
        files = _saved_list(source, f"{split}/state.json", "_data_files")
        names = [f.get("filename") if isinstance(f, dict) else None for f in files]
        if not names and split in ("train", *_DEV_STEMS):
            raise BadData(f"split {split!r} in {source} has no data rows; add rows to it")
        for name in names:
            if not _plain_name(name) or not (source / split / name).is_file():
                raise _bad_saved(source, f"split {split!r} lacks its data file {_show(name)}")


def _saved_list(source: Path, name: str, key: str) -> list[Any]:
    """The list under ``key`` in ``name``, a JSON file of a saved dataset."""
    try:
        raw = json.loads((source / name).read_bytes())
    except (OSError, RecursionError, ValueError) as exc:  # ValueError: bad JSON or encoding
        problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else _one_line(exc)
        raise _bad_saved(source, f"{name}: {problem}") from exc
    value = raw.get(key) if isinstance(raw, dict) else None
    if not isinstance(value, list):
        raise _bad_saved(source, f"{name} holds no {key!r} list")
    return value


def _plain_name(name: Any) -> bool:
    """A file or folder name that stays in its folder."""
    return isinstance(name, str) and name not in ("", ".", "..") and not set(name) & set("/\\")


def _bad_saved(source: Path, problem: str) -> BadData:
    return BadData(
        f"cannot load the saved dataset in {source} ({problem}); "
        "re-save it with DatasetDict.save_to_disk"
    )


def _dataset_table(ds: Any, split: str) -> _Table:
    import datasets

    name = f"split {split!r}"

    def column(field: str) -> list[Any]:
        values = _arrow_values(ds.with_format("arrow")[:], name, field)
        feature = ds.features.get(field)
        if isinstance(feature, datasets.ClassLabel):
            values = _class_names(values, feature.names, name)
        return values

    return _Table(name, tuple(ds.column_names), ds.num_rows, column)


def _class_names(values: list[Any], names: list[str], split: str) -> list[str | None]:
    """ClassLabel ints -> their names; -1, datasets' mark for "no label", reads as missing."""
    out: list[str | None] = []
    for i, value in enumerate(values):
        if value is not None and value >= len(names):
            raise BadData(
                f"{split} row {i + 1}: label {value} is outside the {len(names)} ClassLabel "
                "names; fix the label"
            )
        out.append(None if value is None or value < 0 else names[value])
    return out


# ---------------------------------------------------------------------------------------------
# Choosing the columns


def _choose_fields(
    table: _Table,
    glue: _Glue | None,
    text_fields: Sequence[str] | str | None,
    label_field: str | None,
) -> tuple[tuple[str, ...], str]:
    texts = _given_fields(text_fields)
    texts = texts or (glue.text_fields if glue else _infer_texts(table))
    label = label_field or (glue.label_field if glue else _infer_label(table))
    if label in texts:
        raise BadData(f"column {label!r} cannot be both a text field and the label field")
    return texts, label


def _given_fields(text_fields: Sequence[str] | str | None) -> tuple[str, ...] | None:
    if text_fields is None:
        return None
    if isinstance(text_fields, str):  # "a,b" as typed after --text-fields
        text_fields = text_fields.split(",")
    fields = tuple(f.strip() for f in text_fields)
    if not fields or not all(fields):
        raise BadData(f"text fields {fields!r} must name columns; pass --text-fields a,b")
    return fields


def _infer_texts(table: _Table) -> tuple[str, ...]:
    by_name = _by_lower_name(table.columns)
    options = [
        (x, y) for a, b in _TEXT_PAIRS for x in by_name.get(a, []) for y in by_name.get(b, [])
    ]
    options = options or [(x,) for n in _TEXT_SINGLES for x in by_name.get(n, [])]
    if len(options) != 1:
        raise BadData(
            f"cannot tell which column(s) hold the text in {table.file} "
            f"({_candidates(options)}); columns are {_listing(table.columns)}: "
            "pass --text-fields a,b"
        )
    return options[0]


def _infer_label(table: _Table) -> str:
    by_name = _by_lower_name(table.columns)
    options = [x for n in _LABEL_NAMES for x in by_name.get(n, [])]
    if len(options) != 1:
        raise BadData(
            f"cannot tell which column holds the label in {table.file} "
            f"({_candidates(options)}); columns are {_listing(table.columns)}: "
            "pass --label-field L"
        )
    return options[0]


def _by_lower_name(columns: Sequence[str]) -> dict[str, list[str]]:
    by_name: dict[str, list[str]] = {}
    for column in columns:
        by_name.setdefault(column.lower(), []).append(column)
    return by_name


def _candidates(options: Sequence[Any]) -> str:
    if not options:
        return "no column has a usual name"
    return f"several fit: {_listing([str(o) for o in options])}"


def _require_columns(table: _Table, fields: Sequence[str]) -> None:
    missing = [f for f in fields if f not in table.columns]
    if missing:
        raise BadData(
            f"{table.file} has no column {_show(missing[0])}; columns are "
            f"{_listing(table.columns)}: pass --text-fields a,b / --label-field L that exist"
        )


def _require_unique(name: str, columns: Sequence[str]) -> None:
    twice = [c for c, n in Counter(columns).items() if n > 1]
    if twice:
        raise BadData(f"{name} has the column {_show(twice[0])} twice; rename one of them")


# ---------------------------------------------------------------------------------------------
# Validating texts and labels


def _texts(table: _Table, fields: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    return tuple(zip(*(_text_column(table, f) for f in fields), strict=True))


def _text_column(table: _Table, field: str) -> list[str]:
    texts = []
    for i, value in enumerate(table.column(field)):
        if _missing(value):
            raise BadData(
                f"{table.where(i)}: empty text in column {field!r}; fill it in or drop the row"
            )
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise BadData(
                f"{table.where(i)}: column {field!r} holds a {type(value).__name__}, not text; "
                "pass text columns with --text-fields a,b"
            )
        texts.append(value)
    return texts


def _missing(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, float) and math.isnan(value))


def _raw_labels(table: _Table, field: str) -> list[Any]:
    values = table.column(field)
    for i, value in enumerate(values):
        if _missing(value) or (isinstance(value, str) and _NAN.fullmatch(value.strip())):
            raise BadData(
                f"{table.where(i)}: missing label in column {field!r}; fill it in or drop the row"
            )
        if not isinstance(value, (str, int, float)):
            raise BadData(
                f"{table.where(i)}: the label in column {field!r} is a {type(value).__name__}, "
                "not one value; pass a label column with --label-field L"
            )
    return values


def _labels(folder: _Folder, field: str) -> tuple[tuple[str, ...] | None, tuple, tuple]:
    """(vocabulary, train labels, dev labels); the vocabulary is None for regression."""
    train_raw, dev_raw = _raw_labels(folder.train, field), _raw_labels(folder.dev, field)
    if folder.glue_task == "stsb" or _continuous(train_raw):
        return None, _float_labels(folder.train, train_raw), _float_labels(folder.dev, dev_raw)
    train = tuple(_label_text(v) for v in train_raw)
    vocab = _vocabulary(train)
    return vocab, train, _dev_classes(folder.dev, dev_raw, vocab)


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or None if it is not a number (bools are not)."""
    if isinstance(value, str):
        if not _NUMBER.fullmatch(value.strip()):
            return None
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range
        return None
    return number if math.isfinite(number) else None


def _continuous(values: Sequence[Any]) -> bool:
    """Regression labels: all numbers, and not all whole (0/1 or 1-5 labels are classes). An
    infinity counts as a number here, so that _float_labels refuses it instead of it becoming a
    class of its own."""
    numbers = [_number(v) for v in values]
    if not all(n is not None or _infinite(v) for n, v in zip(numbers, values, strict=True)):
        return False
    return any(n is not None and not n.is_integer() for n in numbers)


def _infinite(value: Any) -> bool:
    if isinstance(value, str):
        return bool(_INF.fullmatch(value.strip()))
    return isinstance(value, float) and math.isinf(value)


def _float_labels(table: _Table, values: Sequence[Any]) -> tuple[float, ...]:
    labels = []
    for i, value in enumerate(values):
        number = _number(value)
        if number is None:
            raise BadData(
                f"{table.where(i)}: label {_show(value)} is not a finite number, and this task is "
                "regression; fix the label"
            )
        labels.append(number)
    return tuple(labels)


def _label_text(value: str | int | float) -> str:
    """A class label as a string: 1 and 1.0 from typed files both read "1"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value.strip() if isinstance(value, str) else str(value)


def _vocabulary(labels: Sequence[str]) -> tuple[str, ...]:
    """The training labels in a stable order: numeric if all are integers, else sorted."""
    unique = set(labels)
    if all(_INT.fullmatch(label) for label in unique):
        return tuple(sorted(unique, key=lambda label: (int(label), label)))
    return tuple(sorted(unique))


def _dev_classes(table: _Table, values: Sequence[Any], vocab: tuple[str, ...]) -> tuple[str, ...]:
    labels = tuple(_label_text(v) for v in values)
    known = set(vocab)
    for i, label in enumerate(labels):
        if label not in known:
            raise BadData(
                f"{table.where(i)}: label {_show(label)} never appears in the training split "
                f"(labels: {_listing(vocab)}); fix it or add training rows with it"
            )
    return labels


def _metrics(glue: _Glue | None, regression: bool, metric: str | None) -> tuple[str, ...]:
    """GLUE's metrics for its task, else the usual ones; an explicit ``metric`` goes first."""
    defaults = REGRESSION_METRICS if regression else ("accuracy",)
    if glue and (glue.metrics[0] in REGRESSION_METRICS) == regression:
        defaults = glue.metrics
    if metric is None:
        return defaults
    if metric not in METRICS:
        raise BadData(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    if (metric in REGRESSION_METRICS) != regression:
        kind = "numbers (regression)" if regression else "classes"
        fits = REGRESSION_METRICS if regression else CLASSIFICATION_METRICS
        raise BadData(
            f"metric {metric!r} does not fit this task, whose labels are {kind}; "
            f"use one of {', '.join(fits)}"
        )
    return (metric, *(m for m in defaults if m != metric))


# ---------------------------------------------------------------------------------------------
# Messages


def _show(value: Any) -> str:
    """``repr(value)``, cut short: a message quotes values from the file, not whole fields."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(_show(n) for n in names[:_SHOWN_NAMES])
    return shown + (f" and {len(names) - _SHOWN_NAMES} more" if len(names) > _SHOWN_NAMES else "")


def _one_line(exc: BaseException) -> str:
    """A parser's message on one line and of modest length."""
    return " ".join(str(exc).split())[:300]


def _too_many_rows(name: str) -> BadData:
    return BadData(
        f"{name} has over {MAX_ROWS} rows, the limit per split (MAX_ROWS); "
        "sample it into a smaller file"
    )


def _unreadable(name: str, exc: OSError) -> BadData:
    return BadData(f"cannot read {name}: {exc.strerror or _one_line(exc)}; check that it exists")


def _not_utf8(path: Path, name: str) -> BadData:
    offset, byte = _first_bad_byte(path)
    with path.open("rb") as f:
        if f.read(2) in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
            return BadData(
                f"{name} is UTF-16 (it starts with a UTF-16 byte-order mark), not UTF-8; "
                "re-save the file as UTF-8"
            )
    return BadData(
        f"{name} is not UTF-8: byte 0x{byte:02x} at offset {offset} cannot be decoded; "
        "re-save the file as UTF-8"
    )


def _first_bad_byte(path: Path) -> tuple[int, int]:
    """(offset, value) of the first byte that is not valid UTF-8: the text reader's error gives
    a position inside its buffer, not in the file."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with path.open("rb") as f:
        while True:
            chunk = f.read(_CHUNK)
            start = offset - len(decoder.getstate()[0])  # the decoder keeps a partial character
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                return start + exc.start, exc.object[exc.start]
            if not chunk:
                return offset, 0  # the file changed since it was read
            offset += len(chunk)
