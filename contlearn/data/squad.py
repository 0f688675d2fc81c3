"""Extractive question answering data: a folder's train and dev splits as checked rows.

A QA folder is either SQuAD JSON (``train.json`` and ``dev.json`` or ``validation.json``, each
``{"data": [{"paragraphs": [{"context", "qas": [...]}]}]}``, v1.1 or v2.0 with
``is_impossible``) or a table per split (jsonl, json lines or parquet files, or a ``datasets``
``save_to_disk`` folder) with ``question``, ``context`` and ``answers`` columns and an
optional ``id``. ``answers`` is a dict of lists, ``{"text": [...], "answer_start": [...]}``
(the Hugging Face squad layout), or a list of ``{"text", "answer_start"}`` objects.

Every answer is checked against its context at intake: ``context[start:start + len(text)]``
must be ``text``. Any problem raises :class:`~contlearn.errors.BadData` in one line naming the
file, the question id and the fix; nothing is read half.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BadData, ContlearnError
from . import rules
from .files import check_file, extension
from .messages import listing, show, too_many_rows, unreadable
from .readers import json_value, read_table
from .rules import DEV_STEMS, TRAIN_STEMS
from .saved import read_saved_dataset
from .tables import Table

QA_FORMATS = ("json", "jsonl", "parquet")
QA_COLUMNS = ("question", "context", "answers")


@dataclass(frozen=True)
class Answer:
    """One gold answer: its text and the character where it starts in the context."""

    text: str
    start: int


@dataclass(frozen=True)
class QARow:
    """One question over one context; ``answers`` is empty when ``impossible`` (SQuAD v2)."""

    id: str
    question: str
    context: str
    answers: tuple[Answer, ...]
    impossible: bool


@dataclass(frozen=True)
class QAData:
    """A QA folder's two splits; ``v2`` when any row has no answer (SQuAD v2.0's no-answer)."""

    train: tuple[QARow, ...]
    dev: tuple[QARow, ...]
    v2: bool
    files: tuple[str, ...]


def read_qa_folder(source: Path) -> QAData:
    """The checked rows of the QA folder ``source`` (an existing folder)."""
    if (source / "dataset_dict.json").is_file():
        saved = read_saved_dataset(source)
        train, dev, files = _table_rows(saved.train), _table_rows(saved.dev), saved.files
    else:
        names = _names(source)
        train_name = _one_file(source, names, TRAIN_STEMS, "training")
        dev_name = _one_file(source, names, DEV_STEMS, "validation")
        train, dev = _file_rows(source, train_name), _file_rows(source, dev_name)
        files = tuple(sorted({train_name, dev_name}))
    v2 = any(row.impossible for row in train + dev)
    return QAData(train, dev, v2, files)


def looks_like_qa(source: Path) -> bool:
    """Whether ``source`` holds QA data: a SQuAD JSON train file, or a train table with
    question, context and answers columns. Never raises: a folder it cannot read is not QA."""
    try:
        if (source / "dataset_dict.json").is_file():
            return _has_qa_columns(read_saved_dataset(source).train)
        train = _one_file(source, _names(source), TRAIN_STEMS, "training")
        if extension(train) == "json" and _squad_document(source / train, train) is not None:
            return True
        return _has_qa_columns(read_table(source, train, None))
    except (ContlearnError, OSError):
        return False


def _names(source: Path) -> list[str]:
    try:
        return sorted(p.name for p in source.iterdir())
    except OSError as exc:
        raise unreadable(str(source), exc) from exc


def _one_file(source: Path, names: list[str], stems: tuple[str, ...], split: str) -> str:
    wanted = {f"{stem}.{fmt}" for stem in stems for fmt in QA_FORMATS}
    found = [n for n in names if n.lower() in wanted]
    if len(found) != 1:
        problem = f"{len(found)} {split} files" if found else f"no {split} split"
        example = " or ".join(f"{stem}.<{'|'.join(QA_FORMATS)}>" for stem in stems)
        raise BadData(
            f"{problem} in {source} ({listing(found or names) or 'no files'}); a QA folder "
            f"needs exactly one {example} (or a datasets save_to_disk folder)"
        )
    check_file(source, found[0])
    return found[0]


def _file_rows(source: Path, name: str) -> tuple[QARow, ...]:
    if extension(name) == "json":
        document = _squad_document(source / name, name)
        if document is not None:
            return _squad_rows(document, name)
    return _table_rows(read_table(source, name, None))


def _squad_document(path: Path, name: str) -> dict[str, Any] | None:
    """The parsed file when it is one JSON object whose ``data`` holds articles with
    paragraphs (SQuAD JSON), else None (a JSON array, JSON lines or another object, which the
    table reader takes)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        return None  # the table reader names the bad byte
    except OSError as exc:
        raise unreadable(name, exc) from exc
    if not text.lstrip().startswith("{"):
        return None
    try:
        document = json.loads(text)
    except (RecursionError, ValueError):
        return None  # JSON lines (one object per line), or broken JSON the table reader names
    if not isinstance(document, dict) or not _articles(document.get("data")):
        return None
    return json_value(text, name)


def _articles(data: Any) -> bool:
    """Whether a JSON object's ``data`` is SQuAD's: a list of articles, each with its
    ``paragraphs`` (a table wrapped in ``{"data": [rows]}`` is not)."""
    return (
        isinstance(data, list)
        and bool(data)
        and isinstance(data[0], dict)
        and "paragraphs" in data[0]
    )  # again, refusing what json alone lets pass (a key twice)


