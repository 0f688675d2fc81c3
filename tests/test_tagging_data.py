"""Tests of tagging (NER) data intake and its metrics: every layout (CoNLL with two and four
columns, jsonl, json, parquet, a datasets folder with ClassLabel tags), the tag scheme, every bad
input (BadData in one line naming the file and line), the kind hint, and the entity-level scores
and spans against seqeval and against hand-worked cases."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contlearn import config as cfg
from contlearn.data import rules
from contlearn.data.task import load_task_data
from contlearn.errors import BadData
from contlearn.eval.tagging import Entity, entity_scores, entity_spans, word_offsets
from contlearn.ledger.records import TaskRecord
from contlearn.ops.intake import read_entry, task_spec
from contlearn.runtime.context import read_task_data

CONLL_2003 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "conll2003"


def _spaced(text: str) -> str:
    """CoNLL-2003's redistributed layout: every non-blank line ends with a space."""
    return "".join(line + " \n" if line else "\n" for line in text.split("\n")[:-1])


TRAIN_2COL = _spaced("""-DOCSTART- O

EU B-ORG
rejects O
German B-MISC
call O

Peter B-PER
Blackburn I-PER

-DOCSTART- O

BRUSSELS B-LOC
1996-08-22 O
""")

DEV_2COL = _spaced("""-DOCSTART- O

Japan B-LOC
began O

Nadim B-PER
Ladki I-PER
""")

TRAIN_4COL = """-DOCSTART- -X- -X- O

SOCCER NN B-NP O
- : O O
JAPAN NNP B-NP B-LOC
GET VB B-VP O

Nadim NNP B-NP B-PER
Ladki NNP I-NP I-PER
"""

DEV_4COL = """-DOCSTART- -X- -X- O

CRICKET NNP B-NP O
LEICESTERSHIRE NNP I-NP B-LOC
"""

TRAIN_ROWS = [
    {"tokens": ["EU", "rejects", "German", "call"], "tags": ["B-ORG", "O", "B-MISC", "O"]},
    {"tokens": ["Peter", "Blackburn"], "tags": ["B-PER", "I-PER"]},
]
DEV_ROWS = [{"tokens": ["Japan", "began"], "tags": ["B-LOC", "O"]}]
TRAIN_ROWS[1]["tokens"].append("Paris")
TRAIN_ROWS[1]["tags"].append("B-LOC")
NER_NAMES = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]


def folder(tmp_path: Path, files: dict[str, str | bytes], name: str = "ner") -> Path:
    out = tmp_path / name
    out.mkdir(parents=True, exist_ok=True)
    for file, content in files.items():
        (out / file).write_bytes(content.encode() if isinstance(content, str) else content)
    return out


