"""Adapter injection on tiny random encoders: counts, near-identity init, isolation between
tasks, save/load round trip and refusal of architectures the injection cannot wrap."""

import pytest
import torch
from torch import nn
from transformers import (
    AutoModel,
    BertConfig,
    DistilBertConfig,
    ElectraConfig,
    RobertaConfig,
)

from contlearn.errors import ArtifactError, UnsupportedArchitecture
from contlearn.model.adapted import AdaptedModel, count_parameters
from contlearn.model.layers import BottleneckAdapter
from contlearn.model.methods.houlsby import HoulsbyConfig, adapter_param_count
from contlearn.model.routing import SiteWrapper

D, L, M, VOCAB = 32, 2, 8, 100
SMALL = dict(vocab_size=VOCAB, hidden_size=D, num_hidden_layers=L, num_attention_heads=2)
CONFIGS = {
    "bert": lambda: BertConfig(**SMALL, intermediate_size=37),
    "roberta": lambda: RobertaConfig(**SMALL, intermediate_size=37),
    "electra": lambda: ElectraConfig(**SMALL, intermediate_size=37, embedding_size=16),
    "distilbert": lambda: DistilBertConfig(
        vocab_size=VOCAB, dim=D, n_layers=L, n_heads=2, hidden_dim=37
    ),
}
ADAPTER = HoulsbyConfig(bottleneck=M)


def backbone(kind: str, seed: int = 0):
    torch.manual_seed(seed)
    return AutoModel.from_config(CONFIGS[kind]())


def adapted(kind: str, seed: int = 0) -> AdaptedModel:
    return AdaptedModel(backbone(kind, seed))


def batch(seed: int = 1, size: int = 4, length: int = 10) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (size, length), generator=g)
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0  # one padded row
    return {"input_ids": ids, "attention_mask": mask}


def logits(model: AdaptedModel, name: str, inputs: dict) -> torch.Tensor:
    model.eval()
    model.activate(name)
    with torch.no_grad():
        return model(**inputs)


def train_steps(model: AdaptedModel, name: str, steps: int, seed: int) -> None:
    model.train()
    model.activate(name)
    opt = torch.optim.AdamW(model.trainable_parameters(name), lr=1e-2)
    for step in range(steps):
        inputs = batch(seed + step)
        labels = torch.randint(0, 2, (4,), generator=torch.Generator().manual_seed(seed + step))
        loss = nn.functional.cross_entropy(model(**inputs), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def wrappers(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, SiteWrapper)]


# ---- counts -------------------------------------------------------------------------------


def test_formula() -> None:
    assert adapter_param_count(384, 64) == 49_600
    assert adapter_param_count(D, M) == 2 * M * D + D + M


@pytest.mark.parametrize("kind", CONFIGS)
def test_parameter_counts(kind: str) -> None:
    model = adapted(kind)
    task = model.add_task("a", num_outputs=3, adapter=ADAPTER)
    assert (model.hidden_size, model.num_layers) == (D, L)
    assert len(task.adapters) == len(task.layer_norms) == 2 * L
    assert all(count_parameters(a) == adapter_param_count(D, M) for a in task.adapters.values())
    assert count_parameters(task.adapters) == 2 * L * adapter_param_count(D, M)
    assert count_parameters(task.layer_norms) == 2 * L * 2 * D
    assert count_parameters(task.head) == D * D + D + 3 * D + 3


# ---- init ---------------------------------------------------------------------------------


def test_adapter_init_is_truncated_normal_with_zero_bias() -> None:
    torch.manual_seed(0)
    config = HoulsbyConfig(bottleneck=64, init_std=0.05)
    adapter = BottleneckAdapter(128, config.bottleneck, config.nonlinearity, config.init_std)
    for linear in (adapter.down, adapter.up):
        assert linear.weight.abs().max() <= 2 * config.init_std
        assert linear.weight.std() > 0.5 * config.init_std  # not collapsed to zero
        assert torch.equal(linear.bias, torch.zeros_like(linear.bias))


@pytest.mark.parametrize("kind", CONFIGS)
def test_layer_norm_copies_equal_but_not_shared(kind: str) -> None:
    model = adapted(kind)
    task = model.add_task("a", num_outputs=2, adapter=ADAPTER)
    attention, ffn = model.base_modules("attention_norm"), model.base_modules("ffn_norm")
    norms = [norm for pair in zip(attention, ffn, strict=True) for norm in pair]
    for copy_, base_norm in zip(task.layer_norms.values(), norms, strict=True):
        for mine, base in zip(copy_.parameters(), base_norm.parameters(), strict=True):
            assert torch.equal(mine, base)
            assert mine.data_ptr() != base.data_ptr()
            assert mine.requires_grad and not base.requires_grad


