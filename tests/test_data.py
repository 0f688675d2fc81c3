"""Tests of contlearn.data: every layout and GLUE task, column inference, labels, metrics,
fingerprints, and every kind of bad input (BadData with a one-line message, never a traceback)."""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contlearn.data import rules
from contlearn.data.task import Split, TaskData, data_fingerprint, load_task_data
from contlearn.errors import BadData
from tests.fixtures_data import (
    GLUE_FOLDERS,
    GLUE_LABELS,
    text_rows,
    write_datasets_task,
    write_glue_task,
    write_table_file,
    write_table_task,
)

FORMATS = ("csv", "tsv", "jsonl", "json", "parquet")
GLUE_EXPECTED = {  # task: (text fields, label field, metrics)
    "cola": (("sentence",), "label", ("matthews", "accuracy")),
    "sst2": (("sentence",), "label", ("accuracy",)),
    "mrpc": (("#1 String", "#2 String"), "Quality", ("f1", "accuracy")),
    "stsb": (("sentence1", "sentence2"), "score", ("pearson", "spearman")),
    "qqp": (("question1", "question2"), "is_duplicate", ("f1", "accuracy")),
    "mnli": (("sentence1", "sentence2"), "gold_label", ("accuracy",)),
    "qnli": (("question", "sentence"), "label", ("accuracy",)),
    "rte": (("sentence1", "sentence2"), "label", ("accuracy",)),
    "wnli": (("sentence1", "sentence2"), "label", ("accuracy",)),
}


