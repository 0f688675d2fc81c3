"""``scripts/gpu_check.py --tiny`` (``make gpu-check`` on the CPU with a tiny shape): the same steps
a GPU run takes — train, re-evaluate in a second process, audit, torchrun, throughput — so that
the script cannot rot between the sessions that have a GPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_gpu_check_runs_its_steps_on_a_cpu(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--tiny", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "gpu_check.json").read_text())
    flow = report["workflow"]
    assert flow["second_process"]["identical"] and flow["second_process"]["same_recipe"]
    assert flow["audit_same_device"]["verdict"] == "clean"
    assert flow["train"]["precision"] == "fp32" and report["shape"] == "tiny"
    assert (report["length"], report["batch"]) == (32, 8)
    assert flow["nproc_1"]["world_size"] == 1
    assert [v["identical"] for v in flow["nproc_1"]["verifications"]] == [True]
    adapter, full = report["throughput"]
    assert adapter["trainable_params"] < full["trainable_params"]
    assert adapter["examples_per_second"] > 0 and report["matmul_tflops"] > 0
    section = (out / "gpu_check.md").read_text()
    assert "Adapters / full fine-tuning throughput" in section and "| adapter |" in section