def conll(
    tmp_path: Path,
    train: str | bytes = TRAIN_2COL,
    dev: str | bytes = DEV_2COL,
    *,
    train_name: str = "train.txt",
    dev_name: str = "valid.txt",
    name: str = "conll",
) -> Path:
    return folder(tmp_path, {train_name: train, dev_name: dev}, name)


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def bad(path: Path, *words: str, **kwargs) -> str:
    """Load ``path`` expecting BadData whose one-line message holds every word; the folder is
    left as it was."""
    before = sorted((p.name, p.stat().st_size) for p in path.iterdir())
    with pytest.raises(BadData) as info:
        load_task_data(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert sorted((p.name, p.stat().st_size) for p in path.iterdir()) == before
    return message


# ---------------------------------------------------------------------------------------------
# CoNLL column files


def test_two_column_conll_with_docstart_reads_sentences(tmp_path: Path) -> None:
    d = load_task_data(conll(tmp_path))
    assert (d.format, d.files, d.problem_type, d.kind) == (
        "conll",
        ("train.txt", "valid.txt"),
        "tagging",
        "tagging",
    )
    assert d.train.texts == (
        ("EU", "rejects", "German", "call"),
        ("Peter", "Blackburn"),
        ("BRUSSELS", "1996-08-22"),
    )
    assert d.train.labels[0] == ("B-ORG", "O", "B-MISC", "O")
    assert d.dev.texts == (("Japan", "began"), ("Nadim", "Ladki"))
    assert d.dev.labels == (("B-LOC", "O"), ("B-PER", "I-PER"))
    assert (d.text_fields, d.label_field) == (("tokens",), "tags")
    assert d.labels == ("O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-PER")
    assert d.metrics == ("entity_f1", "entity_precision", "entity_recall", "token_accuracy")
    assert d.metric == "entity_f1"


def test_four_column_conll_2003_layout_takes_the_last_column(tmp_path: Path) -> None:
    d = load_task_data(conll(tmp_path, TRAIN_4COL, DEV_4COL))
    assert d.train.texts == (("SOCCER", "-", "JAPAN", "GET"), ("Nadim", "Ladki"))
    assert d.train.labels == (("O", "O", "B-LOC", "O"), ("B-PER", "I-PER"))
    assert d.dev.labels == (("O", "B-LOC"),)
    assert d.labels == ("O", "B-LOC", "B-PER", "I-PER")


def test_four_column_dev_tag_unseen_in_training_names_file_line_and_tag(tmp_path: Path) -> None:
    # LEICESTERSHIRE (line 4 of valid.txt) as B-ORG; train has no ORG.
    dev = DEV_4COL.replace("I-NP B-LOC", "I-NP B-ORG")
    bad(conll(tmp_path, TRAIN_4COL, dev), "valid.txt line 4", "'B-ORG'", "training split")


@pytest.mark.parametrize(
    ("train", "dev"),
    [
        ("train.conll", "dev.conll"),
        ("train.iob", "validation.iob"),
        ("train.iob2", "valid.iob2"),
        ("TRAIN.BIO", "valid.txt"),
        ("train.txt", "dev.bio"),
    ],
)
def test_conll_file_names(tmp_path: Path, train: str, dev: str) -> None:
    d = load_task_data(conll(tmp_path, train_name=train, dev_name=dev))
    assert d.files == tuple(sorted({train, dev})) and d.format == "conll"
    assert len(d.train.texts) == 3


def test_blank_runs_and_docstart_blocks_only_separate_sentences(tmp_path: Path) -> None:
    train = "-DOCSTART- O\n\n-DOCSTART- O\n\n\n\na O\nb B-X\n  \n\t\n-DOCSTART- O\nc I-X\n"
    d = load_task_data(conll(tmp_path, train, "a O\n"))
    assert d.train.texts == (("a", "b"), ("c",))
    # a DOCSTART line inside a sentence ends it too
    d = load_task_data(conll(tmp_path, "a O\n-DOCSTART- O\nb B-X\n", "a O\n", name="two"))
    assert d.train.texts == (("a",), ("b",))


def test_tabs_windows_line_ends_and_a_no_break_space_inside_a_word(tmp_path: Path) -> None:
    train = "New\u00a0York\tB-LOC\r\nis\tO\r\n\r\nok\tO\r\n"
    d = load_task_data(conll(tmp_path, train.encode(), b"ok\tO\r\n"))
    assert d.train.texts == (("New\u00a0York", "is"), ("ok",))


def test_conll_fingerprint_is_stable_and_follows_the_bytes(tmp_path: Path) -> None:
    path = conll(tmp_path)
    first = load_task_data(path)
    assert load_task_data(path) == first
    (path / "valid.txt").write_text(DEV_2COL.replace("began", "begins"))
    assert load_task_data(path).fingerprint != first.fingerprint


def test_iobes_tags_are_accepted_and_ordered_by_type_then_b_i_e_s(tmp_path: Path) -> None:
    train = "Peter B-PER\nvan I-PER\nBlack E-PER\nin O\nParis S-LOC\n"
    d = load_task_data(conll(tmp_path, train, "Rome S-LOC\n"))
    assert d.labels == ("O", "S-LOC", "B-PER", "I-PER", "E-PER")


def test_i_after_o_or_after_another_type_is_kept_as_written(tmp_path: Path) -> None:
    # IOB1 style and an I- of another type: the data keeps them; the metric reads them as
    # conlleval does (test_metric_reads_i_after_o_as_an_entity_start).
    train = "the O\nEU I-ORG\nPeter B-PER\nParis I-LOC\n"
    d = load_task_data(conll(tmp_path, train, "EU I-ORG\n"))
    assert d.train.labels == (("O", "I-ORG", "B-PER", "I-LOC"),)


# ---------------------------------------------------------------------------------------------
# Tables: jsonl, json, parquet, datasets


def test_jsonl_tokens_and_tags(tmp_path: Path) -> None:
    path = folder(tmp_path, {"train.jsonl": jsonl(TRAIN_ROWS), "dev.jsonl": jsonl(DEV_ROWS)})
    d = load_task_data(path)
    assert (d.format, d.problem_type, d.text_fields, d.label_field) == (
        "jsonl",
        "tagging",
        ("tokens",),
        "tags",
    )
    assert d.train.texts[1] == ("Peter", "Blackburn", "Paris")
    assert d.train.labels[1] == ("B-PER", "I-PER", "B-LOC")
    assert d.labels == ("O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-PER")


def test_json_array_with_ner_tags_strings(tmp_path: Path) -> None:
    def rename(rows: list[dict]) -> list[dict]:
        return [{"tokens": r["tokens"], "ner_tags": r["tags"], "id": i} for i, r in enumerate(rows)]

    files = {
        "train.json": json.dumps(rename(TRAIN_ROWS)),
        "validation.json": json.dumps(rename(DEV_ROWS)),
    }
    d = load_task_data(folder(tmp_path, files))
    assert d.label_field == "ner_tags" and d.dev.labels == (("B-LOC", "O"),)


def test_parquet_lists_of_strings(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = folder(tmp_path, {})
    pq.write_table(pa.Table.from_pylist(TRAIN_ROWS), path / "train.parquet")
    pq.write_table(pa.Table.from_pylist(DEV_ROWS), path / "dev.parquet")
    d = load_task_data(path)
    assert d.format == "parquet" and d.train.texts[0] == ("EU", "rejects", "German", "call")
    assert d.train.labels[0] == ("B-ORG", "O", "B-MISC", "O")


def _ner_dataset(rows: list[tuple[list[str], list[str]]]):
    import datasets

    features = datasets.Features(
        {
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=NER_NAMES)),
        }
    )
    columns = {
        "tokens": [words for words, _ in rows],
        "ner_tags": [[NER_NAMES.index(t) for t in tags] for _, tags in rows],
    }
    return datasets.Dataset.from_dict(columns, features=features)


