"""What the data readers share: the file formats, the split file names and the limits.

The limits are read at call time (``rules.MAX_ROWS``), so a test can lower them.
"""

from __future__ import annotations

MAX_FILE_BYTES = 2 * 1024**3


# Rows per split: 2 GiB of "a,b" lines would be ~500M rows, tens of GiB once held as lists.
MAX_ROWS = 5_000_000


FILE_FORMATS = ("csv", "tsv", "jsonl", "json", "parquet")


CHUNK = 1 << 20


TRAIN_STEMS = ("train",)
DEV_STEMS = ("validation", "dev")


# CoNLL column files (one word and its tag per line): their extensions, and the dev split's
# names, which add CoNLL-2003's "valid".
CONLL_FORMATS = ("txt", "conll", "iob", "iob2", "bio")
CONLL_DEV_STEMS = ("valid", *DEV_STEMS)


# Generation: training responses form a closed label set (a sentiment, a topic name; accuracy
# then fits) when they take at most this many distinct values, each of at most this many words.
MAX_CLOSED_LABELS = 20
MAX_LABEL_WORDS = 5
