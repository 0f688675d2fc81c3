"""Devices, precision and evaluation recipes on this CPU machine: the plumbing, what a run
records, a device this machine lacks refused in one line with nothing written, bf16 training,
and verification and audit under a recipe other than the recorded one."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from sqlalchemy import text

from contlearn import devices
from contlearn.api import Workspace
from contlearn.cli import main
from contlearn.config import TrainConfig, parse_config, recorded_train_config, render_config
from contlearn.errors import ConfigError, DeviceError
from tests.conftest import invoke as cli

# -- naming and resolving devices --------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gpu", "unknown device 'gpu': use auto, cpu, cuda, cuda:N or mps"),
        ("cuda", "--device cuda: no CUDA device here (torch.cuda.is_available() is false)"),
        ("cuda:7", "--device cuda:7: no CUDA device here"),
        ("mps", "no MPS device here (torch.backends.mps.is_available() is false)"),
    ],
)
def test_a_device_this_machine_lacks_is_refused(spec: str, message: str) -> None:
    if torch.cuda.is_available() or devices._mps_available():
        pytest.skip("this machine has an accelerator: these refusals are for CPU-only machines")
    with pytest.raises(DeviceError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        devices.resolve(spec)


def test_auto_is_the_cpu_here_and_precision_follows_the_device() -> None:
    cpu = devices.resolve("auto")
    assert cpu.type == ("cuda" if torch.cuda.is_available() else "cpu")
    cpu = devices.resolve("cpu")
    assert devices.resolve_precision("auto", cpu) == "fp32"
    assert devices.resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(DeviceError, match="fp16 needs a CUDA or MPS device, not cpu"):
        devices.resolve_precision("fp16", cpu)
    with pytest.raises(DeviceError, match="unknown precision 'fp8'"):
        devices.resolve_precision("fp8", cpu)


def test_recipes_compare_only_what_both_name() -> None:
    now = devices.recipe(devices.resolve("cpu"), batch_size=32, threads=2)
    assert (
        now["device"] == "cpu" and now["dtype"] == "float32" and now["torch"] == torch.__version__
    )
    assert devices.same_recipe(now, dict(now))
    assert not devices.same_recipe({**now, "threads": 3}, now)
    assert not devices.same_recipe({**now, "device": "cuda", "model": "NVIDIA H200"}, now)
    legacy = devices.legacy_recipe(torch_version=torch.__version__, batch_size=32, threads=2)
    # recorded without the host's identity (releases 0.1 and 0.2): possibly another machine
    assert "model" not in legacy and not devices.same_recipe(legacy, now)
    assert devices.other_host(legacy, now) == "a host not recorded"
    assert devices.same_recipe({**legacy, "host": now["host"]}, now)
    assert not devices.same_recipe({**legacy, "host": now["host"], "batch_size": 64}, now)
    # the same CPU model name on another host: another ISA, core count or oneDNN build
    for change in ({"cores": 64}, {"isa": ["avx2"]}, {"onednn": "3.0"}, {"capability": "AVX2"}):
        elsewhere = {**now, "host": {**now["host"], **change}}
        assert not devices.same_recipe(elsewhere, now)
        assert devices.other_host(elsewhere, now) == "another host: " + next(iter(change))


def test_the_host_identity_names_what_decides_the_cpu_kernels() -> None:
    host = devices.host_identity()
    assert host["capability"] == torch.backends.cpu.get_cpu_capability()
    assert host["cores"] >= 1 and set(host["isa"]) <= set(devices.ISA_FLAGS)
    assert host["onednn"] and host["mkl"]  # this torch is built with both
    assert host["cpu"].count("/") == 3 and host["arch"]


def test_tasks_toml_names_the_device_and_the_precision(tmp_path) -> None:
    rendered = render_config("backbone", None)
    assert 'device = "auto"' in rendered and 'precision = "auto"' in rendered
    config = parse_config(rendered, tmp_path)
    assert config.device == "auto" and config.train.precision == "auto"
    with pytest.raises(ConfigError, match=r"\[workspace\] device: unknown device 'tpu'"):
        parse_config(rendered.replace('device = "auto"', 'device = "tpu"'), tmp_path)
    with pytest.raises(ConfigError, match="precision must be one of auto, fp32, bf16, fp16"):
        TrainConfig(precision="fp64")
    recorded = {k: v for k, v in vars(TrainConfig()).items() if k != "precision"}
    assert recorded_train_config(recorded).precision == "fp32"  # runs before the setting


# -- refused before anything is written --------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["train-next", "--device", "cuda"],
        ["train-next", "--device", "cuda:7"],
        ["train-next", "--device", "gpu"],
        ["train-next", "--precision", "fp16"],
        ["audit", "--device", "cuda"],
        ["predict", "a", "--input", "-", "--device", "cuda"],
        ["compare", "--device", "cuda"],
    ],
)
def test_bad_device_input_is_one_line_and_writes_nothing(trained: Workspace, args) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    if args[0] == "train-next":
        trained.add_task("c", trained.ledger.task("a").data_source)  # something to train
    before = len(trained.ledger.runs()), len(trained.ledger.comparisons())
    result = CliRunner().invoke(main, [*args, "-w", str(trained.root)], input='{"text": "a"}\n')
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert result.output.startswith("Error: ") and (
        "device" in result.output or "fp16" in result.output
    )
    assert (len(trained.ledger.runs()), len(trained.ledger.comparisons())) == before
    assert all(t.status in ("pending", "trained") for t in trained.tasks())


# -- what a run records ------------------------------------------------------------------------


def test_runs_record_their_device_precision_and_recipe(trained: Workspace) -> None:
    run = trained.ledger.trained_run(trained.ledger.task("a").id)
    assert run.config["train"]["precision"] == "fp32"  # auto, resolved on the CPU
    assert run.config["device"] == {
        "type": "cpu",
        "model": devices.device_model(torch.device("cpu")),
    }
    (post,) = trained.ledger.evaluations(run_id=run.id, kind="post-train")
    assert post.recipe["device"] == "cpu" and post.recipe["batch_size"] == 32
    assert post.recipe["threads"] == post.threads == torch.get_num_threads()
    assert post.recipe["torch"] == torch.__version__ and post.recipe["model"]


def test_bf16_training_on_the_cpu_is_recorded_and_verified(two_tasks: Workspace) -> None:
    fp32, bf16 = (two_tasks.train_next(epochs=1, precision=p)[0] for p in ("fp32", "bf16"))
    runs = [two_tasks.ledger.trained_run(two_tasks.ledger.task(n).id) for n in ("a", "b")]
    assert [r.config["train"]["precision"] for r in runs] == ["fp32", "bf16"]
    assert bf16["verifications"][0]["identical"] is True  # the evaluation is fp32 either way
    assert two_tasks.audit()["verdict"] == "clean"
    assert fp32["history"][0]["loss"] != bf16["history"][0]["loss"]


# -- another recipe: reproduced on a different device ------------------------------------------


def _set_recipe(ws: Workspace, task: str, **changes) -> None:
    run = ws.ledger.trained_run(ws.ledger.task(task).id)
    (post,) = ws.ledger.evaluations(run_id=run.id, kind="post-train")
    recipe = json.dumps({**post.recipe, **changes})
    with ws.ledger.engine.begin() as conn:
        conn.execute(
            text("UPDATE evaluations SET recipe = :r WHERE run_id = :run AND kind = 'post-train'"),
            {"r": recipe, "run": run.id},
        )


def test_an_audit_under_another_recipe_passes_on_identical_predictions(trained: Workspace) -> None:
    _set_recipe(trained, "a", device="cuda", model="NVIDIA H200", threads=None, capability="9.0")
    result = json.loads(cli(trained, "audit", "--json", "-q").stdout)
    rows = {r["task"]: r for r in result["tasks"]}
    assert result["verdict"] == "clean" and rows["a"]["ok"] and rows["a"]["recipe"] == "different"
    (note,) = rows["a"]["notes"]
    assert note.startswith("task 'a': reproduced on a different device (cuda NVIDIA H200 -> cpu ")
    assert "100.0% of predictions identical, max |logit change| 0" in note
    assert rows["b"]["recipe"] == "same" and rows["b"]["notes"] == []
    table = cli(trained, "audit", "-q").stdout
    assert f"note: {note}\n" in table and "verdict: clean (2 tasks" in table


def test_an_audit_under_another_recipe_fails_when_a_metric_changed(trained: Workspace) -> None:
    _set_recipe(trained, "a", threads=3)  # as if recorded with another thread count
    run = trained.ledger.trained_run(trained.ledger.task("a").id)
    with trained.ledger.engine.begin() as conn:  # and a metric value that is not reproduced
        conn.execute(
            text("UPDATE evaluations SET metrics = :m WHERE run_id = :run AND kind = 'post-train'"),
            {"m": json.dumps({"accuracy": 0.999}), "run": run.id},
        )
    result = cli(trained, "audit", "--json", "-q")
    assert result.exit_code == 1
    row = json.loads(result.stdout)["tasks"][0]
    assert not row["ok"] and row["recipe"] == "different"
    assert "not every prediction and metric value reproduced" in row["findings"][0]


def test_verification_under_another_recipe_passes_on_identical_predictions(
    trained: Workspace, tmp_path
) -> None:
    from tests.conftest import write_keyword_task

    _set_recipe(trained, "a", device="cuda", model="NVIDIA H200", threads=None)
    trained.add_task("c", write_keyword_task(tmp_path / "c", seed=6))
    (result,) = trained.train_next(epochs=1)
    assert [(v["task"], v["identical"]) for v in result["verifications"]] == [
        ("a", True),
        ("b", True),
    ]
    verification = trained.ledger.evaluations(run_id=result["run_id"], kind="verification")[0]
    assert "reproduced on a different device" in verification.findings[0]