TRAIN_NER = [(["Peter", "Blackburn", "spoke"], ["B-PER", "I-PER", "O"]), (["EU"], ["B-ORG"])]
DEV_NER = [(["Nadim", "in", "Japan"], ["B-PER", "O", "B-LOC"])]


def test_datasets_folder_with_classlabel_ner_tags_keeps_the_names_in_order(
    tmp_path: Path,
) -> None:
    import datasets

    out = tmp_path / "saved"
    splits = {"train": _ner_dataset(TRAIN_NER), "validation": _ner_dataset(DEV_NER)}
    datasets.DatasetDict(splits).save_to_disk(str(out))
    d = load_task_data(out)
    assert (d.format, d.problem_type, d.label_field) == ("datasets", "tagging", "ner_tags")
    # the ClassLabel names, all of them (I-LOC never occurs), in the dataset's order
    assert d.labels == tuple(NER_NAMES)
    assert d.train.labels == (("B-PER", "I-PER", "O"), ("B-ORG",))
    # B-LOC occurs in dev only: the head outputs every ClassLabel name, so it is allowed
    assert d.dev.labels == (("B-PER", "O", "B-LOC"),)


def test_parquet_written_by_datasets_carries_the_classlabel_names(tmp_path: Path) -> None:
    path = folder(tmp_path, {})
    _ner_dataset(TRAIN_NER).to_parquet(str(path / "train.parquet"))
    _ner_dataset(DEV_NER).to_parquet(str(path / "dev.parquet"))
    d = load_task_data(path)
    assert d.labels == tuple(NER_NAMES) and d.dev.labels == (("B-PER", "O", "B-LOC"),)


