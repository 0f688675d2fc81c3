"""The baselines beside adapters in ``compare``: EWC, replay, joint and separate (with
sequential), each recorded per task in the ledger, the matrices and intervals they give, the
plumbing that must not change training (EWC with lambda 0 is sequential fine-tuning), the
reservoir, and bad settings refused in one line with nothing recorded."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from contlearn.api import Workspace
from contlearn.cli import main
from contlearn.config import CompareConfig
from contlearn.ops.baselines.replay import Replay
from contlearn.ops.compare import build_results
from contlearn.ops.full_finetune import checkpoint_path
from tests.conftest import copy_workspace, fast_workspace, settled, write_keyword_task


def _write(ws: Workspace, **values: object) -> None:
    text = (ws.root / "tasks.toml").read_text()
    for key, value in values.items():
        text = re.sub(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
    (ws.root / "tasks.toml").write_text(text)


def _settings(ws: Workspace, **values: object) -> Workspace:
    _write(ws, **values)
    return Workspace.open(ws.root)


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    """Three keyword tasks trained with adapters, built once for this module."""
    base = tmp_path_factory.mktemp("baselines")
    workspace = fast_workspace(base / "ws", tiny_backbone)
    keywords = ({"p": "good", "n": "bad"}, {"x": "cat", "y": "dog"}, {"u": "news", "v": "it"})
    for i, (name, words) in enumerate(zip(("a", "b", "c"), keywords, strict=True)):
        data = write_keyword_task(base / name, n_train=48, n_dev=16, seed=i, keywords=words)
        workspace.add_task(name, data)
    workspace.train_next(all_tasks=True, epochs=1)
    _write(workspace, replay_buffer=24, fisher_examples=8, bootstrap_resamples=200)
    return settled(workspace)


@pytest.fixture()
def trained(trained_once: Path, tmp_path: Path) -> Workspace:
    """A copy of the module's trained workspace for this test to change."""
    return copy_workspace(trained_once, tmp_path / "ws")


def test_every_method_runs_records_and_reports(trained: Workspace, tmp_path: Path) -> None:
    results = trained.compare(epochs=1)
    methods = results["methods"]
    assert list(methods) == [
        "adapter",
        "sequential",
        "ewc",
        "replay",
        "joint",
        "separate",
        "lora-merged",
    ]
    runs = [r for r in trained.ledger.runs(purpose="compare")]
    counts = {m: sum(r.method == m for r in runs) for m in methods}
    assert counts == {
        "adapter": 0,
        "sequential": 3,
        "ewc": 3,
        "replay": 3,
        "joint": 1,
        "separate": 3,
        "lora-merged": 3,
    }
    assert all(r.status == "succeeded" for r in runs)
    separate, joint = methods["separate"], methods["joint"]
    assert separate["summary"]["bwt"] == 0.0  # each task keeps its own model
    assert joint["summary"]["bwt"] is None and joint["summary"]["acc"] is not None
    diagonal = [separate["matrix"][j][j] for j in range(3)]
    for name, method in methods.items():
        assert method["summary"]["intransigence"] is not None
        assert (method["summary"]["fwt"] is None) == (name == "joint")  # no sequence
        acc = method["intervals"]["acc"]
        assert acc["ci"][0] <= acc["value"] <= acc["ci"][1]
        assert acc["value"] == pytest.approx(method["summary"]["acc"])
    # FWT of separate against itself is 0; its intervals of BWT are exactly [0, 0].
    assert methods["separate"]["summary"]["fwt"] == 0.0
    assert methods["separate"]["intervals"]["bwt"]["ci"] == [0.0, 0.0]
    assert diagonal == [methods["separate"]["matrix"][2][j] for j in range(3)]
    sizes = {k: m["cost"]["total_bytes"] for k, m in methods.items()}
    assert sizes["separate"] > 2 * sizes["joint"]  # three whole models against one
    assert sizes["joint"] < sizes["ewc"]  # EWC keeps its Fisher and anchor to go on
    # LoRA merged: one model and its heads, as sequential fine-tuning; only the LoRA and the
    # head train, at LoRA's defaults (the adapters here are Houlsby's)
    merged = methods["lora-merged"]
    assert sizes["lora-merged"] == sizes["sequential"]
    backbone = trained.ledger.backbone().num_parameters
    assert all(0 < p < backbone for p in merged["cost"]["trainable_params"])
    assert all(cell is not None for i, row in enumerate(merged["matrix"]) for cell in row[: i + 1])
    ranks = {r.config["adapter"]["rank"] for r in runs if r.method == "lora-merged"}
    assert ranks == {8}
    assert not checkpoint_path(trained.store, results["comparison_id"]).parent.exists()
    assert trained.audit()["verdict"] == "clean"  # the baselines never touched the adapters
    again, files = trained.rebuild_report(out=tmp_path / "report")
    assert again["methods"]["ewc"]["summary"] == methods["ewc"]["summary"]
    assert files["storage"].read_bytes().startswith(b"\x89PNG")
    text = files["md"].read_text()
    assert "Experience replay" in text and "Intransigence" in text and "95% CI" in text
    assert "Sequential LoRA merged into the weights" in text


