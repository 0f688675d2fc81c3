"""An extractive-QA task through export and import: peft's QUESTION_ANS and AdapterHub's
question-answering head.

Exported and imported back, a QA task computes bit-identical dev logits; peft itself loads the
exported folder onto ``BertForQuestionAnswering`` and computes contlearn's start and end logits
on the same windows; a QUESTION_ANS LoRA saved by peft imports and computes what peft does;
AdapterHub's written head is what its ``QuestionAnsweringHead`` is built from; every family
whose transformers QA model has contlearn's head is checked against peft on a tiny model; a
head of another kind than the data is refused in one line with nothing written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from contlearn import kinds
from contlearn.api import Workspace
from contlearn.errors import InteropError
from tests.conftest import write_keyword_task
from tests.test_extractive_qa import write_qa_task
from tests.test_tagging import write_tagging_task
from tests.test_tagging_interop import CASES, failed

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")

# AdapterHub 1.x builds a head as ``QuestionAnsweringHead(model, name, **config)`` once it has
# taken head_type out and turned label2id into id2label: these are its arguments.
QA_HEAD_ARGS = {"num_labels", "layers", "activation_function", "id2label", "dropout_prob"}
MAX_LENGTH = 32  # the word workspace's


def trained_qa(ws: Workspace, tmp_path: Path, case: str, name: str = "squad") -> Path:
    method, options, _ = CASES[case]
    data = write_qa_task(tmp_path / f"data-{name}", n_train=48, n_dev=16)
    ws.add_task(name, data, method=method, options=options)
    ws.train_next(epochs=2, lr=0.02)
    return data


def dev_rows(data: Path) -> list[tuple[str, str]]:
    document = json.loads((data / "dev.json").read_text())
    return [
        (qa["question"], paragraph["context"])
        for article in document["data"]
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    ]


def per_window(model: torch.nn.Module, backbone: Path, data: Path) -> torch.Tensor:
    """A transformers QA model's (start, end) logits on the dev questions' windows, cut as
    contlearn cuts them, at [CLS] and each context token: [W, P, 2], NaN past a window's last
    context token (the first two columns of contlearn's logits file)."""
    from transformers import AutoTokenizer

    from contlearn.eval.logits import at_positions

    tokenizer = AutoTokenizer.from_pretrained(backbone)
    encoded = kinds.get("extractive-qa").encode(tokenizer, dev_rows(data), MAX_LENGTH, True)
    width = max(encoded.lengths)
    ids = torch.zeros(len(encoded), width, dtype=torch.long)
    types, mask = torch.zeros_like(ids), torch.zeros_like(ids)
    for i, row in enumerate(encoded.input_ids):
        ids[i, : len(row)] = torch.tensor(row)
        types[i, : len(row)] = torch.tensor(encoded.token_type_ids[i])
        mask[i, : len(row)] = 1
    with torch.no_grad():
        out = model.eval()(input_ids=ids, token_type_ids=types, attention_mask=mask)
    both = torch.stack([out.start_logits, out.end_logits], dim=-1)
    return at_positions(both, encoded.positions, width=encoded.width)


def saved_logits(ws: Workspace, name: str) -> torch.Tensor:
    return load_file(ws.artifact_files(name)["logits"])["logits"][..., :2]


def close(theirs: torch.Tensor, ours: torch.Tensor, atol: float = 1e-5) -> None:
    assert theirs.shape == ours.shape
    assert torch.equal(theirs.isnan(), ours.isnan())
    real = ~ours.isnan()
    assert (theirs[real] - ours[real]).abs().max().item() < atol


# -- round trips --------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_qa_task_exports_and_imports_back_bit_identically(
    word_workspace: Workspace, tmp_path: Path, case: str
) -> None:
    ws, fmt = word_workspace, CASES[case][2]
    data = trained_qa(ws, tmp_path, case)
    out = tmp_path / "out"
    ws.export("squad", fmt, out)
    assert json.loads((out / "contlearn_export.json").read_text())["kind"] == "extractive-qa"
    if fmt == "peft":
        config = json.loads((out / "adapter_config.json").read_text())
        assert config["task_type"] == "QUESTION_ANS" and config["modules_to_save"] == ["qa_outputs"]
        weights = load_file(out / "adapter_model.safetensors")
        assert weights["base_model.model.qa_outputs.weight"].shape == (2, 32)
        assert not any("classifier" in k or "pooler" in k for k in weights)
    else:
        head = load_file(out / "model_head.safetensors")
        assert {k: v.shape for k, v in head.items()} == {
            "heads.squad.1.weight": (2, 32),
            "heads.squad.1.bias": (2,),
        }
    run = ws.ledger.trained_run(ws.ledger.task("squad").id)
    result = ws.import_adapter("back", out, data)
    assert result["logits_sha256"] == run.result["logits_sha256"]
    assert result["metrics"] == run.result["metrics"]
    assert ws.ledger.task("back").kind == "extractive-qa"
    files = ws.artifact_files
    assert files("back")["weights"].read_bytes() == files("squad")["weights"].read_bytes()
    rows = [{"question": "which animal", "context": "the movie was good and this dog was bad"}]
    (back,), (ours,) = ws.predict("back", rows), ws.predict("squad", rows)
    assert back | {"task": "squad"} == ours and ours["label"]


