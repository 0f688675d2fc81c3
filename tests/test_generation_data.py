"""Tests of generation data intake and its metrics: every layout (prompt + response, Alpaca,
chat messages with a system turn) in every format (jsonl, json, csv, tsv, parquet, a datasets
folder), closed and open label sets and the metrics each gets, every bad input (BadData in one
line naming the file and row, nothing written), and the metric functions on hand-worked cases,
ROUGE-L against rouge-score itself."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contlearn import config as cfg
from contlearn.data.generation import alpaca_prompt, conversation_prompt
from contlearn.data.labels import choose_metrics
from contlearn.data.task import load_task_data
from contlearn.errors import BadData
from contlearn.eval import generation as gen
from contlearn.eval.squad import normalize_answer
from contlearn.ledger.records import TaskRecord
from contlearn.ops.intake import read_entry, task_spec
from contlearn.runtime.context import read_task_data

LONG = "a reply of quite a few words, more than five"
OPEN_TRAIN = [
    {"prompt": "Write a haiku about rain.", "response": f" {LONG}  "},
    {"prompt": "Say hello.", "response": "Hello there, how are you doing today?"},
]
OPEN_DEV = [{"prompt": "Say goodbye.", "response": "Goodbye, see you soon."}]
SENTIMENT_TRAIN = [
    {"prompt": "Review: great film. Sentiment?", "output": "positive"},
    {"prompt": "Review: dull. Sentiment?", "output": "negative"},
    {"prompt": "Review: loved it. Sentiment?", "output": "positive"},
]
SENTIMENT_DEV = [
    {"prompt": "Review: fine. Sentiment?", "output": "neutral"},
    {"prompt": "Review: bad. Sentiment?", "output": "negative"},
]
CHAT_TRAIN = [
    {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": "Paris, the city of light."},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello! How can I help you today?"},
            {"role": "user", "content": "Name a colour."},
            {"role": "assistant", "content": "Blue is a colour of the sky."},
        ]
    },
]
CHAT_DEV = [
    {
        "messages": [
            {"role": "user", "content": "Capital of Italy?"},
            {"role": "assistant", "content": "Rome"},
        ]
    }
]
ALPACA_TRAIN = [
    {"instruction": "Translate to French.", "input": "cat", "output": "chat"},
    {"instruction": "Name a prime number.", "input": "", "output": "seven"},
]
ALPACA_DEV = [{"instruction": "Translate to French.", "input": "dog", "output": "chien"}]


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def delimited(rows: list[dict], sep: str = ",") -> str:
    """csv (quoted where needed) or tsv (no quoting) text of flat rows."""
    import csv
    import io

    out = io.StringIO()
    quoting = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
    writer = csv.DictWriter(out, list(rows[0]), delimiter=sep, quoting=quoting, escapechar="\\")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def files(tmp_path: Path, contents: dict[str, str], name: str = "gen") -> Path:
    out = tmp_path / name
    out.mkdir(parents=True, exist_ok=True)
    for file, text in contents.items():
        (out / file).write_text(text, encoding="utf-8")
    return out


def write(tmp_path: Path, fmt: str, train: list[dict], dev: list[dict], name: str = "gen") -> Path:
    """A data folder holding ``train`` and ``dev`` in format ``fmt`` (a datasets folder for
    "datasets")."""
    out = tmp_path / name
    if fmt == "datasets":
        import datasets

        splits = {"train": train, "validation": dev}
        dd = datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items()})
        dd.save_to_disk(str(out))
        return out
    out.mkdir(parents=True)
    for split, rows in (("train", train), ("dev", dev)):
        path = out / f"{split}.{fmt}"
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(rows), path)
        elif fmt in ("csv", "tsv"):
            path.write_text(delimited(rows, "\t" if fmt == "tsv" else ","), encoding="utf-8")
        elif fmt == "json":
            path.write_text(json.dumps(rows), encoding="utf-8")
        else:
            path.write_text(jsonl(rows), encoding="utf-8")
    return out


def bad(path: Path, *words: str, **kwargs) -> str:
    """Load ``path`` expecting BadData whose one-line message holds every word; the folder is
    left as it was."""
    before = sorted((p.name, p.stat().st_size) for p in path.rglob("*"))
    with pytest.raises(BadData) as info:
        load_task_data(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert sorted((p.name, p.stat().st_size) for p in path.rglob("*")) == before
    return message


def _record(data) -> TaskRecord:
    """The ledger record of a task registered from ``data`` as generation."""
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
        kind="generation",
    )


# ---------------------------------------------------------------------------------------------
# Layouts and formats


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "tsv", "parquet", "datasets"])
def test_prompt_and_response_in_every_format(tmp_path: Path, fmt: str) -> None:
    d = load_task_data(write(tmp_path, fmt, OPEN_TRAIN, OPEN_DEV))
    assert (d.kind, d.problem_type, d.format) == ("generation", "generation", fmt)
    assert (d.text_fields, d.label_field) == (("prompt",), "response")
    assert d.train.texts == (("user", "Write a haiku about rain."), ("user", "Say hello."))
    # the response is stripped of the whitespace around it, nothing else
    assert d.train.labels == (LONG, "Hello there, how are you doing today?")
    assert d.dev == type(d.dev)((("user", "Say goodbye."),), ("Goodbye, see you soon.",))
    assert d.labels is None and d.metrics == ("rouge_l", "exact_match")
    assert read_task_data(_record(d)) == d  # a re-read with the recorded fields and kind


def test_kind_generation_reads_the_same(tmp_path: Path) -> None:
    path = write(tmp_path, "jsonl", OPEN_TRAIN, OPEN_DEV)
    assert load_task_data(path, kind="generation") == load_task_data(path)


@pytest.mark.parametrize("name", ["completion", "output", "Response"])
def test_other_response_columns_and_names_in_any_case(tmp_path: Path, name: str) -> None:
    rows = [{"Prompt": r["prompt"], name: r["response"]} for r in OPEN_TRAIN]
    d = load_task_data(write(tmp_path, "jsonl", rows, rows))
    assert (d.kind, d.text_fields, d.label_field) == ("generation", ("Prompt",), name)
    assert d.train.texts[1] == ("user", "Say hello.")
    assert read_task_data(_record(d)) == d


def test_closed_label_set_gets_accuracy_and_logs_dev_responses_outside_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="contlearn.data.generation"):
        d = load_task_data(write(tmp_path, "csv", SENTIMENT_TRAIN, SENTIMENT_DEV))
    assert (d.kind, d.label_field, d.labels) == ("generation", "output", ("negative", "positive"))
    assert d.metrics == ("accuracy", "exact_match", "rouge_l")
    assert d.dev.labels == ("neutral", "negative")  # allowed: it scores as wrong ...
    (record,) = caplog.records  # ... and is said
    assert "dev.csv: 1 of 2 responses are outside" in record.getMessage()
    assert "dev.csv line 2: 'neutral'" in record.getMessage()


def test_closed_set_limits_twenty_values_of_five_words(tmp_path: Path) -> None:
    def labels(responses: list[str]):
        rows = [{"prompt": f"q{i}", "response": r} for i, r in enumerate(responses)]
        return load_task_data(write(tmp_path, "jsonl", rows, rows[:1], name=str(len(rows)))).labels

    twenty = [f"topic {i}" for i in range(20)]
    assert labels(twenty * 2) == tuple(sorted(twenty))  # repeated values count once
    assert labels([*twenty, "topic 20"]) is None  # 21 distinct values
    assert labels(["one two three four five", "x"]) == ("one two three four five", "x")
    assert labels(["one two three four five six", "x", "x"]) is None  # a six-word response


@pytest.mark.parametrize("fmt", ["jsonl", "json", "parquet", "datasets"])
def test_chat_messages_with_a_system_turn(tmp_path: Path, fmt: str) -> None:
    d = load_task_data(write(tmp_path, fmt, CHAT_TRAIN, CHAT_DEV))
    assert (d.kind, d.text_fields, d.label_field) == ("generation", ("messages",), "messages")
    assert d.train.texts == (
        ("system", "You are terse.", "user", "Capital of France?"),
        ("user", "Hi", "assistant", "Hello! How can I help you today?", "user", "Name a colour."),
    )
    assert d.train.labels == ("Paris, the city of light.", "Blue is a colour of the sky.")
    assert d.dev.texts == (("user", "Capital of Italy?"),) and d.dev.labels == ("Rome",)
    assert read_task_data(_record(d)) == d


@pytest.mark.parametrize("fmt", ["jsonl", "datasets"])
def test_alpaca_instruction_then_a_blank_line_and_the_input(tmp_path: Path, fmt: str) -> None:
    d = load_task_data(write(tmp_path, fmt, ALPACA_TRAIN, ALPACA_DEV))
    assert (d.kind, d.text_fields, d.label_field) == ("generation", ("prompt",), "output")
    assert d.train.texts == (
        ("user", "Translate to French.\n\ncat"),
        ("user", "Name a prime number."),  # an empty input adds nothing
    )
    assert d.dev.texts == (("user", "Translate to French.\n\ndog"),)
    assert d.labels == ("chat", "seven") and d.metric == "accuracy"
    assert read_task_data(_record(d)) == d  # ("prompt",) names Alpaca's built prompt


def test_alpaca_input_may_be_missing_or_null(tmp_path: Path) -> None:
    train = [
        {"instruction": "Say yes.", "output": "yes"},
        {"instruction": "Say no.", "output": "no"},
    ]
    dev = [{"instruction": "Say maybe.", "input": None, "output": "maybe"}]
    d = load_task_data(write(tmp_path, "jsonl", train, dev))
    assert d.train.texts == (("user", "Say yes."), ("user", "Say no."))
    assert d.dev.texts == (("user", "Say maybe."),)


def test_given_columns_pick_the_prompt_and_the_response(tmp_path: Path) -> None:
    rows = [
        {"question": "2+2?", "answer": "four", "note": "x"},
        {"question": "3+3?", "answer": "six"},
    ]
    path = write(tmp_path, "jsonl", rows, rows[:1])
    d = load_task_data(path, text_fields="question", label_field="answer", kind="generation")
    assert (d.text_fields, d.label_field) == (("question",), "answer")
    assert d.train.texts == (("user", "2+2?"), ("user", "3+3?"))
    assert read_task_data(_record(d)) == d


def test_a_given_column_of_turns_reads_as_chat(tmp_path: Path) -> None:
    rows = [{"conversation": r["messages"]} for r in CHAT_TRAIN]
    path = write(tmp_path, "jsonl", rows, rows)
    d = load_task_data(path, text_fields=["conversation"], kind="generation")
    assert (d.text_fields, d.label_field) == (("conversation",), "conversation")
    assert d.train.labels[0] == "Paris, the city of light."


def test_classification_and_tagging_data_stay_what_they_were(tmp_path: Path) -> None:
    text = files(tmp_path, {"train.csv": "text,label\na,x\n", "dev.csv": "text,label\nb,x\n"})
    assert load_task_data(text).kind == "classification"
    rows = [{"tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"]}]
    tags = files(tmp_path, {"train.jsonl": jsonl(rows), "dev.jsonl": jsonl(rows)}, "ner")
    assert load_task_data(tags).kind == "tagging"
    # a prompt/response table read with other columns named is labelled data, as asked
    rows = [{"prompt": "p", "response": "r", "text": "t", "label": "x"}]
    mixed = files(tmp_path, {"train.jsonl": jsonl(rows), "dev.jsonl": jsonl(rows)}, "mixed")
    assert load_task_data(mixed, text_fields="text", label_field="label").kind == "classification"
    assert load_task_data(mixed).kind == "generation"


def test_generation_data_registered_as_classification_is_refused(tmp_path: Path) -> None:
    config = cfg.WorkspaceConfig(root=tmp_path)
    path = write(tmp_path, "parquet", CHAT_TRAIN, CHAT_DEV)
    entry = cfg.TaskEntry(name="chat", data=str(path), kind="classification")
    with pytest.raises(BadData, match="its data holds generation labels, which a classification"):
        task_spec(entry, read_entry(config, entry))


def test_a_task_of_another_kind_that_named_prompt_and_response_columns_stays_it(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "csv", SENTIMENT_TRAIN, SENTIMENT_DEV[1:])
    named = {"text_fields": ("prompt",), "label_field": "output"}
    d = load_task_data(path, kind="classification", **named)  # a re-read of such a task
    assert (d.kind, d.labels, d.metrics) == (
        "classification",
        ("negative", "positive"),
        ("accuracy",),
    )
    assert load_task_data(path, **named).kind == "generation"  # no kind: recognised
    assert load_task_data(path, kind="classification").kind == "generation"  # the kind refuses it


# ---------------------------------------------------------------------------------------------
# Metrics chosen


def test_choose_metrics_for_closed_and_open_generation() -> None:
    assert choose_metrics(None, "generation", None) == ("rouge_l", "exact_match")
    closed = choose_metrics(None, "generation", None, closed=True)
    assert closed == ("accuracy", "exact_match", "rouge_l")
    assert choose_metrics(None, "generation", "rouge_l", closed=True) == (
        "rouge_l",
        "accuracy",
        "exact_match",
    )
    assert choose_metrics(None, "generation", "exact_match") == ("exact_match", "rouge_l")
    # other kinds get what they got, whatever closed says
    assert choose_metrics(None, "classification", None, closed=True) == ("accuracy",)
    assert choose_metrics(None, "tagging", None) == cfg.TAGGING_METRICS


def test_metrics_that_do_not_fit_generation_name_the_choices() -> None:
    with pytest.raises(BadData, match=r"^metric 'accuracy' does not fit .*use one of rouge_l, "):
        choose_metrics(None, "generation", "accuracy")
    with pytest.raises(BadData, match=r"^unknown metric 'bleu'; use one of rouge_l, exact_match$"):
        choose_metrics(None, "generation", "bleu")
    with pytest.raises(
        BadData, match=r"^metric 'f1' does not fit .*accuracy, exact_match, rouge_l"
    ):
        choose_metrics(None, "generation", "f1", closed=True)


def test_a_chosen_metric_goes_first_and_the_config_knows_it(tmp_path: Path) -> None:
    path = write(tmp_path, "csv", SENTIMENT_TRAIN, SENTIMENT_DEV)
    assert load_task_data(path, metric="rouge_l").metrics == ("rouge_l", "accuracy", "exact_match")
    bad(
        write(tmp_path, "jsonl", OPEN_TRAIN, OPEN_DEV, "o"),
        "'accuracy' does not fit",
        metric="accuracy",
    )
    assert {"exact_match", "rouge_l", "accuracy"} <= set(cfg.METRICS)
    assert len(cfg.METRICS) == len(set(cfg.METRICS))
    cfg.TaskEntry(name="t", data="d", metric="rouge_l")  # a valid metric in tasks.toml


# ---------------------------------------------------------------------------------------------
# Bad input: one line naming the file and row, nothing written


def test_an_empty_prompt_names_its_row(tmp_path: Path) -> None:
    rows = [*OPEN_TRAIN, {"prompt": "  ", "response": "r"}]
    bad(
        write(tmp_path, "jsonl", rows, OPEN_DEV),
        "train.jsonl line 3: empty text in column 'prompt'",
    )


def test_an_empty_response_names_its_row(tmp_path: Path) -> None:
    rows = [*SENTIMENT_TRAIN, {"prompt": "p", "output": ""}]
    bad(
        write(tmp_path, "csv", rows, SENTIMENT_DEV),
        "train.csv line 5: empty text in column 'output'",
    )
    rows = [*OPEN_TRAIN, {"prompt": "p", "response": None}]
    bad(write(tmp_path, "parquet", OPEN_TRAIN, rows, "pq"), "dev.parquet row 3: empty text")


def test_messages_in_a_csv_are_not_turns(tmp_path: Path) -> None:
    rows = [{"messages": json.dumps(CHAT_TRAIN[0]["messages"])}]
    path = write(tmp_path, "csv", rows, rows)
    bad(
        path,
        "train.csv line 2: column 'messages' holds",
        "not a list of {role, content}",
        "jsonl",
        kind="generation",
    )


def _chat(tmp_path: Path, turns: list) -> Path:
    return write(tmp_path, "jsonl", [*CHAT_TRAIN, {"messages": turns}], CHAT_DEV)


U, A, S = (
    {"role": "user", "content": "u"},
    {"role": "assistant", "content": "a"},
    {"role": "system", "content": "s"},
)


@pytest.mark.parametrize(
    ("turns", "words"),
    [
        ([], "an empty conversation in column 'messages'"),
        (["hi", A], "turn 1: 'hi' is not a {role, content} turn"),
        ([{"role": "user"}, A], "turn 1: {'role': 'user'} is not a {role, content} turn"),
        ([U, {"role": "assistant", "content": 7}], "turn 2: {'role': 'assistant', 'content': 7}"),
        (
            [{"role": "bot", "content": "x"}, A],
            "turn 1: unknown role 'bot'; use system, user, assistant",
        ),
        ([U, A, U], "ends with the user's turn, not the assistant's"),
        ([S, A], "no user turn"),
        ([U, S, A], "turn 2: a system turn after the first"),
        ([U, U, A], "turn 2: two user turns in a row"),
        ([S, A, U, A], "turn 2: a first assistant turn"),
        ([U, {"role": "assistant", "content": " "}], "turn 2: empty response"),
        ([{"role": "user", "content": ""}, A], "turn 1: empty user message"),
    ],
)
def test_bad_conversations(tmp_path: Path, turns: list, words: str) -> None:
    message = bad(_chat(tmp_path, turns), "train.jsonl line 3", words)
    assert len(message) < 300


def test_a_prompt_to_answer_given_as_turns() -> None:
    assert conversation_prompt([S, U], "row 1") == ("system", "s", "user", "u")
    assert conversation_prompt([U, A, U], "row 1") == ("user", "u", "assistant", "a", "user", "u")
    cases = [
        ([U, A], "row 2: the conversation ends with the assistant's turn, not the user's"),
        ([S], "row 2: the conversation ends with the system's turn"),
        ([A, U], "row 2 turn 1: a first assistant turn"),
        ([U, {"role": "assistant", "content": ""}, U], "row 2 turn 2: empty assistant message"),
        ("hi", "row 2: column 'messages' holds 'hi', not a list of {role, content} turns"),
    ]
    for turns, message in cases:
        with pytest.raises(BadData, match=f"^{re.escape(message)}"):
            conversation_prompt(turns, "row 2")


def test_alpaca_prompt() -> None:
    assert alpaca_prompt("Translate.", "cat") == "Translate.\n\ncat"
    assert alpaca_prompt("Translate.", " ") == alpaca_prompt("Translate.", None) == "Translate."


def test_a_dev_split_missing_a_column(tmp_path: Path) -> None:
    dev = [{"prompt": "p", "answer": "r"}]
    bad(
        write(tmp_path, "jsonl", OPEN_TRAIN, dev),
        "dev.jsonl has no column 'response' (the response)",
        "--label-field R",
    )
    dev = [{"instruction": "i", "response": "r"}]
    bad(
        write(tmp_path, "jsonl", ALPACA_TRAIN, dev, "a"),
        "dev.jsonl has no column 'output' (the response)",
    )


def test_given_columns_that_do_not_exist(tmp_path: Path) -> None:
    path = write(tmp_path, "jsonl", OPEN_TRAIN, OPEN_DEV)
    bad(
        path,
        "train.jsonl has no column 'question' (the prompt)",
        text_fields="question",
        kind="generation",
    )
    bad(
        path,
        "train.jsonl has no column 'answer' (the response)",
        label_field="answer",
        kind="generation",
    )


def test_kind_generation_on_columns_of_no_layout_names_the_layouts(tmp_path: Path) -> None:
    path = files(tmp_path, {"train.csv": "text,label\na,x\n", "dev.csv": "text,label\nb,x\n"})
    bad(
        path,
        "train.csv fits no generation layout (columns are 'text', 'label')",
        "prompt + response (or completion / output)",
        "instruction + optional input + output",
        "messages column of {role, content} turns",
        kind="generation",
    )
    rows = [{"prompt": "p", "answer": "a"}]  # a prompt but no response column
    path = files(tmp_path, {"train.jsonl": jsonl(rows), "dev.jsonl": jsonl(rows)}, "p")
    bad(path, "fits no generation layout", kind="generation")


def test_ambiguous_columns_ask_which(tmp_path: Path) -> None:
    rows = [{"prompt": "p", "response": "r", "output": "o"}]
    path = files(tmp_path, {"train.jsonl": jsonl(rows), "dev.jsonl": jsonl(rows)})
    bad(path, "several response columns ('response', 'output')", "--label-field")
    assert load_task_data(path, label_field="output").train.labels == ("o",)
    two = {"text_fields": "prompt,response", "label_field": "output"}
    bad(path, "one prompt column, not 2", kind="generation", **two)
    assert load_task_data(path, **two).kind == "classification"  # as asked, without the kind


def test_a_prompt_column_of_turns_asks_for_messages(tmp_path: Path) -> None:
    rows = [{"prompt": [U], "completion": [A]}]  # TRL's conversational prompt-completion
    path = files(tmp_path, {"train.jsonl": jsonl(rows), "dev.jsonl": jsonl(rows)})
    bad(path, "train.jsonl: column 'prompt' holds lists, not prompt text", "messages column")


def test_one_column_as_prompt_and_response(tmp_path: Path) -> None:
    path = write(tmp_path, "jsonl", OPEN_TRAIN, OPEN_DEV)
    bad(path, "column 'prompt' cannot be both the prompt and the response", label_field="prompt")


def test_alpaca_instruction_named_as_the_prompt_keeps_the_input(tmp_path: Path) -> None:
    path = write(tmp_path, "jsonl", ALPACA_TRAIN, ALPACA_DEV)
    d = load_task_data(path, text_fields="instruction", label_field="output", kind="generation")
    assert d == load_task_data(path)
    assert d.train.texts[0] == ("user", "Translate to French.\n\ncat")


def test_an_alpaca_input_that_is_not_text(tmp_path: Path) -> None:
    train = [*ALPACA_TRAIN, {"instruction": "i", "input": ["x"], "output": "o"}]
    bad(
        write(tmp_path, "jsonl", train, ALPACA_DEV),
        "train.jsonl line 3: column 'input' holds a list",
    )


# ---------------------------------------------------------------------------------------------
# Metric functions


def test_normalize_is_squads() -> None:
    for text in ("The Cat!", "  an  apple, a day ", "Übung — macht"):
        assert gen.normalize(text) == normalize_answer(text)
    assert gen.normalize("The Cat!") == "cat"


def test_exact_match_compares_normalised_text() -> None:
    assert gen.exact_match(["The cat.", "dog"], ["cat", "a dog barked"]) == 0.5
    assert gen.exact_match(["Paris"], ["paris!"]) == 1.0


def test_rouge_l_on_hand_worked_pairs() -> None:
    # LCS of (the cat sat on the mat) and (the cat lay on a mat) is "the cat on mat": 4 of 6
    # tokens each side, so P = R = F = 2/3
    assert gen.rouge_l(["the cat sat on the mat"], ["the cat lay on a mat"]) == pytest.approx(2 / 3)
    # "quick fox" is a subsequence of 4 gold tokens: P = 1, R = 1/2, F = 2PR / (P + R) = 2/3
    assert gen.rouge_l_pair("the quick brown fox", "Quick, fox!") == pytest.approx(2 / 3)
    # order matters: the LCS of (police killed the gunman) and (the gunman police killed) is 2
    assert gen.rouge_l_pair("police killed the gunman", "the gunman police killed") == 0.5
    assert gen.rouge_l(["a b", "c d"], ["a b", "x y"]) == 0.5


def test_rouge_l_matches_rouge_score_on_ascii_text() -> None:
    from rouge_score.rouge_scorer import RougeScorer

    default = RougeScorer(["rougeL"])
    pairs = [
        ("The snake_case name, v2.0!", "snake case name v2 0"),
        ("It's 3 o'clock; don't panic.", "it is 3 oclock dont panic"),
        ("Hello there, how are you doing today?", "hello, how are you"),
    ]
    for gold, pred in pairs:
        assert gen.rouge_l_pair(gold, pred) == default.score(gold, pred)["rougeL"].fmeasure


def test_rouge_l_empty_and_non_latin_text() -> None:
    from rouge_score.rouge_scorer import RougeScorer

    # rouge-score's own tokenizer drops every non-ASCII letter: identical texts score 0
    assert RougeScorer(["rougeL"]).score("Привет мир", "Привет мир")["rougeL"].fmeasure == 0
    assert gen.rouge_l_pair("Привет мир", "Привет мир") == 1.0
    assert gen.rouge_l_pair("Привет мир", "привет") == pytest.approx(2 / 3)
    # CJK: a token per character; 4 of 5 characters in order
    assert gen.rouge_l_pair("猫が座った", "猫が立った") == pytest.approx(0.8)
    assert gen.rouge_l_pair("café au lait", "cafe au lait") == pytest.approx(2 / 3)
    assert gen.rouge_l_pair("café", "cafe\u0301") == 1.0  # composed or not, the same word
    # Devanagari's vowel signs and virama are combining marks: they stay in their word
    assert gen.UnicodeTokenizer().tokenize("नमस्ते दुनिया") == ["नमस्ते", "दुनिया"]
    assert gen.UnicodeTokenizer().tokenize("안녕 세상") == ["안녕", "세상"]  # Korean: words
    for pred in ("", "   ", "?!"):
        assert gen.rouge_l_pair("some answer", pred) == 0.0
    assert gen.rouge_l(["some answer", "x"], ["", "x"]) == 0.5


LABELS = ("bad", "negative", "not bad", "positive")


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Positive.", "positive"),
        ("positive, clearly", "positive"),
        ("  NEGATIVE  ", "negative"),
        ("The sentiment is positive", None),  # a label must come first
        ("positively", None),  # a whole word, not a prefix of one
        ("not bad at all", "not bad"),  # the longest label that fits wins
        ("bad", "bad"),
        ("", None),
    ],
)
def test_label_of(text: str, label: str | None) -> None:
    assert gen.label_of(text, LABELS) == label


def test_label_of_labels_that_normalise_to_nothing() -> None:
    choices = ("A", "B", "C")  # "a" is an article: it normalises to ""
    assert gen.label_of("A", choices) == "A"
    assert gen.label_of("B) because", choices) == "B"
    assert gen.label_of("A) because", choices) is None


def test_accuracy_takes_the_label_each_text_answers() -> None:
    golds = ["positive", "negative", "negative", "bad"]
    preds = ["Positive!", "negative.", "positive", "not bad"]
    assert gen.accuracy(golds, preds, LABELS) == 0.5


def test_generation_scores_order_and_per_example_means() -> None:
    golds = ["positive", "negative", "not bad"]
    preds = ["Positive!", "negative, the film is dull", "bad"]
    scores = gen.generation_scores(["rouge_l"], golds, preds, LABELS)
    assert list(scores) == ["rouge_l", "accuracy", "exact_match"]
    assert scores["accuracy"] == pytest.approx(2 / 3)
    assert scores["exact_match"] == pytest.approx(1 / 3)
    # ROUGE-L: 1, then 1 of 5 pred tokens (P 1/5, R 1, F 1/3), then 1 of 2 gold (F 2/3)
    assert scores["rouge_l"] == pytest.approx((1 + 1 / 3 + 2 / 3) / 3)
    for name, value in scores.items():
        parts = gen.per_example(name, golds, preds, LABELS)
        assert len(parts) == 3 and sum(parts) / 3 == pytest.approx(value)
        assert all(0 <= p <= 1 for p in parts)
    assert list(gen.generation_scores(["exact_match"], golds, preds, None)) == [
        "exact_match",
        "rouge_l",
    ]


def test_wrong_metric_input_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="golds has 2 texts but preds has 1"):
        gen.exact_match(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no examples"):
        gen.rouge_l([], [])
    with pytest.raises(ValueError, match="accuracy needs the closed label set"):
        gen.generation_scores(["accuracy"], ["a"], ["a"], None)
    with pytest.raises(ValueError, match="unknown generation metric 'bleu'"):
        gen.per_example("bleu", ["a"], ["a"])


_TEXTS = st.text(alphabet="ab .,!Éé猫Ж_-", max_size=12)
_RESPONSES = _TEXTS.map(str.strip).filter(bool)  # as the data layer gives them


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_RESPONSES, _TEXTS), min_size=1, max_size=6))
def test_scores_are_fractions_and_the_means_of_their_parts(pairs: list[tuple[str, str]]) -> None:
    golds, preds = [g for g, _ in pairs], [p for _, p in pairs]
    labels = tuple(sorted(set(golds)))
    scores = gen.generation_scores(["exact_match"], golds, preds, labels)
    for name, value in scores.items():
        parts = gen.per_example(name, golds, preds, labels)
        assert 0 <= value <= 1 and sum(parts) / len(parts) == pytest.approx(value)
    same = gen.generation_scores([], golds, golds, labels)
    assert same["exact_match"] == 1.0 and same["accuracy"] == 1.0
    for gold in golds:  # a text against itself: ROUGE-L 1 when it has a token, else 0
        has_tokens = bool(gen.UnicodeTokenizer().tokenize(gold))
        assert gen.rouge_l_pair(gold, gold) == float(has_tokens)