def test_ewc_with_lambda_zero_trains_exactly_as_sequential(trained: Workspace) -> None:
    ws = _settings(trained, ewc_lambda=0.0)
    results = ws.compare(methods=("sequential", "ewc"), epochs=1)
    assert results["methods"]["ewc"]["matrix"] == results["methods"]["sequential"]["matrix"]


def test_ewc_penalty_keeps_earlier_tasks_closer(trained: Workspace) -> None:
    ws = _settings(trained, ewc_lambda=1e12, full_finetune_lr=1e-3)
    results = ws.compare(methods=("sequential", "ewc"), epochs=1)
    seq, ewc = results["methods"]["sequential"], results["methods"]["ewc"]
    first_drop = lambda m: m["matrix"][0][0] - m["matrix"][2][0]  # noqa: E731
    assert first_drop(ewc) <= first_drop(seq)


def test_the_reservoir_keeps_its_size_and_its_state_round_trips(trained: Workspace) -> None:
    from contlearn.runtime.context import open_context

    ctx = open_context(trained.ledger, trained.store, "cpu")
    tasks = trained.ledger.tasks()
    configs = {t.name: trained.config.train for t in tasks}
    replay = Replay(CompareConfig(replay_buffer=10), tasks, configs)
    for task in tasks[:2]:
        ctx.model.add_task(
            f"{task.name}", num_outputs=2, adapter=None
        ) if task.name not in ctx.model.tasks else None
        data = replay._split(ctx, tasks.index(task))
        replay.after_task(ctx, task, data)
    assert len(replay.buffer) == 10 and replay.seen == 2 * 43  # 48 rows less each holdout
    assert {p for p, _ in replay.buffer} <= {0, 1}
    fresh = Replay(CompareConfig(replay_buffer=10), tasks, configs)
    fresh.load_state(ctx, {k: v.clone() for k, v in replay.state().items()})
    assert fresh.buffer == replay.buffer and fresh.seen == replay.seen
    assert isinstance(replay.state()["buffer"], torch.Tensor)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"ewc_lambda": -1.0}, "ewc_lambda must be >= 0, got -1.0"),
        ({"replay_buffer": 0}, "replay_buffer must be >= 1, got 0"),
    ],
)
def test_bad_baseline_settings_are_one_line_errors(
    trained: Workspace, setting: dict, message: str
) -> None:
    _write(trained, **setting)
    done = CliRunner().invoke(main, ["compare", "-q", "-w", str(trained.root)])
    assert done.exit_code != 0 and message in done.output
    assert len(done.output.strip().splitlines()) == 1
    assert trained.ledger.comparisons() == []


def test_a_replay_buffer_larger_than_the_data_keeps_every_row_and_says_so(
    trained: Workspace,
) -> None:
    ws = _settings(trained, replay_buffer=500)
    done = CliRunner().invoke(main, ["compare", "--methods", "replay", "-q", "-w", str(ws.root)])
    assert done.exit_code == 0, done.output
    line = (
        "replay_buffer 500 is larger than the earlier tasks' 96 training examples: replay "
        "keeps every one of them"
    )
    assert done.stderr.strip().splitlines()[-1] == line  # after the plan's table
    comparison = ws.ledger.comparisons()[-1]
    assert comparison["config"]["baselines"]["replay"] == {
        "buffer": 500,
        "ratio": 0.25,
        "keeps_all": 96,
    }
    assert build_results(ws.ledger, comparison["id"])["notes"] == [line]
    runs = ws.ledger.runs(purpose="compare")
    assert len(runs) == 3 and all(r.status == "succeeded" for r in runs)


