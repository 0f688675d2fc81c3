"""Every registered method on tiny random encoders of the four families: a validated frozen
config, a parameter count that is what the modules hold, identity (or near identity) at init,
isolation (training one task changes neither the backbone nor any other task, bit for bit),
and a save/load round trip of the task's state."""

from __future__ import annotations

import pytest
import torch

from contlearn.errors import ConfigError
from contlearn.model.adapted import count_parameters
from contlearn.model.methods.registry import METHODS, get_method
from tests.test_adapters import CONFIGS, adapted, batch, logits, snapshot, train_steps

# (method, options): every method with its defaults, and the options that change its shape
CASES = [
    ("houlsby", {}),
    ("houlsby", {"norms": "shared", "leave_out": [0]}),
    ("pfeiffer", {}),
    ("pfeiffer", {"norms": "task", "bottleneck": 4}),
    ("parallel", {}),
    ("parallel", {"norms": "task", "leave_out": [1], "scaling": 2.0}),
    ("lora", {}),
    ("lora", {"rank": 2, "alpha": 4.0, "targets": ["query", "key", "ffn_output"]}),
    ("lora", {"norms": "task", "leave_out": [0], "dropout": 0.1}),
    ("ia3", {}),
    ("ia3", {"targets": ["query", "ffn_intermediate"], "norms": "task"}),
    (
        "ia3",
        {
            "targets": ["key", "value", "attention_output", "ffn_output"],
            "on_input": ["attention_output", "ffn_output"],
        },
    ),
    ("topk", {}),
    ("topk", {"k": 2}),
    ("head", {}),
    ("fusion", {"bottleneck": 4, "leave_out": [0], "nonlinearity": "gelu"}),
]
EXACT = {"parallel", "lora", "ia3", "topk", "head"}  # exactly the backbone at init
IDS = [f"{m}-{'-'.join(map(str, o)) or 'defaults'}" for m, o in CASES]


def config(method: str, options: dict):
    return get_method(method).config(options)


def test_every_case_is_a_registered_method() -> None:
    assert {m for m, _ in CASES} == set(METHODS)


@pytest.mark.parametrize("kind", CONFIGS)
@pytest.mark.parametrize(("method", "options"), CASES, ids=IDS)
def test_counts_match_the_modules(kind: str, method: str, options: dict) -> None:
    model = adapted(kind)
    cfg = config(method, options)
    task = model.add_task("a", num_outputs=2, adapter=cfg)
    added = count_parameters(task) - count_parameters(task.head)
    assert get_method(method).added_parameters(cfg, model) == added
    assert (added == 0) == (method == "head")


@pytest.mark.parametrize("kind", CONFIGS)
@pytest.mark.parametrize(("method", "options"), CASES, ids=IDS)
def test_a_new_task_starts_at_or_near_the_backbone(kind: str, method: str, options: dict) -> None:
    model = adapted(kind)
    task = model.add_task("a", num_outputs=2, adapter=config(method, options))
    probe = model.add_task("probe", num_outputs=2, adapter=None)
    probe.head.load_state_dict(task.head.state_dict())  # the same head on the plain backbone
    inputs = batch()
    mine, plain = logits(model, "a", inputs), logits(model, "probe", inputs)
    if method in EXACT:
        assert torch.equal(mine, plain)
    else:
        assert torch.allclose(mine, plain, atol=0.05) and not torch.equal(mine, plain)


@pytest.mark.parametrize("kind", CONFIGS)
@pytest.mark.parametrize(("method", "options"), CASES, ids=IDS)
def test_training_a_task_changes_nothing_else(kind: str, method: str, options: dict) -> None:
    model = adapted(kind)
    cfg = config(method, options)
    model.add_task("a", num_outputs=2, adapter=cfg)
    train_steps(model, "a", steps=2, seed=10)
    backbone, a_state = snapshot(model.backbone), snapshot(model.tasks["a"])
    inputs = batch(seed=7)
    a_logits = logits(model, "a", inputs)
    model.add_task("b", num_outputs=3, adapter=cfg)
    before_b = snapshot(model.tasks["b"])
    train_steps(model, "b", steps=3, seed=20)
    assert all(torch.equal(v, backbone[k]) for k, v in snapshot(model.backbone).items())
    assert all(torch.equal(v, a_state[k]) for k, v in snapshot(model.tasks["a"]).items())
    assert torch.equal(logits(model, "a", inputs), a_logits)
    changed = [k for k, v in snapshot(model.tasks["b"]).items() if not torch.equal(v, before_b[k])]
    assert changed, "training b changed none of b's parameters"


