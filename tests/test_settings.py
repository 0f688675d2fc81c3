"""A command's settings are resolved once at its top and handed down (runtime.settings)."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

import pytest
from click.testing import CliRunner

from contlearn import config, devices
from contlearn.cli import main
from contlearn.runtime import settings


def _count(monkeypatch: pytest.MonkeyPatch, calls: Counter, module, name: str) -> None:
    """Count the calls of the real ``module.name`` (it still runs)."""
    real = getattr(module, name)

    def counted(*args, **kwargs):
        calls[name] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)


def test_train_next_reads_tasks_toml_resolves_the_device_and_merges_each_task_once(
    two_tasks, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: Counter = Counter()
    for module, name in (
        (config, "load_config"),
        (devices, "resolve"),
        (settings, "task_configs"),
        (settings, "verify_settings"),
    ):
        _count(monkeypatch, calls, module, name)
    args = ["train-next", "--all", "-w", str(two_tasks.root), "--device", "cpu", "--epochs", "1"]
    out = CliRunner().invoke(main, [*args, "--json"])
    assert out.exit_code == 0, out.output
    runs = json.loads(out.output)["runs"]
    assert [r["task"] for r in runs] == ["a", "b"]
    # tasks.toml read by the workspace only, the device resolved by the check before the
    # claim and reused by the model context, each task's settings merged for its own run
    assert calls == {"load_config": 1, "resolve": 1, "task_configs": 2, "verify_settings": 1}
    assert runs[1]["verifications"][0]["identical"] is True


def test_resolved_settings_are_frozen_and_merge_a_task_between_workspace_and_caller(
    two_tasks,
) -> None:
    resolved = settings.resolve(two_tasks.config, {"epochs": 1, "verify": "full"}, "cpu")
    with pytest.raises(dataclasses.FrozenInstanceError):
        resolved.device = "cuda"  # type: ignore[misc]
    with pytest.raises(TypeError):
        resolved.overrides["epochs"] = 5  # type: ignore[index]
    assert resolved.target is resolved.target  # resolved once, then kept
    assert (resolved.device, resolved.target.type, resolved.verify.mode) == ("cpu", "cpu", "full")
    train, adapter = resolved.task_configs(two_tasks.ledger.task("a"))
    assert train.epochs == 1 and train.lr == two_tasks.config.train.lr
    assert adapter == two_tasks.config.adapter


def test_audit_uses_the_workspace_s_tasks_toml_and_resolves_its_device_once(
    trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: Counter = Counter()
    for module, name in ((config, "load_config"), (devices, "resolve")):
        _count(monkeypatch, calls, module, name)
    out = CliRunner().invoke(main, ["audit", "-w", str(trained.root), "--device", "cpu", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["verdict"] == "clean"
    assert calls == {"load_config": 1, "resolve": 1}