def test_adapterhubs_qa_head_config_is_what_its_question_answering_head_is_built_from(
    word_workspace: Workspace, tmp_path: Path
) -> None:
    trained_qa(word_workspace, tmp_path, "houlsby")
    word_workspace.export("squad", "adapterhub", tmp_path / "out")
    about = json.loads((tmp_path / "out" / "head_config.json").read_text())
    config = dict(about["config"])
    assert config.pop("head_type") == "question_answering" and about["name"] == "squad"
    assert config.pop("label2id") is None  # as add_qa_head saves it: its outputs are unnamed
    config["id2label"] = None
    assert set(config) == QA_HEAD_ARGS
    assert config["layers"] == 1 and config["num_labels"] == 2
    # with one layer, PredictionHead.build makes [Dropout, Linear(hidden, 2)]; its forward
    # splits the logits into start, end along the last dimension
    head = torch.nn.Sequential(torch.nn.Dropout(0.1), torch.nn.Linear(32, 2))
    weights = load_file(tmp_path / "out" / "model_head.safetensors")
    head.load_state_dict({k.removeprefix("heads.squad."): v for k, v in weights.items()})
    state = load_file(word_workspace.artifact_files("squad")["weights"])
    assert torch.equal(head[1].weight, state[next(k for k in state if k.endswith("out.weight"))])


# -- peft itself --------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["lora", "ia3"])
def test_peft_loads_the_exported_qa_folder_and_computes_the_same_start_and_end_logits(
    word_workspace: Workspace, word_backbone: Path, tmp_path: Path, case: str
) -> None:
    from peft import PeftModel
    from transformers import BertForQuestionAnswering

    data = trained_qa(word_workspace, tmp_path, case)
    word_workspace.export("squad", "peft", tmp_path / "out")
    base = BertForQuestionAnswering.from_pretrained(word_backbone)
    model = PeftModel.from_pretrained(base, tmp_path / "out")
    assert type(model).__name__ == "PeftModelForQuestionAnswering"
    ours = saved_logits(word_workspace, "squad")
    close(per_window(model.base_model, word_backbone, data), ours)
    with model.disable_adapter():  # the adapter is what makes them agree
        theirs = per_window(model.base_model, word_backbone, data)
        assert not torch.allclose(theirs.nan_to_num(), ours.nan_to_num())
    # peft 0.21's PeftModelForQuestionAnswering.forward drops token_type_ids (it passes
    # neither them nor **kwargs holding them to the model): called whole, it reads the context
    # as segment 0, so the comparison above calls the adapted model it wraps
    assert not torch.allclose(
        per_window(model, word_backbone, data).nan_to_num(), ours.nan_to_num()
    )