def test_a_replay_buffer_larger_than_the_rows_seen_holds_each_row_once(
    trained: Workspace,
) -> None:
    from contlearn.runtime.context import open_context

    ctx = open_context(trained.ledger, trained.store, "cpu")
    tasks = trained.ledger.tasks()
    configs = {t.name: trained.config.train for t in tasks}
    replay = Replay(CompareConfig(replay_buffer=500), tasks, configs)
    for task in tasks[:2]:
        ctx.model.add_task(task.name, num_outputs=2, adapter=None)
        replay.after_task(ctx, task, replay._split(ctx, tasks.index(task)))
    assert replay.buffer == [(p, i) for p in (0, 1) for i in range(43)]


def test_an_unknown_method_is_refused(trained: Workspace) -> None:
    done = CliRunner().invoke(
        main, ["compare", "--methods", "adapter,lwf", "-w", str(trained.root)]
    )
    assert done.exit_code != 0 and "unknown method(s) ['lwf']" in done.output
    assert trained.ledger.comparisons() == [] and trained.ledger.runs(purpose="compare") == []


def test_an_interrupted_ewc_and_replay_comparison_resumes_to_the_same_numbers(
    trained: Workspace, tmp_path: Path, monkeypatch
) -> None:
    import shutil

    import contlearn.ops.full_finetune as finetune

    copy = Workspace.open(shutil.copytree(trained.root, tmp_path / "copy"))
    methods = ("ewc", "replay")
    whole = copy.compare(methods=methods, epochs=1)
    real, calls = finetune._train_and_evaluate, {"n": 0}

    def crash_on_fifth(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # replay's second task: its buffer holds the first task's rows
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(finetune, "_train_and_evaluate", crash_on_fifth)
    with pytest.raises(KeyboardInterrupt):
        trained.compare(methods=methods, epochs=1)
    (running,) = trained.ledger.comparisons(status="running")
    assert checkpoint_path(trained.store, running["id"], "replay").is_file()
    monkeypatch.setattr(finetune, "_train_and_evaluate", real)
    resumed = trained.compare(methods=methods, epochs=1)
    assert resumed["comparison_id"] == running["id"]
    for name in methods:
        assert resumed["methods"][name]["matrix"] == whole["methods"][name]["matrix"], name


def test_without_separate_models_fwt_is_against_the_majority_class(trained: Workspace) -> None:
    results = trained.compare(methods=("adapter", "sequential"), epochs=1)
    assert results["fwt_reference"] == "majority class"
    matrix = results["methods"]["adapter"]["matrix"]
    # Every keyword task here is balanced enough that the majority class scores the share of
    # its most frequent dev label; FWT is the mean of (just-trained score - that share).
    from contlearn.ops.compare import dev_targets

    tasks = trained.ledger.tasks()
    shares = []
    for task in tasks:
        labels = dev_targets(task)
        shares.append(max(labels.count(k) for k in set(labels)) / len(labels))
    expected = sum(matrix[j][j] - shares[j] for j in range(1, 3)) / 2
    assert results["methods"]["adapter"]["summary"]["fwt"] == pytest.approx(expected)


def test_an_interrupted_lora_merged_comparison_resumes_to_the_same_numbers(
    trained: Workspace, tmp_path: Path, monkeypatch
) -> None:
    """The checkpoint after each task holds the merged weights and the heads: a comparison
    interrupted at task c trains c alone and gives the uninterrupted matrix."""
    import shutil

    import contlearn.ops.baselines.lora_merged as merged

    copy = Workspace.open(shutil.copytree(trained.root, tmp_path / "copy"))
    whole = copy.compare(methods=("lora-merged",), epochs=1, max_train_examples=16)
    real, trained_tasks = merged._one, []

    def crash_on_third(ctx, job, configs, config, task, so_far, chosen):
        if len(trained_tasks) == 2:
            raise KeyboardInterrupt
        trained_tasks.append(task.name)
        return real(ctx, job, configs, config, task, so_far, chosen)

    monkeypatch.setattr(merged, "_one", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        trained.compare(methods=("lora-merged",), epochs=1, max_train_examples=16)
    (running,) = trained.ledger.comparisons(status="running")
    assert checkpoint_path(trained.store, running["id"], "lora-merged").is_file()
    trained_tasks.clear()
    resumed = trained.compare(methods=("lora-merged",), epochs=1, max_train_examples=16)
    assert trained_tasks == ["c"]  # a and b came back from the checkpoint
    assert resumed["methods"]["lora-merged"]["matrix"] == whole["methods"]["lora-merged"]["matrix"]
    assert not checkpoint_path(trained.store, running["id"], "lora-merged").parent.exists()