def test_classlabel_minus_one_reads_as_a_missing_tag(tmp_path: Path) -> None:
    import datasets

    train = _ner_dataset(TRAIN_NER)
    holed = train.map(lambda r: {"ner_tags": [-1] + r["ner_tags"][1:]}, features=train.features)
    out = tmp_path / "saved"
    datasets.DatasetDict({"train": holed, "validation": _ner_dataset(DEV_NER)}).save_to_disk(
        str(out)
    )
    bad(out, "split 'train' row 1 word 1", "missing tag", "'ner_tags'")


def test_integer_tags_without_names_are_refused(tmp_path: Path) -> None:
    rows = [{"tokens": ["a", "b"], "ner_tags": [0, 1]}]
    path = folder(tmp_path, {"train.jsonl": jsonl(rows), "dev.jsonl": jsonl(rows)})
    bad(path, "train.jsonl line 1 word 1", "a number without tag names", "ClassLabel")


def test_given_columns_are_used(tmp_path: Path) -> None:
    rows = [{"words": ["a", "b"], "labels": ["B-X", "I-X"]}]
    path = folder(tmp_path, {"train.jsonl": jsonl(rows), "dev.jsonl": jsonl(rows)})
    d = load_task_data(path, text_fields="words", label_field="labels")
    assert (d.problem_type, d.text_fields, d.label_field) == ("tagging", ("words",), "labels")


# ---------------------------------------------------------------------------------------------
# The kind hint, metrics, and registration


def test_a_word_list_beside_one_label_per_row_stays_classification(tmp_path: Path) -> None:
    rows = [{"tokens": ["a", "b"], "text": "a b", "label": "x"}]
    path = folder(tmp_path, {"train.jsonl": jsonl(rows), "dev.jsonl": jsonl(rows)})
    for kwargs in ({}, {"label_field": "label"}):
        d = load_task_data(path, **kwargs)
        assert (d.problem_type, d.text_fields, d.train.labels) == (
            "classification",
            ("text",),
            ("x",),
        )


def test_kind_tagging_on_classification_data_is_one_line(tmp_path: Path) -> None:
    path = folder(tmp_path, {"train.csv": "text,label\na b,x\n", "dev.csv": "text,label\nc,x\n"})
    assert load_task_data(path).problem_type == "classification"
    bad(path, "tagging data needs a list of words", "'tokens'", kind="tagging")


def test_kind_tagging_on_text_in_a_tokens_column(tmp_path: Path) -> None:
    path = folder(
        tmp_path,
        {"train.csv": "tokens,tags\na b,O O\n", "dev.csv": "tokens,tags\nc,O\n"},
    )
    bad(path, "cannot tell which column(s) hold the text")  # text, not lists: not recognised
    bad(path, "train.csv line 2", "'a b', not a list of words", kind="tagging")


def test_other_kind_hints_read_tagging_data_as_tagging(tmp_path: Path) -> None:
    d = load_task_data(conll(tmp_path), kind="classification")
    assert d.problem_type == "tagging"  # the kind refuses it (next test)


def test_tagging_data_registered_as_classification_is_refused(tmp_path: Path) -> None:
    config = cfg.WorkspaceConfig(root=tmp_path)
    entry = cfg.TaskEntry(name="ner", data=str(conll(tmp_path)), kind="classification")
    data = read_entry(config, entry)
    with pytest.raises(BadData, match="holds tagging labels") as info:
        task_spec(entry, data)
    assert "\n" not in str(info.value)


