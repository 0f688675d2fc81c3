"""predict: equal to the evaluation path, mixed-task input, files and stdin through the CLI,
one-line errors that write nothing, and the Python API from a fresh process."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from contlearn.api import Workspace
from contlearn.cli import main
from contlearn.config import TaskEntry
from contlearn.errors import BadData, ConfigError, TaskNotFound, TaskNotTrained
from contlearn.eval.recipe import predict_logits
from contlearn.model.families import uses_token_types
from contlearn.ops.intake import task_spec
from contlearn.ops.predict import predict
from contlearn.ops.predict_files import read_rows, write_rows
from contlearn.runtime.context import open_context, read_task_data
from contlearn.runtime.evaluate import evaluate_task
from contlearn.train.batching import encode
from tests.conftest import write_keyword_task
from tests.fixtures_data import write_glue_task, write_table_file

MAX_LENGTH = 24
TEXTS = ["good movie", "bad film", "the cat", "very good", "dog news", "awful", "it is bad"]


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Workspace:
    """Trained: "a" (neg/pos), "b" (x/y/z), "stsb" (text pairs, regression). Pending: "c"."""
    tmp = tmp_path_factory.mktemp("predict")
    ws = Workspace.create(tmp / "ws", backbone=str(tiny_backbone))
    ws.add_task("a", write_keyword_task(tmp / "a", n_train=48, n_dev=24, seed=1))
    b_keywords = {"x": "cat", "y": "dog", "z": "news"}
    ws.add_task(
        "b", write_keyword_task(tmp / "b", n_train=48, n_dev=24, seed=2, keywords=b_keywords)
    )
    ws.add_task("stsb", write_glue_task(tmp, "stsb", n_train=24, n_dev=12))
    ws.train_next(all_tasks=True, epochs=1, max_length=MAX_LENGTH)
    ws.add_task("c", write_keyword_task(tmp / "c", n_train=8, n_dev=4, seed=3))
    return ws


def cli(ws: Workspace, *args: str, stdin: str | None = None):
    return CliRunner().invoke(main, ["predict", "-w", str(ws.root), "-q", *args], input=stdin)


def parse_jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def mixed_rows() -> list[dict]:
    return [{"id": i, "task": "ab"[i % 3 % 2], "text": t} for i, t in enumerate(TEXTS)]


# ---------------------------------------------------------------------------------------------
# The library


@pytest.mark.parametrize("name", ["a", "b", "stsb"])
def test_predictions_equal_the_evaluation_of_the_dev_split(ws: Workspace, name: str) -> None:
    ctx = open_context(ws.ledger, ws.store)
    task = ws.ledger.task(name)
    meta = ctx.load_task(task)
    assert meta["train"]["max_length"] == MAX_LENGTH
    data = read_task_data(task)
    logits = evaluate_task(ctx, task, ctx.encode(task, data.dev, MAX_LENGTH)).logits
    rows = [dict(zip(task.text_fields, texts, strict=True)) for texts in data.dev.texts]
    got = predict(ws.ledger, ws.store, name, rows)  # its own backbone, loaded afresh
    assert predict(ws.ledger, ws.store, name, rows, context=ctx) == got
    assert [r["task"] for r in got] == [name] * len(rows)
    if task.labels is None:
        assert [r["label"] for r in got] == logits[:, 0].tolist()
        assert all(r["probabilities"] is None for r in got)
        return
    assert [r["label"] for r in got] == [task.labels[i] for i in logits.argmax(-1).tolist()]
    probs = torch.tensor([[r["probabilities"][label] for label in task.labels] for r in got])
    torch.testing.assert_close(probs, torch.softmax(logits, -1), atol=1e-6, rtol=0)


def test_long_text_is_truncated_at_the_trained_max_length(ws: Workspace) -> None:
    ctx = open_context(ws.ledger, ws.store)
    ctx.load_task(ws.ledger.task("a"))
    text = " ".join(["good movie"] * 60)  # 120 words: far over MAX_LENGTH tokens
    types = uses_token_types(ctx.backbone.model)
    encoded = encode(ctx.backbone.tokenizer, [(text,)], MAX_LENGTH, token_types=types)
    assert encoded.lengths == [MAX_LENGTH]
    ctx.model.activate("a")
    expected = torch.softmax(predict_logits(ctx.model, encoded), -1)[0]
    got = predict(ws.ledger, ws.store, "a", [{"text": text}], context=ctx)[0]["probabilities"]
    torch.testing.assert_close(torch.tensor([got["neg"], got["pos"]]), expected, atol=1e-6, rtol=0)


def test_mixed_tasks_equal_each_task_alone_in_input_order(ws: Workspace) -> None:
    rows = mixed_rows()
    got = predict(ws.ledger, ws.store, None, rows, task_field="task")
    assert [r["id"] for r in got] == list(range(len(rows)))
    assert [r["task"] for r in got] == [r["task"] for r in rows]
    assert [r["index"] for r in got] == list(range(len(rows)))  # place in the input
    for name in ("a", "b"):
        alone = predict(ws.ledger, ws.store, name, [r for r in rows if r["task"] == name])
        mine = [r for r in got if r["task"] == name]
        assert [r["id"] for r in mine] == [r["id"] for r in alone]
        drop = lambda r: {k: v for k, v in r.items() if k != "index"}  # noqa: E731
        assert [drop(r) for r in mine] == [drop(r) for r in alone]
    assert set(got[1]["probabilities"]) == {"x", "y", "z"}
    assert sum(got[0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(
    ("task", "rows", "kwargs", "error", "message"),
    [
        ("a", [{"text": "good"}, {"txt": "bad"}], {}, BadData, "row 2 has no column 'text'"),
        ("a", [{"text": "good"}, {"text": "  "}], {}, BadData, "row 2: no text in field 'text'"),
        ("a", [{"text": 3}], {}, BadData, "row 1: field 'text' holds a int, not text"),
        ("a", ["good"], {}, BadData, "row 1 is a str, not an object"),
        ("zz", [{"text": "good"}], {}, TaskNotFound, "no task named 'zz'"),
        ("c", [{"text": "good"}], {}, TaskNotTrained, "`contlearn train-next`"),
        (None, [{"text": "good"}], {"task_field": "task"}, BadData, "row 1: no task name in"),
        (None, [{"task": "zz", "text": "a"}], {"task_field": "task"}, TaskNotFound, "row 1: "),
        ("a", [{"text": "good"}], {"task_field": "task"}, ConfigError, "not both"),
        (None, [{"text": "good"}], {}, ConfigError, "not both"),
    ],
)
def test_bad_input_is_a_named_one_line_error(
    ws: Workspace, task, rows, kwargs, error, message
) -> None:
    with pytest.raises(error) as caught:
        predict(ws.ledger, ws.store, task, rows, **kwargs)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "json", "parquet"])
def test_read_rows_reads_every_format(tmp_path: Path, fmt: str) -> None:
    rows = [{"id": "1", "text": "good movie"}, {"id": "2", "text": 'a, "quoted" film'}]
    if fmt == "tsv":
        rows[1]["text"] = 'a "quoted" film'
    path = write_table_file(tmp_path / f"in.{fmt}", fmt, rows)
    read = read_rows(str(path))
    assert read.rows == rows and read.blank_lines == () and read.source == str(path)


def test_write_rows_csv_has_one_column_per_label(tmp_path: Path) -> None:
    results = [
        {"id": 7, "task": "a", "label": "pos", "probabilities": {"neg": 0.25, "pos": 0.75}},
        {"id": 8, "task": "s", "label": 2.5, "probabilities": None},
    ]
    write_rows(results, tmp_path / "out.csv", "csv")
    lines = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert lines == [
        {"id": "7", "task": "a", "label": "pos", "p_neg": "0.25", "p_pos": "0.75"},
        {"id": "8", "task": "s", "label": "2.5", "p_neg": "", "p_pos": ""},
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temporary left behind


# ---------------------------------------------------------------------------------------------
# The command line


def test_cli_csv_and_jsonl_files_and_stdin_agree_with_the_library(
    ws: Workspace, tmp_path: Path
) -> None:
    rows = [{"id": str(i), "text": t} for i, t in enumerate(TEXTS)]
    expected = predict(ws.ledger, ws.store, "a", rows)
    for fmt in ("csv", "jsonl"):
        path = write_table_file(tmp_path / f"in.{fmt}", fmt, rows)
        result = cli(ws, "a", "--input", str(path))
        assert result.exit_code == 0, result.output
        assert parse_jsonl(result.stdout) == expected
    stdin = "".join(json.dumps(r) + "\n" for r in rows)
    result = cli(ws, "a", "--input", "-", stdin=stdin)
    assert result.exit_code == 0, result.output
    assert parse_jsonl(result.stdout) == expected


def test_cli_writes_csv_output_and_a_json_summary(ws: Workspace, tmp_path: Path) -> None:
    rows = [{"text": t} for t in TEXTS]
    path = write_table_file(tmp_path / "in.jsonl", "jsonl", rows)
    out = tmp_path / "out.csv"
    result = cli(ws, "a", "--input", str(path), "--output", str(out), "--format", "csv", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["task"] == "a" and summary["rows"] == len(rows)
    assert summary["output"] == str(out) and summary["examples_per_second"] > 0
    expected = predict(ws.ledger, ws.store, "a", rows)
    written = list(csv.DictReader(out.open()))
    assert [r["label"] for r in written] == [r["label"] for r in expected]
    for line, want in zip(written, expected, strict=True):
        assert float(line["p_pos"]) == want["probabilities"]["pos"]


def test_cli_mixed_task_file(ws: Workspace, tmp_path: Path) -> None:
    rows = mixed_rows()
    path = write_table_file(tmp_path / "mixed.jsonl", "jsonl", rows)
    result = cli(ws, "--task-field", "task", "--input", str(path), "--batch-size", "2")
    assert result.exit_code == 0, result.output
    got = parse_jsonl(result.stdout)
    assert [r["id"] for r in got] == [r["id"] for r in rows]
    expected = predict(ws.ledger, ws.store, None, rows, task_field="task", batch_size=2)
    assert got == expected


@pytest.mark.parametrize(
    ("args", "rows", "message"),
    [
        (["a"], [{"text": "good"}, {"sentence": "bad"}], "row 2: no text in field 'text'"),
        (
            ["a"],
            [{"sentence": "good"}],
            "row 1 has no column 'text' (task 'a' reads text); "
            "the input's columns are sentence: rename the column to 'text'",
        ),
        (["zz"], [{"text": "good"}], "no task named 'zz'"),
        (["c"], [{"text": "good"}], "task 'c' is pending, not trained"),
        (["a", "--task-field", "task"], [{"task": "a", "text": "good"}], "not both"),
        ([], [{"text": "good"}], "give a TASK or --task-field"),
        (["a", "--input", "missing.csv"], None, "does not exist"),
    ],
)
def test_cli_errors_are_one_line_and_write_nothing(
    ws: Workspace, tmp_path: Path, args: list[str], rows, message: str
) -> None:
    if rows is not None:
        args = [*args, "--input", str(write_table_file(tmp_path / "in.jsonl", "jsonl", rows))]
    out = tmp_path / "out.jsonl"
    result = cli(ws, *args, "--output", str(out))
    assert result.exit_code == (2 if "no task named" in message else 1)  # unknown: usage
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert message in result.output
    assert not out.exists() and result.stdout == ""


def test_predict_has_help() -> None:
    result = CliRunner().invoke(main, ["predict", "--help"])
    assert result.exit_code == 0 and "Example:" in result.output


# ---------------------------------------------------------------------------------------------
# The Python API


def test_api_in_a_fresh_process_equals_the_in_process_result(ws: Workspace) -> None:
    code = (
        "import json, sys, contlearn\n"
        "ws = contlearn.Workspace.open(sys.argv[1])\n"
        "print(json.dumps(ws.predict('a', [{'text': 'good movie'}])))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(ws.root)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == ws.predict("a", [{"text": "good movie"}])


def test_import_contlearn_does_not_import_torch() -> None:
    code = (
        "import sys, contlearn\n"
        "assert 'torch' not in sys.modules\n"
        "contlearn.Workspace\n"
        "assert 'torch' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


# ---------------------------------------------------------------------------------------------
# GLUE pair aliases; max lengths within the backbone's positions


def test_a_glue_pair_may_be_sent_as_sentence1_and_sentence2(
    tmp_path: Path, tiny_backbone: Path
) -> None:
    ws = Workspace.create(tmp_path / "ws", backbone=str(tiny_backbone))
    ws.add_task("mrpc", write_glue_task(tmp_path, "mrpc", n_train=24, n_dev=8))
    ws.train_next(epochs=1, max_length=MAX_LENGTH)
    pairs = [("He said so .", "In short , he said so ."), ("A cat .", "It was awful .")]
    raw = predict(ws.ledger, ws.store, "mrpc", [{"#1 String": a, "#2 String": b} for a, b in pairs])
    aliased = [{"sentence1": a, "sentence2": b} for a, b in pairs]
    assert predict(ws.ledger, ws.store, "mrpc", aliased) == raw
    path = tmp_path / "pairs.csv"
    write_table_file(path, "csv", aliased)
    done = cli(ws, "mrpc", "--input", str(path))
    assert done.exit_code == 0, done.output
    assert [r["label"] for r in parse_jsonl(done.output)] == [r["label"] for r in raw]
    with pytest.raises(BadData, match=r"no column '#1 String' \(or 'sentence1'\)"):
        predict(ws.ledger, ws.store, "mrpc", [{"text": "a"}])


def test_a_max_length_beyond_the_backbones_positions_is_refused(
    workspace: Workspace, tmp_path: Path
) -> None:
    data = write_keyword_task(tmp_path / "a", n_train=8, n_dev=4)
    done = CliRunner().invoke(
        main,
        ["add-task", "a", "--data", str(data), "--max-length", "200", "-w", str(workspace.root)],
    )
    limit = f"the 160 positions of backbone {workspace.ledger.backbone().identity!r}"
    assert (
        done.output == f"Error: max length 200 is beyond {limit}: give --max-length 160 or less\n"
    )
    assert workspace.ledger.tasks() == []
    workspace.add_task("a", data)
    done = CliRunner().invoke(
        main, ["train-next", "--max-length", "161", "-q", "-w", str(workspace.root)]
    )
    assert (
        done.output == f"Error: max length 161 is beyond {limit}: give --max-length 160 or less\n"
    )
    spec = {**task_spec(TaskEntry("b", str(data)), read_task_data(workspace.ledger.task("a")))}
    workspace.ledger.add_tasks([{**spec, "settings": {"max_length": 512}}])  # as 0.2 recorded it
    done = CliRunner().invoke(main, ["train-next", "--all", "-q", "-w", str(workspace.root)])
    assert done.output == (
        f"Error: max length 512 is beyond {limit}: task 'b' was added with it; train it with "
        "--max-length 160 or less\n"
    )
    assert workspace.ledger.runs() == []


def test_many_rows_without_progress_bars_say_when_predicting_begins(
    ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    rows = tmp_path / "many.jsonl"
    rows.write_text('{"text": "a good film"}\n' * 300)
    out = tmp_path / "labels.jsonl"
    args = ["predict", "a", "--input", str(rows), "--output", str(out), "-w", str(ws.root)]
    result = CliRunner().invoke(main, args)  # stderr is no terminal here: no bars
    assert result.exit_code == 0, result.output
    assert "predicting 300 rows of 'a'\n" in result.stderr
    quiet = CliRunner().invoke(main, [*args, "-q"])
    assert "predicting" not in quiet.stderr
    capsys.readouterr()
    assert len(ws.predict("a", [{"text": "a good film"}] * 300)) == 300
    assert capsys.readouterr().err == ""  # the API stays quiet unless asked
