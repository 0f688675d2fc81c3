"""A tagging task through export and import: peft's TOKEN_CLS and AdapterHub's tagging head.

Exported and imported back, a tagging task computes bit-identical dev logits; peft itself loads
the exported folder onto ``BertForTokenClassification`` and computes contlearn's per-word logits;
a TOKEN_CLS folder saved by peft imports; AdapterHub's written head is what its ``TaggingHead``
is built from; a head a format has no place for, or of another kind than the data, is refused
in one line with nothing written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from contlearn.api import Workspace
from contlearn.errors import InteropError
from contlearn.kinds.base import TaskKind
from tests.conftest import invoke, write_keyword_task
from tests.test_tagging import write_tagging_task

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")

CASES = {  # method, options, format
    "lora": (
        "lora",
        {"rank": 4, "alpha": 8.0, "targets": ["query", "value", "ffn_output"]},
        "peft",
    ),
    "ia3": ("ia3", {}, "peft"),
    "houlsby": ("houlsby", {"bottleneck": 8, "norms": "shared"}, "adapterhub"),
    "pfeiffer": ("pfeiffer", {"bottleneck": 16, "norms": "shared"}, "adapterhub"),
}
# AdapterHub 1.x builds a head as ``TaggingHead(model, name, **config)`` once it has taken
# head_type out and turned label2id into id2label (ModelWithFlexibleHeadsAdaptersMixin.
# add_prediction_head_from_config): these are TaggingHead's arguments.
TAGGING_HEAD_ARGS = {"num_labels", "layers", "activation_function", "id2label", "dropout_prob"}


@pytest.fixture()
def workspace(tmp_path: Path, word_backbone: Path) -> Workspace:
    root = tmp_path / "ws"
    Workspace.create(root, backbone=str(word_backbone))
    text = (root / "tasks.toml").read_text()
    text = text.replace("epochs = 3", "epochs = 2").replace("max_length = 128", "max_length = 32")
    (root / "tasks.toml").write_text(text.replace("lr = 0.001", "lr = 0.005"))
    return Workspace.open(root)


def trained_tagging(ws: Workspace, tmp_path: Path, case: str, name: str = "ner") -> Path:
    method, options, _ = CASES[case]
    data = write_tagging_task(tmp_path / f"data-{name}", n_train=48, n_dev=16)
    ws.add_task(name, data, method=method, options=options)
    ws.train_next(epochs=2, lr=0.02)
    return data


def dev_words(data: Path) -> list[list[str]]:
    sentences, words = [], []
    for line in (data / "valid.txt").read_text().splitlines() + [""]:
        if line.startswith("-DOCSTART-"):
            continue
        if line.strip():
            words.append(line.split()[0])
        elif words:
            sentences.append(words)
            words = []
    return sentences


def per_word(model: torch.nn.Module, backbone: Path, data: Path) -> torch.Tensor:
    """A transformers token-classification model's dev logits at each word's first sub-token,
    [N, W, C], NaN past a sentence's last word: what contlearn's logits file holds."""
    from transformers import AutoTokenizer

    from contlearn.eval.logits import at_positions
    from contlearn.train.batching import first_pieces

    words = dev_words(data)
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    inputs = tokenizer(
        words,
        is_split_into_words=True,
        truncation=True,
        max_length=32,
        padding=True,
        return_tensors="pt",
    )
    positions = [first_pieces(inputs.word_ids(i)) for i in range(len(words))]
    with torch.no_grad():
        logits = model.eval()(**inputs).logits
    return at_positions(logits, positions, width=max(map(len, words)))


def saved_logits(ws: Workspace, name: str) -> torch.Tensor:
    return load_file(ws.artifact_files(name)["logits"])["logits"]


def close(theirs: torch.Tensor, ours: torch.Tensor, atol: float = 1e-5) -> None:
    assert theirs.shape == ours.shape
    assert torch.equal(theirs.isnan(), ours.isnan())
    real = ~ours.isnan()
    assert (theirs[real] - ours[real]).abs().max().item() < atol
    assert torch.equal(theirs.nan_to_num().argmax(-1), ours.nan_to_num().argmax(-1))


# -- round trips --------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_tagging_task_exports_and_imports_back_bit_identically(
    workspace: Workspace, tmp_path: Path, case: str
) -> None:
    fmt = CASES[case][2]
    data = trained_tagging(workspace, tmp_path, case)
    labels = list(workspace.ledger.task("ner").labels)
    out = tmp_path / "out"
    workspace.export("ner", fmt, out)
    assert json.loads((out / "contlearn_export.json").read_text())["kind"] == "tagging"
    if fmt == "peft":
        config = json.loads((out / "adapter_config.json").read_text())
        assert config["task_type"] == "TOKEN_CLS" and config["modules_to_save"] == ["classifier"]
        head = {k: v.shape for k, v in load_file(out / "adapter_model.safetensors").items()}
        assert head["base_model.model.classifier.weight"] == (len(labels), 32)
        assert not any("pooler" in k for k in head)
    else:
        head = load_file(out / "model_head.safetensors")
        assert {k: v.shape for k, v in head.items()} == {
            "heads.ner.1.weight": (len(labels), 32),
            "heads.ner.1.bias": (len(labels),),
        }
    run = workspace.ledger.trained_run(workspace.ledger.task("ner").id)
    result = workspace.import_adapter("back", out, data)
    assert result["logits_sha256"] == run.result["logits_sha256"]
    assert result["metrics"] == run.result["metrics"]
    assert workspace.ledger.task("back").kind == "tagging"
    files = workspace.artifact_files
    assert files("back")["weights"].read_bytes() == files("ner")["weights"].read_bytes()
    rows = [{"tokens": "the cat saw news tech"}]
    assert workspace.predict("back", rows)[0]["words"] == workspace.predict("ner", rows)[0]["words"]


def test_adapterhubs_tagging_head_config_is_what_its_tagging_head_is_built_from(
    workspace: Workspace, tmp_path: Path
) -> None:
    trained_tagging(workspace, tmp_path, "houlsby")
    workspace.export("ner", "adapterhub", tmp_path / "out")
    about = json.loads((tmp_path / "out" / "head_config.json").read_text())
    config = dict(about["config"])
    labels = list(workspace.ledger.task("ner").labels)
    assert config.pop("head_type") == "tagging" and about["name"] == "ner"
    label2id = config.pop("label2id")
    config["id2label"] = {i: label for label, i in label2id.items()}
    assert set(config) == TAGGING_HEAD_ARGS
    assert config["layers"] == 1 and config["num_labels"] == len(labels)
    assert [config["id2label"][i] for i in range(len(labels))] == labels
    # with one layer, PredictionHead.build makes [Dropout, Linear(hidden, num_labels)]:
    head = torch.nn.Sequential(torch.nn.Dropout(0.1), torch.nn.Linear(32, len(labels)))
    weights = load_file(tmp_path / "out" / "model_head.safetensors")
    head.load_state_dict({k.removeprefix("heads.ner."): v for k, v in weights.items()})
    ours = workspace.artifact_files("ner")["weights"]
    state = load_file(ours)
    assert torch.equal(head[1].weight, state[next(k for k in state if k.endswith("out.weight"))])


# -- peft itself --------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["lora", "ia3"])
def test_peft_loads_the_exported_tagging_folder_and_computes_the_same_logits(
    workspace: Workspace,
    word_backbone: Path,
    tmp_path: Path,
    case: str,
) -> None:
    from peft import PeftModel
    from transformers import BertForTokenClassification

    data = trained_tagging(workspace, tmp_path, case)
    workspace.export("ner", "peft", tmp_path / "out")
    labels = list(workspace.ledger.task("ner").labels)
    base = BertForTokenClassification.from_pretrained(word_backbone, num_labels=len(labels))
    model = PeftModel.from_pretrained(base, tmp_path / "out")
    assert type(model).__name__ == "PeftModelForTokenClassification"
    ours = saved_logits(workspace, "ner")
    close(per_word(model, word_backbone, data), ours)
    with model.disable_adapter():  # the adapter is what makes them agree
        assert not torch.allclose(
            per_word(model, word_backbone, data).nan_to_num(), ours.nan_to_num()
        )


TAGS = ["O", "B-ANI", "B-ORG", "I-ORG"]  # the order contlearn gives the data's tags


@pytest.mark.parametrize("theirs", [TAGS, ["B-ORG", "O", "I-ORG", "B-ANI"]])
def test_a_token_cls_folder_saved_by_peft_imports_and_computes_what_peft_does(
    workspace: Workspace,
    word_backbone: Path,
    tmp_path: Path,
    theirs: list[str],
) -> None:
    """peft's own save of a TOKEN_CLS LoRA imports. With the model's config.json beside it, its
    id2label orders the head's outputs; without it, output i is the data's tag i."""
    import peft
    from transformers import BertForTokenClassification

    data = write_tagging_task(tmp_path / "data", n_train=48, n_dev=16)
    workspace.add_task("first", write_keyword_task(tmp_path / "words", seed=4))
    workspace.train_next(epochs=1)
    id2label = dict(enumerate(theirs))
    base = BertForTokenClassification.from_pretrained(
        word_backbone, num_labels=len(theirs), id2label=id2label
    )
    config = peft.LoraConfig(
        task_type="TOKEN_CLS", r=2, lora_alpha=6, target_modules=["key", "value"]
    )
    model = peft.get_peft_model(base, config)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name or "classifier" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    model.save_pretrained(tmp_path / "theirs")
    if theirs != TAGS:
        base.config.save_pretrained(tmp_path / "theirs")  # config.json, with id2label
    saved = json.loads((tmp_path / "theirs" / "adapter_config.json").read_text())
    assert saved["task_type"] == "TOKEN_CLS"
    result = workspace.import_adapter("ner", tmp_path / "theirs", data)
    assert list(workspace.ledger.task("ner").labels) == TAGS
    order = [theirs.index(tag) for tag in TAGS]  # our output j is their output order[j]
    expected = per_word(model, word_backbone, data)[..., order]
    close(expected, saved_logits(workspace, "ner"), atol=2e-6)
    assert result["method"] == "lora" and result["warnings"] == []
    assert [v["task"] for v in result["verifications"]] == ["first"]
    assert {"entity_f1", "token_accuracy"} <= set(result["metrics"])
    assert workspace.audit()["verdict"] == "clean"


# -- refusals -----------------------------------------------------------------------------


def failed(ws: Workspace, *args: str) -> str:
    before = [t.name for t in ws.tasks()], set(ws.artifacts_dir.rglob("*"))
    result = invoke(ws, *args)
    assert result.exit_code == 1, result.output
    assert ([t.name for t in ws.tasks()], set(ws.artifacts_dir.rglob("*"))) == before
    message = result.output.strip()
    assert message.startswith("Error: ") and "\n" not in message
    return message


def test_a_head_of_another_kind_than_the_data_is_refused_in_one_line(
    workspace: Workspace, tmp_path: Path
) -> None:
    tagging = trained_tagging(workspace, tmp_path, "houlsby")
    words = write_keyword_task(tmp_path / "words", seed=4)
    workspace.add_task("cls", words, method="lora")
    workspace.train_next(epochs=1)
    workspace.export("ner", "adapterhub", tmp_path / "ner-ah")
    workspace.export("cls", "peft", tmp_path / "cls-peft")

    def imported(folder: Path, data: Path) -> str:
        return failed(workspace, "import-adapter", "x", "--from", str(folder), "--data", str(data))

    message = imported(tmp_path / "ner-ah", words)
    assert "has a tagging head (one output row per token)" in message
    assert "makes a classification task, whose head is classification" in message
    message = imported(tmp_path / "cls-peft", tagging)
    assert "has a SEQ_CLS head (one output row per text)" in message
    assert "makes a tagging task, whose head is TOKEN_CLS" in message

    deeper = tmp_path / "deeper"
    shutil.copytree(tmp_path / "ner-ah", deeper)
    about = json.loads((deeper / "head_config.json").read_text())
    about["config"]["layers"] = 2
    (deeper / "head_config.json").write_text(json.dumps(about))
    message = imported(deeper, tagging)
    assert "head has layers = 2: contlearn's tagging head is a 1-layer tagging head" in message


class Spans(TaskKind):
    """A kind whose head no format holds (a pair of texts scored per token pair, say)."""

    name = "spans"
    head = "pair"


def test_a_kind_whose_head_no_format_holds_is_refused_in_one_line() -> None:
    from contlearn.interop import adapterhub, peft_format
    from contlearn.interop.parts import check_head_type
    from contlearn.ops.interop import _check_kind

    for fmt, holds in (
        ("peft", "SEQ_CLS, TOKEN_CLS, QUESTION_ANS"),
        ("adapterhub", "classification, tagging, question_answering"),
    ):
        with pytest.raises(InteropError) as caught:
            _check_kind(Spans(), fmt, "qa")
        message = str(caught.value)
        assert "\n" not in message and f"cannot be exported as {fmt}" in message
        assert "task 'qa' is a spans task" in message and f"({fmt} holds {holds} heads)" in message
    for module in (peft_format, adapterhub):
        with pytest.raises(
            InteropError, match="cannot become a spans task: its format has no head"
        ):
            check_head_type(None, module.HEAD_TYPES, Spans(), "folder f")


def test_a_task_of_a_kind_whose_head_no_format_holds_is_refused_before_anything_is_written(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trained task recorded as a kind of its own (registered for this test) whose head type
    neither format has: ``export`` refuses it in one line, and no folder appears."""
    import sqlite3
    from contextlib import closing

    from contlearn import kinds

    trained_tagging(workspace, tmp_path, "lora")
    monkeypatch.setitem(kinds.KINDS, "spans", Spans())
    with closing(sqlite3.connect(workspace.root / "contlearn.db")) as db, db:
        db.execute("UPDATE tasks SET kind = 'spans' WHERE name = 'ner'")
    for fmt in ("peft", "adapterhub"):
        out = tmp_path / f"out-{fmt}"
        result = invoke(workspace, "export", "ner", "--format", fmt, "--out", str(out))
        assert result.exit_code == 1, result.output
        message = result.output.strip()
        assert message.startswith("Error: task 'ner' is a spans task") and "\n" not in message
        assert not out.exists() and not list(tmp_path.glob(f".out-{fmt}.*"))


