"""Hostile and broken input through the CLI: malformed data files and folders, names and labels
that look like SQL or HTML, bad options, a broken tasks.toml or --db, corrupt artifacts.

Each case of CASES is (id, build, args, expectation). ``build(ctx)`` writes the hostile input
and returns the values that fill the ``{...}`` fields of ``args``; ``-w WORKSPACE`` is appended.
The expectation is one of:

- ``Fails(*words)``: exit 1 and one line, ``Error: ...``, holding every word;
- ``Refused(*words)``: exit 2, click's usage error for an option value it refuses before the
  command runs (click's convention, kept: ``audit`` documents 2 as the usage-error code);
- ``Works(check)``: the input is handled correctly: exit 0 and ``check(ws)`` holds.

Never a traceback, and a command that fails leaves every ledger table as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

import contlearn
from contlearn.api import Workspace
from contlearn.cli import main
from contlearn.data import rules
from tests.conftest import write_keyword_task
from tests.fixtures_data import text_rows, write_datasets_task, write_table_task
from tests.test_workspace import dump

SQL = "x'); DROP TABLE tasks;--"
HTML = "<script>alert(1)</script>"
DEV = "text,label\ngood day,a\nbad day,b\n"
TRAIN = "text,label\ngood movie,a\nbad film,b\nfine cat,a\n"


@dataclass
class Ctx:
    """What a case's build step may use: its own folder, the workspace, monkeypatch, and a
    trained workspace to copy."""

    tmp: Path
    ws: Workspace
    monkeypatch: pytest.MonkeyPatch
    template: Path
    stdin: str | None = None
    after: list[Callable[[], None]] = field(default_factory=list)

    def trained_ws(self) -> Workspace:
        """Switch to a copy of the workspace whose task "a" is trained."""
        shutil.copytree(self.template, self.tmp / "trained")
        self.ws = Workspace.open(self.tmp / "trained")
        return self.ws


@dataclass(frozen=True)
class Fails:
    words: tuple[str, ...]


@dataclass(frozen=True)
class Refused:
    words: tuple[str, ...]


@dataclass(frozen=True)
class Works:
    check: Callable[[Workspace], None]


def fails(*words: str) -> Fails:
    return Fails(words)


def refused(*words: str) -> Refused:
    return Refused(words)


def registered(**expected: Any) -> Works:
    """Handled correctly: task "t" is registered with these fields (as the ledger holds them)."""

    def check(ws: Workspace) -> None:
        task = ws.ledger.task("t")
        assert {k: getattr(task, k) for k in expected} == expected

    return Works(check)


# ---------------------------------------------------------------------------------------------
# Builders: each returns a function of a Ctx that writes the input and returns {field: value}


Build = Callable[[Ctx], dict[str, Any]]


def files(content: dict[str, str | bytes]) -> Build:
    """A data folder holding these files (text is written as UTF-8, newlines as given)."""

    def build(ctx: Ctx) -> dict[str, Any]:
        folder = ctx.tmp / "data"
        folder.mkdir()
        for name, value in content.items():
            (folder / name).write_bytes(value.encode() if isinstance(value, str) else value)
        return {"data": folder}

    return build


def with_train(train: str | bytes | Callable[[], str | bytes], dev: str = DEV) -> Build:
    """train.csv (given, or made by a function at build time) and a good dev.csv."""

    def build(ctx: Ctx) -> dict[str, Any]:
        return files({"train.csv": train() if callable(train) else train, "dev.csv": dev})(ctx)

    return build


def big_jsonl(ctx: Ctx) -> dict[str, Any]:
    train = json.dumps({"text": BIG, "label": "a"}) + "\n"
    return files({"train.jsonl": train, "dev.jsonl": '{"text": "x", "label": "a"}\n'})(ctx)


def special_train(make: Callable[[Path, Path], None]) -> Build:
    """dev.csv, and ``make(folder, path)`` puts something odd at ``folder/train.csv``."""

    def build(ctx: Ctx) -> dict[str, Any]:
        values = files({"dev.csv": DEV})(ctx)
        make(values["data"], values["data"] / "train.csv")
        return values

    return build


def symlink_outside(folder: Path, path: Path) -> None:
    outside = folder.parent / "outside.csv"
    outside.write_text(TRAIN)
    path.symlink_to(outside)


def truncated_parquet(ctx: Ctx) -> dict[str, Any]:
    folder = write_table_task(ctx.tmp, "parquet")
    raw = (folder / "train.parquet").read_bytes()
    (folder / "train.parquet").write_bytes(raw[: len(raw) // 2])
    return {"data": folder}


def garbage_parquet(ctx: Ctx) -> dict[str, Any]:
    folder = write_table_task(ctx.tmp, "parquet")
    (folder / "train.parquet").write_bytes(b"PAR1" + bytes(range(64)) + b"PAR1")
    return {"data": folder}


def saved_dataset(damage: Callable[[Path], None]) -> Build:
    def build(ctx: Ctx) -> dict[str, Any]:
        folder = write_datasets_task(ctx.tmp, 6, 2)
        damage(folder)
        return {"data": folder}

    return build


def split_outside(folder: Path) -> None:
    """dataset_dict.json names a split in another saved dataset, outside this folder."""
    other = write_datasets_task(folder.parent / "other", 6, 2)
    splits = {"splits": ["train", f"../other/{other.name}/validation"]}
    (folder / "dataset_dict.json").write_text(json.dumps(splits))


def many_rows(fmt: str) -> Build:
    """A "zip bomb" of one row repeated, over a MAX_ROWS lowered to 50 (the default is 5M)."""

    def build(ctx: Ctx) -> dict[str, Any]:
        ctx.monkeypatch.setattr(rules, "MAX_ROWS", 50)
        rows = [{"text": "good movie", "label": "a"}] * 51
        return {"data": write_table_task(ctx.tmp, fmt, rows, rows[:2])}

    return build


def keyword_task(ctx: Ctx) -> dict[str, Any]:
    return {"data": write_keyword_task(ctx.tmp / "data", n_train=8, n_dev=4)}


def in_toml(edit: Callable[[str], str]) -> Build:
    def build(ctx: Ctx) -> dict[str, Any]:
        toml = ctx.ws.root / "tasks.toml"
        toml.write_text(edit(toml.read_text()))
        return {}

    return build


def toml_bytes(extra: bytes) -> Build:
    def build(ctx: Ctx) -> dict[str, Any]:
        toml = ctx.ws.root / "tasks.toml"
        toml.write_bytes(toml.read_bytes() + extra)
        return {}

    return build


def db_file(content: bytes | None) -> Build:
    """A --db path: a file of ``content`` (unchanged by the command), or a folder (None)."""

    def build(ctx: Ctx) -> dict[str, Any]:
        path = ctx.tmp / ("folder.db" if content is None else "ledger.db")
        if content is None:
            path.mkdir()
            return {"db": path}
        path.write_bytes(content)
        ctx.after.append(lambda: _assert_bytes(path, content))
        return {"db": path}

    return build


def _assert_bytes(path: Path, content: bytes) -> None:
    assert path.read_bytes() == content, f"{path} was modified"


def predict_input(name: str, content: str | None = None, stdin: str | None = None) -> Build:
    """The trained workspace, and rows to label in file ``name`` or on standard input."""

    def build(ctx: Ctx) -> dict[str, Any]:
        ctx.trained_ws()
        ctx.stdin = stdin
        path = ctx.tmp / name
        if content is not None:
            path.write_text(content)
        return {"input": path}

    return build


def corrupt_weights(payload: Callable[[], bytes]) -> Build:
    """Task "a"'s adapter.safetensors replaced by ``payload()``, with the ledger's sha256
    updated to match: the checksum passes, the file must still be refused."""

    def build(ctx: Ctx) -> dict[str, Any]:
        return _replace_artifact(ctx, "weights", payload())

    return build


def wrong_tensors() -> bytes:
    import torch
    from safetensors.torch import save

    return save({"x": torch.zeros(2)})


# ---------------------------------------------------------------------------------------------
# The table

ADD = ("add-task", "t", "--data", "{data}")
PREDICT = ("predict", "a", "--input", "{input}", "-q")
BIG = "x" * 10_000_000  # a 10 MB text on a single line
CASES: list[tuple[str, Build, tuple[str, ...], Fails | Refused | Works]] = [
    # -- csv / tsv ------------------------------------------------------------------------
    (
        "csv-truncated-mid-row",
        with_train(TRAIN + "half a r"),
        ADD,
        fails("train.csv line 5", "1 fields where 2"),
    ),
    (
        "csv-semicolon-delimiter",
        with_train("text;label\ngood;a\nbad;b\n"),
        ADD,
        fails("cannot tell which column", "'text;label'", "--text-fields"),
    ),
    (
        "csv-unterminated-quote",
        with_train('text,label\n"good movie,a\nbad,b\n'),
        ADD,
        fails("train.csv line", "unexpected end of data", "quoting"),
    ),
    (
        "tsv-row-with-an-extra-tab",
        files(
            {"train.tsv": "text\tlabel\ngood\ta\nbad\tfilm\tb\n", "dev.tsv": "text\tlabel\nx\ta\n"}
        ),
        ADD,
        fails("train.tsv line 3", "3 fields where 2", "tab"),
    ),
    ("csv-header-only", with_train("text,label\n"), ADD, fails("train.csv", "no data rows")),
    ("csv-empty-file", with_train(""), ADD, fails("train.csv", "no data rows")),
    # Lines of spaces are blank lines, like empty ones (they used to make a column named '').
    ("csv-only-whitespace", with_train("   \n \t \n\n"), ADD, fails("train.csv", "no data rows")),
    (
        "csv-duplicated-column",
        with_train("text,label,label\ngood,a,b\n"),
        ADD,
        fails("train.csv", "'label' twice"),
    ),
    (
        "csv-latin1-bytes",
        with_train("text,label\ncafé,a\n".encode("latin-1")),
        ADD,
        fails("train.csv is not UTF-8", "0xe9", "offset 14"),
    ),
    (
        "csv-utf16",
        with_train(TRAIN.encode("utf-16")),
        ADD,
        fails("train.csv is UTF-16", "re-save the file as UTF-8"),
    ),
    # Handled: a BOM is not part of the first column's name.
    ("csv-bom", with_train("\ufeff" + TRAIN), ADD, registered(text_fields=["text"])),
    # Handled: CRLF line endings read as plain newlines, in every text format.
    (
        "csv-crlf",
        with_train(TRAIN.replace("\n", "\r\n"), DEV.replace("\n", "\r\n")),
        ADD,
        registered(labels=["a", "b"], train_rows=3, dev_rows=2),
    ),
    (
        "tsv-crlf",
        files(
            {
                "train.tsv": TRAIN.replace(",", "\t").replace("\n", "\r\n"),
                "dev.tsv": DEV.replace(",", "\t").replace("\n", "\r\n"),
            }
        ),
        ADD,
        registered(labels=["a", "b"], train_rows=3, dev_rows=2),
    ),
    (
        "jsonl-crlf",
        files(
            {
                "train.jsonl": '{"text": "good", "label": "a"}\r\n{"text": "b", "label": "b"}\r\n',
                "dev.jsonl": '{"text": "fine", "label": "a"}\r\n',
            }
        ),
        ADD,
        registered(labels=["a", "b"], train_rows=2, dev_rows=1),
    ),
    # csv's field limit (128 KiB) refuses a 10 MB line: usually a quote left open; jsonl holds it.
    (
        "csv-10mb-single-line",
        with_train(lambda: f"text,label\n{BIG},a\nbad,b\n"),
        ADD,
        fails("train.csv line 2", "field larger than field limit"),
    ),
    ("jsonl-10mb-single-line", big_jsonl, ADD, registered(train_rows=1, labels=["a"])),
    # -- labels ---------------------------------------------------------------------------
    # Handled: labels of mixed types are classes named by their text ("1" and 1 are one class).
    (
        "jsonl-mixed-label-types",
        files(
            {
                "train.jsonl": "".join(
                    json.dumps({"text": t, "label": v}) + "\n"
                    for t, v in (("a", 1), ("b", "x"), ("c", 2.5), ("d", True))
                ),
                "dev.jsonl": '{"text": "e", "label": "1"}\n',
            }
        ),
        ADD,
        registered(problem_type="classification", labels=["1", "2.5", "true", "x"]),
    ),
    # "NaN" among float labels is a missing label (it used to become a class of its own).
    (
        "csv-float-labels-with-nan",
        with_train("text,label\na,0.5\nb,NaN\nc,1.25\n", "text,label\na,0.5\n"),
        ADD,
        fails("train.csv line 3", "missing label", "'label'"),
    ),
    (
        "jsonl-float-labels-with-nan",
        files(
            {
                "train.jsonl": '{"text": "a", "label": 0.5}\n{"text": "b", "label": NaN}\n',
                "dev.jsonl": '{"text": "a", "label": 0.5}\n',
            }
        ),
        ADD,
        fails("train.jsonl line 2", "missing label"),
    ),
    # An infinite label in a regression column is refused (it used to become a class too).
    (
        "csv-float-labels-with-inf",
        with_train("text,label\na,0.5\nb,-inf\nc,1.25\n", "text,label\na,0.5\n"),
        ADD,
        fails("train.csv line 3", "'-inf'", "not a finite number"),
    ),
    (
        "dev-label-unseen-in-train",
        with_train(TRAIN, "text,label\ngood day,a\nodd day,c\n"),
        ADD,
        fails("dev.csv line 3", "'c' never appears in the training split"),
    ),
    # -- json / jsonl / parquet -----------------------------------------------------------
    (
        "json-object-not-a-list",
        files(
            {
                "train.json": json.dumps({"text": "a", "label": "b"}, indent=2),
                "dev.json": '[{"text": "a", "label": "b"}]',
            }
        ),
        ADD,
        fails("train.json holds one JSON object", "JSON array"),
    ),
    (
        "json-object-wrapping-the-rows",
        files(
            {
                "train.json": json.dumps({"data": [{"text": "a", "label": "b"}]}),
                "dev.json": '[{"text": "a", "label": "b"}]',
            }
        ),
        ADD,
        fails("cannot tell which column", "'data'"),
    ),
    (
        "jsonl-with-a-json-array-line",
        files(
            {
                "train.jsonl": '{"text": "a", "label": "b"}\n[{"text": "c", "label": "d"}]\n',
                "dev.jsonl": '{"text": "a", "label": "b"}\n',
            }
        ),
        ADD,
        fails("train.jsonl line 2", "expected a JSON object", "list"),
    ),
    (
        "jsonl-truncated",
        files(
            {
                "train.jsonl": '{"text": "a", "label": "b"}\n{"text": "c", "lab',
                "dev.jsonl": '{"text": "a", "label": "b"}\n',
            }
        ),
        ADD,
        fails("train.jsonl line 2", "invalid JSON"),
    ),
    ("parquet-truncated", truncated_parquet, ADD, fails("train.parquet", "not a readable parquet")),
    ("parquet-garbage", garbage_parquet, ADD, fails("train.parquet", "not a readable parquet")),
    # -- the folder -----------------------------------------------------------------------
    (
        "dir-named-train.csv",
        special_train(lambda folder, path: path.mkdir()),
        ADD,
        fails("train.csv in", "is a folder"),
    ),
    # A named pipe used to block the read forever.
    (
        "fifo-named-train.csv",
        special_train(lambda folder, path: os.mkfifo(path)),
        ADD,
        fails("train.csv in", "is a pipe, socket or device"),
    ),
    (
        "symlink-leaving-the-folder",
        special_train(symlink_outside),
        ADD,
        fails("train.csv", "symlink", "outside the data folder"),
    ),
    (
        "symlink-loop",
        special_train(lambda folder, path: path.symlink_to("train.csv")),
        ADD,
        fails("cannot resolve train.csv", "fix or remove the link"),
    ),
    ("data-is-a-file", lambda ctx: {"data": __file__}, ADD, fails("is a file, not a folder")),
    (
        "datasets-missing-arrow-file",
        saved_dataset(lambda f: (f / "train" / "data-00000-of-00001.arrow").unlink()),
        ADD,
        fails("split 'train' lacks its data file", "data-00000-of-00001.arrow", "re-save"),
    ),
    (
        "datasets-corrupt-dataset_dict.json",
        saved_dataset(lambda f: (f / "dataset_dict.json").write_text('{"splits": ["tra')),
        ADD,
        fails("dataset_dict.json", "re-save it with DatasetDict.save_to_disk"),
    ),
    # datasets would have loaded the other folder's split, which the fingerprint misses.
    (
        "datasets-split-outside-the-folder",
        saved_dataset(split_outside),
        ADD,
        fails("dataset_dict.json names split", "../other", "no folder here"),
    ),
    ("zip-bomb-rows-csv", many_rows("csv"), ADD, fails("train.csv has over 50 rows", "MAX_ROWS")),
    ("zip-bomb-rows-jsonl", many_rows("jsonl"), ADD, fails("train.jsonl has over 50 rows")),
    ("zip-bomb-rows-parquet", many_rows("parquet"), ADD, fails("train.parquet has over 50")),
    # -- names and labels that look like paths, SQL or HTML --------------------------------
    ("name-dotdot", keyword_task, ("add-task", "..", "--data", "{data}"), fails("invalid task")),
    ("name-sql", keyword_task, ("add-task", SQL, "--data", "{data}"), fails("invalid task name")),
    ("name-html", keyword_task, ("add-task", HTML, "--data", "{data}"), fails("invalid task name")),
    (
        "name-trailing-newline",
        keyword_task,
        ("add-task", "t\n", "--data", "{data}"),
        fails("invalid task name"),
    ),
    # Handled: values are bound parameters, stored and read back verbatim; no table is dropped.
    (
        "label-sql",
        with_train(f'text,label\ngood,"{SQL}"\nbad,b\n', f'text,label\nfine,"{SQL}"\n'),
        ADD,
        registered(labels=["b", SQL]),
    ),
    (
        "text-sql",
        with_train(f'text,label\n"{SQL}",a\n"SELECT * FROM runs; --",b\n'),
        ADD,
        registered(train_rows=2, labels=["a", "b"]),
    ),
    # Handled here; the HTML report escapes it (test_html_in_names_is_escaped_in_the_report).
    (
        "label-html",
        with_train(f"text,label\ngood,{HTML}\nbad,b\n", f"text,label\nfine,{HTML}\n"),
        ADD,
        registered(labels=[HTML, "b"]),
    ),
    ("label-field-sql", keyword_task, (*ADD, "--label-field", SQL), fails("no column", "DROP")),
    # -- options --------------------------------------------------------------------------
    ("position-0", keyword_task, (*ADD, "--position", "0"), refused("'--position'", "x>=1")),
    # An empty --text-fields / --label-field used to mean "infer the columns", silently.
    ("text-fields-empty", keyword_task, (*ADD, "--text-fields", ""), refused("names no column")),
    ("text-fields-comma", keyword_task, (*ADD, "--text-fields", ","), refused("names no column")),
    ("label-field-blank", keyword_task, (*ADD, "--label-field", " "), refused("names no column")),
    # -- the ledger and tasks.toml --------------------------------------------------------
    (
        "db-not-a-database",
        db_file(b"just some text, not SQLite\n" * 200),
        ("status", "--db", "{db}"),
        fails("is not an SQLite database", "file is not a database"),
    ),
    (
        "db-is-a-folder",
        db_file(None),
        ("status", "--db", "{db}"),
        fails("is a folder, not a database file"),
    ),
    (
        "db-unknown-dialect",
        lambda ctx: {},
        ("status", "--db", "nosuchdialect://host/x"),
        fails("cannot use the ledger database", "nosuchdialect"),
    ),
    (
        "db-upgrade-not-a-database",
        db_file(b"\x00" * 4096),
        ("db", "upgrade", "--db", "{db}"),
        fails("is not an SQLite database"),
    ),
    (
        "toml-invalid",
        in_toml(lambda t: t + "\n[train\nepochs = 1\n"),
        ("status",),
        fails("tasks.toml is not valid TOML", "line"),
    ),
    (
        "toml-unknown-key",
        in_toml(lambda t: t.replace("[train]", "[train]\nturbo = true")),
        ("status",),
        fails("tasks.toml", "unknown key(s) in [train]: turbo"),
    ),
    # One line naming the file and the section, though not the field (see the report).
    (
        "toml-wrong-type",
        in_toml(lambda t: re.sub(r"epochs = \d+", 'epochs = "three"', t)),
        ("status",),
        fails("tasks.toml", "[train]"),
    ),
    (
        "toml-flag-not-a-bool",
        in_toml(lambda t: t.replace("attention_dropout = true", 'attention_dropout = "no"')),
        ("status",),
        fails("tasks.toml", "backbone_attention_dropout must be true or false, got 'no'"),
    ),
    (
        "toml-decay-rule-not-a-bool",
        in_toml(lambda t: t.replace("biases = false", "biases = 1")),
        ("status",),
        fails("tasks.toml", "decay_norms_and_biases must be true or false, got 1"),
    ),
    (
        "toml-unknown-method",
        in_toml(lambda t: t.replace('method = "houlsby"', 'method = "prefix"')),
        ("status",),
        fails(
            "tasks.toml", "unknown method 'prefix': choose one of fusion, head, houlsby, ia3, lora"
        ),
    ),
    (
        "toml-task-named-sql",
        in_toml(lambda t: t + f'\n[[task]]\nname = "{SQL}"\ndata = "x"\n'),
        ("add-task", "--from-config"),
        fails("invalid task name", "DROP TABLE"),
    ),
    # -- predict and artifacts ------------------------------------------------------------
    (
        "predict-wrong-columns",
        predict_input("in.csv", "sentence,label\ngood movie,pos\n"),
        PREDICT,
        fails("row 1 has no column 'text' (task 'a' reads text); the input's columns are"),
    ),
    (
        "predict-invalid-jsonl",
        predict_input("in.jsonl", '{"text": "good"}\n{"text": "bad\n'),
        PREDICT,
        fails("in.jsonl line 2", "invalid JSON"),
    ),
    (
        "predict-stdin-not-jsonl",
        predict_input("-", stdin="good movie\n"),
        ("predict", "a", "--input", "-", "-q"),
        fails("standard input line 1", "invalid JSON"),
    ),
    (
        "predict-unknown-extension",
        predict_input("in.txt", "good movie\n"),
        PREDICT,
        fails("cannot tell the format", "in.txt"),
    ),
    (
        "artifact-garbage-weights",
        corrupt_weights(lambda: b"\x00garbage, not safetensors" * 40),
        ("predict", "a", "--input", "-", "-q"),
        fails("cannot read", "adapter.safetensors"),
    ),
    (
        "artifact-foreign-tensors",
        corrupt_weights(wrong_tensors),
        ("predict", "a", "--input", "-", "-q"),
        fails("task 'a'", "does not fit", "unexpected keys ['x']"),
    ),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    """A workspace folder whose task "a" is trained; cases that need a model copy it."""
    root = tmp_path_factory.mktemp("trained") / "ws"
    ws = Workspace.create(root, backbone=str(tiny_backbone))
    ws.add_task("a", write_keyword_task(root.parent / "a", n_train=16, n_dev=8))
    ws.train_next(epochs=1, max_length=16)
    ws.ledger.engine.dispose()
    return root


def invoke(args: list[str], stdin: str | None = None) -> Result:
    """Run the CLI; an exception click does not turn into an exit code fails the test."""
    return CliRunner().invoke(main, args, input=stdin, catch_exceptions=False)


def test_the_table_has_at_least_thirty_distinct_cases() -> None:
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids)) >= 30


@pytest.mark.parametrize(
    ("build", "args", "expected"), [pytest.param(*c[1:], id=c[0]) for c in CASES]
)
def test_hostile_input(
    build: Build,
    args: tuple[str, ...],
    expected: Fails | Refused | Works,
    workspace: Workspace,
    trained: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx = Ctx(tmp_path / "case", workspace, monkeypatch, trained)
    ctx.tmp.mkdir()
    values = build(ctx)
    before = dump(ctx.ws)
    result = invoke([*(a.format(**values) for a in args), "-w", str(ctx.ws.root)], ctx.stdin)
    assert "Traceback" not in result.output
    if isinstance(expected, Works):
        assert result.exit_code == 0, result.output
        expected.check(ctx.ws)
    else:
        assert result.exit_code == (1 if isinstance(expected, Fails) else 2), result.output
        lines = result.output.splitlines()
        if isinstance(expected, Fails):
            assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
        else:
            assert lines[-1].startswith("Error: Invalid value for "), result.output
        for word in expected.words:
            assert word in result.output, f"{word!r} not in {result.output!r}"
        assert dump(ctx.ws) == before
    for check in ctx.after:
        check()


# ---------------------------------------------------------------------------------------------
# Found, not fixed here: outside the files this hardening may touch (config.py, models.py,
# db.py). Each flips to XPASS once fixed; strict=False so a concurrent fix does not fail runs.

KNOWN: list[tuple[str, Build, tuple[str, ...], Fails | Refused | Works]] = [
    (
        "toml-not-utf8",  # config.load_config catches OSError only: a UnicodeDecodeError escapes
        toml_bytes(b"\n# caf\xe9\n"),
        ("status",),
        fails("tasks.toml"),
    ),
    (
        "toml-text-fields-an-int",  # config._task_entry calls tuple(3): a TypeError escapes
        in_toml(lambda t: t + '\n[[task]]\nname = "q"\ndata = "x"\ntext_fields = 3\n'),
        ("status",),
        fails("tasks.toml", "text_fields"),
    ),
    (
        "toml-unknown-table",  # parse_config checks keys inside tables, not the tables
        in_toml(lambda t: t + "\n[trian]\nepochs = 1\n"),
        ("status",),
        fails("tasks.toml", "trian"),
    ),
    (
        "artifact-config-a-list",  # models.load_task indexes meta["adapter"]: a TypeError
        lambda ctx: _corrupt_config(ctx, b"[1, 2]"),
        ("predict", "a", "--input", "-", "-q"),
        fails("adapter_config.json"),
    ),
]


def _corrupt_config(ctx: Ctx, raw: bytes) -> dict[str, Any]:
    return _replace_artifact(ctx, "config", raw)


def _replace_artifact(ctx: Ctx, role: str, raw: bytes) -> dict[str, Any]:
    """Overwrite task a's artifact file of ``role`` and make the ledger's sha256 match it, so the
    checksum passes and only parsing can catch the damage."""
    ws = ctx.trained_ws()
    run = ws.ledger.trained_run(ws.ledger.task("a").id)
    record = next(a for a in ws.ledger.artifacts(run.id) if a.role == role)
    (ws.root / record.path).write_bytes(raw)
    with ws.ledger.engine.begin() as conn:
        conn.execute(
            text("UPDATE artifacts SET sha256 = :sha WHERE run_id = :run AND role = :role"),
            {"sha": hashlib.sha256(raw).hexdigest(), "run": run.id, "role": role},
        )
    ctx.stdin = '{"text": "good movie"}\n'
    return {}


@pytest.mark.parametrize(
    ("build", "args", "expected"), [pytest.param(*c[1:], id=c[0]) for c in KNOWN]
)
def test_known_hostile_input_gaps(
    build: Build,
    args: tuple[str, ...],
    expected: Fails,
    workspace: Workspace,
    trained: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    test_hostile_input(build, args, expected, workspace, trained, tmp_path, monkeypatch)


def test_foreign_sqlite_database_is_left_alone(workspace: Workspace, tmp_path: Path) -> None:
    """--db naming another program's SQLite file must not add contlearn's tables to it."""
    import sqlite3

    path = tmp_path / "places.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE moz_places (id INTEGER)")
    conn.close()
    before = path.read_bytes()
    result = invoke(["status", "--db", str(path), "-w", str(workspace.root)])
    assert result.exit_code == 1 and "no contlearn schema" in result.output
    assert path.read_bytes() == before


def test_a_missing_ledger_file_is_not_silently_created(workspace: Workspace, tmp_path) -> None:
    missing = tmp_path / "typo.db"
    result = invoke(["status", "--db", str(missing), "-w", str(workspace.root)])
    assert result.exit_code == 1 and "does not exist" in result.output
    assert not missing.exists()


# ---------------------------------------------------------------------------------------------
# The row limit, the report, unpickling, random bytes


def test_row_limit_default_and_boundary(workspace: Workspace, tmp_path: Path, monkeypatch) -> None:
    assert rules.MAX_ROWS == 5_000_000
    monkeypatch.setattr(rules, "MAX_ROWS", 12)
    folder = write_table_task(tmp_path, "csv", text_rows(12), text_rows(12))  # exactly the limit
    invoke(["add-task", "t", "--data", str(folder), "-w", str(workspace.root)])
    assert workspace.ledger.task("t").train_rows == 12


def test_html_in_names_is_escaped_in_the_report(tiny_backbone: Path, tmp_path: Path) -> None:
    """A backbone folder and a label holding HTML, through init, train-next and compare."""
    hostile = tmp_path / "<img src=x onerror=alert(1)>"
    shutil.copytree(tiny_backbone, hostile)
    root, out = str(tmp_path / "ws"), tmp_path / "report"
    for args in (
        ["init", "--backbone", str(hostile)],
        ["add-task", "t", "--data", str(with_label(tmp_path / "d", HTML))],
        ["train-next", "--epochs", "1", "--max-length", "16", "-q"],
        ["compare", "--methods", "adapter", "--out", str(out), "-q"],
    ):
        result = invoke([*args, "-w", root])
        assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    assert "<img src=x" not in page and "<script>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    markdown = (out / "report.md").read_text()
    assert not re.search(r"(?<!\\)<(img|script)", markdown)


def with_label(folder: Path, label: str) -> Path:
    """The keyword task with its "pos" class renamed to ``label``."""
    write_keyword_task(folder, n_train=16, n_dev=8)
    for name in ("train.csv", "dev.csv"):
        path = folder / name
        path.write_text(path.read_text().replace(",pos\n", f",{label}\n"))
    return folder


def test_loading_never_unpickles() -> None:
    """Artifacts are safetensors and JSON: nothing in the package may unpickle or pickle."""
    package = Path(contlearn.__file__).parent
    pattern = re.compile(
        r"^\s*(import|from)\s+(pickle|cPickle|dill|joblib|shelve|marshal)\b"
        r"|\btorch\.(load|save)\s*\(|\bpickle\.|\bweights_only\b",
        re.MULTILINE,
    )
    offenders = [p.name for p in package.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


_PIECES = ["text", "label", ",", "\t", "\n", "\r\n", '"', " ", "a", "b", "NaN", "1.5", "{", "["]
_RAW = st.one_of(
    st.binary(max_size=120),
    st.lists(st.sampled_from(_PIECES), max_size=30).map(lambda p: "".join(p).encode()),
    st.lists(st.sampled_from([b"\xff", b"\xef\xbb\xbf", b"\xfe\xff", b"\x00", b"a,b\n"])).map(
        b"".join
    ),
)
_names = iter(f"r{i}" for i in range(10**6))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=_RAW, split=st.sampled_from(["train.csv", "dev.csv"]))
def test_random_bytes_register_or_fail_in_one_line(workspace: Workspace, raw, split) -> None:
    name = next(_names)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "train.csv").write_text(TRAIN)
        (folder / "dev.csv").write_text(DEV)
        (folder / split).write_bytes(raw)
        before = dump(workspace)
        result = invoke(["add-task", name, "--data", tmp, "-w", str(workspace.root)])
    after = dump(workspace)
    if result.exit_code == 0:
        assert set(before) <= set(after) and len(after) == len(before) + 1
        assert workspace.ledger.task(name).train_rows >= 1
    else:
        assert result.exit_code == 1
        assert result.output.startswith("Error: ") and result.output.count("\n") == 1
        assert after == before