def bad(path: Path, *words: str, **kwargs) -> str:
    """Load ``path`` expecting BadData whose one-line message holds every word."""
    with pytest.raises(BadData) as info:
        load_task_data(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    return message


def folder(tmp_path: Path, files: dict[str, str | bytes], name: str = "task") -> Path:
    """A data folder holding ``files`` (text is written as UTF-8)."""
    out = tmp_path / name
    out.mkdir(parents=True, exist_ok=True)
    for file, content in files.items():
        raw = content.encode() if isinstance(content, str) else content
        (out / file).write_bytes(raw)
    return out


def csv_task(tmp_path: Path, train: str, dev: str = "text,label\nfine day,a\n", **kw) -> Path:
    return folder(tmp_path, {"train.csv": train, "dev.csv": dev}, **kw)


# ---------------------------------------------------------------------------------------------
# GLUE's layout


@pytest.mark.parametrize("task", sorted(GLUE_FOLDERS))
def test_each_glue_task_loads_with_its_fields_labels_and_metrics(tmp_path, task):
    d = load_task_data(write_glue_task(tmp_path, task, n_train=30, n_dev=9))
    texts, label, metrics = GLUE_EXPECTED[task]
    assert (d.format, d.glue_task) == ("glue", task)
    assert (d.text_fields, d.label_field, d.metrics) == (texts, label, metrics)
    assert d.metric == metrics[0]
    assert (len(d.train.texts), len(d.dev.texts)) == (30, 9)
    assert len(d.train.labels) == 30 and all(len(t) == len(texts) for t in d.train.texts)
    assert d.labels == GLUE_LABELS[task]
    assert d.problem_type == ("regression" if task == "stsb" else "classification")
    assert d.source == (tmp_path / GLUE_FOLDERS[task]).resolve() and d.source.is_absolute()


def test_cola_has_no_header_row_so_its_first_line_is_data(tmp_path):
    d = load_task_data(write_glue_task(tmp_path, "cola", n_train=5, n_dev=2))
    first = (tmp_path / "CoLA" / "train.tsv").read_text().split("\n")[0].split("\t")
    assert d.train.texts[0] == (first[3],) and d.train.labels[0] == first[1]


def test_mrpc_bom_and_bare_quotes_are_read_as_text(tmp_path):
    path = write_glue_task(tmp_path, "mrpc")
    assert (path / "train.tsv").read_bytes().startswith(b"\xef\xbb\xbfQuality\t")
    d = load_task_data(path)
    assert d.train.texts[0][1].startswith('" ') and d.train.texts[0][1].count('"') == 3


def test_stsb_scores_are_float_regression_labels(tmp_path):
    d = load_task_data(write_glue_task(tmp_path, "stsb"))
    assert d.labels is None and all(isinstance(x, float) for x in d.train.labels)
    assert min(d.train.labels) >= 0.0 and max(d.train.labels) <= 5.0


def test_stsb_is_regression_even_when_every_score_is_whole(tmp_path):
    rows = (
        "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    )
    line = "0\tg\tf\t2012\t0\tnone\tnone\ta cat\ta dog\t{}\n"
    files = {
        f: rows + line.format("5.000") + line.format("1.000") for f in ("train.tsv", "dev.tsv")
    }
    d = load_task_data(folder(tmp_path, files, name="STS-B"))
    assert d.problem_type == "regression" and d.train.labels == (5.0, 1.0)


def test_mnli_uses_dev_matched_and_fingerprints_only_the_files_read(tmp_path):
    path = write_glue_task(tmp_path, "mnli", n_train=9, n_dev=6)
    d = load_task_data(path)
    assert d.files == ("dev_matched.tsv", "train.tsv") and len(d.dev.texts) == 6
    (path / "dev_mismatched.tsv").write_text("changed")
    (path / "test_matched.tsv").write_text("changed")
    assert load_task_data(path).fingerprint == d.fingerprint


@pytest.mark.parametrize("task", ["sst2", "mrpc", "stsb", "qqp", "mnli", "qnli"])
def test_glue_task_is_recognised_by_its_header_row(tmp_path, task):
    d = load_task_data(write_glue_task(tmp_path, task, folder="my-data"))
    assert (d.glue_task, d.format) == (task, "glue")


def test_rte_header_alone_could_be_wnli_so_it_loads_as_plain_tsv(tmp_path):
    d = load_task_data(write_glue_task(tmp_path, "rte", folder="entail"))
    assert (d.glue_task, d.format, d.metrics) == (None, "tsv", ("accuracy",))
    assert d.text_fields == ("sentence1", "sentence2") and d.label_field == "label"


@pytest.mark.parametrize(("name", "task"), [("sst_2", "sst2"), ("Sts-B", "stsb"), ("cola", "cola")])
def test_glue_folder_names_ignore_case_dashes_and_underscores(tmp_path, name, task):
    assert load_task_data(write_glue_task(tmp_path, task, folder=name)).glue_task == task


def test_glue_test_file_is_ignored(tmp_path):
    path = write_glue_task(tmp_path, "rte")
    (path / "test.tsv").write_bytes(b"\xff broken")
    assert load_task_data(path).files == ("dev.tsv", "train.tsv")


def test_folder_without_training_split_names_the_files_found(tmp_path):
    path = write_glue_task(tmp_path, "qnli")
    (path / "train.tsv").unlink()
    bad(path, "no training split", "dev.tsv", "train.")


# ---------------------------------------------------------------------------------------------
# Folders of files


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_file_format_reads_rows_exactly(tmp_path, fmt):
    train, dev = text_rows(20, 3), text_rows(7, 4)
    d = load_task_data(write_table_task(tmp_path, fmt, train, dev))
    assert (d.format, d.glue_task) == (fmt, None)
    assert d.files == (f"train.{fmt}", f"validation.{fmt}")
    assert d.train == Split(tuple((r["text"],) for r in train), tuple(r["label"] for r in train))
    assert d.dev.texts == tuple((r["text"],) for r in dev)
    assert (d.labels, d.metrics, d.problem_type) == (
        ("negative", "positive"),
        ("accuracy",),
        "classification",
    )


@pytest.mark.parametrize("dev_name", ["dev", "validation"])
def test_dev_or_validation_file_is_the_dev_split(tmp_path, dev_name):
    d = load_task_data(write_table_task(tmp_path, "jsonl", dev_name=dev_name))
    assert d.files == tuple(sorted(("train.jsonl", f"{dev_name}.jsonl")))


def test_json_file_may_hold_json_lines(tmp_path):
    rows = text_rows(4)
    lines = "".join(json.dumps(r) + "\n" for r in rows)
    d = load_task_data(folder(tmp_path, {"train.json": lines, "dev.json": lines}))
    assert d.format == "json" and d.train.labels == tuple(r["label"] for r in rows)


def test_csv_keeps_quoted_commas_newlines_and_spaces(tmp_path):
    train = 'text,label\n"a, ""quoted""\nline  ",x\n  spaced  ,y\n'
    d = load_task_data(csv_task(tmp_path, train, dev="text,label\nz,x\n"))
    assert d.train.texts == (('a, "quoted"\nline  ',), ("  spaced  ",))
    assert d.train.labels == ("x", "y")


def test_csv_row_numbers_count_lines_of_multiline_rows(tmp_path):
    train = 'text,label\n"two\nlines",x\n,y\n'
    bad(csv_task(tmp_path, train), "train.csv line 4", "empty text", "'text'")


def test_mixed_formats_for_train_and_dev_are_read_each_by_its_extension(tmp_path):
    path = folder(
        tmp_path, {"train.csv": "text,label\nhi,a\n", "dev.jsonl": '{"text":"x","label":"a"}'}
    )
    d = load_task_data(path)
    assert d.format == "csv" and d.dev.texts == (("x",),)


def test_saved_datasets_folder_maps_class_label_ints_to_names(tmp_path):
    path = write_datasets_task(tmp_path, 10, 4, label_names=("neg", "pos", "mixed"))
    d = load_task_data(path)
    assert (d.format, d.glue_task, d.labels) == ("datasets", None, ("mixed", "neg", "pos"))
    assert d.train.labels[:3] == ("neg", "pos", "mixed")
    assert "dataset_dict.json" in d.files and "train/state.json" in d.files
    assert list(d.files) == sorted(d.files) and len(d.dev.texts) == 4


def test_saved_datasets_folder_with_a_dev_split(tmp_path):
    d = load_task_data(write_datasets_task(tmp_path, 6, 2, dev_split="dev"))
    assert len(d.dev.labels) == 2


def test_saved_datasets_fingerprint_covers_every_file(tmp_path):
    path = write_datasets_task(tmp_path, 6, 2)
    before = load_task_data(path).fingerprint
    info = path / "validation" / "dataset_info.json"
    info.write_text(info.read_text() + " ")
    assert load_task_data(path).fingerprint != before


def test_saved_datasets_without_validation_split_is_refused(tmp_path):
    path = write_datasets_task(tmp_path, 6, 2, dev_split="test")
    bad(path, "'test'", "'train'", "validation")


def test_saved_datasets_with_unlabelled_rows_reports_the_row(tmp_path):
    import datasets

    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["a", "b"])}
    )
    rows = [{"text": "x", "label": 0}, {"text": "y", "label": -1}]
    ds = datasets.Dataset.from_list(rows, features=features)
    datasets.DatasetDict({"train": ds, "validation": ds}).save_to_disk(str(tmp_path / "s"))
    bad(tmp_path / "s", "split 'train' row 2", "missing label")


