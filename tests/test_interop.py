"""Adapters in and out: a task exported as an AdapterHub or peft folder and imported back
computes bit-identical dev logits; the exported peft folder, loaded by peft itself, computes
contlearn's logits; bad input is a one-line error that writes nothing."""

from __future__ import annotations

import csv
import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from contlearn.errors import InteropError
from tests.conftest import copy_workspace, fast_workspace, invoke, settled, write_keyword_task

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")

# peft's default (IA)3 for BERT: feedforward_modules "output.dense" also matches the
# attention's output projection, so both output projections are scaled on their input.
PEFT_IA3 = {
    "targets": ["key", "value", "attention_output", "ffn_output"],
    "on_input": ["attention_output", "ffn_output"],
}
CASES = {  # method, its options, format, --include-norms
    "houlsby": ("houlsby", {"bottleneck": 8}, "adapterhub", True),
    "houlsby-shared": (
        "houlsby",
        {"bottleneck": 8, "norms": "shared", "leave_out": [0]},
        "adapterhub",
        False,
    ),
    "pfeiffer": ("pfeiffer", {"bottleneck": 16, "nonlinearity": "gelu"}, "adapterhub", False),
    "parallel": ("parallel", {"bottleneck": 4, "scaling": 2.0}, "adapterhub", False),
    "lora": (
        "lora",
        {"rank": 4, "alpha": 12.0, "targets": ["query", "value", "ffn_output"]},
        "peft",
        False,
    ),
    "lora-norms": ("lora", {"rank": 2, "norms": "task"}, "peft", True),
    "ia3": ("ia3", {}, "peft", False),
    "ia3-peft-default": ("ia3", PEFT_IA3, "peft", False),
}


def trained_task(ws, tmp_path: Path, case: str, name: str = "a") -> Path:
    method, options, _, _ = CASES[case]
    data = write_keyword_task(tmp_path / f"data-{name}", seed=3)
    ws.add_task(name, data, method=method, options=options)
    ws.train_next(epochs=1)
    return data


def current(ws, name: str):
    task = ws.ledger.task(name)
    return ws.ledger.trained_run(task.id), ws.artifact_files(name)


@pytest.mark.parametrize("case", sorted(CASES))
def test_export_then_import_is_bit_identical(workspace, tmp_path: Path, case: str) -> None:
    _, _, fmt, norms = CASES[case]
    data = trained_task(workspace, tmp_path, case)
    out = tmp_path / "out"
    workspace.export("a", fmt, out, include_norms=norms)
    provenance = json.loads((out / "contlearn_export.json").read_text())
    run, files = current(workspace, "a")
    assert provenance["task"] == "a" and provenance["run_id"] == run.id
    assert provenance["artifact_sha256"]["weights"] == run_sha(workspace, run.id, "weights")
    assert provenance["contlearn_version"]
    assert not list(out.glob("*.bin"))

    result = workspace.import_adapter("b", out, data)
    assert result["logits_sha256"] == run.result["logits_sha256"]
    assert result["metrics"] == run.result["metrics"]
    assert [v["identical"] for v in result["verifications"]] == [True]
    assert result["warnings"] == []  # the folder names this workspace's backbone
    b_run, b_files = current(workspace, "b")
    assert b_files["weights"].read_bytes() == files["weights"].read_bytes()
    assert b_run.config["imported"]["format"] == fmt
    assert workspace.ledger.task("b").status == "trained"


def run_sha(ws, run_id: int, role: str) -> str:
    return next(a.sha256 for a in ws.ledger.artifacts(run_id) if a.role == role)


def test_an_imported_task_is_a_task_like_any_other(workspace, tmp_path: Path) -> None:
    data = trained_task(workspace, tmp_path, "lora")
    workspace.export("a", "peft", tmp_path / "out")
    assert workspace.import_adapter("b", tmp_path / "out", data)["verifications"]
    later = write_keyword_task(tmp_path / "later", seed=5, keywords={"x": "cat", "y": "dog"})
    workspace.add_task("c", later)
    result = workspace.train_next(epochs=1)[0]
    assert {v["task"]: v["identical"] for v in result["verifications"]} == {"a": True, "b": True}
    rows = [{"text": "the movie was good"}, {"text": "bad film"}]
    same = [{k: v for k, v in row.items() if k != "task"} for row in workspace.predict("a", rows)]
    assert [
        {k: v for k, v in row.items() if k != "task"} for row in workspace.predict("b", rows)
    ] == same
    audit = workspace.audit()
    assert audit["verdict"] == "clean" and len(audit["tasks"]) == 3