@pytest.mark.parametrize(("method", "options"), CASES, ids=IDS)
def test_the_state_round_trips_into_a_fresh_model(method: str, options: dict) -> None:
    cfg = config(method, options)
    model = adapted("bert")
    model.add_task("a", num_outputs=2, adapter=cfg)
    train_steps(model, "a", steps=2, seed=3)
    state, inputs = model.task_state("a"), batch(seed=5)
    fresh = adapted("bert")
    fresh.load_task("a", state, num_outputs=2, adapter=cfg)
    assert torch.equal(logits(fresh, "a", inputs), logits(model, "a", inputs))


def test_the_houlsby_state_keeps_release_01_keys_and_leave_out_drops_slots() -> None:
    model = adapted("bert")
    keys = set(model.add_task("a", num_outputs=2, adapter=config("houlsby", {})).state_dict())
    assert {"adapters.0.down.weight", "adapters.3.up.bias", "layer_norms.3.weight"} <= keys
    left = model.add_task("b", num_outputs=2, adapter=config("houlsby", {"leave_out": [0]}))
    assert sorted(left.adapters) == ["2", "3"] and sorted(left.layer_norms) == ["2", "3"]
    assert ("attention_output", 0) not in left.hooks and ("ffn_norm", 1) in left.hooks


def test_topk_copies_hold_their_own_storage_and_the_backbone_stays_frozen() -> None:
    model = adapted("bert")
    task = model.add_task("a", num_outputs=2, adapter=config("topk", {"k": 1}))
    twin = task.layers["1"]
    base = model.base_modules("layer")[1]
    pairs = zip(twin.parameters(), base.parameters(), strict=True)
    assert all(p.data_ptr() != q.data_ptr() and torch.equal(p, q) for p, q in pairs)
    assert all(p.requires_grad for p in twin.parameters())
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert not any(type(m).__name__ == "SiteWrapper" for m in twin.modules())


@pytest.mark.parametrize(
    ("method", "options", "message"),
    [
        ("lora", {"rank": 0}, "rank must be a positive integer"),
        ("lora", {"targets": ["nope"]}, "each target must be one of query, key, value"),
        ("lora", {"targets": []}, "targets must name at least one"),
        ("lora", {"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ("ia3", {"targets": ["key", "key"]}, "targets repeats a site"),
        (
            "ia3",
            {"on_input": ["query"]},
            "each on_input projection must be one of attention_output",
        ),
        ("ia3", {"on_input": ["ffn_output"] * 2}, "on_input repeats a site"),
        ("houlsby", {"norms": "mine"}, "norms must be one of task, shared"),
        ("houlsby", {"leave_out": [-1]}, "leave_out layers must be >= 0"),
        ("pfeiffer", {"leave_out": "0"}, "leave_out must be a list of ints"),
        ("pfeiffer", {"leave_out": [1.5]}, "leave_out must be a list of ints"),
        ("parallel", {"scaling": 0}, "scaling must be > 0"),
        ("topk", {"k": 0}, "k must be a positive integer"),
        ("head", {"rank": 4}, "method 'head' has no option 'rank'; its options: none"),
        ("lora", {"bottleneck": 4}, "method 'lora' has no option 'bottleneck'"),
    ],
)
def test_bad_options_are_named(method: str, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config(method, options)


@pytest.mark.parametrize(
    ("method", "options", "message"),
    [
        ("houlsby", {"leave_out": [2]}, "leave_out names layer 2, but the backbone has 2 layers"),
        ("lora", {"leave_out": [0, 1]}, "leave_out leaves out all 2 layers"),
        ("topk", {"k": 3}, "topk k=3, but the backbone has 2 layers: use k from 1 to 2"),
    ],
)
def test_options_the_backbone_cannot_take_are_refused_before_any_change(
    method: str, options: dict, message: str
) -> None:
    model = adapted("bert")
    with pytest.raises(ConfigError, match=message):
        model.add_task("a", num_outputs=2, adapter=config(method, options))
    assert "a" not in model.tasks