@pytest.mark.parametrize(
    "damage", ["dataset_dict.json", "train/state.json", "train/data-00000-of-00001.arrow"]
)
def test_damaged_saved_datasets_folder_is_bad_data(tmp_path, damage):
    path = write_datasets_task(tmp_path, 6, 2)
    (path / damage).write_bytes(b"\x00garbage{")
    bad(path, str(path))


# ---------------------------------------------------------------------------------------------
# Choosing columns


@pytest.mark.parametrize(
    ("columns", "texts", "label"),
    [
        (["id", "sentence1", "sentence2", "label"], ("sentence1", "sentence2"), "label"),
        (["question", "sentence", "labels"], ("question", "sentence"), "labels"),
        (["question1", "question2", "is_duplicate"], ("question1", "question2"), "is_duplicate"),
        (["premise", "hypothesis", "gold_label"], ("premise", "hypothesis"), "gold_label"),
        (["#1 String", "#2 String", "Quality"], ("#1 String", "#2 String"), "Quality"),
        (["Text", "Sentiment"], ("Text",), "Sentiment"),
        (["review", "stars", "target"], ("review",), "target"),
        (["content", "class"], ("content",), "class"),
        (["document", "category"], ("document",), "category"),
        (["question", "score"], ("question",), "score"),
    ],
)
def test_fields_are_inferred_from_common_names(tmp_path, columns, texts, label):
    row = {c: f"{c} value" for c in columns}
    d = load_task_data(write_table_task(tmp_path, "jsonl", [row], [row]))
    assert (d.text_fields, d.label_field) == (texts, label)


def test_ambiguous_text_columns_ask_for_text_fields(tmp_path):
    path = csv_task(tmp_path, "text,sentence,label\na,b,c\n", "text,sentence,label\na,b,c\n")
    bad(path, "'text'", "'sentence'", "--text-fields a,b", "train.csv")


