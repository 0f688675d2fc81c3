"""contlearn's LoRA and (IA)^3 compute what Hugging Face peft computes for the same weights:
the same tiny BERT, peft's modules given random weights, those weights copied into a contlearn
task, and the backbone's hidden states compared."""

from __future__ import annotations

import copy
import re

import peft
import pytest
import torch

from contlearn.model.methods.registry import get_method
from tests.test_adapters import adapted, backbone, batch

pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing`:FutureWarning")

SITE_OF = {  # peft's module path suffix -> contlearn's site kind (BERT)
    "attention.self.query": "query",
    "attention.self.key": "key",
    "attention.self.value": "value",
    "attention.output.dense": "attention_output",
    "intermediate.dense": "ffn_intermediate",
    r"(?<!attention\.)output.dense": "ffn_output",
}


def randomise(model: torch.nn.Module, marker: str) -> None:
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if marker in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if "ia3" in name else 0.0))


def site_and_layer(name: str) -> tuple[str, str]:
    layer = re.search(r"layer\.(\d+)\.", name).group(1)
    for pattern, kind in SITE_OF.items():
        if re.search(rf"layer\.\d+\.{pattern}\.", name):
            return kind, layer
    raise AssertionError(name)


def hidden(model, inputs) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**inputs).last_hidden_state


@pytest.mark.parametrize(
    "targets", [["query", "value"], ["key", "attention_output", "ffn_intermediate", "ffn_output"]]
)
def test_lora_computes_what_peft_computes(targets: list[str]) -> None:
    paths = [p for p, k in SITE_OF.items() if k in targets]
    regex = rf".*layer\.\d+\.({'|'.join(paths)})"
    theirs = peft.get_peft_model(
        copy.deepcopy(backbone("bert")),
        peft.LoraConfig(r=4, lora_alpha=12, target_modules=regex, lora_dropout=0.0),
    )
    randomise(theirs, "lora_")
    model = adapted("bert")
    cfg = get_method("lora").config({"rank": 4, "alpha": 12.0, "targets": targets})
    task = model.add_task("a", num_outputs=2, adapter=cfg)
    state = task.state_dict()
    copied = 0
    for name, p in theirs.named_parameters():
        if "lora_" in name:
            kind, layer = site_and_layer(name)
            part = "lora_A" if "lora_A" in name else "lora_B"
            state[f"lora.{kind}.{layer}.{part}.weight"].copy_(p.detach())
            copied += 1
    assert copied == 2 * len(targets) * model.num_layers
    model.activate("a")
    inputs = batch()
    assert torch.allclose(hidden(model.backbone, inputs), hidden(theirs, inputs), atol=1e-6)
    assert not torch.allclose(hidden(model.backbone, inputs), hidden(backbone("bert"), inputs))


def test_ia3_computes_what_peft_computes() -> None:
    ffn = r".*layer\.\d+\.output\.dense"
    theirs = peft.get_peft_model(
        copy.deepcopy(backbone("bert")),
        peft.IA3Config(
            target_modules=rf".*layer\.\d+\.attention\.self\.(key|value)|{ffn}",
            feedforward_modules=ffn,
        ),
    )
    randomise(theirs, "ia3_l")
    model = adapted("bert")
    task = model.add_task("a", num_outputs=2, adapter=get_method("ia3").config({}))
    state = task.state_dict()
    copied = 0
    for name, p in theirs.named_parameters():
        if "ia3_l" in name:
            kind, layer = site_and_layer(name)
            state[f"scales.{kind}.{layer}.weight"].copy_(p.detach().reshape(-1))
            copied += 1
    assert copied == 3 * model.num_layers
    model.activate("a")
    inputs = batch()
    assert torch.allclose(hidden(model.backbone, inputs), hidden(theirs, inputs), atol=1e-6)
    assert not torch.allclose(hidden(model.backbone, inputs), hidden(backbone("bert"), inputs))


def test_ia3_on_input_computes_what_peft_default_ia3_computes() -> None:
    """peft's default (IA)3 for BERT (target_modules key, value, output.dense;
    feedforward_modules output.dense, which also matches attention.output.dense) is contlearn's
    ia3 with attention_output and ffn_output scaled on their input."""
    theirs = peft.get_peft_model(copy.deepcopy(backbone("bert")), peft.IA3Config())
    randomise(theirs, "ia3_l")
    model = adapted("bert")
    options = {
        "targets": ["key", "value", "attention_output", "ffn_output"],
        "on_input": ["attention_output", "ffn_output"],
    }
    task = model.add_task("a", num_outputs=2, adapter=get_method("ia3").config(options))
    state = task.state_dict()
    copied = 0
    for name, p in theirs.named_parameters():
        if "ia3_l" in name:
            kind, layer = site_and_layer(name)
            state[f"scales.{kind}.{layer}.weight"].copy_(p.detach().reshape(-1))
            copied += 1
    assert copied == 4 * model.num_layers
    model.activate("a")
    inputs = batch()
    assert torch.allclose(hidden(model.backbone, inputs), hidden(theirs, inputs), atol=1e-6)