def test_a_question_ans_folder_saved_by_peft_imports_and_computes_what_peft_does(
    word_workspace: Workspace, word_backbone: Path, tmp_path: Path
) -> None:
    import peft
    from transformers import BertForQuestionAnswering

    ws = word_workspace
    data = write_qa_task(tmp_path / "data", n_train=16, n_dev=16)
    ws.add_task("first", write_keyword_task(tmp_path / "words", seed=4))
    ws.train_next(epochs=1)
    base = BertForQuestionAnswering.from_pretrained(word_backbone)
    config = peft.LoraConfig(
        task_type="QUESTION_ANS", r=2, lora_alpha=6, target_modules=["key", "value"]
    )
    model = peft.get_peft_model(base, config)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name or "qa_outputs" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    model.save_pretrained(tmp_path / "theirs")
    base.config.save_pretrained(tmp_path / "theirs")  # id2label LABEL_0, LABEL_1: not reordered
    saved = json.loads((tmp_path / "theirs" / "adapter_config.json").read_text())
    assert saved["task_type"] == "QUESTION_ANS" and "qa_outputs" in saved["modules_to_save"]
    result = ws.import_adapter("squad", tmp_path / "theirs", data)
    close(per_window(model.base_model, word_backbone, data), saved_logits(ws, "squad"), atol=2e-6)
    assert result["method"] == "lora" and result["warnings"] == []
    assert [v["task"] for v in result["verifications"]] == ["first"]
    assert {"qa_f1", "qa_exact_match"} <= set(result["metrics"])
    assert ws.ledger.task("squad").kind == "extractive-qa"
    assert ws.audit()["verdict"] == "clean"


# -- refusals -----------------------------------------------------------------------------


def test_a_qa_head_and_data_of_another_kind_are_refused_in_one_line(
    word_workspace: Workspace, tmp_path: Path
) -> None:
    ws = word_workspace
    qa = trained_qa(ws, tmp_path, "lora")
    tagging = write_tagging_task(tmp_path / "ner", n_train=16, n_dev=8)
    ws.add_task("ner", tagging, method="houlsby", options={"bottleneck": 8, "norms": "shared"})
    ws.train_next(epochs=1)
    ws.export("squad", "peft", tmp_path / "qa-peft")
    ws.export("ner", "adapterhub", tmp_path / "ner-ah")

    def imported(folder: Path, data: Path) -> str:
        return failed(ws, "import-adapter", "x", "--from", str(folder), "--data", str(data))

    message = imported(tmp_path / "qa-peft", tagging)
    assert "has a QUESTION_ANS head (a start and an end logit per token)" in message
    assert "makes a tagging task, whose head is TOKEN_CLS" in message
    message = imported(tmp_path / "qa-peft", write_keyword_task(tmp_path / "words", seed=4))
    assert "makes a classification task, whose head is SEQ_CLS" in message
    message = imported(tmp_path / "ner-ah", qa)
    assert "has a tagging head (one output row per token)" in message
    assert "makes an extractive-qa task, whose head is question_answering" in message


def test_an_adapterhub_qa_head_of_two_layers_is_refused_in_one_line(
    word_workspace: Workspace, tmp_path: Path
) -> None:
    qa = trained_qa(word_workspace, tmp_path, "pfeiffer")
    word_workspace.export("squad", "adapterhub", tmp_path / "ah")
    deeper = tmp_path / "deeper"
    shutil.copytree(tmp_path / "ah", deeper)
    about = json.loads((deeper / "head_config.json").read_text())
    about["config"]["layers"] = 2
    (deeper / "head_config.json").write_text(json.dumps(about))
    args = ("import-adapter", "x", "--from", str(deeper), "--data", str(qa))
    message = failed(word_workspace, *args)
    assert "head has layers = 2: contlearn's extractive-qa head is a 1-layer question-" in message


