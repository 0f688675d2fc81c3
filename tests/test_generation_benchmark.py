"""benchmarks/generation.py at the tiny size, in a subprocess: a tiny random Llama written as a
GGUF file with a chat template, three generation tasks prepared from the demo corpora, LoRA
adapters by train-next against sequential fine-tuning and replay (matrices, ACC and BWT with
their bootstrap intervals), the audit, the base model with every task switched off before any
task and after each step per way, its zero-shot scores, and the throughput table with and
without the adapter and the KV cache."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_benchmarks import markdown_rows

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip("gguf")


def section(text: str, title: str) -> str:
    """The lines of ``text`` under the heading that starts with ``title``, to the next."""
    _, _, rest = text.partition(f"### {title}")
    return rest.split("\n### ")[0]


def test_tiny_generation_benchmark_trains_compares_audits_and_times_generation(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    command = [sys.executable, str(ROOT / "benchmarks" / "generation.py"), "--tiny", "--out", out]
    done = subprocess.run(
        [str(c) for c in command], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = (out / "GENERATION.md").read_text()
    assert done.stdout.strip().endswith(text.strip().splitlines()[-1])  # the tables printed

    tasks = markdown_rows(section(text, "The tasks"))
    assert [row[:2] for row in tasks] == [
        ["rt", "rt-sentiment"],
        ["topic", "bbc-topic"],
        ["headline", "bbc-headline"],
    ]
    assert [row[4] for row in tasks] == ["3", "3", "6"]  # each task's max new tokens
    template = out / "ws-lora" / "backbone" / "chat_template.jinja"  # kept by the conversion
    assert "add_generation_prompt" in template.read_text()
    for task in ("rt", "topic", "headline"):
        first = json.loads((out / "data" / task / "train.jsonl").read_text().splitlines()[0])
        assert list(first) == ["prompt", "response"]

    record = json.loads((out / "generation.json").read_text())
    compared = record["methods"]["lora"]["compare"]
    if "refused" in compared:  # compare takes no generation task (yet): the adapters alone
        assert "compare does not handle generation tasks" in compared["refused"]
        assert "`compare` refused (compare does not handle generation tasks" in text
        ways = ["lora adapters"]
    else:
        assert "compare's re-evaluations 3 of 3 identical" in text
        ways = ["lora adapters", "sequential", "replay"]
    scores = markdown_rows(section(text, "Each task's final dev scores"))
    assert [row[0] for row in scores] == [*ways, "base model, no task (zero-shot)"]
    assert all(0 <= float(cell.split(" [")[0]) <= 1 for row in scores for cell in row[1:5])
    assert scores[0][5].startswith("0.000")  # adapters: BWT exactly 0
    if "refused" not in compared:  # ACC and BWT with compare's bootstrap intervals
        assert "| ACC [95% CI] | BWT [95% CI] |" in text
        assert all(" [" in cell for row in scores[:-1] for cell in row[1:6])
        assert scores[0][5] == "0.000 [0.000, 0.000]"
    assert "lora: 3 of 3 verifications identical while training" in text
    assert "`audit` clean" in text
    header = "| after | rt | topic | headline |"
    assert section(text, "The matrices").count(header) == len(ways)
    adapters = markdown_rows(section(text, "The matrices").split("\n\n")[2])
    assert [row[0] for row in adapters] == ["rt", "topic", "headline"]
    assert adapters[2][1:] == [adapters[0][1], adapters[1][2], adapters[2][3]]  # frozen: kept

    base_model_rows_are_shown(text, record, ways)

    trained = record["methods"]["lora"]["trained"]
    assert [r["task"] for r in trained] == ["rt", "topic", "headline"]
    assert [r["metric"] for r in trained] == ["accuracy", "accuracy", "rouge_l"]
    outcomes = [v["outcome"] for r in trained for v in r["verifications"]]
    assert outcomes == ["identical"] * 3  # topic verifies rt; headline verifies both
    assert set(record["base"]) == {"rt", "topic", "headline"}
    assert all(r["base"]["identical"] for r in trained)  # train-next's checks, kept

    timed = record["throughput"]["rows"]
    assert [(r["model"], r["cache"]) for r in timed] == [
        ("adapter", True),
        ("adapter", False),
        ("plain", True),
        ("plain", False),
    ]
    assert all(r["new_tokens"] == 2 * 6 and r["tokens_per_second"] > 0 for r in timed)
    assert all(r["same_ids_as_cached"] for r in timed)
    assert len(markdown_rows(section(text, "Generation throughput"))) == 4


def base_model_rows_are_shown(text: str, record: dict, ways: list[str]) -> None:
    """The base model with every task switched off, per way, before any task and after each
    step: the adapters leave it bit for bit the same, full fine-tuning moves its perplexity;
    the JSON's ``ways`` hold the same with each way's matrix, ACC and BWT and their intervals."""
    table = section(text, "The base model, every task switched off")
    rows = markdown_rows(table)
    assert [row[:2] for row in rows] == [
        [way, measure] for way in ways for measure in ("perplexity", "answers identical")
    ]
    adapters, same = rows[0][2:], rows[1][2:]
    assert len(adapters) == 4 and len(set(adapters)) == 1 and same == ["100%"] * 4
    assert "lora adapters 3 of 3" in table
    by_way = record["ways"]
    assert list(by_way) == ways
    lora = by_way["lora adapters"]
    reference = record["methods"]["lora"]["trained"][0]["base"]["before"]
    assert lora["base"]["before"] == {"perplexity": reference, "answers_identical": 1.0}
    assert [s["perplexity"] for s in lora["base"]["after"]] == [reference] * 3
    assert all(s["identical"] for s in lora["base"]["after"])
    assert lora["bwt"]["value"] == 0.0 and lora["matrix"][2][0] == lora["matrix"][0][0]
    if "sequential" in by_way:
        steps = by_way["sequential"]["base"]["after"]
        assert len(steps) == 3 and not any(s["identical"] for s in steps)
        assert all(s["perplexity"] != reference for s in steps)
        assert "sequential 0 of 3" in table
        sequential = [row for row in rows if row[0] == "sequential"][0]
        assert sequential[2] == adapters[0] and sequential[3] != adapters[0]
        for entry in by_way.values():
            assert entry["acc"]["ci"][0] <= entry["acc"]["value"] <= entry["acc"]["ci"][1]
            assert len(entry["final"]) == 3 and all(t["ci"] for t in entry["final"])
