"""Tagging data (one tag per word, as in NER): recognising it, reading each sentence's words and
tags, and the tag vocabulary.

Tagging data is a folder of CoNLL column files (``conll``), or a table (jsonl, json, parquet, a
``datasets`` folder) with a ``tokens`` column holding a list of words per row and a ``tags`` or
``ner_tags`` column holding the list of their tags: strings, or ClassLabel ints whose names the
dataset records (``save_to_disk``, or ``to_parquet``'s metadata).

Tag schemes: IOB2 / BIO (``B-X``, ``I-X``, ``O``) and IOBES (``E-X`` and ``S-X`` as well); IOB1
files read too. Any other tag (BILOU's ``L-X`` / ``U-X``, a bare ``PER``) is refused, naming the
line. An ``I-X`` after ``O`` or after another type is kept as written: the metrics read it as
CoNLL's conlleval does, as the start of an entity (:mod:`contlearn.eval.tagging`), so no tag is
changed on the way in and scores are the usual ones. Every dev tag must occur in training (or
among the dataset's ClassLabel names): the head cannot output any other.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..errors import BadData
from .columns import given_fields
from .messages import listing, show
from .tables import Folder, Table

WORD_FIELD = "tokens"
TAG_FIELDS = ("tags", "ner_tags")
_TAG = re.compile(r"O|[BIES]-\S+")
_PREFIXES = "BIES"  # the order of a type's tags in the vocabulary


def is_tagging(folder: Folder, text_fields: Any, label_field: str | None) -> bool:
    """Whether ``folder`` holds tagging data: CoNLL files, or a table whose words column (the
    one text field given, else ``tokens``) and tags column both hold lists."""
    if folder.format == "conll":
        return True
    fields = given_fields(text_fields) or (WORD_FIELD,)
    table = folder.train
    tags = _tag_field(table, label_field)
    if len(fields) != 1 or tags is None:
        return False
    return all(_holds_lists(table, field) for field in (fields[0], tags))


def _holds_lists(table: Table, field: str) -> bool:
    """Whether the column's first value (that is not missing) is a list."""
    if field not in table.columns:
        return False
    first = next((v for v in table.column(field) if v is not None), None)
    return isinstance(first, (list, tuple))


def tagging_fields(table: Table, text_fields: Any, label_field: str | None) -> tuple[str, str]:
    """The words column and the tags column of tagging data, given or by their usual names."""
    fields = given_fields(text_fields) or (WORD_FIELD,)
    if len(fields) != 1:
        raise BadData(
            f"a tagging task reads one column of words, not {len(fields)}; "
            f"pass --text-fields {WORD_FIELD}"
        )
    tags = _tag_field(table, label_field)
    for field in (fields[0], tags):
        if field is None or field not in table.columns:
            raise BadData(
                f"tagging data needs a list of words and a list of tags per row, but "
                f"{table.file} has no {show(field or TAG_FIELDS[0])} column (columns: "
                f"{listing(table.columns)}); write {WORD_FIELD!r} and {TAG_FIELDS[0]!r} columns "
                "or CoNLL files (train.txt, valid.txt), or pass --text-fields / --label-field"
            )
    return fields[0], tags


def _tag_field(table: Table, label_field: str | None) -> str | None:
    if label_field is not None:
        return label_field
    found = [f for f in TAG_FIELDS if f in table.columns]
    if len(found) > 1:
        raise BadData(
            f"{table.file} has both {listing(found)} columns; pass --label-field to say which "
            "holds the tags"
        )
    return found[0] if found else None


def read_sentences(
    table: Table, words: str, tags: str
) -> tuple[tuple[tuple[str, ...], ...], tuple[tuple[str, ...], ...]]:
    """Each row's words and tags, checked: lists of one length, not empty, tags of the scheme."""
    names = table.class_names.get(tags)
    texts, labels = [], []
    for i, (row_words, row_tags) in enumerate(
        zip(table.column(words), table.column(tags), strict=True)
    ):
        texts.append(_words(table, i, row_words, words))
        labels.append(_tags(table, i, row_tags, tags, names))
        if len(texts[-1]) != len(labels[-1]):
            raise BadData(
                f"{table.where(i)}: {len(texts[-1])} words but {len(labels[-1])} tags; give "
                "each word one tag"
            )
    return tuple(texts), tuple(labels)


