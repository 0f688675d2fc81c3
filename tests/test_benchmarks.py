"""Every benchmark script runs at a tiny size, in a subprocess, and writes what its report reads,
so that none can rot between the runs that measure (release 0.2's `make bench` died on every
training job and nothing noticed). ``benchmarks/run.py --tiny`` runs the jobs of `make bench`
on a random BERT of tests/conftest.py's shape; the scripts outside it take ``--tiny`` too.
``scripts/gpu_check.py`` has its own test (test_gpu_check.py); ``scripts/gpu_scale_check.py --tiny``
runs here."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
PEER_PYTHON = BENCH / "peer" / ".venv" / "bin" / "python"
METHODS = ("adapter", "full")  # the tiny plan's (adapter-nodrop differs by one flag)


def bench(name: str, *args: object, python: Path | str = sys.executable):
    command = [str(python), str(BENCH / name), *(str(a) for a in args)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`make bench` at the tiny size: its results folder and its output."""
    out = tmp_path_factory.mktemp("bench") / "out"
    done = bench("run.py", "--tiny", "--threads", "1", "--out", out)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out, done.stdout


def read(out: Path, name: str) -> dict:
    return json.loads((out / f"{name}.json").read_text())


def test_machine_measures_a_matmul_peak_at_the_start_and_the_end(tiny_run) -> None:
    out, _ = tiny_run
    for name in ("machine", "machine-end"):
        machine = read(out, name)
        assert machine["matmul_peak_gflops"] > 0 and machine["torch_threads"] == 1
        assert machine["versions"]["contlearn"]


@pytest.mark.parametrize("method", METHODS)
def test_train_step_times_contlearns_own_step(tiny_run, method: str) -> None:
    record = read(tiny_run[0], f"train-tiny-{method}-16")
    assert record["examples_per_second"] > 0 and record["shape"]["hidden"] == 32
    assert record["grads"]["finite"]
    unused = 2 if method == "full" else 0  # the backbone's pooler: the task head reads [CLS]
    assert record["grads"]["with_grad"] == record["grads"]["tensors"] - unused
    params = record["params"]
    if method == "full":
        assert params["trainable"] == params["backbone"] + params["head"]
    else:  # two 32 -> 16 -> 32 adapters with biases per layer, 2 layers
        assert params["adapters"] == 2 * 2 * (2 * 32 * 16 + 32 + 16)


def test_peer_step_matches_contlearns_adapter_or_names_its_interpreter(tiny_run) -> None:
    out, stdout = tiny_run
    if PEER_PYTHON.exists():  # the AdapterHub venv (benchmarks/peer/setup.sh) ran its step
        peer, ours = read(out, "peer-tiny-16"), read(out, "train-tiny-adapter-16")
        assert peer["params"]["adapters"] == ours["params"]["adapters"]
        assert peer["examples_per_second"] > 0 and peer["grads"]["finite"]
        return
    assert "AdapterHub jobs are skipped" in stdout
    done = bench("peer_step.py", "--backbone", "tiny", "--out", out / "peer.json")
    assert done.returncode == 1
    assert "run it with benchmarks/peer/.venv/bin/python" in done.stderr


def test_inference_compares_plain_adapted_and_head_only(tiny_run) -> None:
    record = read(tiny_run[0], "inference-tiny")
    assert record["inputs"] == "synthetic" and record["examples"] == 12
    for recipe in ("canonical", "grouped"):
        rates = record["throughput"][recipe]
        assert {name: rates[name]["examples_per_second"] > 0 for name in rates} == {
            "plain": True,
            "adapter": True,
            "head_only": True,
        }


def test_growth_audits_clean_and_times_the_cli(tiny_run) -> None:
    growth = read(tiny_run[0], "growth")
    assert [row["tasks"] for row in growth["audit"]] == [1, 2]
    assert [row["verdicts"] for row in growth["audit"]] == [["clean"], ["clean"]]
    assert growth["audit"][1]["dev_examples"] == 2 * 8
    assert growth["cli"]["listed_by_status"] == 20
    assert growth["cli"]["median_status_json_seconds"] > 0


def test_the_report_renders_sections_1_to_4(tiny_run) -> None:
    out, _ = tiny_run
    assert all(job["ok"] for job in read(out, "run")["jobs"])
    text = (out / "BENCHMARKS.md").read_text()
    for section in ("## 1. Training", "## 2. Peer", "## 3. Inference", "## 4. Growth"):
        assert section in text
    assert "| tiny BERT (random, test size) | 16 | adapters |" in text


