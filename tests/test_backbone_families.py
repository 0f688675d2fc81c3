"""Whole workspaces on backbones of other families, decoders included (tiny random models saved
as real folders with a real tokenizer): tasks of two methods trained, verified and audited in a
fresh process; a decoder tokenizer without a pad token pads with its end-of-text token, and one
with neither is refused before anything is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from contlearn.api import Workspace
from contlearn.errors import BackboneError
from tests.conftest import invoke as cli
from tests.conftest import save_family_backbone, write_keyword_task


@pytest.mark.parametrize("label", ["gpt2", "llama", "deberta-v2", "modernbert"])
def test_a_workspace_on_the_family_trains_verifies_and_audits(label: str, tmp_path: Path) -> None:
    backbone = save_family_backbone(tmp_path / "bb", label)
    ws = Workspace.create(tmp_path / "ws", backbone=str(backbone))
    for name, method, seed in (("a", "houlsby", 1), ("b", "lora", 2)):
        data = write_keyword_task(tmp_path / name, n_train=32, n_dev=16, seed=seed)
        ws.add_task(name, data, method=method)
    done = cli(ws, "train-next", "--all", "--epochs", "1", "--max-length", "32", "--json", "-q")
    assert done.exit_code == 0, done.output
    second = json.loads(done.output)["runs"][1]
    assert [v["identical"] for v in second["verifications"]] == [True]
    audit = subprocess.run(
        [sys.executable, "-m", "contlearn.cli", "audit", "--json", "-q", "-w", str(ws.root)],
        capture_output=True,
        text=True,
    )
    assert audit.returncode == 0 and json.loads(audit.stdout)["verdict"] == "clean", audit.stdout
    assert ws.ledger.trained_run(ws.ledger.task("a").id).config["family"] == _family(label)


def _family(label: str) -> str:
    from tests.family_configs import FAMILY_OF

    return FAMILY_OF[label]


def test_a_decoder_tokenizer_without_a_pad_token_pads_with_end_of_text(tmp_path: Path) -> None:
    from contlearn.model.backbone import load

    folder = save_family_backbone(tmp_path / "bb", "llama", pad=False)
    (folder / "special_tokens_map.json").write_text(json.dumps({"eos_token": "[SEP]"}))
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.update(pad_token=None, eos_token="[SEP]")
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    loaded = load(str(folder))
    assert loaded.tokenizer.pad_token == "[SEP]"


def test_a_tokenizer_with_no_pad_and_no_end_of_text_token_is_refused(tmp_path: Path) -> None:
    folder = save_family_backbone(tmp_path / "bb", "llama", pad=False)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.update(pad_token=None, eos_token=None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "special_tokens_map.json").write_text("{}")
    with pytest.raises(BackboneError, match="no pad token and no end-of-text token"):
        Workspace.create(tmp_path / "ws", backbone=str(folder))
    assert not (tmp_path / "ws" / "tasks.toml").exists()
