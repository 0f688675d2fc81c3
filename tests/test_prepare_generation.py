"""Tests of ``contlearn datasets prepare --form generation`` on the real corpora: prompt/response
jsonl files whose prompts are the instruction and the cut text, the same split as the
classification form where no text was cut, the free-text bbc-headline corpus (one article per
headline, unstratified), determinism, and every refusal (one line, nothing written)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from contlearn.data.instructions import INSTRUCTIONS, first_words, jsonl_bytes
from contlearn.data.prepare import prepare_dataset
from contlearn.data.task import load_task_data
from contlearn.errors import ConfigError
from contlearn.files import sha256_file
from tests.test_prepare import LABELS, folder_bytes, needs_corpora, read_split, run

FILES = ["dev.jsonl", "prepare.json", "train.jsonl"]
SENTIMENT_PROMPT = "Is this movie review positive or negative? Answer with one word.\n\nReview: "
TOPIC_PROMPT = (
    "Which topic is this BBC News article about: business, entertainment, politics, sports or "
    "tech? Answer with one word.\n\nArticle: "
)
HEADLINE_PROMPT = "Write the headline of this BBC News article.\n\nArticle: "


def read_jsonl(folder: Path, split: str) -> list[dict[str, str]]:
    lines = (folder / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def body(row: dict[str, str], prefix: str) -> str:
    assert row["prompt"].startswith(prefix), row["prompt"][:120]
    return row["prompt"][len(prefix) :]


@needs_corpora
@pytest.mark.parametrize(
    ("name", "prefix"),
    [("rt-sentiment", SENTIMENT_PROMPT), ("bbc-topic", TOPIC_PROMPT)],
)
def test_closed_corpora_become_an_instruction_the_cut_text_and_the_label_word(
    tmp_path: Path, name: str, prefix: str
) -> None:
    result = prepare_dataset(name, tmp_path / name, max_per_class=10, form="generation")
    assert sorted(p.name for p in (tmp_path / name).iterdir()) == FILES
    rows = read_jsonl(tmp_path / name, "train") + read_jsonl(tmp_path / name, "dev")
    assert all(list(row) == ["prompt", "response"] for row in rows)
    assert Counter(row["response"] for row in rows) == dict.fromkeys(LABELS[name], 10)
    assert all(0 < len(body(row, prefix).split()) <= 120 for row in rows)
    assert result["rows"] == {"train": 8 * len(LABELS[name]), "dev": 2 * len(LABELS[name])}
    assert result["classes"]["dev"] == dict.fromkeys(LABELS[name], 2)
    assert result["form"] == "generation" and result["options"]["max_words"] == 120


@needs_corpora
def test_uncut_texts_keep_the_classification_forms_split(tmp_path: Path) -> None:
    """RT snippets are short (none is cut at 120 words): both forms hold the same rows."""
    classification = prepare_dataset("rt-sentiment", tmp_path / "csv", seed=4, max_per_class=12)
    generation = prepare_dataset(
        "rt-sentiment", tmp_path / "gen", seed=4, max_per_class=12, form="generation"
    )
    assert generation["shortened"] == 0 and generation["rows"] == classification["rows"]
    for split in ("train", "dev"):
        rows = [
            (body(r, SENTIMENT_PROMPT), r["response"]) for r in read_jsonl(tmp_path / "gen", split)
        ]
        assert rows == read_split(tmp_path / "csv", split)


@needs_corpora
def test_max_words_cuts_every_text_and_is_recorded(tmp_path: Path) -> None:
    result = prepare_dataset(
        "bbc-topic", tmp_path / "bbc", max_per_class=6, form="generation", max_words=12, seed=2
    )
    rows = read_jsonl(tmp_path / "bbc", "train") + read_jsonl(tmp_path / "bbc", "dev")
    assert all(len(body(row, TOPIC_PROMPT).split()) == 12 for row in rows)  # BBC texts are long
    saved = json.loads((tmp_path / "bbc" / "prepare.json").read_text(encoding="utf-8"))
    assert saved == {k: v for k, v in result.items() if k not in ("out", "unchanged")}
    assert saved["options"] == {"seed": 2, "dev_fraction": 0.2, "max_per_class": 6, "max_words": 12}
    assert saved["shortened"] > 2000 and saved["name"] == "bbc-topic"
    assert saved["files"] == {
        f: sha256_file(tmp_path / "bbc" / f) for f in FILES if f != "prepare.json"
    }


@needs_corpora
def test_bbc_headline_pairs_each_body_with_its_title_once(tmp_path: Path) -> None:
    result = prepare_dataset("bbc-headline", tmp_path / "hl", form="generation", max_words=400)
    rows = read_jsonl(tmp_path / "hl", "train") + read_jsonl(tmp_path / "hl", "dev")
    headlines = [row["response"] for row in rows]
    assert len(set(headlines)) == len(headlines) == sum(result["rows"].values())
    assert result["dropped"]["duplicate"] == 100 and result["dropped"]["repeated_label"] == 29
    assert "classes" not in result  # free text: no label counts
    article = next(r for r in rows if r["response"] == "Ad sales boost Time Warner profit")
    assert body(article, HEADLINE_PROMPT).startswith("Quarterly profits at US media giant")
    assert all(row["response"] not in row["prompt"] for row in rows[:50])  # the body alone
    assert abs(result["rows"]["dev"] - 0.2 * len(rows)) <= 1


@needs_corpora
def test_bbc_headline_is_one_group_that_max_per_class_caps(tmp_path: Path) -> None:
    result = prepare_dataset("bbc-headline", tmp_path / "hl", form="generation", max_per_class=10)
    assert result["rows"] == {"train": 8, "dev": 2}
    again = prepare_dataset("bbc-headline", tmp_path / "hl", form="generation", max_per_class=10)
    assert again["unchanged"] is True
    other = prepare_dataset(
        "bbc-headline", tmp_path / "s1", form="generation", max_per_class=10, seed=1
    )
    assert other["files"] != result["files"]


@needs_corpora
def test_same_options_give_byte_identical_generation_folders(tmp_path: Path) -> None:
    options = {"seed": 5, "max_per_class": 8, "form": "generation", "max_words": 40}
    prepare_dataset("bbc-topic", tmp_path / "a", **options)
    prepare_dataset("bbc-topic", tmp_path / "b", **options)
    assert folder_bytes(tmp_path / "a") == folder_bytes(tmp_path / "b")
    assert b"\r" not in (tmp_path / "a" / "train.jsonl").read_bytes()


def test_jsonl_bytes_keep_unicode_quotes_and_newlines_escaped_once() -> None:
    data = jsonl_bytes(INSTRUCTIONS["rt-sentiment"], [('a "£5" film\nok', "positive")])
    line = data.decode("utf-8")
    assert line.count("\n") == 1 and "£5" in line
    assert json.loads(line) == {
        "prompt": SENTIMENT_PROMPT + 'a "£5" film\nok',
        "response": "positive",
    }
    assert first_words("  one two\tthree  four ", 3) == "one two three"


def test_every_closed_instruction_names_its_labels() -> None:
    for name, labels in LABELS.items():
        assert INSTRUCTIONS[name].unnamed(labels) == []
    assert INSTRUCTIONS["rt-sentiment"].unnamed(["neutral"]) == ["neutral"]


# ---------------------------------------------------------------------------------------------
# The command line and its refusals


@needs_corpora
def test_cli_writes_generation_folders_and_says_free_text(tmp_path: Path) -> None:
    out = tmp_path / "hl"
    args = ("bbc-headline", "--form", "generation", "--out", str(out), "--max-per-class", "10")
    result = run(*args, "--max-words", "50")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:2] == [
        "train: 8 rows, free-text responses",
        "dev: 2 rows, free-text responses",
    ]
    printed = json.loads(run(*args, "--max-words", "50", "--json").output)
    assert printed["unchanged"] is True and printed["options"]["max_words"] == 50
    topic = run(
        "bbc-topic", "--form", "generation", "--out", str(tmp_path / "t"), "--max-per-class", "4"
    )
    assert topic.output.splitlines()[0].startswith("train: 15 rows, 5 classes (business 3,")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["bbc-headline"],
            "bbc-headline pairs texts with free text, not labels: pass --form generation",
        ),
        (
            ["rt-sentiment", "--max-words", "20"],
            "--max-words cuts generation prompts: pass it with --form generation",
        ),
        (
            ["rt-sentiment", "--form", "generation", "--max-words", "0"],
            "--max-words 0 leaves empty prompts",
        ),
        (
            ["wikipedia"],
            "known: bbc-topic, imdb-sentiment, rt-sentiment (and with --form generation: bbc-hea",
        ),
    ],
)
def test_bad_generation_options_are_one_line_and_write_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = run(*args, "--out", str(tmp_path / "out"))
    assert result.exit_code == 1 and message in result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


@needs_corpora
def test_a_classification_folder_is_not_taken_for_a_generation_one(tmp_path: Path) -> None:
    prepare_dataset("rt-sentiment", tmp_path / "rt", max_per_class=4)
    before = folder_bytes(tmp_path / "rt")
    with pytest.raises(ConfigError, match="already holds other files; pass another --out"):
        prepare_dataset("rt-sentiment", tmp_path / "rt", max_per_class=4, form="generation")
    assert folder_bytes(tmp_path / "rt") == before


@needs_corpora
@pytest.mark.parametrize(
    ("name", "labels", "metrics"),
    [
        ("rt-sentiment", LABELS["rt-sentiment"], ("accuracy", "exact_match", "rouge_l")),
        ("bbc-topic", LABELS["bbc-topic"], ("accuracy", "exact_match", "rouge_l")),
        ("bbc-headline", None, ("rouge_l", "exact_match")),
    ],
)
def test_generation_folders_load_as_generation_tasks(
    tmp_path: Path, name: str, labels: tuple[str, ...] | None, metrics: tuple[str, ...]
) -> None:
    result = prepare_dataset(name, tmp_path / name, max_per_class=10, form="generation")
    data = load_task_data(tmp_path / name)
    assert data.kind == "generation" and data.labels == labels and data.metrics == metrics
    assert data.files == ("dev.jsonl", "train.jsonl")  # prepare.json is not taken for a split
    assert len(data.train.texts) == result["rows"]["train"]
    prompt = read_jsonl(tmp_path / name, "dev")[0]
    assert tuple(data.dev.texts[0]) == ("user", prompt["prompt"])
    assert data.dev.labels[0] == prompt["response"]
