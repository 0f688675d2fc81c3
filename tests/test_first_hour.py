"""The rough edges a new user meets in the first hour, each pinned to its exact message or
behaviour: settings checked before anything runs, errors that need no model, predict's input
and output, budgets and time estimates, comparisons, audit's exit codes, file permissions,
abandoned and one-class tasks."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from contlearn.api import Workspace
from contlearn.cli import main
from contlearn.errors import ConfigError
from tests.conftest import invoke as cli
from tests.conftest import write_keyword_task
from tests.fixtures_data import write_glue_task

# -- 1. settings are checked before anything loads or is recorded ------------------------------


@pytest.mark.parametrize(
    ("settings", "error", "message"),
    [
        ({"epoch": 1}, TypeError, "unknown training setting 'epoch': use one of epochs, lr,"),
        ({"epochs": 0}, ConfigError, "epochs must be >= 1, got 0"),
        ({"lr": "abc"}, ConfigError, "lr must be a float, got 'abc'"),
        ({"bottleneck": -1}, ConfigError, "bottleneck must be a positive integer"),
    ],
)
def test_training_settings_are_checked_before_any_run(
    two_tasks: Workspace, settings: dict, error: type, message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        two_tasks.train_next(all_tasks=True, **settings)
    assert two_tasks.ledger.runs() == [] and two_tasks.ledger.task("a").status == "pending"


def test_comparison_settings_are_checked_before_any_run(trained: Workspace) -> None:
    runs = len(trained.ledger.runs())
    with pytest.raises(TypeError, match="unknown comparison setting 'epoch': use one of epochs"):
        trained.compare(epoch=1)
    with pytest.raises(ConfigError, match="max length must be 8-4096, got 2"):
        trained.compare(max_length=2)
    assert len(trained.ledger.runs()) == runs and trained.ledger.comparisons() == []


# -- 2. errors that need no model come back without importing torch ----------------------------

PROBE = """
import sys
from contlearn.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    print(f"exit {exit.code}; torch imported: {'torch' in sys.modules}", file=sys.stderr)
"""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["predict", "nope", "--input", "{rows}"], "no task named 'nope'"),
        (["predict", "c", "--input", "{rows}"], "task 'c' is pending, not trained"),
        (["predict", "a", "--input", "{missing}"], "does not exist"),
        (["train-next", "--all"], None),
        (["retrain", "nope"], "no task named 'nope'"),
        (["audit", "--task", "nope"], "no task named 'nope'"),
        (["audit", "--history"], None),
        (["report", "--comparison", "9"], "no comparison 9 in the ledger (comparisons: none"),
        (["compare"], "compare needs every task trained with adapters first (c not trained)"),
        (["train-next", "--epochs", "0"], "Invalid value for '--epochs'"),
        (["export", "nope", "--format", "peft", "--out", "{tmp}/out"], "no task named 'nope'"),
        (["export", "a", "--format", "peft", "--out", "{tmp}/out"], "use --format adapterhub"),
        (["tradeoff", "nope"], "no task named 'nope'"),
        (["tradeoff", "a", "--grid", "bogus"], "unknown method 'bogus'"),
        (["import-adapter", "a", "--from", "{tmp}", "--data", "{tmp}"], "already registered"),
        (["import-adapter", "d", "--from", "{tmp}", "--data", "{tmp}"], "no adapter_config.json"),
        (["serve", "--token-file", "{tmp}/token.txt"], "token.txt is empty"),
    ],
)
def test_errors_that_need_no_model_import_no_torch(
    trained: Workspace, tmp_path: Path, args: list[str], message: str | None
) -> None:
    trained.add_task("c", write_keyword_task(tmp_path / "c", seed=4))
    if args[0] == "train-next" and "--epochs" not in args:
        trained.remove("c")  # nothing pending
        message = "no pending task"
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"text": "good"}\n')
    (tmp_path / "token.txt").write_text("")
    args = [a.format(rows=rows, missing=tmp_path / "missing.csv", tmp=tmp_path) for a in args]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args, "-w", str(trained.root)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.stderr.strip().endswith("torch imported: False"), done.stderr
    if message is not None:
        assert message in done.stderr


def test_the_probe_sees_torch_when_a_command_needs_the_model(
    trained: Workspace, tmp_path: Path
) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"text": "good"}\n')
    args = ["predict", "a", "--input", str(rows), "-w", str(trained.root)]
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True)
    assert done.stderr.strip().endswith("torch imported: True"), done.stderr


# -- 3 and 4. predict: examples that run, missing columns, blank lines, index, kept columns ---


@pytest.fixture()
def sst2(workspace: Workspace, tmp_path: Path) -> Workspace:
    workspace.add_task("sst2", write_glue_task(tmp_path / "glue", "sst2", n_train=24, n_dev=8))
    workspace.train_next(epochs=1)
    return workspace


def _help_examples(command: str) -> list[str]:
    """The example lines of ``contlearn COMMAND --help``."""
    text = CliRunner().invoke(main, [command, "--help"]).output
    block = text.split("Example:")[1].split("Options:")[0]
    return [line.strip() for line in block.splitlines() if line.strip()]


def test_predict_help_examples_run_as_written(
    sst2: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the examples name files in the current folder
    (tmp_path / "reviews.csv").write_text("sentence\na gripping film\na dull one\n")
    (tmp_path / "mixed.jsonl").write_text('{"task": "sst2", "sentence": "fine"}\n')
    (tmp_path / "inbox.jsonl").write_text('{"sentence": "a gripping film"}\n')
    examples = _help_examples("predict")
    assert len(examples) == 4
    for example in examples:
        stdin = None
        if "|" in example:
            echo, example = example.split("|")
            stdin = shlex.split(echo)[1] + "\n"
        args = shlex.split(example)[1:]
        result = CliRunner().invoke(main, [*args, "-w", str(sst2.root)], input=stdin)
        assert result.exit_code == 0, (example, result.output)
    assert (tmp_path / "labels.csv").read_text().startswith("index,task,label,p_0,p_1\n0,sst2,")


def test_predict_output_joins_back_and_keeps_columns(sst2: Workspace, tmp_path: Path) -> None:
    rows = tmp_path / "in.csv"
    rows.write_text("id,sentence,label,source\n7,good film,1,web\n\n8,bad film,0,mail\n")
    result = cli(sst2, "predict", "sst2", "--input", str(rows), "--keep-columns", "source,label")
    assert result.exit_code == 0, result.output
    got = [json.loads(line) for line in result.stdout.splitlines()]
    assert [list(r)[:5] for r in got] == [["index", "id", "source", "input_label", "task"]] * 2
    assert [(r["index"], r["id"], r["source"], r["input_label"]) for r in got] == [
        (0, "7", "web", "1"),
        (1, "8", "mail", "0"),
    ]
    assert result.stderr == f"skipped 1 blank line of {rows} (3)\n"
    every = cli(sst2, "predict", "sst2", "--input", str(rows), "--keep-columns", "*")
    assert [sorted(json.loads(line)) for line in every.stdout.splitlines()][0] == sorted(
        ["index", "id", "sentence", "input_label", "source", "task", "label", "probabilities"]
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "holds no rows (an empty file, or a header alone): nothing to predict"),
        ("sentence\n", "holds no rows (an empty file, or a header alone): nothing to predict"),
        (
            "text\ngood\n",
            "row 1 has no column 'sentence' (task 'sst2' reads sentence); the "
            "input's columns are text: rename the column to 'sentence'",
        ),
    ],
)
def test_predict_input_problems_are_named(
    sst2: Workspace, tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "in.csv"
    path.write_text(content)
    result = cli(sst2, "predict", "sst2", "--input", str(path))
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert message in result.output


# -- 5 and 6. budgets, time estimates, what compare will run -----------------------------------


def test_training_prints_its_size_and_an_estimate(two_tasks: Workspace) -> None:
    result = cli(two_tasks, "train-next", "--batch-size", "8", "--epochs", "2")
    assert result.exit_code == 0, result.output
    estimate = re.compile(
        r"a: 86 examples x 2 epochs = 22 steps of 8; about \d+ (s|min \d\d s) of training "
        r"\(\d+\.\d\d s per step\), plus a holdout evaluation per epoch\n"
    )
    assert estimate.search(result.stderr), result.stderr
    assert "examples x" not in cli(two_tasks, "train-next", "-q", "--batch-size", "8").output


def test_compare_prints_its_settings_and_takes_a_budget(trained: Workspace, tmp_path: Path) -> None:
    args = ["compare", "--epochs", "1", "--max-train-examples", "40", "--lr", "5e-05", "-q"]
    args += ["--methods", "adapter,sequential"]
    result = cli(trained, *args, "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith("baseline settings (from each task's adapter run")
    header = "task epochs lr batch_size max_length max_train_examples seed precision"
    assert lines[1].split() == header.split()
    assert lines[2].split() == ["a", "1", "5e-05", "32", "32", "40", "42", "fp32"]
    runs = trained.ledger.runs(purpose="compare")
    assert [r.config["train"]["max_train_examples"] for r in runs] == [40, 40]
    assert [r.examples for r in runs] == [40, 40]


def test_report_names_a_missing_or_unfinished_comparison(trained: Workspace) -> None:
    trained.compare(methods=("adapter",))
    result = cli(trained, "report", "--comparison", "7")
    assert result.output == (
        "Error: no comparison 7 in the ledger (comparisons: 1): `contlearn comparisons` lists "
        "them\n"
    )
    trained.ledger.start_comparison(methods=["adapter"], task_names=["a"], config={})
    result = cli(trained, "report", "--comparison", "2")
    assert result.output == "Error: comparison 2 is not finished: `contlearn compare` resumes it\n"


def test_report_paths_are_recorded_relative_to_the_workspace(
    trained: Workspace, tmp_path: Path
) -> None:
    results = trained.compare(methods=("adapter",))
    trained.write_report(results)
    inside = trained.ledger.comparison(results["comparison_id"])["report_path"]
    assert inside.startswith("reports/") and (trained.root / inside / "report.html").is_file()
    trained.write_report(results, tmp_path / "elsewhere")
    outside = trained.ledger.comparison(results["comparison_id"])["report_path"]
    assert outside == str((tmp_path / "elsewhere").resolve())


# -- 8. audit's exit codes and words ----------------------------------------------------------


def test_audit_of_an_unknown_task_is_a_usage_error(trained: Workspace) -> None:
    result = cli(trained, "audit", "--task", "nope")
    assert result.exit_code == 2
    assert result.output == "Error: no task named 'nope': `contlearn status` lists the tasks\n"
    one = cli(trained, "audit", "--task", "a", "-q")
    assert one.exit_code == 0 and "verdict: clean (1 task, 32 dev examples in" in one.output


# -- 9. files a team can share -----------------------------------------------------------------


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_files_follow_the_umask(trained: Workspace, tmp_path: Path, umask: int, mode: int) -> None:
    before = os.umask(umask)
    try:
        trained.retrain("a", epochs=1)
        results = trained.compare(methods=("adapter",))
        report = trained.write_report(results, tmp_path / "report")
    finally:
        os.umask(before)
    for path in [*trained.artifact_files("a").values(), report["html"], report["json"]]:
        assert path.stat().st_mode & 0o777 == mode, path


# -- 10 and 11. what status tells ------------------------------------------------------------


def test_status_says_when_a_training_was_abandoned(two_tasks: Workspace) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(gone.stdout)
    values = {"method": "adapter", "config": {}, "versions": {}, "host": os.uname().nodename}
    two_tasks.ledger.claim_next_pending({**values, "pid": pid})
    rows = json.loads(cli(two_tasks, "status", "--json").stdout)["tasks"]
    assert rows[0]["status"] == f"abandoned (process {pid} gone)"
    assert (rows[0]["text_fields"], rows[0]["label_field"]) == (["text"], "label")


def test_one_class_predictions_are_flagged(two_tasks: Workspace) -> None:
    (result,) = two_tasks.train_next(lr=1e-9, epochs=1)  # learns nothing: one class throughout
    (warning,) = result["warnings"]
    assert re.fullmatch(
        r"100% of a's dev predictions are '(neg|pos)': the task barely uses its input; "
        r"train longer \(--epochs, --max-train-examples\) or with another --lr",
        warning,
    )
    verbose = cli(two_tasks, "status", "--verbose").stdout
    assert f"! {warning}\n" in verbose and "a: run 1 (houlsby), accuracy " in verbose


def test_a_task_put_before_trained_ones_says_what_that_means(
    trained: Workspace, tmp_path: Path
) -> None:
    data = write_keyword_task(tmp_path / "x", seed=8)
    result = cli(trained, "add-task", "x", "--data", str(data), "--position", "1")
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "note: placed before trained task(s) a, b: their adapters are unaffected; sequential "
        "baselines (`contlearn compare`) will see the new order\n"
    )
    assert trained.audit()["verdict"] == "clean"


# -- 12. exit codes, names and files a new user meets next ------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "nope", "--input", "{rows}"],
        ["retrain", "nope"],
        ["remove", "nope"],
        ["runs", "nope"],
        ["export", "nope", "--format", "peft", "--out", "{out}"],
        ["tradeoff", "nope"],
        ["audit", "--task", "nope"],
    ],
)
def test_an_unknown_task_is_a_usage_error_for_every_command(
    two_tasks: Workspace, tmp_path: Path, args: list[str]
) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"text": "good"}\n')
    args = [a.format(rows=rows, out=tmp_path / "out") for a in args]
    result = cli(two_tasks, *args)
    assert result.exit_code == 2, result.output
    assert result.output == "Error: no task named 'nope': `contlearn status` lists the tasks\n"
    assert "2    usage: an unknown task or option" in CliRunner().invoke(main, ["--help"]).output


@pytest.mark.parametrize("extra", [[], ["--include-norms"]])
def test_export_names_the_format_a_method_needs_first(
    trained: Workspace, tmp_path: Path, extra: list[str]
) -> None:
    out = tmp_path / "out"
    result = cli(trained, "export", "a", "--format", "peft", "--out", str(out), *extra)
    assert result.exit_code == 1 and not out.exists()
    assert result.output == (
        "Error: method 'houlsby' cannot be exported as peft (peft holds lora, ia3): use "
        "--format adapterhub\n"
    )


def test_a_comparison_still_renders_after_remove_and_gc(trained: Workspace) -> None:
    compared = cli(trained, "compare", "--methods", "adapter", "-q", "--json")
    assert compared.exit_code == 0, compared.output
    before = json.loads(compared.stdout)["methods"]["adapter"]
    assert cli(trained, "remove", "a").exit_code == 0
    collected = cli(trained, "gc", "--json")
    assert collected.exit_code == 0, collected.output
    deleted = json.loads(collected.stdout)["deleted"]
    assert deleted and not any(p.endswith("dev_logits.safetensors") for p in deleted)
    kept = [p.name for p in (trained.store.folder / "a").rglob("*") if p.is_file()]
    assert kept == ["dev_logits.safetensors"]  # what the comparison needs, nothing more
    report = cli(trained, "report", "--json")
    assert report.exit_code == 0, report.output
    after = json.loads(report.stdout)["methods"]["adapter"]
    assert after["summary"] == before["summary"] and after["intervals"] == before["intervals"]


def test_compare_names_the_baseline_it_trains(trained: Workspace, tmp_path: Path) -> None:
    args = ["--methods", "sequential,ewc", "--epochs", "1", "--max-train-examples", "40"]
    result = cli(trained, "compare", *args, "--batch-size", "8", "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    estimates = [line.split(":")[0] for line in result.stderr.splitlines() if "examples x" in line]
    assert estimates == ["a (sequential)", "b (sequential)", "a (ewc)", "b (ewc)"]


def test_runs_shows_each_runs_method_and_a_tradeoff_points_score(trained: Workspace) -> None:
    grid = ["--grid", "lora:rank=2,head", "--epochs", "1", "--max-train-examples", "20", "-q"]
    assert cli(trained, "tradeoff", "a", *grid).exit_code == 0
    task_id = trained.ledger.task("b").id
    old = {"purpose": "train", "method": "adapter", "config": {}, "versions": {}}
    trained.ledger.start_run(task_id=task_id, **old)  # as releases before named methods did
    rows = json.loads(cli(trained, "runs", "--json").stdout)["runs"]
    shown = [(r["task"], r["purpose"], r["method"]) for r in rows]
    assert shown == [
        ("a", "train", "houlsby"),
        ("b", "train", "houlsby"),
        ("a", "tradeoff", "lora"),
        ("a", "tradeoff", "head"),
        ("b", "train", "houlsby"),
    ]
    assert all(isinstance(r["metric"], float) for r in rows[:4])
    table = cli(trained, "runs").stdout.splitlines()
    assert table[3].split()[:4] == ["3", "a", "tradeoff", "lora"] and " - " not in table[3]


def test_progress_bars_stay_out_of_a_log_file(two_tasks: Workspace, tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    args = ["train-next", "--batch-size", "8", "--epochs", "1", "-w", str(two_tasks.root)]
    with log.open("w") as stderr:
        done = subprocess.run(
            [sys.executable, "-m", "contlearn.cli", *args], stderr=stderr, stdout=subprocess.PIPE
        )
    assert done.returncode == 0, log.read_text()
    text = log.read_text()
    assert "\r" not in text and "%|" not in text, text
    assert re.search(r"^a: 86 examples x 1 epochs = 11 steps of 8; about .*\n", text, re.M)


def test_the_api_is_quiet_unless_asked(trained: Workspace, capfd: pytest.CaptureFixture) -> None:
    assert trained.audit()["verdict"] == "clean"
    assert capfd.readouterr() == ("", "")
    trained.audit(progress=True)
    assert "evaluating a" in capfd.readouterr().err


ROOT = Path(__file__).resolve().parents[1]
GLUE = ROOT.parent / "shared" / "data" / "glue"  # the GLUE folders beside a clone
CONLL = ROOT.parent / "shared" / "data" / "conll2003"  # CoNLL-2003 beside a clone


def test_every_readme_data_path_is_the_shared_glue_folder() -> None:
    """Every data path the README gives is a shared folder beside a clone (GLUE's or
    CoNLL-2003's); a placeholder the text explains (PATH, ~/...) is no path."""
    readme = (ROOT / "README.md").read_text()
    given = re.findall(r"--data (\S+)", readme) + re.findall(r'add_task\("\w+", "([^"]+)"', readme)
    from_ws = re.findall(r'^data = "([^"]+)"', readme, re.M)  # tasks.toml: from the workspace
    real = [p for p in given if p != "PATH" and not p.startswith("~")]
    paths = [ROOT / p for p in real] + [ROOT / "ws" / p for p in from_ws]
    assert len(paths) >= 6
    for path in paths:
        folder = Path(os.path.normpath(path))
        glue = folder.parent == GLUE and folder.name in {"RTE", "MRPC", "SST-2"}
        assert glue or folder == CONLL, path
        assert folder.is_dir() or not folder.parent.is_dir(), path
