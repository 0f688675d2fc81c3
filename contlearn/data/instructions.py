"""The generation form of a demo corpus: each row as an instruction prompt and its response.

This module owns the wording of the prompts ``contlearn datasets prepare --form generation``
writes and the ``train.jsonl`` / ``dev.jsonl`` bytes. A prompt is the corpus's instruction, a
blank line, then the text after a field name (``Review: ...``, ``Article: ...``); the response
is the label word (a closed set: sentiment, topic) or the free text the corpus pairs with the
text (a headline). Texts are cut to their first ``max_words`` words so that a prompt fits a
small ``max_length``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_MAX_WORDS = 120
TRAIN_FILE = "train.jsonl"
DEV_FILE = "dev.jsonl"


@dataclass(frozen=True)
class Instruction:
    """What a corpus's prompts say: the instruction, the text's field name, and whether the
    responses form a closed label set (every label must then be named in the instruction)."""

    text: str
    field: str
    closed: bool = True

    def prompt(self, text: str) -> str:
        return f"{self.text}\n\n{self.field}: {text}"

    def unnamed(self, labels: Sequence[str]) -> list[str]:
        """The labels a closed instruction does not name (the answers it would never ask for)."""
        words = set(self.text.replace(",", " ").replace("?", " ").split())
        return [label for label in labels if self.closed and label not in words]


SENTIMENT = Instruction(
    "Is this movie review positive or negative? Answer with one word.", "Review"
)
INSTRUCTIONS = {
    "bbc-topic": Instruction(
        "Which topic is this BBC News article about: business, entertainment, politics, sports "
        "or tech? Answer with one word.",
        "Article",
    ),
    "imdb-sentiment": SENTIMENT,
    "rt-sentiment": SENTIMENT,
    "bbc-headline": Instruction("Write the headline of this BBC News article.", "Article", False),
}


def first_words(text: str, max_words: int) -> str:
    """``text``'s first ``max_words`` whitespace-separated words, joined by single spaces."""
    return " ".join(text.split()[:max_words])


def jsonl_bytes(instruction: Instruction, rows: Sequence[tuple[str, str]]) -> bytes:
    """One ``{"prompt": ..., "response": ...}`` object per line (UTF-8, unescaped, ``\\n``)."""
    lines = (
        json.dumps({"prompt": instruction.prompt(text), "response": response}, ensure_ascii=False)
        for text, response in rows
    )
    return "".join(line + "\n" for line in lines).encode("utf-8")