def dev_inputs(backbone: Path, data: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoTokenizer

    with open(data / "dev.csv", encoding="utf-8") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    return tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")


@pytest.mark.parametrize("case", ["lora", "ia3", "ia3-peft-default"])
def test_peft_loads_the_exported_folder_and_computes_the_same_logits(
    workspace, tiny_backbone: Path, tmp_path: Path, case: str
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    data = trained_task(workspace, tmp_path, case)
    workspace.export("a", "peft", tmp_path / "out")
    base = AutoModelForSequenceClassification.from_pretrained(tiny_backbone, num_labels=2)
    model = PeftModel.from_pretrained(base, tmp_path / "out").eval()
    with torch.no_grad():
        theirs = model(**dev_inputs(tiny_backbone, data)).logits
    ours = load_file(current(workspace, "a")[1]["logits"])["logits"]
    assert (theirs - ours).abs().max().item() < 1e-5
    assert torch.equal(theirs.argmax(-1), ours.argmax(-1))
    with model.disable_adapter(), torch.no_grad():  # the adapter is what makes them agree
        assert not torch.allclose(model(**dev_inputs(tiny_backbone, data)).logits, ours)


def test_peft_folder_a_peft_user_saved_imports(workspace, tmp_path: Path) -> None:
    """A folder peft itself wrote (not contlearn's export) imports, and computes what peft does."""
    import peft
    from transformers import AutoModelForSequenceClassification

    root = Path(workspace.ledger.backbone().identity)
    base = AutoModelForSequenceClassification.from_pretrained(root, num_labels=2)
    config = peft.LoraConfig(
        task_type="SEQ_CLS",
        r=2,
        lora_alpha=6,
        target_modules=["key", "value"],
        modules_to_save=["classifier", "pooler"],
    )
    model = peft.get_peft_model(base, config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
    model.save_pretrained(tmp_path / "theirs")
    data = write_keyword_task(tmp_path / "data", seed=4)
    result = workspace.import_adapter("p", tmp_path / "theirs", data)
    with torch.no_grad():
        theirs = model.eval()(**dev_inputs(root, data)).logits
    ours = load_file(current(workspace, "p")[1]["logits"])["logits"]
    assert (theirs - ours).abs().max().item() < 1e-5
    assert result["method"] == "lora"
    assert workspace.ledger.trained_run(workspace.ledger.task("p").id).config["adapter"][
        "targets"
    ] == ["key", "value"]


def saved_by_peft(ws, config, folder: Path, marker: str):
    """A SEQ_CLS model made by peft on the workspace's backbone with ``config``, its ``marker``
    weights randomised (at init they would leave the backbone as it is), saved to ``folder``."""
    import peft
    from transformers import AutoModelForSequenceClassification

    root = Path(ws.ledger.backbone().identity)
    base = AutoModelForSequenceClassification.from_pretrained(root, num_labels=2)
    model = peft.get_peft_model(base, config)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if marker in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if marker == "ia3" else 0))
    model.save_pretrained(folder)
    return root


def reloaded_by_peft(root: Path, folder: Path, data: Path) -> torch.Tensor:
    """Dev logits of ``PeftModel.from_pretrained`` on a fresh base model, as a peft user has."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    base = AutoModelForSequenceClassification.from_pretrained(root, num_labels=2)
    model = PeftModel.from_pretrained(base, folder).eval()
    with torch.no_grad():
        return model(**dev_inputs(root, data)).logits


def test_peft_default_seq_cls_lora_imports_with_the_backbones_pooler(
    workspace, tmp_path: Path
) -> None:
    """peft's default SEQ_CLS LoRA saves the classifier alone (modules_to_save "classifier",
    "score"): the pooler is the base model's, so the import takes the backbone's, as peft does."""
    import peft

    root = saved_by_peft(workspace, peft.LoraConfig(task_type="SEQ_CLS"), tmp_path / "p", "lora_B")
    saved = load_file(tmp_path / "p" / "adapter_model.safetensors")
    assert not any("pooler" in k for k in saved) and "base_model.model.classifier.weight" in saved
    data = write_keyword_task(tmp_path / "data", seed=4)
    result = workspace.import_adapter("p", tmp_path / "p", data)
    ours = load_file(current(workspace, "p")[1]["logits"])["logits"]
    theirs = reloaded_by_peft(root, tmp_path / "p", data)
    assert (theirs - ours).abs().max().item() < 2e-6
    assert torch.equal(theirs.argmax(-1), ours.argmax(-1))
    run = workspace.ledger.trained_run(workspace.ledger.task("p").id)
    assert run.config["imported"]["from_backbone"] == ["bert.pooler.dense"]
    assert run.config["adapter"]["targets"] == ["query", "value"] and result["warnings"] == []


def test_peft_default_ia3_imports_and_computes_what_peft_computes(
    workspace, tmp_path: Path
) -> None:
    """peft's default (IA)3 for BERT scales the input of both output projections: imported as
    ia3 with on_input = attention_output, ffn_output, it computes peft's logits."""
    import peft

    root = saved_by_peft(workspace, peft.IA3Config(task_type="SEQ_CLS"), tmp_path / "p", "ia3")
    data = write_keyword_task(tmp_path / "data", seed=4)
    workspace.import_adapter("p", tmp_path / "p", data)
    ours = load_file(current(workspace, "p")[1]["logits"])["logits"]
    theirs = reloaded_by_peft(root, tmp_path / "p", data)
    assert (theirs - ours).abs().max().item() < 2e-6
    assert torch.equal(theirs.argmax(-1), ours.argmax(-1))
    adapter = workspace.ledger.trained_run(workspace.ledger.task("p").id).config["adapter"]
    assert {k: adapter[k] for k in PEFT_IA3} == PEFT_IA3
    assert workspace.audit()["verdict"] == "clean"


