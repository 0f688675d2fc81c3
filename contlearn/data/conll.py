"""CoNLL column files: one word per line with its tag in the last column, whitespace between the
columns, a blank line between sentences (CoNLL-2003's four columns "word POS chunk tag", or just
"word tag"), and ``-DOCSTART-`` lines between documents.

A file is read as CoNLL by its name (``train.txt``, ``valid.conll``... see
:data:`~.rules.CONLL_FORMATS`) and then by its content: every non-blank line must hold the same
number of columns, at least two. ``-DOCSTART-`` lines are skipped; they, blank lines and runs of
them only separate sentences. Each split becomes a table of two columns, ``tokens`` and ``tags``
(a tuple per sentence); the tags are checked with the rest of the tagging data (``tagging``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from ..errors import BadData
from . import rules
from .files import check_file, extension
from .messages import not_utf8, too_many_rows, unreadable
from .tables import Folder, Table

DOCSTART = "-DOCSTART-"


WORDS, TAGS = "tokens", "tags"


# Columns are split on ASCII spaces and tabs only: a word may hold a no-break space.
_COLUMN = re.compile(r"[^ \t\n\r\f\v]+")


def is_conll(name: str) -> bool:
    return extension(name) in rules.CONLL_FORMATS


def read_conll_folder(source: Path, train: str, dev: str) -> Folder:
    """A folder's CoNLL train and dev files as tables."""
    for name in (train, dev):
        check_file(source, name)
    tables = [read_conll(source, name) for name in (train, dev)]
    return Folder("conll", None, tuple(sorted({train, dev})), *tables)


def read_conll(source: Path, name: str) -> Table:
    """One CoNLL file as a table: row i is sentence i, starting on line ``lines[i]``."""
    sentences, starts = _sentences(source / name, name)
    if not sentences:
        raise BadData(
            f"{name} in {source} holds no sentences (only blank or {DOCSTART} lines); "
            "write one word and its tag per line, a blank line between sentences"
        )
    columns = {
        WORDS: [tuple(word for word, _ in s) for s in sentences],
        TAGS: [tuple(tag for _, tag in s) for s in sentences],
    }
    return Table(
        name, (WORDS, TAGS), len(sentences), columns.__getitem__, starts, word_per_line=True
    )


def _sentences(path: Path, name: str) -> tuple[list[list[tuple[str, str]]], list[int]]:
    """Each sentence's (word, tag) pairs, and the line each starts on."""
    try:
        with path.open(encoding="utf-8-sig") as f:
            return _parse(f, name)
    except UnicodeDecodeError as exc:
        raise not_utf8(path, name) from exc
    except OSError as exc:
        raise unreadable(name, exc) from exc


def _parse(lines: Iterable[str], name: str) -> tuple[list[list[tuple[str, str]]], list[int]]:
    sentences: list[list[tuple[str, str]]] = []
    starts: list[int] = []
    current: list[tuple[str, str]] | None = None  # None: the next word starts a sentence
    width: tuple[int, int] | None = None  # (columns, the first line that had them)
    for number, line in enumerate(lines, 1):
        fields = _COLUMN.findall(line)
        if not fields or fields[0] == DOCSTART:
            current = None
            continue
        width = width or _width(fields, name, number)
        if len(fields) != width[0]:
            raise BadData(
                f"{name} line {number} has {len(fields)} columns where line {width[1]} has "
                f"{width[0]}; every line holds the same columns (the word first, the tag last): "
                "fix the line (a word cannot hold a space)"
            )
        if current is None:
            current = []
            sentences.append(current)
            starts.append(number)
            if len(starts) > rules.MAX_ROWS:  # stop before memory runs out
                raise too_many_rows(name)
        current.append((fields[0], fields[-1]))
    return sentences, starts


def _width(fields: list[str], name: str, number: int) -> tuple[int, int]:
    if len(fields) < 2:
        raise BadData(
            f"{name} line {number} has 1 column; a CoNLL line holds the word first and its tag "
            "last, separated by a space or tab: add the tag"
        )
    return len(fields), number