def test_export_refuses_a_family_whose_token_classification_head_differs() -> None:
    from contlearn.interop import peft_format
    from contlearn.interop.names import Naming
    from contlearn.model.families import BY_NAME
    from contlearn.model.methods.registry import get_method

    lora = get_method("lora").config({})
    for family in ("bert", "roberta", "electra", "distilbert", "deberta-v2", "llama", "gemma2"):
        naming = Naming(BY_NAME[family], "base", family, "Model", 32, 2)
        peft_format.check_exportable("lora", lora, naming, "token")
    for family in ("modernbert", "gpt2", "phi3"):
        naming = Naming(BY_NAME[family], "model", family, "Model", 32, 2)
        with pytest.raises(InteropError) as caught:
            peft_format.check_exportable("lora", lora, naming, "token")
        assert (
            f"family {family!r}: its transformers token-classification model's head is not known"
            in str(caught.value)
        )


# -- every family whose token-classification head is contlearn's ---------------------------


@pytest.mark.parametrize(
    "label", ["bert", "roberta", "electra", "distilbert", "deberta-v2", "llama", "qwen3", "gemma2"]
)
def test_peft_computes_an_exported_tagging_task_on_each_family_it_is_exported_for(
    label: str, tmp_path: Path
) -> None:
    """A LoRA tagging task on a tiny model of the family, exported as contlearn does: peft
    loads it onto the family's ``...ForTokenClassification`` (its ``classifier``, or the
    decoders' ``score``) and computes the same logits at every real token."""
    from peft import PeftModel
    from transformers import AutoModelForTokenClassification

    from contlearn.interop import peft_format
    from contlearn.interop.names import naming
    from contlearn.model.adapted import AdaptedModel
    from contlearn.model.methods.registry import get_method
    from contlearn.ops.interop import _serialised
    from tests.family_configs import tiny_model
    from tests.test_family_matrix import inputs

    backbone = tiny_model(label)
    backbone.save_pretrained(tmp_path / "base")
    model = AdaptedModel(backbone)
    lora = get_method("lora").config({"rank": 2, "targets": ["query", "value", "ffn_output"]})
    model.add_task("t", num_outputs=5, adapter=lora, head="token")
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for param in model.tasks["t"].parameters():  # LoRA's B is zero at init
            param.copy_(torch.randn(param.shape, generator=g) * 0.3)
    meta = {"model_name": str(tmp_path / "base"), "head": "token"}
    content = peft_format.export(model.task_state("t"), lora, naming(model), meta)
    (tmp_path / "out").mkdir()
    for name, blob in _serialised(content).items():
        (tmp_path / "out" / name).write_bytes(blob)
    base = AutoModelForTokenClassification.from_pretrained(tmp_path / "base", num_labels=5)
    theirs = PeftModel.from_pretrained(base, tmp_path / "out").eval()
    batch = inputs()
    model.eval().activate("t")
    with torch.no_grad():
        ours, got = model(**batch), theirs(**batch).logits
    real = batch["attention_mask"].bool()
    assert ours.shape == got.shape == (*batch["input_ids"].shape, 5)
    assert (ours[real] - got[real]).abs().max().item() < 1e-5
    with theirs.disable_adapter(), torch.no_grad():
        assert not torch.allclose(theirs(**batch).logits[real], ours[real], atol=1e-3)