def test_an_ia3_artifact_recorded_without_on_input_computes_as_before(
    workspace, tmp_path: Path
) -> None:
    """Release 0.2 recorded no on_input: such an artifact reads as the feed-forward output
    projection's input scaled, the others' output, and audits bit-identical."""
    import sqlite3
    from contextlib import closing

    from contlearn.files import sha256_file

    trained_task(workspace, tmp_path, "ia3")
    config = current(workspace, "a")[1]["config"]
    meta = json.loads(config.read_text())
    assert meta["adapter"]["on_input"] == ["ffn_output"]
    del meta["adapter"]["on_input"]
    config.write_text(json.dumps(meta))
    with closing(sqlite3.connect(workspace.root / "contlearn.db")) as db, db:
        db.execute(
            "UPDATE artifacts SET sha256 = ?, bytes = ? WHERE role = 'config'",
            (sha256_file(config), config.stat().st_size),
        )
    audit = reopened(workspace).audit()
    assert audit["verdict"] == "clean" and audit["tasks"][0]["logits_identical"] is True


def reopened(ws):
    from contlearn.api import Workspace

    return Workspace.open(ws.root)


def test_a_base_model_that_is_empty_or_another_warns_in_one_line(exported, tmp_path: Path) -> None:
    ws, ah, pf, data = exported
    cases = [
        (pf, "base_model_name_or_path", "", "the adapter records no base model"),
        (pf, "base_model_name_or_path", "org/another-model", "trained on 'org/another-model'"),
        (ah, "model_name", None, "the adapter records no base model"),
    ]
    for i, (folder, key, value, message) in enumerate(cases):
        moved = edited(
            folder,
            tmp_path / f"base{i}",
            "adapter_config.json",
            lambda c, k=key, v=value: c | {k: v},
        )
        result = invoke(
            ws, "import-adapter", f"w{i}", "--from", str(moved), "--data", str(data), "-q"
        )
        assert result.exit_code == 0, result.output
        warned = result.stderr.strip().splitlines()
        assert len(warned) == 1 and warned[0].startswith("! ") and message in warned[0]
        assert warned[0] not in result.stdout and ws.ledger.task(f"w{i}").status == "trained"
    same = invoke(ws, "import-adapter", "same", "--from", str(pf), "--data", str(data), "-q")
    assert same.exit_code == 0 and same.stderr == ""


# -- bad input ----------------------------------------------------------------------------------
def nothing_written(ws, names_before: list[str], artifacts_before: set[Path]) -> None:
    assert [t.name for t in ws.tasks()] == names_before
    assert set(ws.artifacts_dir.rglob("*")) == artifacts_before
    assert ws.ledger.tasks(removed=True) == []


def failed_import(ws, folder: Path, data: Path, *extra: str) -> str:
    before = [t.name for t in ws.tasks()], set(ws.artifacts_dir.rglob("*"))
    result = invoke(ws, "import-adapter", "b", "--from", str(folder), "--data", str(data), *extra)
    assert result.exit_code == 1, result.output
    nothing_written(ws, *before)
    message = result.output.strip()
    assert message.startswith("Error: ") and "\n" not in message
    return message


