"""What a reader hands back: one split as a table of columns, and a folder's two splits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Table:
    """One split as read: its column names and a getter for one column's values."""

    file: str  # how messages name it: a file relative to the folder, or a datasets split
    columns: tuple[str, ...]
    rows: int
    column: Callable[[str], list[Any]]
    lines: Sequence[int] | None = None  # each row's first line in a text file; None: row numbers
    blank_lines: tuple[int, ...] = ()  # the blank lines a text file held (skipped)
    # CoNLL: row i's words sit one per line, word j on line ``lines[i] + j``
    word_per_line: bool = False
    # a column of lists of ClassLabel ints (datasets): its class names, in their order
    class_names: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False)

    def where(self, i: int) -> str:
        if self.lines is None:
            return f"{self.file} row {i + 1}"
        return f"{self.file} line {self.lines[i]}"

    def where_word(self, i: int, j: int) -> str:
        """Where word ``j`` of row ``i`` is: its own line in a CoNLL file, else its row."""
        if self.word_per_line and self.lines is not None:
            return f"{self.file} line {self.lines[i] + j}"
        return f"{self.where(i)} word {j + 1}"


@dataclass(frozen=True)
class Folder:
    """What a data folder holds: its layout, the files it read, and the two splits."""

    format: str
    glue_task: str | None
    files: tuple[str, ...]
    train: Table
    dev: Table