def _record(data, kind: str) -> TaskRecord:
    return TaskRecord(
        id=1,
        name="t",
        position=1,
        data_source=str(data.source),
        data_format=data.format,
        glue_task=data.glue_task,
        data_files=list(data.files),
        data_fingerprint=data.fingerprint,
        train_rows=len(data.train.labels),
        dev_rows=len(data.dev.labels),
        text_fields=list(data.text_fields),
        label_field=data.label_field,
        problem_type=data.problem_type,
        labels=data.labels and list(data.labels),
        metric=data.metric,
        metrics=list(data.metrics),
        settings={},
        status="registered",
        created_at=datetime.now(UTC),
        trained_at=None,
        kind=kind,
    )


def test_a_reread_passes_the_recorded_kind(tmp_path: Path) -> None:
    path = folder(tmp_path, {"train.csv": "text,label\na b,x\n", "dev.csv": "text,label\nc,x\n"})
    data = load_task_data(path)
    assert read_task_data(_record(data, "classification")) == data
    with pytest.raises(BadData, match="column 'text' holds 'a b', not a list of words"):
        read_task_data(_record(data, "tagging"))
    tagged = load_task_data(conll(tmp_path))
    assert read_task_data(_record(tagged, "tagging")) == tagged


@pytest.mark.parametrize("metric", ["entity_precision", "entity_recall", "token_accuracy"])
def test_a_chosen_tagging_metric_goes_first(tmp_path: Path, metric: str) -> None:
    d = load_task_data(conll(tmp_path), metric=metric)
    assert d.metric == metric and set(d.metrics) == set(cfg.TAGGING_METRICS)


def test_metrics_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    bad(
        conll(tmp_path),
        "'accuracy' does not fit",
        "one tag per word",
        "entity_f1",
        metric="accuracy",
    )
    path = folder(tmp_path, {"train.csv": "text,label\na,x\n", "dev.csv": "text,label\nc,x\n"})
    bad(path, "'entity_f1' does not fit", "classes", metric="entity_f1")


def test_tagging_metrics_are_known_to_the_config_and_computed() -> None:
    assert set(cfg.TAGGING_METRICS) <= set(cfg.METRICS)
    assert not set(cfg.TAGGING_METRICS) & set(cfg.CLASSIFICATION_METRICS)
    assert cfg.TaskEntry(name="ner", data="x", metric="entity_recall").metric == "entity_recall"
    assert set(cfg.TAGGING_METRICS) <= set(entity_scores([["B-X", "O"]], [["B-X", "O"]]))


# ---------------------------------------------------------------------------------------------
# Bad input: one line, naming the file and line


def test_a_line_with_another_number_of_columns(tmp_path: Path) -> None:
    train = "EU NNP B-ORG\nrejects VBZ O\n\nPeter B-PER\n"
    bad(conll(tmp_path, train), "train.txt line 4 has 2 columns", "line 1 has 3")


def test_a_line_of_one_column(tmp_path: Path) -> None:
    bad(conll(tmp_path, "-DOCSTART- O\n\nEU\n"), "train.txt line 3 has 1 column", "add the tag")


def test_a_tag_outside_the_scheme_names_file_line_and_tag(tmp_path: Path) -> None:
    train = "EU B-ORG\nrejects O\n\nPeter PER\n"
    bad(conll(tmp_path, train), "train.txt line 4", "tag 'PER'", "IOB2 or IOBES", "last column")


@pytest.mark.parametrize("tag", ["L-PER", "U-PER", "b-PER", "B-", "B_PER", "o"])
def test_tags_of_other_schemes_are_refused(tmp_path: Path, tag: str) -> None:
    bad(conll(tmp_path, DEV_2COL, f"x {tag}\n"), "valid.txt line 1", repr(tag))