@pytest.mark.parametrize("kind", CONFIGS)
def test_fresh_adapters_are_near_identity(kind: str) -> None:
    inputs = batch()
    diffs = []
    for std in (1e-2, 1e-4):
        model = adapted(kind)
        model.add_task("ad", num_outputs=2, adapter=HoulsbyConfig(bottleneck=M, init_std=std))
        model.add_task("plain", num_outputs=2, adapter=None)
        model.tasks["plain"].head.load_state_dict(model.tasks["ad"].head.state_dict())
        with_adapters, without = logits(model, "ad", inputs), logits(model, "plain", inputs)
        assert torch.allclose(with_adapters, without, atol=1e-4)
        diffs.append((with_adapters - without).abs().max())
    assert diffs[0] > 0  # the adapters do act
    assert diffs[1] < diffs[0] / 10  # and less so with a smaller init


# ---- trainable parameters and isolation ---------------------------------------------------


@pytest.mark.parametrize("kind", CONFIGS)
def test_trainable_parameters_are_the_task_modules(kind: str) -> None:
    model = adapted(kind)
    model.add_task("a", num_outputs=2, adapter=ADAPTER)
    model.add_task("b", num_outputs=2, adapter=ADAPTER)
    chosen = {id(p) for p in model.trainable_parameters("a")}
    assert chosen == {id(p) for p in model.tasks["a"].parameters()}
    assert not chosen & {id(p) for p in model.backbone.parameters()}
    assert not chosen & {id(p) for p in model.tasks["b"].parameters()}
    assert not any(p.requires_grad for p in model.backbone.parameters())


def test_head_only_task() -> None:
    model = adapted("bert")
    task = model.add_task("full", num_outputs=3, adapter=None)
    assert [name for name, _ in task.named_children()] == ["head"] and task.hooks == {}
    assert {id(p) for p in model.trainable_parameters("full")} == {
        id(p) for p in task.head.parameters()
    }
    assert logits(model, "full", batch()).shape == (4, 3)


@pytest.mark.parametrize("kind", CONFIGS)
def test_training_b_leaves_a_and_backbone_bit_identical(kind: str) -> None:
    model = adapted(kind)
    model.add_task("a", num_outputs=2, adapter=ADAPTER)
    train_steps(model, "a", steps=3, seed=10)
    before, a_logits = snapshot(model), logits(model, "a", batch(99))

    model.add_task("b", num_outputs=2, adapter=ADAPTER)
    b_before = snapshot(model.tasks["b"])
    train_steps(model, "b", steps=5, seed=20)

    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # backbone and all of a
    assert torch.equal(logits(model, "a", batch(99)), a_logits)
    assert all(p.grad is None for p in model.backbone.parameters())
    b_after = model.tasks["b"].state_dict()
    assert not all(torch.equal(b_before[k], b_after[k]) for k in b_before)  # b did train


# ---- task state round trip ----------------------------------------------------------------


@pytest.mark.parametrize("kind", CONFIGS)
def test_task_state_round_trip(kind: str) -> None:
    model = adapted(kind)
    model.add_task("a", num_outputs=2, adapter=ADAPTER)
    train_steps(model, "a", steps=2, seed=5)
    state = model.task_state("a")
    assert all(t.device.type == "cpu" and t.is_contiguous() for t in state.values())
    assert not any(
        t.data_ptr() == p.data_ptr()
        for t, p in zip(state.values(), model.tasks["a"].state_dict().values(), strict=True)
    )

    fresh = adapted(kind)
    fresh.load_task("a", state, num_outputs=2, adapter=ADAPTER)
    assert torch.equal(logits(fresh, "a", batch()), logits(model, "a", batch()))


def test_load_task_rejects_wrong_keys_and_shapes() -> None:
    model = adapted("bert")
    model.add_task("a", num_outputs=2, adapter=ADAPTER)
    state = model.task_state("a")
    fresh = adapted("bert")

    missing = {k: v for k, v in state.items() if k != "head.out.bias"}
    with pytest.raises(ArtifactError, match="head.out.bias"):
        fresh.load_task("a", missing, num_outputs=2, adapter=ADAPTER)
    with pytest.raises(ArtifactError, match="extra.weight"):
        fresh.load_task(
            "a", {**state, "extra.weight": torch.zeros(1)}, num_outputs=2, adapter=ADAPTER
        )
    with pytest.raises(ArtifactError, match="shape"):
        fresh.load_task("a", state, num_outputs=2, adapter=HoulsbyConfig(bottleneck=M + 1))
    with pytest.raises(ArtifactError, match="unexpected"):
        fresh.load_task("a", state, num_outputs=2, adapter=None)
    assert "a" not in fresh.tasks  # nothing half-built left behind


# ---- the backbone itself --------------------------------------------------------------------


@pytest.mark.parametrize("kind", CONFIGS)
def test_without_active_task_backbone_is_unchanged(kind: str) -> None:
    original, model = backbone(kind).eval(), adapted(kind).eval()
    inputs = batch()
    with torch.no_grad():
        expected = original(**inputs).last_hidden_state
        assert torch.equal(model.backbone(**inputs).last_hidden_state, expected)
        model.add_task("full", num_outputs=2, adapter=None)
        model.activate("full")
        assert torch.equal(model.backbone(**inputs).last_hidden_state, expected)
        model.add_task("a", num_outputs=2, adapter=ADAPTER)
        model.activate("a")
        assert not torch.equal(model.backbone(**inputs).last_hidden_state, expected)
        model.deactivate()
        assert torch.equal(model.backbone(**inputs).last_hidden_state, expected)


