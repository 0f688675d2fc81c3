"""benchmarks/lora_peft.py at the tiny size, in process: contlearn's LoRA and peft's on tests'
tiny random Llama, the same rt-sentiment generation rows, alternating steps."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip("peft")


def benchmark():
    """benchmarks/lora_peft.py as a module (the benchmarks folder is no package)."""
    spec = importlib.util.spec_from_file_location("lora_peft", ROOT / "benchmarks" / "lora_peft.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_lora_peft_benchmark_times_both_sides_on_the_same_loss(tmp_path: Path) -> None:
    bench = benchmark()
    args = bench.parse(["--tiny", "--out", str(tmp_path)])
    printed = bench.write(tmp_path, bench.measure(args))
    record = json.loads((tmp_path / "lora-peft.json").read_text())
    assert record["data"] == "rt-sentiment --form generation"
    sides = record["results"]["sides"]
    assert set(sides) == {"contlearn", "peft"}
    ours, theirs = sides["contlearn"], sides["peft"]
    # rank 8 on 2 layers' q_proj (32 -> 32) and v_proj (32 -> 16: 2 key/value heads of 8)
    assert ours["trainable_parameters"] == theirs["trainable_parameters"] == 2 * 8 * (64 + 48)
    # both start as the base model (B = 0): the same loss on the same response tokens
    assert ours["first_loss"] == pytest.approx(theirs["first_loss"], abs=1e-5)
    assert record["results"]["first_loss_difference"] <= 1e-5
    assert all(math.isfinite(x) for x in ours["losses"] + theirs["losses"])
    for side in (ours, theirs):
        assert len(side["step_seconds"]) == record["steps"] == 2
        assert len(side["losses"]) == record["warmup"] + record["steps"]
        assert all(rate > 0 for rate in side["tokens_per_second"])
        assert side["overall_tokens_per_second"] > 0
    ratio = record["results"]["ratio_per_round"]
    assert ratio["min"] <= ratio["median"] <= ratio["max"]
    overall = ours["overall_tokens_per_second"] / theirs["overall_tokens_per_second"]
    assert record["results"]["ratio_overall"] == pytest.approx(overall)
    assert record["real_tokens_per_batch"] > 0
    text = (tmp_path / "LORA_PEFT.md").read_text()
    assert text == printed
    assert "| contlearn | 1,792 |" in text and "| peft | 1,792 |" in text


def test_synthetic_rows_are_random_ids_with_the_second_half_as_response(tmp_path: Path) -> None:
    bench = benchmark()
    args = bench.parse(["--tiny", "--synthetic", "--out", str(tmp_path)])
    encoded = bench.encoded_rows(args, None, vocab=50, count=3)
    assert [len(ids) for ids in encoded.input_ids] == [args.length] * 3
    assert all(5 <= i < 50 for ids in encoded.input_ids for i in ids)
    assert encoded.targets == [args.length // 2] * 3
    labels = bench.peft_labels(encoded, [0, 1], args.length)
    assert (labels[:, : args.length // 2] == -100).all()
    assert labels[0, args.length // 2 :].tolist() == encoded.input_ids[0][args.length // 2 :]
