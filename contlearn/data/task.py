"""Task data: a folder on disk -> validated train and dev splits.

This subpackage owns reading a task's data folder, in one of four layouts (``folder``): GLUE's
original TSV layout (``glue``: ``train.tsv`` + ``dev.tsv``, the task recognised by folder name or
header row); a folder of ``train.*`` and ``validation.*`` / ``dev.*`` files in csv, tsv, jsonl,
json or parquet (``readers``); a ``datasets`` ``save_to_disk`` folder (``saved``); or CoNLL
column files, one word and its tag per line (``conll``). It chooses the text and label columns
(``columns``), validates every row, decides classification, regression, tagging (one tag per
word: ``tagging``), extractive QA (``squad``) or generation (``generation``), and the metrics
(``labels``), and fingerprints the bytes it read so that a later run can prove it trains on the
same data. Every problem a user can fix raises :class:`~contlearn.errors.BadData` with a
one-line message naming the problem and the fix. This module holds the entry points.

Generation data (a prompt in, a free-text response out) is a table with ``prompt`` and
``response`` (or ``completion`` / ``output``) columns, Alpaca's ``instruction`` + optional
``input`` + ``output`` (the prompt: the instruction, then two newlines and the input when it is
not empty), or a ``messages`` column of ``{"role", "content"}`` turns whose last turn, the
assistant's, is the response. Each row's text is its prompt as a flattened conversation
``(role1, content1, ...)`` ending with a user turn; its label is the response (a ``str``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from . import rules
from .columns import choose_fields, require_columns
from .folder import data_folder, read_folder
from .generation import (
    GENERATION,
    closed_labels,
    generation_layout,
    is_generation,
    note_unseen_responses,
    read_generation,
    require_layout,
)
from .glue import GLUE_TASKS
from .labels import choose_metrics, read_labels, read_texts
from .messages import unreadable
from .squad import looks_like_qa
from .tables import Folder
from .tagging import (
    check_dev_tags,
    is_tagging,
    read_sentences,
    tagging_fields,
    vocabulary,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    """One split's rows: ``texts[i]`` holds row i's text fields in order, ``labels[i]`` its label
    (a ``str`` class for classification, a ``float`` for regression). For tagging, row i is a
    sentence: ``texts[i]`` its words and ``labels[i]`` their tags, one ``str`` per word. For
    generation, ``texts[i]`` is row i's prompt as a flattened conversation (role1, content1,
    role2, content2, ...; roles system, user, assistant) ending with a user turn, and
    ``labels[i]`` the response, a ``str``."""

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
    def kind(self) -> str:
        """The task kind (``contlearn.kinds``) the data is for."""
        return self.problem_type

    @property
    def metric(self) -> str:
        """The primary metric: the one that selects and compares models."""
        return self.metrics[0]


def load_task_data(
    path: str | Path,
    *,
    text_fields: Sequence[str] | str | None = None,
    label_field: str | None = None,
    metric: str | None = None,
    kind: str | None = None,
) -> TaskData:
    """Read and validate the task data in folder ``path``.

    ``text_fields`` / ``label_field`` name the columns to use (``text_fields`` may also be one
    comma-separated string); left out, they come from the GLUE task or are inferred from common
    column names. ``metric`` becomes the primary metric. ``kind`` is the task kind the data is
    registered for: ``"tagging"`` reads it as tagging data (a list of words and of their tags
    per row), which is otherwise recognised from the files (CoNLL files, or ``tokens`` and
    ``tags`` / ``ner_tags`` columns of lists); ``"generation"`` reads it as generation data
    (``data.generation``), otherwise recognised by its columns (prompt + response, Alpaca's
    instruction + output, or chat messages); other kinds read as recognised. Raises
    :class:`BadData`.
    """
    source = data_folder(path)
    if kind == QA or looks_like_qa(source):
        return _qa_data(source, metric)
    folder = read_folder(source)
    if _reads_as_generation(folder, kind, text_fields, label_field):
        fields = _generation_fields(folder, text_fields, label_field, metric)
    elif kind == "tagging" or is_tagging(folder, text_fields, label_field):
        fields = _tagging_fields(folder, text_fields, label_field, metric)
    else:
        fields = _labelled_fields(folder, text_fields, label_field, metric)
    data = TaskData(
        source=source,
        format=folder.format,
        glue_task=folder.glue_task,
        files=folder.files,
        fingerprint=data_fingerprint(source, folder.files),
        **fields,
    )
    log.info("read %s: %d train / %d dev rows", data.source, folder.train.rows, folder.dev.rows)
    return data


def _reads_as_generation(
    folder: Folder, kind: str | None, text_fields: Any, label_field: str | None
) -> bool:
    """Generation data: registered as such, or recognised by its columns. Under another kind,
    only columns found by their usual names count: a task of that kind may have named a prompt
    and a response column as its text and label, and it stays what it was registered as."""
    if kind == GENERATION:
        return True
    if kind == "tagging" or (kind is not None and (text_fields, label_field) != (None, None)):
        return False
    return is_generation(folder.train, text_fields, label_field)


def _labelled_fields(
    folder: Folder, text_fields: Sequence[str] | str | None, label: str | None, metric: str | None
) -> dict[str, Any]:
    """The TaskData fields of one label (a class or a number) per row of text fields."""
    glue = GLUE_TASKS.get(folder.glue_task or "")
    texts, label = choose_fields(folder.train, glue, text_fields, label)
    for table in (folder.train, folder.dev):
        require_columns(table, (*texts, label))
    train_texts, dev_texts = read_texts(folder.train, texts), read_texts(folder.dev, texts)
    vocab, train_labels, dev_labels = read_labels(folder, label)
    problem = "regression" if vocab is None else "classification"
    return {
        "text_fields": texts,
        "label_field": label,
        "problem_type": problem,
        "labels": vocab,
        "metrics": choose_metrics(glue, problem, metric),
        "train": Split(train_texts, train_labels),
        "dev": Split(dev_texts, dev_labels),
    }


def _tagging_fields(
    folder: Folder, text_fields: Sequence[str] | str | None, label: str | None, metric: str | None
) -> dict[str, Any]:
    """The TaskData fields of tagging data: a sentence's words per row, and one tag per word."""
    words, tags = tagging_fields(folder.train, text_fields, label)
    for table in (folder.train, folder.dev):
        require_columns(table, (words, tags))
    train = Split(*read_sentences(folder.train, words, tags))
    vocab = vocabulary(folder.train, tags, train.labels)
    dev = Split(*read_sentences(folder.dev, words, tags))
    check_dev_tags(folder.dev, dev.labels, vocab)
    return {
        "text_fields": (words,),
        "label_field": tags,
        "problem_type": "tagging",
        "labels": vocab,
        "metrics": choose_metrics(None, "tagging", metric),
        "train": train,
        "dev": dev,
    }


