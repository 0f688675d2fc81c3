"""The frozen prefix (``cache_frozen_prefix``): below a task's lowest adapted layer the backbone
runs without dropout, its outputs are kept per example and reused from the second epoch on;
training computes what it computes with every batch recomputed, on every family."""

from __future__ import annotations

import random

import pytest
import torch

from contlearn import kinds
from contlearn.config import TrainConfig, recorded_train_config
from contlearn.model.methods.registry import get_method
from contlearn.model.prefix import PrefixCache
from contlearn.train.batching import Encoded
from contlearn.train.loop import train
from tests.conftest import invoke as cli
from tests.test_adapters import CONFIGS, VOCAB, adapted

CONFIG = TrainConfig(epochs=3, batch_size=8, lr=5e-3, precision="fp32")


def data(n: int = 40, seed: int = 0) -> tuple[Encoded, list[int]]:
    rng = random.Random(seed)
    ids = [
        [2] + [rng.randrange(5, VOCAB) for _ in range(rng.randrange(3, 12))] + [3] for _ in range(n)
    ]
    return Encoded(ids, None, 0), [rng.randrange(2) for _ in range(n)]


def fit(kind: str, method: str, options: dict, limit: int | None) -> tuple[list, dict, dict]:
    """Train a task; ``limit`` None: no prefix kept, else a cache of that many bytes."""
    model = adapted(kind)
    torch.manual_seed(0)
    model.add_task("a", num_outputs=2, adapter=get_method(method).config(options))
    model.activate("a")
    encoded, targets = data()
    params = model.trainable_parameters("a")
    common = dict(kind=kinds.get("classification"), evaluate=lambda: 0.0)
    if limit is None:
        result = train(model, params, encoded, targets, CONFIG, **common)
        return result.history, model.task_state("a"), {}
    with model.frozen_prefix("a", limit) as cache:
        result = train(model, params, encoded, targets, CONFIG, prefix=cache, **common)
    return result.history, model.task_state("a"), cache.summary()


@pytest.mark.parametrize("kind", CONFIGS)
@pytest.mark.parametrize(
    ("method", "options", "start"),
    [("houlsby", {"leave_out": [0]}, 1), ("topk", {"k": 1}, 1), ("head", {}, 2)],
)
def test_kept_prefix_trains_as_a_recomputed_one(kind, method, options, start) -> None:
    kept_history, kept_state, summary = fit(kind, method, options, 2**30)
    again_history, again_state, none_kept = fit(kind, method, options, 0)
    assert summary["start_layer"] == start and summary["examples_kept"] == 40
    assert summary["batches_from_cache"] == 2 * 5 and summary["batches_computed"] == 5
    assert none_kept["examples_kept"] == 0 and none_kept["batches_from_cache"] == 0
    for mine, theirs in zip(kept_history, again_history, strict=True):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-5)
    assert all(torch.allclose(v, again_state[k], atol=1e-5) for k, v in kept_state.items())


def test_a_kept_prefix_runs_without_dropout_and_the_rest_trains() -> None:
    model = adapted("bert")
    model.add_task("a", num_outputs=2, adapter=get_method("houlsby").config({"leave_out": [0]}))
    with model.frozen_prefix("a", 1000) as cache:
        model.train()
        layers = model.base_modules("layer")
        assert cache.start == 1 and not layers[0].training and layers[1].training
        assert not model.backbone.embeddings.training and model.tasks["a"].training
    model.train()
    assert all(layer.training for layer in model.base_modules("layer"))
    assert model.router.prefix is None


def test_no_prefix_when_the_lowest_layer_is_adapted() -> None:
    model = adapted("bert")
    model.add_task("a", num_outputs=2, adapter=get_method("lora").config({}))
    with model.frozen_prefix("a", 1000) as cache:
        assert cache is None and model.router.prefix is None


def test_the_limit_keeps_what_fits_and_recomputes_the_rest() -> None:
    cache = PrefixCache(start=1, limit_bytes=10 * 4 * 32)  # ten tokens of width 32 in fp32
    cache.begin([0, 1, 2], [4, 5, 6])
    hidden = torch.randn(3, 6, 32)
    out = cache.layer(0, lambda x: hidden, (torch.zeros(3, 6, 32),), {})
    cache.end()
    assert out is hidden and sorted(cache.rows) == [0, 1] and cache.full
    assert torch.equal(cache.rows[1], hidden[1, :5])
    cache.begin([1, 0], [5, 4])
    served = cache.layer(0, None, (torch.zeros(2, 5, 32),), {})
    assert torch.equal(served[0], hidden[1, :5]) and torch.equal(served[1, :4], hidden[0, :4])
    assert torch.equal(served[1, 4:], torch.zeros(1, 32))


def test_the_setting_is_recorded_and_old_runs_read_it_off(two_tasks) -> None:
    two_tasks.add_task("c", two_tasks.ledger.task("a").data_source, method="head")
    done = cli(two_tasks, "train-next", "--all", "--epochs", "2", "--cache-frozen-prefix", "-q")
    assert done.exit_code == 0, done.output
    run = two_tasks.ledger.trained_run(two_tasks.ledger.task("c").id)
    assert run.config["train"]["cache_frozen_prefix"] is True
    assert run.result["prefix_cache"]["batches_from_cache"] > 0
    a = two_tasks.ledger.trained_run(two_tasks.ledger.task("a").id)
    assert a.result["prefix_cache"] is None  # houlsby adapts layer 0: nothing to keep
    recorded = {k: v for k, v in run.config["train"].items() if k != "cache_frozen_prefix"}
    assert recorded_train_config(recorded).cache_frozen_prefix is False
    assert two_tasks.audit()["verdict"] == "clean"