@pytest.mark.parametrize("kind", CONFIGS)
def test_wrapping_keeps_the_same_weight_tensors(kind: str) -> None:
    plain = backbone(kind)
    before = dict(plain.named_parameters())
    model = AdaptedModel(plain)
    after = {k.replace(".base.", "."): p for k, p in model.backbone.named_parameters()}
    assert after.keys() == before.keys()
    assert all(after[k] is before[k] for k in before)
    assert len(wrappers(model)) == 4 * L


def test_task_bookkeeping() -> None:
    model = adapted("bert")
    model.add_task("a", num_outputs=2, adapter=ADAPTER)
    with pytest.raises(ValueError, match="already exists"):
        model.add_task("a", num_outputs=2, adapter=ADAPTER)
    with pytest.raises(RuntimeError, match="no active task"):
        model(**batch())
    model.activate("a")
    assert model.active == "a"
    model.remove_task("a")
    assert model.active is None and "a" not in model.tasks
    with pytest.raises(KeyError):
        model.activate("a")


# ---- refusals -----------------------------------------------------------------------------


def assert_refused(model: nn.Module, *fragments: str) -> None:
    names = [n for n, _ in model.named_parameters()]
    with pytest.raises(UnsupportedArchitecture) as info:
        AdaptedModel(model)
    for fragment in fragments:
        assert fragment in str(info.value)
    assert [n for n, _ in model.named_parameters()] == names
    assert not wrappers(model)
    assert all(p.requires_grad for p in model.parameters())


def test_a_vision_model_is_refused_pointing_to_layouts() -> None:
    from transformers import ViTConfig

    config = ViTConfig(hidden_size=D, num_hidden_layers=L, num_attention_heads=2, image_size=8)
    model = AutoModel.from_config(config)
    assert_refused(model, "ViTModel", "'vit'", "[backbone.layout]")


def test_an_encoder_decoder_is_refused_pointing_to_layouts() -> None:
    from transformers import T5Config

    config = T5Config(vocab_size=VOCAB, d_model=D, d_ff=37, num_layers=L, num_heads=2, d_kv=8)
    assert_refused(AutoModel.from_config(config), "T5Model", "'t5'", "[backbone.layout]")


def test_bert_with_a_replaced_site_is_refused() -> None:
    model = backbone("bert")
    model.encoder.layer[1].output.dense = nn.Identity()
    assert_refused(model, "BertModel", "'bert'", "layer 1", "output.dense", "Identity")


def test_bert_with_a_deleted_site_is_refused() -> None:
    model = backbone("bert")
    del model.encoder.layer[1].attention.output.LayerNorm
    assert_refused(model, "'bert'", "layer 1", "attention.output.LayerNorm is missing")


# ---- the frozen backbone's attention dropout -------------------------------------------------


def dropout_only_in_attention(kind: str) -> AdaptedModel:
    """A model whose only dropout is the backbone's attention-probability dropout (p = 0.5)."""
    config = CONFIGS[kind]()
    if kind == "distilbert":
        config.dropout, config.attention_dropout = 0.0, 0.5
    else:
        config.hidden_dropout_prob, config.attention_probs_dropout_prob = 0.0, 0.5
    torch.manual_seed(0)
    model = AdaptedModel(AutoModel.from_config(config))
    model.add_task("a", num_outputs=2, adapter=ADAPTER, dropout=0.0)
    model.activate("a")
    return model


@pytest.mark.parametrize("kind", CONFIGS)
def test_attention_dropout_is_off_inside_the_block_and_restored_after(kind: str) -> None:
    model = dropout_only_in_attention(kind)
    assert [getattr(o, a) for o, a in model.attention_dropouts] == [0.5] * L
    inputs = batch(3)
    expected = logits(model, "a", inputs)  # eval mode: no dropout anywhere
    model.train()
    with torch.no_grad():
        with model.backbone_attention_dropout(keep=False):
            assert [getattr(o, a) for o, a in model.attention_dropouts] == [0.0] * L
            off = [model(**inputs) for _ in range(2)]
        with model.backbone_attention_dropout(keep=True):
            kept = [model(**inputs) for _ in range(2)]
    torch.testing.assert_close(off[0], expected)
    assert torch.equal(off[0], off[1])  # nothing random left in the forward
    assert not torch.equal(kept[0], kept[1])  # the attention dropout is really applied
    assert [getattr(o, a) for o, a in model.attention_dropouts] == [0.5] * L


def test_attention_dropout_is_restored_when_the_block_raises() -> None:
    model = dropout_only_in_attention("bert")
    with pytest.raises(RuntimeError, match="boom"), model.backbone_attention_dropout(keep=False):
        raise RuntimeError("boom")
    assert [getattr(o, a) for o, a in model.attention_dropouts] == [0.5] * L
