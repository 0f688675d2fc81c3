"""A GGUF file as a backbone: converted once into the workspace, fingerprinted as loaded.

The GGUF is written here, with the ``gguf`` package, from a tiny random Llama: its weights
quantised to Q8_0 (the norms stay F32) and a tiny byte-level BPE vocabulary in the tokenizer
fields transformers reads. transformers' own load of that file is the reference.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import pytest
import torch

from contlearn.api import Workspace
from contlearn.errors import BackboneError, ConfigError
from contlearn.model import backbone as bb
from contlearn.runtime.context import load_recorded_backbone
from tests.conftest import invoke, save_family_backbone, write_keyword_task
from tests.family_configs import CONFIGS, VOCAB

gguf = pytest.importorskip("gguf")

# llama.cpp's tensor names for the Llama sub-modules
BLOCK = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}
TOP = {"embed_tokens": "token_embd", "norm": "output_norm"}
SPECIAL = ["<pad>", "<unk>", "<s>", "</s>"]  # ids 0-3, as family_configs' TOKENS say


def tiny_llama():
    from transformers import AutoConfig, AutoModel

    model_type, values = CONFIGS["llama"]
    torch.manual_seed(0)
    return AutoModel.from_config(AutoConfig.for_model(model_type, **values))


def byte_vocab() -> list[str]:
    """VOCAB tokens: the specials, the byte-level spelling of lowercase letters, space and
    punctuation, two merged tokens, then other bytes to fill the vocabulary."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    spell = bytes_to_unicode()
    tokens = SPECIAL + [spell[b] for b in b"abcdefghijklmnopqrstuvwxyz .,"] + ["Ġt", "th"]
    rest = [c for c in spell.values() if c not in tokens]
    return tokens + rest[: VOCAB - len(tokens)]