def test_a_dev_tag_unseen_in_training(tmp_path: Path) -> None:
    bad(conll(tmp_path, dev="a O\n\nb B-DATE\n"), "valid.txt line 3", "'B-DATE'", "training")


def test_a_file_without_sentences(tmp_path: Path) -> None:
    bad(conll(tmp_path, dev="-DOCSTART- O\n\n-DOCSTART- O\n\n"), "valid.txt", "no sentences")


def test_a_conll_folder_without_dev(tmp_path: Path) -> None:
    path = folder(tmp_path, {"train.txt": TRAIN_2COL, "test.txt": DEV_2COL})
    bad(path, "no validation split", "valid.<txt|conll|iob|iob2|bio>")


def test_two_training_files_of_different_layouts(tmp_path: Path) -> None:
    files = {"train.txt": TRAIN_2COL, "train.jsonl": jsonl(TRAIN_ROWS), "dev.jsonl": "{}"}
    bad(folder(tmp_path, files), "train.jsonl and train.txt", "keep only one")


def test_conll_that_is_not_utf8(tmp_path: Path) -> None:
    bad(conll(tmp_path, "caf\xe9 O\n".encode("latin-1")), "train.txt is not UTF-8", "0xe9")


def test_too_many_sentences(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rules, "MAX_ROWS", 2)
    bad(conll(tmp_path), "train.txt has over 2 rows")


def test_a_conll_file_too_large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rules, "MAX_FILE_BYTES", 10)
    bad(conll(tmp_path), "train.txt is", "over the 10-byte limit")


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ({"tokens": [], "tags": []}, ["line 2", "an empty sentence"]),
        ({"tokens": ["a", "b"], "tags": ["O"]}, ["line 2", "2 words but 1 tags"]),
        ({"tokens": ["a", " "], "tags": ["O", "O"]}, ["line 2 word 2", "an empty word"]),
        ({"tokens": ["a", None], "tags": ["O", "O"]}, ["line 2 word 2", "an empty word"]),
        ({"tokens": ["a", ["b"]], "tags": ["O", "O"]}, ["line 2 word 2", "['b']"]),
        ({"tokens": ["a"], "tags": [None]}, ["line 2 word 1", "missing tag"]),
        ({"tokens": ["a"], "tags": ["I-"]}, ["line 2 word 1", "tag 'I-'"]),
        ({"tokens": ["a"], "tags": "O"}, ["line 2", "not a list of tags"]),
        ({"tokens": "a", "tags": ["O"]}, ["line 2", "not a list of words"]),
    ],
)
def test_bad_rows_of_a_table(tmp_path: Path, row: dict, words: list[str]) -> None:
    good = {"tokens": ["x"], "tags": ["O"]}
    path = folder(tmp_path, {"train.jsonl": jsonl([good, row]), "dev.jsonl": jsonl([good])})
    bad(path, "train.jsonl", *words)


def test_both_tag_columns_ask_which(tmp_path: Path) -> None:
    rows = [{"tokens": ["a"], "tags": ["O"], "ner_tags": ["O"]}]
    path = folder(tmp_path, {"train.jsonl": jsonl(rows), "dev.jsonl": jsonl(rows)})
    bad(path, "both", "'tags', 'ner_tags'", "--label-field")
    assert load_task_data(path, label_field="ner_tags").label_field == "ner_tags"


def test_numbers_as_words_read_as_text(tmp_path: Path) -> None:
    rows = [{"tokens": ["in", 1996], "tags": ["O", "O"]}]
    path = folder(tmp_path, {"train.jsonl": jsonl(rows), "dev.jsonl": jsonl(rows)})
    assert load_task_data(path).train.texts == (("in", "1996"),)


# ---------------------------------------------------------------------------------------------
# Metrics and spans


