"""Every method on every built-in family (tiny random models): the parameter formula, identity
(or near identity) at init, isolation bit for bit, and a state round trip into a fresh model;
plus what only some families have: fused projections, last-token pooling, refusals."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from contlearn.errors import UnsupportedArchitecture
from contlearn.model.adapted import AdaptedModel, count_parameters
from contlearn.model.heads import pool
from contlearn.model.methods.registry import METHODS, get_method
from tests.family_configs import CONFIGS, FAMILY_OF, VOCAB, tiny_model

CASES = [
    ("houlsby", {}),
    ("pfeiffer", {"norms": "task"}),
    ("parallel", {}),
    ("lora", {"targets": ["query", "key", "value", "ffn_output"], "norms": "task"}),
    ("ia3", {"targets": ["query", "key", "value", "ffn_intermediate", "ffn_output"]}),
    ("topk", {}),
    ("head", {}),
    ("fusion", {"bottleneck": 8}),
]
EXACT = {"parallel", "lora", "ia3", "topk", "head"}


def inputs(seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, VOCAB, (3, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0  # a padded row
    return {"input_ids": ids, "attention_mask": mask}


def logits(model: AdaptedModel, name: str, batch: dict) -> torch.Tensor:
    model.eval()
    model.activate(name)
    with torch.no_grad():
        return model(**batch)


def train(model: AdaptedModel, name: str, seed: int) -> None:
    model.train()
    model.activate(name)
    opt = torch.optim.AdamW(model.trainable_parameters(name), lr=1e-2)
    for step in range(2):
        loss = model(**inputs(seed + step)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_every_method_is_in_the_matrix() -> None:
    assert {m for m, _ in CASES} == set(METHODS)


@pytest.mark.parametrize(("method", "options"), CASES, ids=[m for m, _ in CASES])
@pytest.mark.parametrize("label", CONFIGS)
def test_method_on_family(label: str, method: str, options: dict) -> None:
    model = AdaptedModel(tiny_model(label))
    assert model.family.name == FAMILY_OF[label]
    cfg = get_method(method).config(options)
    task = model.add_task("a", num_outputs=2, adapter=cfg)
    assert get_method(method).added_parameters(cfg, model) == count_parameters(
        task
    ) - count_parameters(task.head)
    probe = model.add_task("probe", num_outputs=2, adapter=None)
    probe.head.load_state_dict(task.head.state_dict())
    batch = inputs()
    start, plain = logits(model, "a", batch), logits(model, "probe", batch)
    assert torch.equal(start, plain) if method in EXACT else torch.allclose(start, plain, atol=0.05)
    train(model, "a", seed=10)
    backbone, a_state, a_logits = state(model.backbone), state(task), logits(model, "a", batch)
    model.add_task("b", num_outputs=3, adapter=cfg)
    train(model, "b", seed=20)
    assert all(torch.equal(v, backbone[k]) for k, v in state(model.backbone).items())
    assert all(torch.equal(v, a_state[k]) for k, v in state(model.tasks["a"]).items())
    assert torch.equal(logits(model, "a", batch), a_logits)
    fresh = AdaptedModel(tiny_model(label))
    fresh.load_task("a", model.task_state("a"), num_outputs=2, adapter=cfg)
    assert torch.equal(logits(fresh, "a", batch), a_logits)


def test_lora_on_a_fused_projection_changes_only_its_slices() -> None:
    model = AdaptedModel(tiny_model("gpt2"))
    task = model.add_task(
        "a", num_outputs=2, adapter=get_method("lora").config({"targets": ["value"]})
    )
    with torch.no_grad():
        for p in task.lora.parameters():
            p.normal_()
    c_attn = model.base_modules("qkv")[0]
    x = torch.randn(2, 5, 32)
    model.activate("a")
    wrapped = model.wrappers["qkv"][0]
    delta = wrapped(x) - c_attn(x)
    assert torch.equal(delta[..., :64], torch.zeros(2, 5, 64)) and delta[..., 64:].abs().sum() > 0


def test_ia3_on_a_fused_projection_scales_only_its_slices() -> None:
    model = AdaptedModel(tiny_model("phi3"))
    task = model.add_task(
        "a", num_outputs=2, adapter=get_method("ia3").config({"targets": ["key"]})
    )
    with torch.no_grad():
        task.scales["key"]["0"].weight.fill_(2.0)
    q, k, v = model.family.qkv_split(model.backbone.config)
    x = torch.randn(2, 5, 32)
    model.activate("a")
    base = model.base_modules("qkv")[0](x)
    out = model.wrappers["qkv"][0](x)
    assert torch.equal(out[..., :q], base[..., :q]) and torch.equal(
        out[..., q + k :], base[..., q + k :]
    )
    assert torch.allclose(out[..., q : q + k], 2 * base[..., q : q + k])


def test_decoders_pool_the_last_real_token_on_either_padding_side() -> None:
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float).reshape(2, 4, 1)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert pool(hidden, right, "last").flatten().tolist() == [1.0, 7.0]
    assert pool(hidden, left, "last").flatten().tolist() == [3.0, 7.0]
    assert pool(hidden, right, "first").flatten().tolist() == [0.0, 4.0]


def test_a_decoder_s_logits_do_not_depend_on_its_padding() -> None:
    model = AdaptedModel(tiny_model("llama"))
    model.add_task("a", num_outputs=2, adapter=get_method("lora").config({}))
    ids = torch.randint(4, VOCAB, (1, 6), generator=torch.Generator().manual_seed(3))
    alone = logits(model, "a", {"input_ids": ids, "attention_mask": torch.ones_like(ids)})
    padded = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    mask = torch.tensor([[1] * 6 + [0] * 3])
    assert torch.allclose(
        logits(model, "a", {"input_ids": padded, "attention_mask": mask}), alone, atol=1e-5
    )


def test_albert_is_refused_with_the_reason() -> None:
    from transformers import AlbertConfig, AutoModel

    albert = AutoModel.from_config(
        AlbertConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            num_attention_heads=4,
            intermediate_size=64,
            num_hidden_layers=2,
            embedding_size=16,
        )
    )
    with pytest.raises(UnsupportedArchitecture, match="ALBERT runs one shared layer module"):
        AdaptedModel(albert)


def test_a_fused_family_names_the_fused_projection_when_a_site_is_missing() -> None:
    model = AdaptedModel(tiny_model("gpt2"))
    with pytest.raises(UnsupportedArchitecture, match="one projection, attn.c_attn"):
        model.adapt(("query",))


def test_attention_dropout_switches_on_float_attributes_too() -> None:
    model = AdaptedModel(tiny_model("llama"))
    for owner, attr in model.attention_dropouts:
        setattr(owner, attr, 0.25)
    assert len(model.attention_dropouts) == 2
    with model.backbone_attention_dropout(keep=False):
        assert all(getattr(o, a) == 0.0 for o, a in model.attention_dropouts)
    assert all(getattr(o, a) == 0.25 for o, a in model.attention_dropouts)