def llama_cpp_order(weight, heads: int):
    """llama.cpp stores q and k rows interleaved for its rotary kernel; transformers undoes it."""
    return (
        weight.reshape(heads, 2, weight.shape[0] // heads // 2, -1)
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def gguf_name(name: str) -> str:
    base, leaf = name.rsplit(".", 1)
    if base in TOP:
        return f"{TOP[base]}.{leaf}"
    _, layer, site = base.split(".", 2)
    return f"blk.{layer}.{BLOCK[site]}.{leaf}"


def write_gguf(
    path: Path, model, architecture: str = "llama", chat_template: str | None = None
) -> Path:
    """``model`` (a LlamaModel) as a GGUF file: header, tokenizer (with ``chat_template``
    when given), Q8_0 matrices."""
    config = model.config
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_name("tiny llama")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(config.vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(byte_vocab())
    writer.add_token_types([3] * len(SPECIAL) + [1] * (VOCAB - len(SPECIAL)))  # 3: control
    writer.add_token_merges(["Ġ t", "t h"])
    writer.add_pad_token_id(0)
    writer.add_unk_token_id(1)
    writer.add_bos_token_id(2)
    writer.add_eos_token_id(3)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    heads = {"attn_q": config.num_attention_heads, "attn_k": config.num_key_value_heads}
    for name, tensor in model.state_dict().items():
        target = gguf_name(name)
        values = tensor.numpy()
        site = target.split(".")[-2]
        if site in heads:
            values = llama_cpp_order(values, heads[site])
        if values.ndim == 2:
            packed = gguf.quants.quantize(values, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(target, packed, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(target, values)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def llama() -> torch.nn.Module:
    return tiny_llama()


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory, llama) -> Path:
    return write_gguf(tmp_path_factory.mktemp("gguf") / "tiny-llama.Q8_0.gguf", llama)


@pytest.fixture(scope="module")
def reference(tiny_gguf: Path):
    """transformers' own load of the GGUF (every weight dequantised to fp32)."""
    from transformers import AutoModel

    return AutoModel.from_pretrained(tiny_gguf.parent, gguf_file=tiny_gguf.name)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_init_converts_once_and_fingerprints_the_dequantised_weights(
    tmp_path: Path, tiny_gguf: Path, reference, llama
) -> None:
    ws = Workspace.create(tmp_path / "ws", backbone=str(tiny_gguf))
    recorded = ws.ledger.backbone()
    assert recorded.identity == str(tiny_gguf.resolve()) and recorded.model_type == "llama"
    assert recorded.fingerprint == bb.fingerprint(reference)
    assert recorded.source["sha256"] == sha256(tiny_gguf) and recorded.source["format"] == "gguf"
    assert recorded.source["file_type"] == "Q8_0" and recorded.source["folder"] == "backbone"
    assert recorded.source["tensor_types"] == {"F32": 5, "Q8_0": 15}  # 2 norms a layer, 1 more
    folder = ws.root / "backbone"
    assert {p.name for p in folder.iterdir()} >= {"config.json", "model.safetensors"}
    assert "quantization_config" not in (folder / "config.json").read_text()
    # the dequantised weights are the model's, up to Q8_0's rounding (q and k back in order)
    ours, theirs = llama.state_dict(), reference.state_dict()
    assert all(torch.allclose(ours[k], theirs[k], atol=2e-3) for k in ours)
    assert not all(torch.equal(ours[k], theirs[k]) for k in ours)  # it was quantised


def test_a_moved_workspace_trains_without_the_gguf(
    tmp_path: Path, tiny_gguf: Path, reference
) -> None:
    """Later commands read the converted folder: the GGUF gone and the workspace moved,
    add-task, train-next and status still work, on the recorded fingerprint."""
    gguf_file = shutil.copy(tiny_gguf, tmp_path / "model.gguf")
    Workspace.create(tmp_path / "ws", backbone=str(gguf_file))
    Path(gguf_file).unlink()
    shutil.move(tmp_path / "ws", tmp_path / "moved")
    ws = Workspace.open(tmp_path / "moved")
    loaded = load_recorded_backbone(ws.ledger, ws.root)
    assert loaded.fingerprint == bb.fingerprint(reference) and loaded.pad == "own"
    ws.add_task("a", write_keyword_task(tmp_path / "a", n_train=24, n_dev=8))
    (result,) = ws.train_next(epochs=1, max_length=16)
    assert result["task"] == "a" and ws.ledger.task("a").status == "trained"
    status = invoke(ws, "status")
    assert status.exit_code == 0, status.output
    assert f"backbone {gguf_file} (llama, float32), fingerprint {loaded.fingerprint[:12]}" in (
        status.output
    )


def test_init_and_status_say_what_the_backbone_was_dequantised_from(
    tmp_path: Path, tiny_gguf: Path
) -> None:
    from click.testing import CliRunner

    from contlearn.cli import main

    root = tmp_path / "ws"
    made = CliRunner().invoke(main, ["init", "-w", str(root), "--backbone", str(tiny_gguf)])
    assert made.exit_code == 0, made.output
    line = (
        f"dequantised from a Q8_0 GGUF ({tiny_gguf.resolve()}, sha256 "
        f"{sha256(tiny_gguf)[:12]}) into backbone/ (float32 safetensors, converted once); the "
        "fingerprint is over the dequantised weights as loaded (float32)"
    )
    assert f"\n{line}\n" in made.output
    ws = Workspace.open(root)
    assert f"\n  {line}\n" in invoke(ws, "status").output
    import json

    shown = json.loads(invoke(ws, "status", "--json").output)["backbone"]
    assert shown["converted"] == line and shown["source"] == ws.ledger.backbone().source
    assert shown["fingerprint"] == ws.ledger.backbone().fingerprint


def refused(root: Path, backbone: str) -> str:
    """``init`` on ``backbone`` fails in one line, and writes nothing."""
    from click.testing import CliRunner

    from contlearn.cli import main

    result = CliRunner().invoke(main, ["init", "-w", str(root), "--backbone", backbone])
    assert result.exit_code == 1 and not root.exists()
    (line,) = result.output.strip().splitlines()
    return line


def test_a_file_that_is_not_gguf_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_text("not a model\n")
    line = refused(tmp_path / "ws", str(fake))
    assert line.startswith(f"Error: {fake} is not a readable GGUF file (")


def test_a_missing_gguf_is_refused(tmp_path: Path) -> None:
    line = refused(tmp_path / "ws", str(tmp_path / "nowhere.gguf"))
    assert (
        line == f"Error: no GGUF file at {tmp_path / 'nowhere.gguf'}: give the path of a .gguf file"
    )


def test_without_the_gguf_package_it_says_what_to_install(
    tmp_path: Path, tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "gguf", None)  # `import gguf` raises ImportError
    line = refused(tmp_path / "ws", str(tiny_gguf))
    assert line == (
        "Error: reading a GGUF backbone needs the gguf package: pip install gguf "
        "(or pip install 'contlearn[gguf]')"
    )


def test_a_gguf_transformers_cannot_read_leaves_nothing_behind(tmp_path: Path, llama) -> None:
    odd = write_gguf(tmp_path / "odd.gguf", llama, architecture="nosucharch")
    line = refused(tmp_path / "ws", str(odd))
    assert line.startswith(f"Error: transformers cannot read {odd} (nosucharch, Q8_0): ")


def test_a_folder_holding_a_backbone_folder_is_not_overwritten(
    tmp_path: Path, tiny_gguf: Path
) -> None:
    (tmp_path / "ws" / "backbone").mkdir(parents=True)
    with pytest.raises(ConfigError, match="already exists: init the workspace in another folder"):
        Workspace.create(tmp_path / "ws", backbone=str(tiny_gguf))
    assert [p.name for p in (tmp_path / "ws").iterdir()] == ["backbone"]


def test_a_workspace_missing_its_converted_folder_says_so(tmp_path: Path, tiny_gguf: Path) -> None:
    ws = Workspace.create(tmp_path / "ws", backbone=str(tiny_gguf))
    shutil.rmtree(ws.root / "backbone")
    with pytest.raises(BackboneError, match=r"holds none: restore that folder, or init a new"):
        load_recorded_backbone(ws.ledger, ws.root)


def test_a_causal_lm_folder_is_a_backbone_as_it_is(tmp_path: Path) -> None:
    """A transformers causal-LM folder needs no conversion: its base model is the backbone (the
    LM head is not used), read straight from the folder."""
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = save_family_backbone(tmp_path / "lm", "llama")
    model_type, values = CONFIGS["llama"]
    torch.manual_seed(1)
    causal = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **values))
    causal.save_pretrained(folder)
    ws = Workspace.create(tmp_path / "ws", backbone=str(folder))
    recorded = ws.ledger.backbone()
    assert recorded.fingerprint == bb.fingerprint(causal.model) and recorded.source is None
    assert not (ws.root / "backbone").exists()
