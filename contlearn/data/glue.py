"""GLUE's original layout: each task's TSV columns and metrics, and recognising a GLUE folder."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..config import REGRESSION_METRICS
from .messages import unreadable


@dataclass(frozen=True)
class Glue:
    """How one GLUE task lays out its TSV files. ``header`` is the start of its header row (None:
    the file has no header row)."""

    header: tuple[str, ...] | None
    text_fields: tuple[str, ...]
    label_field: str
    metrics: tuple[str, ...]


COLA_COLUMNS = ("source", "label", "original label", "sentence")


_NLI_HEADER = ("index", "sentence1", "sentence2", "label")


_STSB_HEADER = ("index", "genre", "filename", "year", "old_index", "source1", "source2")


GLUE_TASKS = {
    "cola": Glue(None, ("sentence",), "label", ("matthews", "accuracy")),
    "sst2": Glue(("sentence", "label"), ("sentence",), "label", ("accuracy",)),
    "mrpc": Glue(
        ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"),
        ("#1 String", "#2 String"),
        "Quality",
        ("f1", "accuracy"),
    ),
    "stsb": Glue(
        (*_STSB_HEADER, "sentence1", "sentence2", "score"),
        ("sentence1", "sentence2"),
        "score",
        REGRESSION_METRICS,
    ),
    "qqp": Glue(
        ("id", "qid1", "qid2", "question1", "question2", "is_duplicate"),
        ("question1", "question2"),
        "is_duplicate",
        ("f1", "accuracy"),
    ),
    # MNLI's header goes on with parse trees and a varying number of annotator labels.
    "mnli": Glue(
        ("index", "promptID", "pairID", "genre"),
        ("sentence1", "sentence2"),
        "gold_label",
        ("accuracy",),
    ),
    "qnli": Glue(
        ("index", "question", "sentence", "label"), ("question", "sentence"), "label", ("accuracy",)
    ),
    "rte": Glue(_NLI_HEADER, ("sentence1", "sentence2"), "label", ("accuracy",)),
    "wnli": Glue(_NLI_HEADER, ("sentence1", "sentence2"), "label", ("accuracy",)),
}


def detect_glue_task(source: Path, train: str) -> str | None:
    """The GLUE task of a folder holding ``train.tsv``: by folder name ("SST-2" -> sst2), else by
    the header row. RTE and WNLI share a header, so that header alone names no task."""
    if train.lower() != "train.tsv":
        return None
    name = re.sub(r"[-_\s]", "", source.name.lower())
    if name in GLUE_TASKS:
        return name
    head = tuple(first_tsv_row(source / train))
    matches = [t for t, g in GLUE_TASKS.items() if g.header and head[: len(g.header)] == g.header]
    return matches[0] if len(matches) == 1 else None


def first_tsv_row(path: Path) -> list[str]:
    # Only a peek to recognise the layout: the full read reports bad bytes with their offset.
    try:
        with path.open(encoding="utf-8-sig", errors="replace") as f:
            return f.readline().rstrip("\r\n").split("\t")
    except OSError as exc:
        raise unreadable(path.name, exc) from exc


def is_cola_row(row: list[str]) -> bool:
    """CoLA's files have no header: a first row of 4 fields with a 0/1 label is data."""
    return len(row) == 4 and row[1] in ("0", "1")
