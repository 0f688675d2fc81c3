"""The method registry: a method is found by name, its config is frozen and validated, the
workspace file chooses it, and an artifact records it (release 0.1's artifacts, which record
none, load as houlsby)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from contlearn.config import TrainConfig, parse_config, render_config
from contlearn.errors import ArtifactError, ConfigError
from contlearn.files import sha256_file
from contlearn.model.adapted import count_parameters
from contlearn.model.methods.houlsby import HoulsbyConfig
from contlearn.model.methods.registry import DEFAULT_METHOD, METHODS, get_method
from tests.conftest import tiny_adapted
from tests.test_families import _rerecord


def test_the_registry_knows_houlsby_by_name() -> None:
    assert DEFAULT_METHOD == "houlsby"
    assert set(METHODS) == {
        "houlsby",
        "pfeiffer",
        "parallel",
        "lora",
        "ia3",
        "topk",
        "head",
        "fusion",
    }
    method = get_method("houlsby")
    assert method.config_cls is HoulsbyConfig and HoulsbyConfig.method == "houlsby"
    assert method.config({"bottleneck": 8}) == HoulsbyConfig(bottleneck=8)
    known = "choose one of fusion, head, houlsby"
    with pytest.raises(ConfigError, match=f"unknown method 'nope': {known}"):
        get_method("nope")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"bottleneck": 0}, "bottleneck must be a positive integer"),
        ({"bottleneck": 2.5}, "bottleneck must be an integer"),
        ({"nonlinearity": "softmax"}, "nonlinearity must be one of gelu, relu, swish, tanh"),
        ({"init_std": 0.0}, "init_std must be > 0"),
    ],
)
def test_houlsby_config_is_validated(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        HoulsbyConfig(**values)


def test_the_added_parameters_are_what_the_modules_hold() -> None:
    model = tiny_adapted(num_layers=3)
    adapter = HoulsbyConfig(bottleneck=5)
    task = model.add_task("a", num_outputs=2, adapter=adapter)
    added = count_parameters(task) - count_parameters(task.head)
    assert get_method("houlsby").added_parameters(adapter, model) == added
    assert len(task.hooks) == 4 * 3  # four sites per layer


def test_tasks_toml_names_the_method(tmp_path: Path) -> None:
    rendered = render_config("backbone", None)
    assert 'method = "houlsby"' in rendered and "decay_norms_and_biases = false" in rendered
    config = parse_config(rendered, tmp_path)
    assert config.adapter == HoulsbyConfig() and config.train == TrainConfig()
    release_01 = re.sub(r'method = "houlsby".*\n', "", rendered)  # 0.1 wrote no method line
    assert parse_config(release_01, tmp_path).adapter == HoulsbyConfig()
    with pytest.raises(ConfigError, match=r"tasks.toml: \[adapter\] unknown method 'nope'"):
        parse_config(rendered.replace('method = "houlsby"', 'method = "nope"'), tmp_path)
    with pytest.raises(ConfigError, match=r"\[adapter\] method must be a method name"):
        parse_config(rendered.replace('method = "houlsby"', "method = 3"), tmp_path)


def test_an_artifact_without_a_method_loads_as_houlsby_and_an_unknown_one_is_refused(
    two_tasks,
) -> None:
    from contlearn.runtime.context import open_context

    ws = two_tasks
    (result,) = ws.train_next()
    task = ws.ledger.task("a")
    run = ws.ledger.trained_run(task.id)
    path = ws.artifact_files("a")["config"]
    meta = json.loads(path.read_text())
    unnamed = {k: v for k, v in meta.items() if k not in ("method", "family")}
    path.write_text(json.dumps(unnamed))
    _rerecord(ws, run.id, "config", sha256_file(path))
    assert ws.audit()["verdict"] == "clean"  # loads as houlsby, same logits
    path.write_text(json.dumps({**meta, "method": "nope"}))
    _rerecord(ws, run.id, "config", sha256_file(path))
    with pytest.raises(ArtifactError, match="malformed: unknown method 'nope'"):
        open_context(ws.ledger, ws.store).load_task(task)