@pytest.fixture(scope="module")
def exported_once(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    """``exported``'s folders, built once for the module."""
    base = tmp_path_factory.mktemp("interop")
    workspace = fast_workspace(base / "ws", tiny_backbone)
    data = trained_task(workspace, base, "houlsby-shared", "a")
    workspace.add_task("l", data, method="lora", options={"rank": 2})
    workspace.train_next(epochs=1)
    workspace.export("a", "adapterhub", base / "ah")
    workspace.export("l", "peft", base / "pf")
    settled(workspace)
    return base


@pytest.fixture()
def exported(exported_once: Path, tmp_path: Path):
    """A trained houlsby task (shared norms) and a lora task, exported; their data folder
    (shared: read it, never edit it). The workspace and the exported folders are copies of the
    module's for this test to change."""
    ws = copy_workspace(exported_once / "ws", tmp_path / "ws")
    for name in ("ah", "pf"):
        shutil.copytree(exported_once / name, tmp_path / name)
    return ws, tmp_path / "ah", tmp_path / "pf", exported_once / "data-a"


def edited(src: Path, dst: Path, file: str, change) -> Path:
    import shutil

    shutil.copytree(src, dst)
    if file.endswith(".json"):
        (dst / file).write_text(json.dumps(change(json.loads((dst / file).read_text()))))
    else:
        save_file(change(load_file(dst / file)), dst / file)
    return dst


def test_import_refuses_another_format(exported) -> None:
    ws, ah, pf, data = exported
    message = failed_import(ws, ah, data, "--format", "peft")
    assert "holds a adapterhub adapter, not peft" in message and "--format adapterhub" in message
    assert "no adapter_config.json" in failed_import(ws, data, data)


def test_import_refuses_another_backbone(exported, tmp_path: Path) -> None:
    ws, ah, pf, data = exported
    wider = edited(ah, tmp_path / "wide", "adapter_config.json", lambda c: c | {"hidden_size": 64})
    assert "hidden size 64, but this workspace's backbone has 32" in failed_import(ws, wider, data)
    other = edited(
        ah, tmp_path / "rob", "adapter_config.json", lambda c: c | {"model_type": "roberta"}
    )
    assert "made for a 'roberta' backbone" in failed_import(ws, other, data)

    def deeper(state):
        return state | {k.replace("layer.1.", "layer.5."): v.clone() for k, v in state.items()}

    for folder, file in ((ah, "adapter.safetensors"), (pf, "adapter_model.safetensors")):
        moved = edited(folder, tmp_path / f"deep-{file}", file, deeper)
        assert "layer 5, but this workspace's backbone has 2 layers" in failed_import(
            ws, moved, data
        )

    def renamed(state):
        return {k.replace("bert.", "roberta."): v for k, v in state.items()}

    foreign = edited(pf, tmp_path / "foreign", "adapter_model.safetensors", renamed)
    assert "whose base is 'roberta'" in failed_import(ws, foreign, data)


def test_import_refuses_a_pickle_and_never_unpickles_it(exported, tmp_path: Path) -> None:
    ws, ah, pf, data = exported
    canary = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self):
            return (canary.touch, ())

    for folder, weights, pickle_name in (
        (pf, "adapter_model.safetensors", "adapter_model.bin"),
        (ah, "adapter.safetensors", "pytorch_adapter.bin"),
    ):
        copy = edited(folder, tmp_path / f"pickled-{pickle_name}", "adapter_config.json", dict)
        (copy / weights).unlink()
        (copy / pickle_name).write_bytes(pickle.dumps(Payload()))
        message = failed_import(ws, copy, data)
        assert f"holds {pickle_name}, a pickle" in message and "never unpickles" in message
    assert not canary.exists()