def test_no_usual_text_column_lists_the_columns(tmp_path):
    path = csv_task(tmp_path, "body,label\na,c\n", "body,label\na,c\n")
    bad(path, "'body'", "'label'", "--text-fields")


@pytest.mark.parametrize("header", ["text,label,score", "text,stars"])
def test_ambiguous_or_missing_label_column_asks_for_label_field(tmp_path, header):
    row = ",".join("x" for _ in header.split(","))
    bad(csv_task(tmp_path, f"{header}\n{row}\n", f"{header}\n{row}\n"), "--label-field L")


def test_explicit_fields_win_over_inference(tmp_path):
    rows = [{"title": "t", "body": "b", "text": "x", "label": "0", "stars": "5"}]
    path = write_table_task(tmp_path, "parquet", rows, rows)
    d = load_task_data(path, text_fields=["title", "body"], label_field="stars")
    assert (d.text_fields, d.label_field, d.train.texts, d.labels) == (
        ("title", "body"),
        "stars",
        (("t", "b"),),
        ("5",),
    )
    assert load_task_data(path, text_fields="title, body", label_field="stars") == d


def test_explicit_text_fields_with_inferred_label(tmp_path):
    rows = [{"title": "t", "label": "0"}]
    d = load_task_data(write_table_task(tmp_path, "csv", rows, rows), text_fields=("title",))
    assert d.label_field == "label"


def test_glue_task_with_explicit_label_field(tmp_path):
    path = write_glue_task(tmp_path, "rte")
    d = load_task_data(path, text_fields=("sentence2",), label_field="label")
    assert d.glue_task == "rte" and d.text_fields == ("sentence2",)


def test_missing_explicit_column_names_it_and_the_available_ones(tmp_path):
    path = write_table_task(tmp_path, "csv")
    bad(path, "no column 'body'", "'text'", "'label'", text_fields=["body"])
    bad(path, "no column 'stars'", "'text'", label_field="stars")


def test_column_missing_from_the_dev_file_only(tmp_path):
    bad(
        csv_task(tmp_path, "text,label\na,b\n", "words,label\na,b\n"), "dev.csv", "no column 'text'"
    )


def test_label_column_cannot_also_be_a_text_field(tmp_path):
    bad(write_table_task(tmp_path, "csv"), "'label'", text_fields=["text", "label"])


def test_empty_text_fields_are_refused(tmp_path):
    bad(write_table_task(tmp_path, "csv"), "--text-fields", text_fields=[])


# ---------------------------------------------------------------------------------------------
# Labels, problem type, metrics


def test_integer_labels_are_in_numeric_order(tmp_path):
    rows = [{"text": "t", "label": v} for v in ("10", "2", "-1", "2", "1")]
    d = load_task_data(write_table_task(tmp_path, "csv", rows, rows[:1]))
    assert d.labels == ("-1", "1", "2", "10") and d.problem_type == "classification"


def test_string_labels_are_sorted_and_stripped(tmp_path):
    rows = [{"text": "t", "label": v} for v in ("pos ", "neg", "Mixed")]
    d = load_task_data(write_table_task(tmp_path, "tsv", rows, rows))
    assert d.labels == ("Mixed", "neg", "pos") and d.train.labels == ("pos", "neg", "Mixed")


def test_typed_labels_become_strings(tmp_path):
    rows = [{"text": "t", "label": v} for v in (1, 0, 1.0)]
    d = load_task_data(write_table_task(tmp_path, "jsonl", rows, rows))
    assert d.train.labels == ("1", "0", "1") and d.labels == ("0", "1")
    flags = [{"text": "t", "label": v} for v in (True, False)]
    d = load_task_data(write_table_task(tmp_path, "parquet", flags, flags, name="b"))
    assert d.labels == ("false", "true") and d.train.labels == ("true", "false")


def test_non_integral_numbers_make_a_regression_task(tmp_path):
    rows = [{"text": "t", "y": v} for v in ("0.5", "3", "-1e-1")]
    d = load_task_data(write_table_task(tmp_path, "csv", rows, rows), label_field="y")
    assert (d.problem_type, d.labels, d.metrics) == ("regression", None, ("pearson", "spearman"))
    assert d.train.labels == (0.5, 3.0, -0.1)


