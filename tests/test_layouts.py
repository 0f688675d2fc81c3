"""Backbones contlearn does not know: a layout the user describes ([backbone.layout], or a
family passed to the model), and a built-in layer shape inferred under another layer list;
layouts that name a missing module or a module of the wrong kind are one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from contlearn.api import Workspace
from contlearn.errors import ConfigError, UnsupportedArchitecture
from contlearn.model.adapted import AdaptedModel
from contlearn.model.families import from_layout
from contlearn.model.methods.registry import get_method
from tests.conftest import invoke as cli
from tests.conftest import write_keyword_task

LAYOUT = {
    "layers": "blocks",
    "attention_output": "attn_out",
    "attention_norm": "attn_ln",
    "ffn_output": "ff_out",
    "ffn_norm": "ff_ln",
    "ffn_intermediate": "ff_in",
}


class Block(nn.Module):
    def __init__(self, d: int = 16):
        super().__init__()
        self.mix, self.attn_out, self.attn_ln = nn.Linear(d, d), nn.Linear(d, d), nn.LayerNorm(d)
        self.ff_in, self.ff_out, self.ff_ln = nn.Linear(d, 32), nn.Linear(32, d), nn.LayerNorm(d)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.attn_ln(h + self.attn_out(torch.tanh(self.mix(h))))
        return self.ff_ln(h + self.ff_out(torch.relu(self.ff_in(h))))


class Encoder(nn.Module):
    """An encoder of no known family: its layers are ``blocks`` with their own names."""

    def __init__(self, layers: nn.ModuleList | None = None, model_type: str = "mine"):
        super().__init__()
        torch.manual_seed(0)
        self.config = SimpleNamespace(model_type=model_type)
        self.embed = nn.Embedding(50, 16)
        self.blocks = layers if layers is not None else nn.ModuleList(Block() for _ in range(2))

    @property
    def base_model(self) -> nn.Module:
        return self

    def forward(self, input_ids, attention_mask=None, **_):
        h = self.embed(input_ids)
        for block in self.blocks:
            h = block(h)
        return SimpleNamespace(last_hidden_state=h)


def ids() -> dict[str, torch.Tensor]:
    batch = torch.randint(0, 50, (3, 7), generator=torch.Generator().manual_seed(1))
    return {"input_ids": batch, "attention_mask": torch.ones_like(batch)}


def test_an_unknown_model_is_refused_with_the_way_to_describe_it() -> None:
    with pytest.raises(
        UnsupportedArchitecture, match=r"describe its layout under \[backbone.layout\]"
    ):
        AdaptedModel(Encoder())


def test_a_described_layout_adapts_trains_in_isolation_and_names_missing_sites() -> None:
    model = AdaptedModel(Encoder(), layout=from_layout(LAYOUT))
    assert model.family.name == "layout" and model.family.norms == "post"
    lora = get_method("lora").config({"targets": ["ffn_intermediate", "ffn_output"]})
    model.add_task("a", num_outputs=2, adapter=get_method("houlsby").config({}))
    model.add_task("b", num_outputs=2, adapter=lora)
    model.eval()
    model.activate("a")
    before = model(**ids()).detach()
    model.train()
    model.activate("b")
    opt = torch.optim.SGD(model.trainable_parameters("b"), lr=0.1)
    model(**ids()).sum().backward()
    opt.step()
    model.eval()
    model.activate("a")
    assert torch.equal(model(**ids()), before)
    with pytest.raises(UnsupportedArchitecture, match="family 'layout' has no query site"):
        model.add_task("c", num_outputs=2, adapter=get_method("lora").config({}))


def test_a_known_layer_shape_under_another_list_is_inferred() -> None:
    from transformers import BertConfig
    from transformers.models.bert.modeling_bert import BertLayer

    config = BertConfig(hidden_size=16, num_attention_heads=2, intermediate_size=32)
    encoder = Encoder(nn.ModuleList(BertLayer(config) for _ in range(2)), model_type="mybert")
    model = AdaptedModel(encoder)
    assert model.family.name == "inferred:bert@blocks"
    assert model.note == "inferred the layout of family 'bert' with its layers at 'blocks'"
    again = AdaptedModel(
        Encoder(nn.ModuleList(BertLayer(config) for _ in range(2))), family=model.family.name
    )
    assert again.family.layers == "blocks"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ffn_norm": "nope"}, "layer 0: nope is missing"),
        ({"ffn_norm": "ff_in"}, "ff_in is a Linear, not a LayerNorm or RMSNorm"),
        ({"layers": "stack"}, "has no layer list 'stack'"),
    ],
)
def test_a_layout_naming_a_wrong_module_is_refused(change: dict, message: str) -> None:
    with pytest.raises(UnsupportedArchitecture, match=message):
        AdaptedModel(Encoder(), layout=from_layout(LAYOUT | change))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (LAYOUT | {"colour": "red"}, "unknown key 'colour'"),
        ({k: v for k, v in LAYOUT.items() if k != "ffn_norm"}, "needs ffn_norm"),
        (LAYOUT | {"norms": "middle"}, "norms must be one of post, pre"),
        (LAYOUT | {"qkv": "a", "query": "b"}, "give one or the other"),
        (LAYOUT | {"layers": 3}, "layers must be a non-empty string"),
    ],
)
def test_bad_layout_tables_are_named(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_layout(values)


BERT_LAYOUT = {
    "layers": "encoder.layer",
    "attention_output": "attention.output.dense",
    "attention_norm": "attention.output.LayerNorm",
    "ffn_output": "output.dense",
    "ffn_norm": "output.LayerNorm",
    "query": "attention.self.query",
    "value": "attention.self.value",
}


def test_a_workspace_with_a_layout_records_it_trains_and_audits_in_a_fresh_process(
    tiny_backbone: Path, tmp_path: Path
) -> None:
    layout_file = tmp_path / "layout.toml"
    layout_file.write_text("".join(f'{k} = "{v}"\n' for k, v in BERT_LAYOUT.items()))
    made = subprocess.run(
        [sys.executable, "-m", "contlearn.cli", "init", "-w", str(tmp_path / "ws")]
        + ["--backbone", str(tiny_backbone), "--layout", str(layout_file)],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    ws = Workspace.open(tmp_path / "ws")
    assert (
        ws.config.layout == BERT_LAYOUT
        and "[backbone.layout]" in (ws.root / "tasks.toml").read_text()
    )
    ws.add_task("a", write_keyword_task(tmp_path / "a", n_train=24, n_dev=8, seed=1), method="lora")
    assert cli(ws, "train-next", "--epochs", "1", "--max-length", "32", "-q").exit_code == 0
    assert ws.ledger.trained_run(ws.ledger.task("a").id).config["family"] == "layout"
    audit = subprocess.run(
        [sys.executable, "-m", "contlearn.cli", "audit", "--json", "-q", "-w", str(ws.root)],
        capture_output=True,
        text=True,
    )
    assert audit.returncode == 0 and json.loads(audit.stdout)["verdict"] == "clean", audit.stdout


def test_init_with_a_layout_naming_a_missing_module_writes_nothing(
    tiny_backbone: Path, tmp_path: Path
) -> None:
    layout_file = tmp_path / "layout.toml"
    layout_file.write_text(
        "".join(f'{k} = "{v}"\n' for k, v in (BERT_LAYOUT | {"ffn_norm": "output.Norm"}).items())
    )
    from click.testing import CliRunner

    from contlearn.cli import main

    result = CliRunner().invoke(
        main,
        [
            "init",
            "-w",
            str(tmp_path / "ws"),
            "--backbone",
            str(tiny_backbone),
            "--layout",
            str(layout_file),
        ],
    )
    assert result.exit_code == 1 and "output.Norm is missing" in result.output
    assert result.output.count("\n") == 1 and not (tmp_path / "ws" / "tasks.toml").exists()