def test_export_refuses_a_family_or_model_type_without_contlearns_qa_head() -> None:
    from contlearn.interop import peft_format
    from contlearn.interop.names import Naming
    from contlearn.model.families import BY_NAME
    from contlearn.model.methods.registry import get_method

    lora = get_method("lora").config({})
    for family, model_type in [
        ("bert", "bert"),
        ("roberta", "roberta"),
        ("electra", "electra"),
        ("distilbert", "distilbert"),
        ("deberta-v2", "deberta-v2"),
        ("llama", "llama"),
        ("llama", "mistral"),
        ("llama", "qwen3"),
    ]:
        naming = Naming(BY_NAME[family], "base", model_type, "Model", 32, 2)
        peft_format.check_exportable("lora", lora, naming, "span")
    for family in ("gemma", "gemma2", "phi3", "gpt2", "modernbert"):
        naming = Naming(BY_NAME[family], "model", family, "Model", 32, 2)
        with pytest.raises(InteropError) as caught:
            peft_format.check_exportable("lora", lora, naming, "span")
        message = str(caught.value)
        assert f"family {family!r}: its transformers question-answering model's head" in message
    naming = Naming(BY_NAME["llama"], "model", "olmo2", "Model", 32, 2)  # no QA model
    with pytest.raises(InteropError, match="model type 'olmo2' has no question-answering"):
        peft_format.check_exportable("lora", lora, naming, "span")


# -- every family whose QA model's head is contlearn's -------------------------------------


@pytest.mark.parametrize(
    "label",
    ["bert", "roberta", "electra", "distilbert", "deberta-v2", "llama", "mistral", "qwen3"],
)
def test_peft_computes_an_exported_qa_task_on_each_family_it_is_exported_for(
    label: str, tmp_path: Path
) -> None:
    """A LoRA QA head on a tiny model of the family, exported as contlearn does: peft loads it
    onto the model type's ``...ForQuestionAnswering`` (whose base model may sit under another
    attribute: Llama's and Qwen's under ``transformer``) and computes the same start and end
    logits at every real token."""
    from peft import PeftModel
    from transformers import AutoModelForQuestionAnswering

    from contlearn.interop import folder, peft_format
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
    model.add_task("t", num_outputs=2, adapter=lora, head="token")
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for param in model.tasks["t"].parameters():  # LoRA's B is zero at init
            param.copy_(torch.randn(param.shape, generator=g) * 0.3)
    meta = {"model_name": str(tmp_path / "base"), "head": "span"}
    content = peft_format.export(model.task_state("t"), lora, naming(model), meta)
    (tmp_path / "out").mkdir()
    for name, blob in _serialised(content).items():
        (tmp_path / "out" / name).write_bytes(blob)
    base = AutoModelForQuestionAnswering.from_pretrained(tmp_path / "base")
    theirs = PeftModel.from_pretrained(base, tmp_path / "out").eval()
    batch = inputs()
    model.eval().activate("t")
    with torch.no_grad():
        ours, got = model(**batch), theirs(**batch)
    both = torch.stack([got.start_logits, got.end_logits], dim=-1)
    real = batch["attention_mask"].bool()
    assert ours.shape == both.shape == (*batch["input_ids"].shape, 2)
    assert (ours[real] - both[real]).abs().max().item() < 1e-5
    with theirs.disable_adapter(), torch.no_grad():
        bare = theirs(**batch)
    assert not torch.allclose(bare.start_logits[real], ours[real][:, 0], atol=1e-3)
    # and the folder reads back as the same task state (its keys named as the QA model's)
    found = folder.read(tmp_path / "out", "peft")
    qa = kinds.get("extractive-qa")
    back = peft_format.to_contlearn(found, naming(model), ["answer"], backbone, qa)["state"]
    state = model.task_state("t")
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)