def test_whole_numbers_are_classes(tmp_path):
    rows = [{"text": "t", "label": v} for v in (1.0, 3.0, 5.0)]
    d = load_task_data(write_table_task(tmp_path, "parquet", rows, rows))
    assert (d.problem_type, d.labels) == ("classification", ("1", "3", "5"))


def test_regression_dev_label_must_be_a_number(tmp_path):
    train = [{"text": "t", "label": v} for v in (0.5, 1.5)]
    dev = [{"text": "t", "label": 0.5}, {"text": "u", "label": "high"}]
    bad(write_table_task(tmp_path, "jsonl", train, dev), "validation.jsonl line 2", "'high'")


def test_dev_label_never_seen_in_training_is_named_with_its_row(tmp_path):
    dev = text_rows(3, labels=("negative", "positive", "neutral"))
    bad(write_table_task(tmp_path, "json", text_rows(4), dev), "'neutral'", "validation.json row 3")


@pytest.mark.parametrize(
    ("metric", "expected"), [("f1", ("f1", "accuracy")), ("accuracy", ("accuracy",))]
)
def test_explicit_metric_becomes_primary(tmp_path, metric, expected):
    d = load_task_data(write_table_task(tmp_path, "csv"), metric=metric)
    assert (d.metrics, d.metric) == (expected, metric)


def test_explicit_metric_on_glue_keeps_the_other_defaults(tmp_path):
    d = load_task_data(write_glue_task(tmp_path, "cola"), metric="accuracy")
    assert d.metrics == ("accuracy", "matthews")
    d = load_task_data(write_glue_task(tmp_path, "stsb"), metric="spearman")
    assert d.metrics == ("spearman", "pearson")


def test_metric_of_the_wrong_kind_is_refused(tmp_path):
    bad(write_table_task(tmp_path, "csv"), "'pearson'", "accuracy", metric="pearson")
    bad(write_glue_task(tmp_path, "stsb"), "'f1'", "spearman", metric="f1")
    bad(write_table_task(tmp_path, "csv"), "unknown metric 'auc'", metric="auc")


# ---------------------------------------------------------------------------------------------
# Determinism and fingerprints


def test_loading_twice_gives_equal_task_data(tmp_path):
    path = write_glue_task(tmp_path, "mrpc")
    first = load_task_data(path)
    assert isinstance(first, TaskData) and load_task_data(str(path)) == first


def test_fingerprint_changes_when_one_byte_changes(tmp_path):
    path = write_table_task(tmp_path, "csv")
    before = load_task_data(path)
    raw = (path / "validation.csv").read_bytes()
    (path / "validation.csv").write_bytes(raw.replace(b"it was", b"It was", 1))
    after = load_task_data(path)
    assert after.fingerprint != before.fingerprint and after.files == before.files


def test_fingerprint_is_sha256_of_names_sizes_and_bytes(tmp_path):
    (tmp_path / "b.csv").write_bytes(b"xyz")
    (tmp_path / "a.csv").write_bytes(b"")
    expected = hashlib.sha256(b"a.csv\x000\x00b.csv\x003\x00xyz").hexdigest()
    assert data_fingerprint(tmp_path, ["b.csv", "a.csv"]) == expected


def test_fingerprint_of_a_missing_file_is_bad_data(tmp_path):
    with pytest.raises(BadData, match="cannot read gone.csv"):
        data_fingerprint(tmp_path, ["gone.csv"])


# ---------------------------------------------------------------------------------------------
# Bad folders and files


def test_missing_folder(tmp_path):
    bad(tmp_path / "nope", "does not exist", "nope")