def _words(table: Table, i: int, value: Any, field: str) -> tuple[str, ...]:
    words = _row_list(table, i, value, field, "words")
    for j, word in enumerate(words):
        if isinstance(word, (int, float)) and not isinstance(word, bool):
            words[j] = word = str(word)
        if not isinstance(word, str) or not word.strip():
            what = "an empty word" if isinstance(word, str) or word is None else show(word)
            raise BadData(f"{table.where_word(i, j)}: {what} in {field!r}; write the word")
    return tuple(words)


def _tags(
    table: Table, i: int, value: Any, field: str, names: Sequence[str] | None
) -> tuple[str, ...]:
    tags = _row_list(table, i, value, field, "tags")
    return tuple(_tag(table, i, j, tag, field, names) for j, tag in enumerate(tags))


def _row_list(table: Table, i: int, value: Any, field: str, what: str) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise BadData(
            f"{table.where(i)}: column {field!r} holds {show(value)}, not a list of {what}; "
            "write one list per row (jsonl, json, parquet or datasets) or CoNLL files"
        )
    if not value:
        raise BadData(f"{table.where(i)}: an empty sentence (no {what}); drop the row")
    return list(value)


def _tag(table: Table, i: int, j: int, tag: Any, field: str, names: Sequence[str] | None) -> str:
    where = table.where_word(i, j)
    if isinstance(tag, int) and not isinstance(tag, bool):
        tag = _named(where, tag, field, names)
    if tag is None:
        raise BadData(f"{where}: missing tag in {field!r}; fill it in")
    if not isinstance(tag, str) or not _TAG.fullmatch(tag):
        raise bad_tag(where, tag, table.word_per_line)
    return tag


def _named(where: str, tag: int, field: str, names: Sequence[str] | None) -> str | None:
    """A ClassLabel int as its name; -1 (datasets' "no label") as None."""
    if names is None:
        raise BadData(
            f"{where}: tag {tag} in {field!r} is a number without tag names; write the tags "
            "as text (B-PER...), or save the data with datasets so its ClassLabel names come along"
        )
    if tag >= len(names):
        raise BadData(
            f"{where}: tag {tag} is outside the {len(names)} ClassLabel names; fix the tag"
        )
    return None if tag < 0 else names[tag]


def bad_tag(where: str, tag: Any, conll: bool = False) -> BadData:
    column = " (a CoNLL line's last column is its tag)" if conll else ""
    return BadData(
        f"{where}: tag {show(tag)} is not O or B-, I-, E-, S- and a type (IOB2 or IOBES "
        f"tags){column}; fix the tag"
    )


def vocabulary(table: Table, field: str, labels: Sequence[Sequence[str]]) -> tuple[str, ...]:
    """The tags the head outputs: a dataset's ClassLabel names in their order, else the
    training tags, "O" first, then by entity type and B, I, E, S within a type."""
    names = table.class_names.get(field)
    if names is not None:
        for name in names:
            if not _TAG.fullmatch(name):
                raise bad_tag(f"{table.file}: ClassLabel name of {field!r}", name)
        return tuple(names)
    return tuple(sorted({tag for row in labels for tag in row}, key=_order))


def _order(tag: str) -> tuple[int, str, int]:
    if tag == "O":
        return 0, "", 0
    return 1, tag[2:], _PREFIXES.index(tag[0])


def check_dev_tags(table: Table, labels: Sequence[Sequence[str]], vocab: Sequence[str]) -> None:
    known = set(vocab)
    for i, row in enumerate(labels):
        for j, tag in enumerate(row):
            if tag not in known:
                raise BadData(
                    f"{table.where_word(i, j)}: tag {show(tag)} never appears in the training "
                    f"split (tags: {listing(vocab)}), so the model cannot predict it; fix it or "
                    "add training sentences with it"
                )