def test_hand_worked_scores_wrong_type_and_partial_span_are_misses() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "I-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "I-ORG", "O", "O"]]
    # gold: PER(0-1), LOC(3), ORG(0-2); pred: PER(0-1), ORG(3), ORG(0-1)
    # only PER matches: precision 1/3, recall 1/3; tokens right: 4 + 3 of 8.
    scores = entity_scores(gold, pred)
    assert scores == pytest.approx(
        {
            "entity_f1": 1 / 3,
            "entity_precision": 1 / 3,
            "entity_recall": 1 / 3,
            "token_accuracy": 6 / 8,
            "f1_LOC": 0.0,
            "f1_ORG": 0.0,
            "f1_PER": 1.0,
        }
    )
    assert list(scores) == [
        "entity_f1",
        "entity_precision",
        "entity_recall",
        "token_accuracy",
        "f1_LOC",
        "f1_ORG",
        "f1_PER",
    ]


def test_types_only_predicted_get_no_f1_key_but_count_as_false_positives() -> None:
    scores = entity_scores([["B-PER", "O"]], [["B-PER", "B-MISC"]])
    assert "f1_MISC" not in scores
    assert scores["entity_precision"] == 0.5 and scores["entity_recall"] == 1.0
    assert scores["entity_f1"] == pytest.approx(2 / 3)


def test_zero_division_is_zero() -> None:
    assert entity_scores([["O", "O"]], [["O", "O"]]) == {
        "entity_f1": 0.0,
        "entity_precision": 0.0,
        "entity_recall": 0.0,
        "token_accuracy": 1.0,
    }
    scores = entity_scores([["B-X"]], [["O"]])
    assert (scores["entity_precision"], scores["entity_recall"], scores["f1_X"]) == (0, 0, 0)


def test_metric_reads_i_after_o_as_an_entity_start() -> None:
    # conlleval: "I-X" after O opens an X entity, so an IOB1 prediction of the same span matches.
    scores = entity_scores([["O", "B-ORG", "I-ORG"]], [["O", "I-ORG", "I-ORG"]])
    assert scores["entity_f1"] == 1.0 and scores["token_accuracy"] == pytest.approx(2 / 3)
    assert entity_spans(["a", "b", "c"], ["I-PER", "I-LOC", "I-LOC"]) == [
        Entity("PER", 0, 0, 0, 1, "a"),
        Entity("LOC", 1, 2, 2, 5, "b c"),
    ]


def test_iobes_spans_and_scores() -> None:
    gold = [["B-PER", "I-PER", "E-PER", "O", "S-LOC", "S-LOC"]]
    assert entity_scores(gold, gold)["entity_f1"] == 1.0
    spans = entity_spans(["Jan", "van", "Eyck", "in", "Gent", "Brugge"], gold[0])
    assert [(s.type, s.first_word, s.last_word) for s in spans] == [
        ("PER", 0, 2),
        ("LOC", 4, 4),
        ("LOC", 5, 5),
    ]
    # E- ends an entity: an E-PER predicted one word early is a partial span, a miss
    pred = [["B-PER", "E-PER", "O", "O", "S-LOC", "S-LOC"]]
    assert entity_scores(gold, pred)["entity_recall"] == pytest.approx(2 / 3)


def test_scores_equal_seqeval_on_noisy_predictions() -> None:
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

    rng = random.Random(7)
    tags = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC"]
    gold = [[rng.choice(tags) for _ in range(rng.randint(1, 12))] for _ in range(60)]
    pred = [[t if rng.random() < 0.7 else rng.choice(tags) for t in s] for s in gold]
    scores = entity_scores(gold, pred)
    assert scores["entity_f1"] == pytest.approx(f1_score(gold, pred))
    assert scores["entity_precision"] == pytest.approx(precision_score(gold, pred))
    assert scores["entity_recall"] == pytest.approx(recall_score(gold, pred))
    report = classification_report(gold, pred, output_dict=True)
    for kind in ("PER", "LOC", "ORG", "MISC"):
        assert scores[f"f1_{kind}"] == pytest.approx(report[kind]["f1-score"])
    right = sum(
        g == p for gs, ps in zip(gold, pred, strict=True) for g, p in zip(gs, ps, strict=True)
    )
    assert scores["token_accuracy"] == pytest.approx(right / sum(map(len, gold)))