def test_file_instead_of_folder(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\n")
    bad(tmp_path / "train.csv", "is a file, not a folder")


def test_no_validation_split(tmp_path):
    path = folder(tmp_path, {"train.csv": "text,label\na,b\n", "notes.txt": "x"})
    bad(path, "no validation split", "'notes.txt'", "'train.csv'", "validation.<csv|")


def test_two_candidates_for_one_split_are_both_named(tmp_path):
    path = write_table_task(tmp_path, "csv")
    write_table_file(path / "train.jsonl", "jsonl", text_rows(3))
    bad(path, "train.csv", "train.jsonl", "keep only one")
    (path / "train.jsonl").unlink()
    write_table_file(path / "dev.csv", "csv", text_rows(3))
    bad(path, "dev.csv", "validation.csv")


@pytest.mark.parametrize(
    ("fmt", "content"),
    [
        ("csv", b""),
        ("csv", b"text,label\n"),
        ("tsv", b"text\tlabel\n\n"),
        ("jsonl", b"\n\n"),
        ("json", b"[]"),
    ],
)
def test_empty_split_is_refused(tmp_path, fmt, content):
    path = write_table_task(tmp_path, fmt)
    (path / f"validation.{fmt}").write_bytes(content)
    bad(path, f"validation.{fmt}", "no data rows")


def test_empty_parquet_and_datasets_splits_are_refused(tmp_path):
    path = write_table_task(tmp_path, "parquet", [], text_rows(2))
    bad(path, "train.parquet", "no data rows")
    bad(write_datasets_task(tmp_path, 0, 2), "split 'train'", "no data rows")


@pytest.mark.parametrize(
    ("fmt", "rows", "where"),
    [
        ("csv", [{"text": "a", "label": "x"}, {"text": "b", "label": " "}], "train.csv line 3"),
        (
            "jsonl",
            [{"text": "a", "label": "x"}, {"text": "b", "label": None}],
            "train.jsonl line 2",
        ),
        ("json", [{"text": "a", "label": "x"}, {"text": "b"}], "train.json row 2"),
        ("parquet", [{"text": "a", "label": 1.0}, {"text": "b", "label": float("nan")}], "row 2"),
    ],
)
def test_missing_label_names_file_and_row(tmp_path, fmt, rows, where):
    bad(write_table_task(tmp_path, fmt, rows, rows[:1]), where, "missing label", "'label'")


@pytest.mark.parametrize(
    ("fmt", "rows", "where"),
    [
        ("tsv", [{"text": "a", "label": "x"}, {"text": "  ", "label": "x"}], "train.tsv line 3"),
        ("jsonl", [{"text": None, "label": "x"}], "train.jsonl line 1"),
        ("parquet", [{"text": "a", "label": "x"}, {"text": None, "label": "x"}], "row 2"),
    ],
)
def test_empty_text_names_file_and_row(tmp_path, fmt, rows, where):
    bad(write_table_task(tmp_path, fmt, rows, rows[:1]), where, "empty text", "'text'")


def test_non_text_value_in_a_text_column(tmp_path):
    rows = [{"text": ["a", "list"], "label": "x"}]
    bad(write_table_task(tmp_path, "jsonl", rows, rows), "line 1", "list", "not text")


def test_non_scalar_label(tmp_path):
    rows = [{"text": "a", "label": {"a": 1}}]
    bad(write_table_task(tmp_path, "jsonl", rows, rows), "line 1", "dict", "--label-field")


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "json"])
def test_non_utf8_bytes_name_file_and_offset(tmp_path, fmt):
    path = write_table_task(tmp_path, fmt)
    raw = (path / f"train.{fmt}").read_bytes()
    offset = raw.index(b"and it was")
    (path / f"train.{fmt}").write_bytes(raw[:offset] + b"\xe9" + raw[offset + 1 :])
    bad(path, f"train.{fmt}", f"offset {offset}", "UTF-8", "0xe9")


def test_non_utf8_offset_is_exact_past_the_first_chunk(tmp_path):
    text = "text,label\n" + "é word,a\n" * 200_000
    raw = text.encode() + b"\xc3\x28,a\n"  # a lead byte followed by a non-continuation byte
    path = folder(tmp_path, {"train.csv": raw, "dev.csv": "text,label\nx,a\n"})
    bad(path, f"offset {len(text.encode())}", "0xc3", "re-save")


def test_bom_is_not_part_of_the_first_column_name(tmp_path):
    path = csv_task(tmp_path, "\ufefftext,label\na,b\n", "\ufefftext,label\na,b\n")
    assert load_task_data(path).text_fields == ("text",)


def test_json_lines_keep_line_separators_inside_text(tmp_path):
    rows = [{"text": "one\u2028two\x85three", "label": "a"}]
    d = load_task_data(write_table_task(tmp_path, "jsonl", rows, rows))
    assert d.train.texts == (("one\u2028two\x85three",),)


def test_json_values_python_cannot_hold_are_bad_data(tmp_path):
    train = '{"text": "a", "label": ' + "1" * 5000 + "}\n"
    path = folder(tmp_path, {"train.jsonl": train, "dev.jsonl": '{"text": "a", "label": 1}'})
    bad(path, "train.jsonl line 1", "4300 digits")


