"""Merging a task's LoRA into the backbone's weights (the ``lora-merged`` baseline's step):
each adapted projection's weight becomes ``W + alpha / r * B @ A`` (a Linear's rows, or a fused
Conv1D's slice of columns), and the merged model with the task's head alone computes what the
unmerged LoRA computed."""

from __future__ import annotations

import pytest
import torch

from contlearn.model.methods.lora import LoraConfig, merge


def _model(label: str):
    from transformers import AutoConfig, AutoModel

    from contlearn.model.adapted import AdaptedModel
    from tests.family_configs import CONFIGS

    model_type, values = CONFIGS[label]
    torch.manual_seed(0)
    return AdaptedModel(AutoModel.from_config(AutoConfig.for_model(model_type, **values))).eval()


@pytest.mark.parametrize("label", ["bert", "gpt2"])  # nn.Linear; GPT-2's fused Conv1D
def test_merge_adds_the_scaled_low_rank_update_and_keeps_the_outputs(label: str) -> None:
    model = _model(label)
    config = LoraConfig(rank=2, alpha=6.0, targets=("query", "value"))
    task = model.add_task("t", num_outputs=3, adapter=config, dropout=0.0)
    task.eval()
    for module in task.lora.modules():
        if hasattr(module, "lora_B"):
            torch.nn.init.normal_(module.lora_B.weight, std=0.5)  # B is zero at init
    ids = torch.randint(4, 100, (2, 7))
    mask = torch.ones_like(ids)
    model.activate("t")
    before = model(input_ids=ids, attention_mask=mask)
    expected = {}
    for target in config.targets:
        site, part = model.projection(target)
        for layer, update in task.lora[target].items():
            base = model.base_modules(site)[int(layer)]
            delta = (6.0 / 2) * (update.lora_B.weight @ update.lora_A.weight).detach()
            weight = expected.get((site, int(layer)), base.weight.detach().clone())
            rows = slice(None) if part is None else part
            if isinstance(base, torch.nn.Linear):
                weight[rows] += delta
            else:  # Conv1D: [in, out]
                weight[:, rows] += delta.T
            expected[(site, int(layer))] = weight
    merge(model, "t")
    for (site, layer), weight in expected.items():
        assert torch.equal(model.base_modules(site)[layer].weight, weight)
    assert len(expected) == (2 if label == "gpt2" else 4)  # gpt2: query and value share qkv
    head = {k: v for k, v in model.task_state("t").items() if k.startswith("head.")}
    model.remove_task("t")
    model.add_task("t", num_outputs=3, adapter=None, dropout=0.0).load_state_dict(head)
    model.eval().activate("t")
    after = model(input_ids=ids, attention_mask=mask)
    assert not torch.allclose(before, model_without_update(label, ids, mask, head))
    assert torch.allclose(before, after, atol=1e-5)


def model_without_update(label: str, ids, mask, head) -> torch.Tensor:
    """The same backbone and head without any LoRA update (the update changes the outputs)."""
    model = _model(label)
    model.add_task("t", num_outputs=3, adapter=None, dropout=0.0).load_state_dict(head)
    model.eval().activate("t")
    return model(input_ids=ids, attention_mask=mask)