def test_tuples_score_as_lists() -> None:
    gold = (("B-PER", "I-PER"), ("O",))
    assert entity_scores(gold, gold)["entity_f1"] == 1.0


@pytest.mark.parametrize(
    ("gold", "pred", "message"),
    [
        ([], [], "no examples"),
        ([[]], [[]], "no examples"),
        ([["O"]], [], "1 sentences but pred has 0"),
        ([["O", "O"]], [["O"]], "sentence 0: gold has 2 tags but pred has 1"),
    ],
)
def test_wrong_metric_input_raises(gold, pred, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        entity_scores(gold, pred)


def test_spans_with_and_without_text() -> None:
    words, tags = (
        ["Peter", "Blackburn", "visits", "New", "York"],
        ["B-PER", "I-PER", "O"]
        + [
            "B-LOC",
            "I-LOC",
        ],
    )
    assert entity_spans(words, tags) == [
        Entity("PER", 0, 1, 0, 15, "Peter Blackburn"),
        Entity("LOC", 3, 4, 23, 31, "New York"),
    ]
    text = "  Peter\tBlackburn visits New  York!"
    spans = entity_spans(words, tags, text)
    assert [(s.start, s.end, s.text) for s in spans] == [
        (2, 17, "Peter\tBlackburn"),
        (25, 34, "New  York"),
    ]
    assert all(text[s.start : s.end] == s.text for s in spans)
    assert entity_spans(["a"], ["O"]) == []


def test_word_offsets_split_on_whitespace_and_feed_spans() -> None:
    text = " Nadim\u00a0Ladki  in\tJapan \n"
    offsets = word_offsets(text)
    words = [text[a:b] for a, b in offsets]
    assert words == ["Nadim", "Ladki", "in", "Japan"]  # a no-break space is whitespace here
    assert offsets == [(1, 6), (7, 12), (14, 16), (17, 22)]
    [person, place] = entity_spans(words, ["B-PER", "I-PER", "O", "B-LOC"], text)
    assert (person.text, person.start, place.text, place.end) == (
        "Nadim\u00a0Ladki",
        1,
        "Japan",
        22,
    )
    assert word_offsets("   ") == []


def test_spans_refuse_mismatched_input() -> None:
    with pytest.raises(ValueError, match="2 words but 1 tags"):
        entity_spans(["a", "b"], ["O"])
    with pytest.raises(ValueError, match="word 1 .'c'. is not in the text"):
        entity_spans(["a", "c"], ["O", "O"], "a b")


# ---------------------------------------------------------------------------------------------
# The real CoNLL-2003 data, where a clone sits beside it (an extra check: fixtures above cover
# every rule)


@pytest.mark.skipif(
    not (CONLL_2003 / "train.txt").is_file(), reason=f"no CoNLL-2003 copy at {CONLL_2003}"
)
def test_real_conll_2003_counts() -> None:
    d = load_task_data(CONLL_2003)
    assert (len(d.train.texts), sum(map(len, d.train.texts))) == (14_041, 203_621)
    assert (len(d.dev.texts), sum(map(len, d.dev.texts))) == (3_250, 51_362)
    assert d.labels == tuple(
        ["O"] + [f"{p}-{t}" for t in ("LOC", "MISC", "ORG", "PER") for p in "BI"]
    )
    assert d.train.texts[0] == (
        "EU",
        "rejects",
        "German",
        "call",
        "to",
        "boycott",
        "British",
        "lamb",
        ".",
    )
    assert entity_scores(d.dev.labels, d.dev.labels)["entity_f1"] == 1.0