def test_long_values_are_cut_short_in_messages(tmp_path):
    rows = [{"text": "a", "label": "x"}]
    dev = [{"text": "a", "label": "y" * 500}]
    message = bad(write_table_task(tmp_path, "csv", rows, dev), "never appears", "...")
    assert len(message) < 300


@pytest.mark.parametrize(
    ("files", "where"),
    [
        ({"train.csv": "text,label\na,b\nc;d\n"}, "train.csv line 3"),
        ({"train.tsv": "text\tlabel\na\tb\nc\twith a tab\tb\n"}, "train.tsv line 3"),
        ({"train.tsv": "text\tlabel\na\tb\nc label b\n"}, "train.tsv line 3"),
    ],
)
def test_wrong_number_of_fields_names_line_and_delimiter(tmp_path, files, where):
    path = folder(tmp_path, {**files, "dev.jsonl": '{"text": "x", "label": "b"}'})
    bad(path, where, "fields", "delimiter")


def test_cola_row_with_a_missing_field(tmp_path):
    path = write_glue_task(tmp_path, "cola")
    with (path / "dev.tsv").open("a") as f:
        f.write("gj04\t1\tno sentence\n")
    bad(path, "dev.tsv line 13", "3 fields where 4")


def test_malformed_csv_quoting_is_bad_data(tmp_path):
    bad(csv_task(tmp_path, 'text,label\n"abc"def,x\n'), "train.csv line 2", "quoting")


def test_invalid_json_names_the_line(tmp_path):
    path = folder(
        tmp_path, {"train.jsonl": '{"text": "a", "label": "b"}\n{"text": \n', "dev.jsonl": ""}
    )
    bad(path, "train.jsonl line 2", "invalid JSON")
    (path / "train.jsonl").write_text('[{"text": "a", "label": "b"},\n {"text" "b"}]')
    bad(path, "train.jsonl line 2", "invalid JSON")


def test_json_rows_must_be_objects(tmp_path):
    bad(folder(tmp_path, {"train.json": "[1, 2]", "dev.json": "[]"}), "train.json row 1", "object")
    bad(folder(tmp_path, {"train.jsonl": "[1]\n", "dev.json": "[]"}, name="b"), "object")


@pytest.mark.parametrize(
    ("files", "words"),
    [
        ({"train.csv": "text,label,text\na,b,c\n"}, ("train.csv", "'text' twice")),
        ({"train.tsv": "text\tlabel \tlabel\na\tb\tc\n"}, ("train.tsv", "'label' twice")),
        ({"train.jsonl": '{"text": "a", "label": "b", "text": "c"}\n'}, ("line 1", "'text'")),
    ],
)
def test_duplicated_column_names_are_refused(tmp_path, files, words):
    bad(folder(tmp_path, {**files, "dev.csv": "text,label\na,b\n"}), *words)


def test_duplicated_parquet_columns_are_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = write_table_task(tmp_path, "parquet")
    table = pa.Table.from_arrays([pa.array(["a"]), pa.array(["b"])], names=["text", "text"])
    pq.write_table(table, path / "train.parquet")
    bad(path, "train.parquet", "'text' twice")


def test_garbage_parquet_is_bad_data(tmp_path):
    path = write_table_task(tmp_path, "parquet")
    (path / "train.parquet").write_bytes(b"PAR1 not really parquet")
    bad(path, "train.parquet", "parquet")


def test_symlink_outside_the_folder_is_refused(tmp_path):
    outside = write_table_file(tmp_path / "elsewhere.csv", "csv", text_rows(4))
    path = write_table_task(tmp_path, "csv")
    (path / "train.csv").unlink()
    (path / "train.csv").symlink_to(outside)
    bad(path, "train.csv", "symlink", "outside the data folder")


def test_symlink_inside_the_folder_is_read(tmp_path):
    path = write_table_task(tmp_path, "csv")
    (path / "validation.csv").rename(path / "held-out.csv")
    (path / "validation.csv").symlink_to("held-out.csv")
    assert len(load_task_data(path).dev.texts) == 12


def test_symlinked_file_in_saved_datasets_leading_outside_is_refused(tmp_path):
    path = write_datasets_task(tmp_path, 4, 2)
    info = path / "train" / "dataset_info.json"
    outside = tmp_path / "info.json"
    info.rename(outside)
    info.symlink_to(outside)
    bad(path, "train/dataset_info.json", "outside")