def _squad_rows(document: dict[str, Any], name: str) -> tuple[QARow, ...]:
    rows = []
    for a, article in enumerate(_listed(document, "data", name)):
        for p, paragraph in enumerate(_listed(article, "paragraphs", f"{name} data[{a}]")):
            where = f"{name} data[{a}].paragraphs[{p}]"
            context = _text(paragraph, "context", where)
            for q, qa in enumerate(_listed(paragraph, "qas", where)):
                rows.append(_squad_row(qa, context, f"{where}.qas[{q}]", name))
                if len(rows) > rules.MAX_ROWS:
                    raise too_many_rows(name)
    if not rows:
        raise BadData(f"{name} holds no questions; add data[].paragraphs[].qas[] entries")
    return _unique_ids(rows, name)


def _squad_row(qa: Any, context: str, where: str, name: str) -> QARow:
    if not isinstance(qa, dict):
        raise BadData(f"{where}: expected a question object, got {type(qa).__name__}; fix it")
    qid = _id(qa.get("id"), where)
    question = _text(qa, "question", f"{name} question {show(qid)}")
    raw = qa.get("answers", [])
    impossible = qa.get("is_impossible", False)
    if not isinstance(impossible, bool):
        raise BadData(f"{name} question {show(qid)}: is_impossible must be true or false")
    answers = _answer_list(raw, f"{name} question {show(qid)}")
    return _checked_row(qid, question, context, answers, impossible, name)


def _table_rows(table: Table) -> tuple[QARow, ...]:
    if table.rows == 0:
        raise BadData(f"{table.file} has no data rows; add rows to it")
    if table.rows > rules.MAX_ROWS:  # the text readers stop earlier; a saved dataset does not
        raise too_many_rows(table.file)
    missing = [c for c in QA_COLUMNS if c not in table.columns]
    if missing:
        raise BadData(
            f"{table.file} has no column {show(missing[0])}; a QA table needs question, context "
            f"and answers (columns are {listing(table.columns)})"
        )
    columns = {c: table.column(c) for c in QA_COLUMNS}
    ids = table.column("id") if "id" in table.columns else [None] * table.rows
    rows = []
    for i in range(table.rows):
        qid = f"row {i + 1}" if ids[i] is None else _id(ids[i], table.where(i))
        where = f"{table.file} question {show(qid)}"
        values = {c: columns[c][i] for c in QA_COLUMNS}
        question, context = (_text(values, c, where) for c in ("question", "context"))
        answers = _answer_list(_answer_objects(values["answers"], where), where)
        rows.append(_checked_row(qid, question, context, answers, not answers, table.file))
    return _unique_ids(rows, table.file)


def _answer_objects(raw: Any, where: str) -> Any:
    """A dict of lists (``{"text": [...], "answer_start": [...]}``) as a list of objects."""
    if not isinstance(raw, dict):
        return raw
    texts, starts = raw.get("text"), raw.get("answer_start")
    if not isinstance(texts, list) or not isinstance(starts, list) or len(texts) != len(starts):
        raise BadData(
            f"{where}: answers {show(raw)} needs lists 'text' and 'answer_start' of one length"
        )
    return [{"text": t, "answer_start": s} for t, s in zip(texts, starts, strict=True)]


def _answer_list(raw: Any, where: str) -> tuple[Answer, ...]:
    if not isinstance(raw, list):
        raise BadData(
            f"{where}: answers must be a list of {{text, answer_start}} or a dict of lists, "
            f"got {show(raw)}; store them as JSON or parquet (csv cannot hold them)"
        )
    return tuple(_answer(a, where) for a in raw)


def _answer(raw: Any, where: str) -> Answer:
    text = raw.get("text") if isinstance(raw, dict) else None
    start = raw.get("answer_start") if isinstance(raw, dict) else None
    if not isinstance(text, str) or not text or isinstance(start, bool):
        raise BadData(f"{where}: answer {show(raw)} needs a non-empty text and an answer_start")
    if not isinstance(start, int):
        raise BadData(f"{where}: answer_start {show(start)} is not a whole number; fix it")
    return Answer(text, start)


def _checked_row(
    qid: str, question: str, context: str, answers: tuple[Answer, ...], impossible: bool, name: str
) -> QARow:
    where = f"{name} question {show(qid)}"
    if impossible and answers:
        raise BadData(f"{where} is marked is_impossible but has answers; drop one or the other")
    if not impossible and not answers:
        raise BadData(f"{where} has no answer; add one or mark it is_impossible (SQuAD v2.0)")
    for answer in answers:
        found = context[answer.start : answer.start + len(answer.text)]
        if answer.start < 0 or found != answer.text:
            raise BadData(
                f"{where}: answer {show(answer.text)} is not at answer_start {answer.start} of "
                f"its context (found {show(found)}); fix answer_start" + _hint(context, answer.text)
            )
    return QARow(qid, question, context, answers, impossible)


def _hint(context: str, text: str) -> str:
    at = context.find(text)
    return f" (the text occurs at {at})" if at >= 0 else " (the text is not in the context)"


def _listed(obj: Any, key: str, where: str) -> list[Any]:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, list):
        raise BadData(f"{where}: expected a {key!r} list (SQuAD JSON layout); fix the file")
    return value


def _text(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BadData(f"{where}: {key} {show(value)} must be non-empty text; fix or drop it")
    return value


def _id(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value).strip() == "":
        raise BadData(f"{where}: id {show(value)} must be a non-empty string; fix it")
    return str(value)


def _has_qa_columns(table: Table) -> bool:
    return all(c in table.columns for c in QA_COLUMNS)


def _unique_ids(rows: list[QARow], name: str) -> tuple[QARow, ...]:
    """The rows, once no two share an id (predictions and scores are keyed by it)."""
    seen: set[str] = set()
    for row in rows:
        if row.id in seen:
            raise BadData(f"{name}: question id {show(row.id)} occurs twice; give each its own id")
        seen.add(row.id)
    return tuple(rows)