def _generation_fields(
    folder: Folder, text_fields: Sequence[str] | str | None, label: str | None, metric: str | None
) -> dict[str, Any]:
    """The TaskData fields of generation data: each row's prompt as a flattened conversation
    (role, content, ...) ending with a user turn, and its response."""
    layout = generation_layout(folder.train, text_fields, label)
    for table in (folder.train, folder.dev):
        require_layout(table, layout)
    train, dev = (Split(*read_generation(t, layout)) for t in (folder.train, folder.dev))
    labels = closed_labels(train.labels)
    if labels is not None:
        note_unseen_responses(folder.dev, dev.labels, labels)
    return {
        "text_fields": layout.text_fields,
        "label_field": layout.response,
        "problem_type": GENERATION,
        "labels": labels,
        "metrics": choose_metrics(None, GENERATION, metric, closed=labels is not None),
        "train": train,
        "dev": dev,
    }


QA = "extractive-qa"


def _qa_data(source: Path, metric: str | None) -> TaskData:
    """Extractive QA data (``data.squad``): each row's (question, context), and as its label
    the context with its answers and the question's id, (context, ((text, start), ...), id):
    what scoring a predicted span and naming the question need. The task's labels: what a
    prediction can be, an answer (and, when any question has none, as in SQuAD v2.0, no
    answer)."""
    from .squad import read_qa_folder

    qa = read_qa_folder(source)

    def split(rows: Any) -> Split:
        texts = tuple((row.question, row.context) for row in rows)
        labels = (
            (row.context, tuple((a.text, a.start) for a in row.answers), row.id) for row in rows
        )
        return Split(texts, tuple(labels))

    data = TaskData(
        source=source,
        format="squad",
        glue_task=None,
        files=qa.files,
        fingerprint=data_fingerprint(source, qa.files),
        text_fields=("question", "context"),
        label_field="answers",
        problem_type=QA,
        labels=("answer", "no answer") if qa.v2 else ("answer",),
        metrics=choose_metrics(None, QA, metric),
        train=split(qa.train),
        dev=split(qa.dev),
    )
    log.info("read %s: %d train / %d dev questions", source, len(qa.train), len(qa.dev))
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
                for chunk in iter(partial(f.read, rules.CHUNK), b""):
                    digest.update(chunk)
        except OSError as exc:
            raise unreadable(name, exc) from exc
    return digest.hexdigest()