def test_symlinked_folder_in_saved_datasets_leading_outside_is_refused(tmp_path):
    path = write_datasets_task(tmp_path, 4, 2)
    (path / "validation").rename(tmp_path / "val")
    (path / "validation").symlink_to(tmp_path / "val")
    bad(path, "validation", "outside")


def test_file_over_the_size_limit_is_refused(tmp_path, monkeypatch):
    path = write_table_task(tmp_path, "csv")
    size = (path / "train.csv").stat().st_size
    monkeypatch.setattr(rules, "MAX_FILE_BYTES", size - 1)
    bad(path, "train.csv", f"{size} bytes", f"{size - 1}-byte limit")
    assert rules.MAX_FILE_BYTES != 2 * 1024**3  # the limit is read at call time


def test_default_size_limit_is_two_gib():
    assert rules.MAX_FILE_BYTES == 2 * 1024**3


# ---------------------------------------------------------------------------------------------
# Properties

_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40
).filter(lambda s: s.strip())
_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(texts=st.lists(_TEXT, min_size=1, max_size=8), fmt=st.sampled_from(["csv", "jsonl"]))
def test_any_text_round_trips_through_csv_and_jsonl(texts, fmt):
    rows = [{"text": t, "label": "ab"[i % 2]} for i, t in enumerate(texts)]
    with tempfile.TemporaryDirectory() as tmp:
        d = load_task_data(write_table_task(Path(tmp), fmt, rows, rows[:1]))
    assert d.train.texts == tuple((t,) for t in texts)
    assert d.train.labels == tuple(r["label"] for r in rows)


@_SETTINGS
@given(texts=st.lists(_TEXT.filter(lambda s: not set(s) & set("\t\r\n")), min_size=1, max_size=8))
def test_any_text_without_tabs_or_newlines_round_trips_through_tsv(texts):
    rows = [{"text": t, "label": "x"} for t in texts]
    with tempfile.TemporaryDirectory() as tmp:
        d = load_task_data(write_table_task(Path(tmp), "tsv", rows, rows))
    assert d.train.texts == tuple((t,) for t in texts)


_PIECES = [b"text", b"label", b"sentence", b",", b"\t", b"\n", b"\r", b'"', b"{", b"}", b"[", b"]"]
_PIECES += [b":", b"\xff", b"\xc3", b"\xef\xbb\xbf", b"null", b"NaN", b"1.5", b"0", b"a", b" "]
_BYTES = st.one_of(
    st.binary(max_size=200), st.lists(st.sampled_from(_PIECES), max_size=40).map(b"".join)
)


@_SETTINGS
@given(raw=_BYTES, where=st.sampled_from([*FORMATS, "CoLA", "MRPC"]), split=st.booleans())
def test_random_bytes_raise_nothing_but_bad_data(raw, where, split):
    with tempfile.TemporaryDirectory() as tmp:
        if where in FORMATS:
            path = write_table_task(Path(tmp), where)
            name = f"{'train' if split else 'validation'}.{where}"
        else:
            path = write_glue_task(Path(tmp), where.lower(), n_train=6, n_dev=4)
            name = "train.tsv" if split else "dev.tsv"
        (path / name).write_bytes(raw)
        try:
            load_task_data(path)
        except BadData as exc:
            assert "\n" not in str(exc) and len(str(exc)) < 1000


@settings(max_examples=15, deadline=None)
@given(
    raw=st.binary(max_size=300),
    target=st.sampled_from(["dataset_dict.json", "train/state.json", "train/dataset_info.json"]),
)
def test_random_bytes_in_a_saved_dataset_raise_nothing_but_bad_data(raw, target):
    with tempfile.TemporaryDirectory() as tmp:
        path = write_datasets_task(Path(tmp), 3, 2)
        (path / target).write_bytes(raw)
        try:
            load_task_data(path)
        except BadData as exc:
            assert "\n" not in str(exc)


def test_data_package_does_not_import_torch_or_print():
    for module in Path(rules.__file__).parent.glob("*.py"):
        source = module.read_text()
        assert not re.search(r"^\s*(import|from) torch", source, re.MULTILINE), module.name
        assert not re.search(r"\bprint\(", source), module.name
