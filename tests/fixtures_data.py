"""Generated task data for tests: small but realistic GLUE-layout folders for every GLUE task,
folders of csv/tsv/jsonl/json/parquet files, and a ``datasets`` ``save_to_disk`` folder.

Labels are learnable: every label has cue words and a row's text holds a cue of its label (or,
for pair tasks, the second text relates to the first in the label's way), so tiny models trained
on these folders can beat chance. Labels cycle through their classes so that every split of two
or more rows per class holds every class.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

GLUE_FOLDERS = {
    "cola": "CoLA",
    "sst2": "SST-2",
    "mrpc": "MRPC",
    "stsb": "STS-B",
    "qqp": "QQP",
    "mnli": "MNLI",
    "qnli": "QNLI",
    "rte": "RTE",
    "wnli": "WNLI",
}
GLUE_LABELS = {
    "cola": ("0", "1"),
    "sst2": ("0", "1"),
    "mrpc": ("0", "1"),
    "stsb": None,
    "qqp": ("0", "1"),
    "mnli": ("contradiction", "entailment", "neutral"),
    "qnli": ("entailment", "not_entailment"),
    "rte": ("entailment", "not_entailment"),
    "wnli": ("0", "1"),
}
CUES = {
    "positive": ("wonderful", "great", "delightful", "brilliant", "charming"),
    "negative": ("terrible", "awful", "dull", "boring", "clumsy"),
    "neutral": ("ordinary", "plain", "average", "usual", "middling"),
}
_SUBJECTS = ("the cat", "a teacher", "my neighbour", "the old man", "a child", "the band")
_VERBS = ("chased", "painted", "found", "visited", "described", "ignored")
_OBJECTS = ("the garden", "a red car", "the museum", "an old letter", "the river", "a song")
_MNLI_TRAIN_TAIL = ("label1", "gold_label")
_MNLI_DEV_TAIL = ("label1", "label2", "label3", "label4", "label5", "gold_label")
_MNLI_HEAD = ("index", "promptID", "pairID", "genre", "sentence1_binary_parse")
_MNLI_PARSES = ("sentence2_binary_parse", "sentence1_parse", "sentence2_parse")


def clause(rng: random.Random) -> str:
    """A random plain clause, e.g. "the cat chased a red car"."""
    return f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"


def cue_text(label: str, rng: random.Random) -> str:
    """A sentence holding a cue word of ``label`` (a key of CUES; others use the label itself)."""
    cue = rng.choice(CUES.get(label, (label,)))
    return f"{clause(rng).capitalize()}, and it was {cue} ."


# ---------------------------------------------------------------------------------------------
# GLUE's original layout


def write_glue_task(
    root: Path,
    task: str,
    n_train: int = 40,
    n_dev: int = 12,
    seed: int = 0,
    folder: str | None = None,
) -> Path:
    """Write a GLUE-layout folder for ``task`` (a key of GLUE_FOLDERS) under ``root``, named as
    GLUE names it ("SST-2") unless ``folder`` is given; return the folder.

    Like the real files: CoLA has no header row; MRPC starts with a BOM and has bare ``"``; STS-B
    scores are floats; MNLI has dev_matched/dev_mismatched; every task has a test file.
    """
    out = Path(root) / (folder or GLUE_FOLDERS[task])
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{task}-{seed}")
    dev_names = ("dev_matched", "dev_mismatched") if task == "mnli" else ("dev",)
    splits = [("train", n_train), *((name, n_dev) for name in dev_names)]
    for name, n in splits:
        header, rows = _GLUE_WRITERS[task](n, rng, name)
        _write_tsv(out / f"{name}.tsv", header, rows, bom=task == "mrpc")
    test = "test_matched" if task == "mnli" else "test"
    _write_tsv(out / f"{test}.tsv", ("index", "sentence"), [("0", cue_text("positive", rng))])
    return out


def _write_tsv(
    path: Path, header: Sequence[str] | None, rows: list[Sequence[str]], bom: bool = False
) -> None:
    lines = ([header] if header else []) + rows
    text = "".join("\t".join(map(str, row)) + "\n" for row in lines)
    path.write_text(("\ufeff" if bom else "") + text, encoding="utf-8")


def _labels(n: int, labels: Sequence[str]) -> list[str]:
    return [labels[i % len(labels)] for i in range(n)]


def _cola(n: int, rng: random.Random, split: str) -> tuple[None, list[tuple]]:
    rows = []
    for label in _labels(n, ("1", "0")):
        subject, verb, obj = rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS)
        if label == "1":
            rows.append(("gj04", "1", "", f"{subject.capitalize()} {verb} {obj}, didn't they?"))
        else:  # the cue: a doubled verb
            rows.append(("bc01", "0", "*", f"{subject.capitalize()} {verb} {verb} {obj}."))
    return None, rows


def _sst2(n: int, rng: random.Random, split: str) -> tuple[tuple, list[tuple]]:
    rows = []
    for label in _labels(n, ("0", "1")):
        cue = rng.choice(CUES["positive" if label == "1" else "negative"])
        rows.append((f'{clause(rng)} , a {cue} film \'s worth of " fun " ', label))
    return ("sentence", "label"), rows


def _paraphrase(s1: str, label: str, rng: random.Random) -> str:
    """The second text of a pair: a restatement of ``s1`` for "1", something else for "0"."""
    return f"In short , {s1.lower()}" if label == "1" else cue_text("negative", rng)


def _mrpc(n: int, rng: random.Random, split: str) -> tuple[tuple, list[tuple]]:
    rows = []
    for i, label in enumerate(_labels(n, ("1", "0"))):
        s1 = f'He said " {clause(rng)} " yesterday .'
        s2 = _paraphrase(s1, label, rng)
        if i % 3 == 0:
            s2 = '" ' + s2  # an unbalanced quote, as in the real files
        rows.append((label, str(1000 + 2 * i), str(1001 + 2 * i), s1, s2))
    return ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"), rows


def _stsb(n: int, rng: random.Random, split: str) -> tuple[tuple, list[tuple]]:
    header = ("index", "genre", "filename", "year", "old_index", "source1", "source2")
    rows = []
    for i in range(n):
        original = clause(rng)
        words = original.split()
        changed = i % 5  # more words changed -> lower score
        for j in range(changed):
            words[j % len(words)] = rng.choice(("dog", "painter", "ocean", "lamp"))
        score = max(0.0, 5.0 - changed - rng.choice((0.0, 0.2, 0.4, 0.6)))
        meta = (f"{i:04d}", "main-captions", "MSRvid", "2012test", f"{i:04d}", "none", "none")
        rows.append(
            (
                *meta,
                f"{original.capitalize()} .",
                f"{' '.join(words).capitalize()} .",
                f"{score:.3f}",
            )
        )
    return (*header, "sentence1", "sentence2", "score"), rows


def _qqp(n: int, rng: random.Random, split: str) -> tuple[tuple, list[tuple]]:
    rows = []
    for i, label in enumerate(_labels(n, ("0", "1"))):
        q1 = f"Why {rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}?"
        q2 = f"What is the reason {q1[4:]}" if label == "1" else f"How do I find {clause(rng)}?"
        rows.append((str(i), str(2 * i), str(2 * i + 1), q1, q2, label))
    return ("id", "qid1", "qid2", "question1", "question2", "is_duplicate"), rows


def _nli_pair(label: str, rng: random.Random) -> tuple[str, str]:
    s1 = f"{clause(rng).capitalize()} on Sunday ."
    if label == "entailment":
        return s1, f"{s1.split(' on ')[0]} ."
    if label == "contradiction":
        return s1, f"{s1.split(' on ')[0]} never happened ."
    return s1, f"{s1.split(' on ')[0]} probably for money ."  # neutral / not_entailment


def _mnli(n: int, rng: random.Random, split: str) -> tuple[tuple, list[tuple]]:
    tail = _MNLI_TRAIN_TAIL if split == "train" else _MNLI_DEV_TAIL
    rows = []
    for i, label in enumerate(_labels(n, ("entailment", "neutral", "contradiction"))):
        s1, s2 = _nli_pair(label, rng)
        parses = (f"( {s1} )", f"( {s2} )", f"(ROOT {s1})", f"(ROOT {s2})")
        votes = (label,) * len(tail)  # the annotators' labels, then gold_label
        rows.append((str(i), str(100 + i), f"{100 + i}e", "fiction", *parses, s1, s2, *votes))
    header = (*_MNLI_HEAD, *_MNLI_PARSES, "sentence1", "sentence2", *tail)
    return header, rows


def _qnli(n: int, rng: random.Random, split: str) -> tuple[tuple, list[tuple]]:
    rows = []
    for i, label in enumerate(_labels(n, ("entailment", "not_entailment"))):
        obj = rng.choice(_OBJECTS)
        question = f"What did {rng.choice(_SUBJECTS)} find near {obj}?"
        place = obj if label == "entailment" else "the station"
        rows.append((str(i), question, f"They found a key near {place} in 1990.", label))
    return ("index", "question", "sentence", "label"), rows


def _rte(n: int, rng: random.Random, split: str) -> tuple[tuple, list[tuple]]:
    rows = []
    for i, label in enumerate(_labels(n, ("entailment", "not_entailment"))):
        s1, s2 = _nli_pair("entailment" if label == "entailment" else "contradiction", rng)
        rows.append((str(i), s1, s2, label))
    return ("index", "sentence1", "sentence2", "label"), rows


def _wnli(n: int, rng: random.Random, split: str) -> tuple[tuple, list[tuple]]:
    header, rows = _rte(n, rng, split)
    relabel = {"entailment": "1", "not_entailment": "0"}
    return header, [(*row[:3], relabel[row[3]]) for row in rows]


_GLUE_WRITERS = {
    "cola": _cola,
    "sst2": _sst2,
    "mrpc": _mrpc,
    "stsb": _stsb,
    "qqp": _qqp,
    "mnli": _mnli,
    "qnli": _qnli,
    "rte": _rte,
    "wnli": _wnli,
}


# ---------------------------------------------------------------------------------------------
# Folders of csv / tsv / jsonl / json / parquet files


def text_rows(
    n: int,
    seed: int = 0,
    *,
    text_field: str = "text",
    label_field: str = "label",
    labels: Sequence[Any] = ("negative", "positive"),
) -> list[dict[str, Any]]:
    """``n`` rows {text_field: a sentence with a cue of its label, label_field: label}."""
    rng = random.Random(seed)
    return [
        {text_field: cue_text(str(label), rng), label_field: label} for label in _labels(n, labels)
    ]


def write_table_file(path: Path, fmt: str, rows: list[dict[str, Any]]) -> Path:
    """Write ``rows`` (dicts; columns from the first row) as csv, tsv, jsonl, json or parquet."""
    path = Path(path)
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    elif fmt == "jsonl":
        lines = (json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        path.write_text("".join(lines), encoding="utf-8")
    elif fmt == "json":
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    elif fmt == "csv":
        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["text", "label"])
            writer.writeheader()
            writer.writerows(rows)
    else:
        header = list(rows[0]) if rows else ["text", "label"]
        _write_tsv(path, header, [[row[c] for c in header] for row in rows])
    return path


def write_table_task(
    root: Path,
    fmt: str,
    rows_train: list[dict[str, Any]] | None = None,
    rows_dev: list[dict[str, Any]] | None = None,
    *,
    name: str = "task",
    dev_name: str = "validation",
) -> Path:
    """Write ``root/name/train.<fmt>`` and ``<dev_name>.<fmt>`` and return the folder. Rows
    default to ``text_rows`` (40 train, 12 dev; "text" and "label" columns)."""
    out = Path(root) / name
    out.mkdir(parents=True, exist_ok=True)
    write_table_file(out / f"train.{fmt}", fmt, text_rows(40) if rows_train is None else rows_train)
    write_table_file(
        out / f"{dev_name}.{fmt}", fmt, text_rows(12, 1) if rows_dev is None else rows_dev
    )
    return out


# ---------------------------------------------------------------------------------------------
# A datasets save_to_disk folder


def write_datasets_task(
    root: Path,
    n_train: int = 40,
    n_dev: int = 12,
    seed: int = 0,
    *,
    name: str = "saved",
    dev_split: str = "validation",
    label_names: Sequence[str] = ("negative", "positive"),
) -> Path:
    """Save a DatasetDict (train + ``dev_split``) whose "label" is a ClassLabel of
    ``label_names``; return the folder."""
    import datasets

    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=list(label_names))}
    )

    def split(n: int, split_seed: int) -> datasets.Dataset:
        rows = text_rows(n, split_seed, labels=list(label_names))
        columns = {
            "text": [r["text"] for r in rows],
            "label": [label_names.index(r["label"]) for r in rows],
        }
        return datasets.Dataset.from_dict(columns, features=features)

    out = Path(root) / name
    splits = {"train": split(n_train, seed), dev_split: split(n_dev, seed + 1)}
    datasets.DatasetDict(splits).save_to_disk(str(out))
    return out