def markdown_rows(text: str) -> list[list[str]]:
    """The body rows of the Markdown table in ``text``."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def test_family_step_times_every_family_against_bert() -> None:
    done = bench("family_step.py", "--tiny")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = markdown_rows(done.stdout)
    assert [row[0] for row in rows][:2] == ["bert", "deberta-v2"] and len(rows) == 8
    assert rows[0][2] == "1.00x" and all(float(row[1]) > 0 for row in rows)


def test_backbone_dtype_loads_fp32_and_bf16() -> None:
    done = bench("backbone_dtype.py", "--tiny")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = markdown_rows(done.stdout)
    assert [row[:2] for row in rows] == [
        ["float32", "fp32"],
        ["float32", "bf16"],
        ["bfloat16", "bf16"],
    ]
    assert float(rows[2][2]) < float(rows[0][2])  # MB of weights: bf16 holds fewer


def test_gpu_scale_check_verifies_by_probe_and_mixes_tasks_on_a_cpu(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [sys.executable, str(ROOT / "scripts" / "gpu_scale_check.py"), "--tiny"]
    done = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads((out / "gpu_scale_check.json").read_text())
    flow = report["workflow"]
    assert flow["verifications"] == [
        {"task": "d", "of": "a", "mode": "probe", "rerun": 16, "identical": True}
    ]
    assert flow["audit"] == "clean"
    assert flow["predict"]["same_label"] == flow["predict"]["rows"] == 48
    (row,) = report["throughput"]
    assert row["batch"] == 16 and set(row["examples_per_second"]) == {
        "single_task",
        "mixed",
        "grouped_in_batch",
    }
    assert all(rate > 0 for rate in row["examples_per_second"].values())
    assert report["memory"] == []  # device memory is read on a GPU only


def test_interop_exports_and_imports_back_bit_identically(tmp_path: Path) -> None:
    done = bench("interop.py", "--tiny", "--out", tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = {row["format"]: row for row in json.loads((tmp_path / "interop.json").read_text())}
    assert set(rows) == {"adapterhub", "peft"}
    assert all(row["round_trip_identical"] and row["rows"] == 16 for row in rows.values())
    assert rows["peft"]["argmax_agreement"] == 1.0 and rows["peft"]["max_abs_diff"] < 1e-4
    if not PEER_PYTHON.exists():  # AdapterHub's side needs the peer venv
        assert "no peer venv" in done.stdout and rows["adapterhub"]["argmax_agreement"] is None
    else:
        assert rows["adapterhub"]["argmax_agreement"] == 1.0
    table = markdown_rows((tmp_path / "INTEROP.md").read_text())
    assert [row[:2] for row in table] == [["houlsby", "adapterhub"], ["lora", "peft"]]


def test_scale_grows_mixes_and_bounds_resident_tasks(tmp_path: Path) -> None:
    done = bench("scale.py", "--tiny", "--out", tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "scale.json").read_text())
    assert set(result["growth"]) == {"auto", "full"}
    for rows in result["growth"].values():
        assert [row["verified_tasks"] for row in rows] == [0, 1]
        assert all(row["all_identical"] for row in rows) and rows[1]["examples_rerun"] == 16
        assert rows[1]["modes"] == ["full"]  # auto: full at 16 rows, under full_max_examples
    (mixed,) = result["mixed"]
    assert mixed["rows"] == 16 and mixed["tasks"] == 2
    assert all(rate > 0 for rate in mixed["examples_per_second"].values())
    built = [(m["tasks_used"], m["resident_limit"], m["tasks_built"]) for m in result["memory"]]
    assert built == [(2, 0, 2), (4, 2, 2)]
    text = (tmp_path / "SCALE.md").read_text()
    assert "| 2 | full |" in text and "| 8 |" in text and "| 4 | 2 | 2 |" in text


def test_baselines_compares_every_method_on_two_tasks(tmp_path: Path) -> None:
    done = bench("baselines.py", "--tiny", "--out", tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary, _, final = (tmp_path / "BASELINES.md").read_text().partition("Final dev scores")
    methods = ["adapter", "sequential", "ewc", "replay", "joint", "separate", "lora-merged"]
    rows = markdown_rows(summary)
    assert [row[0] for row in rows] == methods
    assert rows[4][2] == "—" and all(row[2] != "—" for row in rows[:4])  # joint: no BWT
    scores = markdown_rows(final)
    assert [row[0] for row in scores] == methods
    assert all(len(row) == 3 and 0 <= float(row[1]) <= 1 for row in scores)


def test_squad_compares_adapters_with_full_fine_tuning_on_squad_json(tmp_path: Path) -> None:
    import hashlib

    done = bench("squad.py", "--tiny", "--out", tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results, _, data = (tmp_path / "SQUAD.md").read_text().partition("Data:")
    rows = markdown_rows(results)
    assert [row[0] for row in rows] == ["houlsby bottleneck=64", "lora rank=8", "full fine-tuning"]
    for row in rows:
        assert 0 <= float(row[3]) <= float(row[2]) <= 100  # EM <= F1
        assert 0 <= float(row[6]) <= float(row[7])  # training, then the whole point
    params = [int(row[4].replace(",", "")) for row in rows]
    assert params[2] > params[0] > params[1] > 0  # full > adapters of 64 > LoRA rank 8
    assert float(rows[2][5]) > 100 and [r[1] for r in rows] == ["0.001", "0.001", "5e-05"]
    assert [row[8] for row in rows] == ["90.4 (adapters, size 64)", "—", "90.7 (full fine-tuning)"]
    files = {row[0]: row for row in markdown_rows(data)}
    for split, name, questions in (("train", "train-tiny.json", 48), ("dev", "dev-tiny.json", 16)):
        path = tmp_path / "tiny-data" / name
        assert files[split][3] == str(questions)
        assert files[split][5] == f"`{hashlib.sha256(path.read_bytes()).hexdigest()}`"
    assert files["train (the task's copy: first questions)"][3] == "44"  # --train-questions 44
    task = tmp_path / "data" / "squad"
    assert not (task / "train.json").is_symlink()  # copies: contlearn refuses outside links
    assert "Article titles shared by the training and dev files: 0" in data
    again = bench("squad.py", "--tiny", "--out", tmp_path)  # the finished points are reused
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "reusing" in again.stdout and "$ contlearn init" not in again.stdout
    assert markdown_rows(again.stdout.partition("Data:")[0]) == rows


def test_squad_refuses_an_out_folder_in_the_repository_and_missing_files() -> None:
    done = bench(
        "squad.py", "--out", ROOT / "docs" / "squad", "--squad-train", "x", "--squad-dev", "y"
    )
    assert done.returncode == 1 and "is inside the repository" in done.stderr
    done = bench("squad.py", "--squad-train", "x.json")
    assert done.returncode == 1 and "--squad-train and --squad-dev are needed" in done.stderr


def test_methods_runs_every_part_through_the_cli(tmp_path: Path) -> None:
    done = bench("methods.py", "--tiny", "--out", tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for method in ("houlsby", "lora"):
        runs = read(tmp_path, f"sequence-{method}")["runs"]
        assert [run["task"] for run in runs] == ["a", "b"]
        assert [v["identical"] for v in runs[1]["verifications"]] == [True]
        assert all(run["trainable_params"] > 0 and run["seconds"] > 0 for run in runs)
    points = read(tmp_path, "tradeoff-a")["points"]
    assert [p["label"] for p in points] == ["houlsby bottleneck=4", "full fine-tuning"]
    assert all(p["score"] is not None and p["trainable_params"] > 0 for p in points)
    variants = read(tmp_path, "prefix")["variants"]
    caches = [[run["prefix_cache"] for run in v["runs"]] for v in variants]
    assert caches[0] == caches[1] == [None, None]  # without the flag nothing is kept
    assert all(cache["batches_from_cache"] > 0 for cache in caches[2])  # epoch 2 reads it
    sequence, _, rest = (tmp_path / "METHODS.md").read_text().partition("## Trade-off")
    tradeoff, _, prefix = rest.partition("## Frozen prefix")
    assert [row[0] for row in markdown_rows(sequence)] == ["houlsby", "lora"]
    assert all(
        row[-1] == "1/1" and int(row[2].replace(",", "")) > 0 for row in markdown_rows(sequence)
    )
    assert [row[0] for row in markdown_rows(tradeoff)] == [
        "houlsby bottleneck=4",
        "full fine-tuning",
    ]
    rows = markdown_rows(prefix)
    assert [row[:2] for row in rows[::2]] == [
        ["all layers", "a"],
        ["top half", "a"],
        ["top half, prefix kept", "a"],
    ]
    assert rows[0][4] == "1.00x" and all(float(row[3]) > 0 for row in rows)


def test_serving_loads_a_real_server_in_both_modes(tmp_path: Path) -> None:
    done = bench("serving.py", "--tiny", "--out", tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = read(tmp_path, "serving")
    assert result["seconds"] == 1.0 and result["train_seconds"] > 0
    cells = [(r["mode"], r["traffic"], r["clients"]) for r in result["rows"]]
    assert cells == [
        (mode, traffic, clients)
        for mode in ("dynamic batching", "per request")
        for traffic in ("one task", "2 tasks")
        for clients in (1, 2)
    ]
    for row in result["rows"]:
        assert row["requests"] > 0 and row["per_second"] > 0
        assert 0 < row["p50_ms"] <= row["p99_ms"]
    assert result["rows"][3]["batch_rows"] >= 1 and result["rows"][3]["batch_tasks"] >= 1
    memory = result["memory"]
    assert memory["per_task_params"] > 0 and memory["backbone_rss_mb"] > 0
    text = (tmp_path / "SERVING.md").read_text()
    rows = markdown_rows(text)
    assert [row[:3] for row in rows] == [[m, t, str(c)] for m, t, c in cells]
    assert [row[6] for row in rows[4:]] == ["1.00x"] * 4
    assert "2 Houlsby tasks" in text and "Training the 2 tasks" in text


def test_kinds_compares_methods_on_ner_and_every_baseline_on_a_sequence_of_kinds(
    tmp_path: Path,
) -> None:
    """benchmarks/kinds.py at the tiny size: a tagging task trained three ways, then a
    classification -> tagging -> extractive-QA sequence by adapters and the five baselines,
    verified and audited."""
    squad = write_tiny_squad(tmp_path / "squad")
    done = bench("kinds.py", "--tiny", "--squad", squad, "--out", tmp_path / "out")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = (tmp_path / "out" / "KINDS.md").read_text()
    ner, _, sequence = text.partition("### The sequence sst2 -> ner -> squad")
    rows = markdown_rows(ner)
    assert [row[0].split(" (lr")[0] for row in rows] == [
        "houlsby bottleneck=64",
        "lora rank=8",
        "full fine-tuning",
    ]
    assert all(0 <= float(cell) <= 1 for row in rows for cell in row[1:5])
    params = [int(row[5].replace(",", "")) for row in rows]
    assert params[1] < params[0] < params[2]  # lora rank 8 < houlsby 64 < the whole backbone
    methods = ["adapter", "sequential", "ewc", "replay", "joint", "separate", "lora-merged"]
    scores = markdown_rows(sequence)
    assert [row[0] for row in scores] == methods
    assert scores[0][5].startswith("0.0000 [0.000, 0.000]")  # adapters: BWT exactly 0
    assert scores[4][5] == "—"  # joint: no sequence, no BWT
    assert "3 of 3 identical; compare's adapter re-evaluations: 3 of 3 identical" in text
    assert "`audit`: clean" in text
    record = json.loads((tmp_path / "out" / "kinds.json").read_text())
    assert [t["metric"] for t in record["compare"]["tasks"]] == ["accuracy", "entity_f1", "qa_f1"]
    assert record["checks"]["all_identical"] and record["budget"]["examples"] == 48


def write_tiny_squad(folder: Path, *, n_train: int = 48, n_dev: int = 16) -> Path:
    """SQuAD v1.1 train.json / dev.json in the tiny vocabulary: which animal is good?"""
    import random

    rng = random.Random(0)
    for name, count in (("train.json", n_train), ("dev.json", n_dev)):
        paragraphs = []
        for i in range(count):
            good, bad = rng.sample(["cat", "dog", "news", "tech", "money", "sport"], 2)
            context = f"the {good} is good and the {bad} is bad ."
            question = {"id": f"{name[0]}{i}", "question": "what is good ?"}
            question["answers"] = [{"text": good, "answer_start": context.index(good)}]
            paragraphs.append({"context": context, "qas": [question]})
        doc = {"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]}
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(json.dumps(doc))
    return folder


def test_transfer_compares_fresh_init_from_and_fusion_with_intervals(tmp_path: Path) -> None:
    """benchmarks/transfer.py at the tiny size: one pair, one budget, one seed, three arms;
    FWT against fresh with an interval, and every verification identical."""
    done = bench("transfer.py", "--tiny", "--out", tmp_path / "out")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = markdown_rows((tmp_path / "out" / "TRANSFER.md").read_text())
    assert [(r[0], r[1].split(" ")[0]) for r in rows] == [
        ("16", arm) for arm in ("fresh", "init", "fusion")
    ]
    assert all(r[4] == "—" for r in rows if r[1] == "fresh")
    assert all(
        re.fullmatch(r"[+-]\d\.\d{4} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\]", r[4]) for r in rows[1:3]
    )
    record = json.loads((tmp_path / "out" / "transfer.json").read_text())
    (pair,) = record["pairs"]
    assert pair["checks"]["verifications"] > 0
    assert pair["checks"]["identical"] == pair["checks"]["verifications"]
    cells = {(c["budget"], c["seed"], c["arm"]): c for c in pair["cells"]}
    assert cells[(16, 0, "init")]["init_from"]["source"] == "src"
    assert list(cells[(16, 0, "fusion")]["fused"]) == ["src"]