def test_import_refuses_corrupt_or_truncated_weights(exported, tmp_path: Path) -> None:
    ws, ah, pf, data = exported
    import shutil

    for folder, weights in ((ah, "adapter.safetensors"), (pf, "adapter_model.safetensors")):
        copy = tmp_path / f"cut-{weights}"
        shutil.copytree(folder, copy)
        blob = (copy / weights).read_bytes()
        (copy / weights).write_bytes(blob[: len(blob) // 2])
        assert "is corrupt or truncated" in failed_import(ws, copy, data)
        (copy / weights).write_bytes(b"\x00" * 7)
        assert "is corrupt or truncated" in failed_import(ws, copy, data)
    broken = tmp_path / "badjson"
    shutil.copytree(pf, broken)
    (broken / "adapter_config.json").write_text("{not json")
    assert "is not valid JSON" in failed_import(ws, broken, data)


def test_import_refuses_keys_that_do_not_map(exported, tmp_path: Path) -> None:
    ws, ah, pf, data = exported

    def odd(state):
        key = next(k for k in state if "adapter_up" in k)
        return state | {key.replace("adapter_up", "adapter_sideways"): state[key].clone()}

    weird = edited(ah, tmp_path / "odd", "adapter.safetensors", odd)
    assert "does not map to an AdapterHub houlsby adapter" in failed_import(ws, weird, data)

    def headless(state):
        return {k: v for k, v in state.items() if "classifier" not in k}

    no_head = edited(pf, tmp_path / "nohead", "adapter_model.safetensors", headless)
    assert "head lacks weights" in failed_import(ws, no_head, data)

    def half(state):
        return {k: v for k, v in state.items() if not ("layer.1." in k and "value" in k)}

    partial = edited(pf, tmp_path / "half", "adapter_model.safetensors", half)
    assert "adapts value in some layers but not in [1]" in failed_import(ws, partial, data)

    dora = edited(pf, tmp_path / "dora", "adapter_config.json", lambda c: c | {"use_dora": True})
    assert "sets use_dora = True" in failed_import(ws, dora, data)
    three = write_keyword_task(tmp_path / "three", keywords={"x": "cat", "y": "dog", "z": "news"})
    assert "head has 2 outputs, but the task's data has 3 labels" in failed_import(ws, pf, three)
    gated = edited(
        ah,
        tmp_path / "gated",
        "adapter_config.json",
        lambda c: c | {"config": c["config"] | {"use_gating": True}},
    )
    assert "use_gating = True" in failed_import(ws, gated, data)


def test_import_refuses_a_taken_name(exported) -> None:
    ws, ah, pf, data = exported
    result = invoke(ws, "import-adapter", "a", "--from", str(ah), "--data", str(data))
    assert result.exit_code == 1 and "task 'a' is already registered" in result.output


def failed_export(ws, out: Path, *args: str) -> str:
    before = set(out.rglob("*")) if out.exists() else None
    result = invoke(ws, "export", *args, "--out", str(out))
    assert result.exit_code == 1, result.output
    assert (set(out.rglob("*")) if out.exists() else None) == before
    assert not list(out.parent.glob(f".{out.name}.*"))
    message = result.output.strip()
    assert message.startswith("Error: ") and "\n" not in message
    return message


def test_export_refuses_what_the_format_cannot_hold(workspace, tmp_path: Path) -> None:
    data = trained_task(workspace, tmp_path, "houlsby")  # norms = "task"
    workspace.add_task("t", data, method="topk", options={"k": 1})
    workspace.add_task("l", data, method="lora")
    workspace.train_next(all_tasks=True, epochs=1)
    out = tmp_path / "out"
    assert "--include-norms" in failed_export(workspace, out, "a", "--format", "adapterhub")
    assert "use --format adapterhub" in failed_export(
        workspace, out, "a", "--format", "peft", "--include-norms"
    )
    assert "method 'topk' cannot be exported as peft" in failed_export(
        workspace, out, "t", "--format", "peft"
    )
    assert "use --format peft" in failed_export(workspace, out, "l", "--format", "adapterhub")
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert "already exists and is not empty" in failed_export(
        workspace, out, "l", "--format", "peft"
    )
    assert (out / "keep.txt").read_text() == "mine"


def test_bottleneck_without_an_exact_reduction_factor_is_refused() -> None:
    from contlearn.interop.adapterhub import reduction_factor

    assert reduction_factor(8, 32) == 4
    assert reduction_factor(64, 384) == 6
    assert int(384 // reduction_factor(48, 384)) == 48
    with pytest.raises(InteropError, match="no exact AdapterHub reduction factor"):
        reduction_factor(5, 32)  # 32 / 5 = 6.4, and AdapterHub's int(32 // 6.4) is 4


def test_cli_export_and_import_json(exported, tmp_path: Path) -> None:
    ws, ah, pf, data = exported
    result = invoke(ws, "export", "l", "--format", "peft", "--out", str(tmp_path / "o"), "--json")
    assert result.exit_code == 0 and json.loads(result.output)["format"] == "peft"
    result = invoke(
        ws, "import-adapter", "b", "--from", str(tmp_path / "o"), "--data", str(data), "--json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["imported_from"]["format"] == "peft"
    result = invoke(ws, "import-adapter", "c", "--from", str(ah), "--data", str(data))
    assert result.exit_code == 0 and "imported c (houlsby) from adapterhub" in result.output
