"""The ``generation`` kind end to end on a tiny random Llama whose tokenizer has a chat
template: encoding (the template's ids, the prompt cut from its beginning, the loss on the
response only), add-task -> train-next -> recorded metrics, a classification task after it with
the generation task verified bit for bit, a third task verified by the probe, audit clean;
``predict`` and ``contlearn generate`` (argument, stdin, reproducible sampling) and the
one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contlearn.api import Workspace
from tests.conftest import fast_workspace, invoke, tiny_vocab, write_keyword_task

TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} - {{ m['content'] }} [SEP] {% endfor %}"
    "{% if add_generation_prompt %}assistant - {% endif %}"
)
ANSWERS = {"good": "yes good", "bad": "no bad"}


def chat_tokenizer(template: str | None = TEMPLATE):
    """The tiny word vocabulary as a WordPiece tokenizer, [SEP] its eos, with a chat template."""
    from transformers import BertTokenizerFast

    vocab = {word: i for i, word in enumerate(tiny_vocab())}
    tokenizer = BertTokenizerFast(vocab=vocab, do_lower_case=True, eos_token="[SEP]")
    if template is not None:
        tokenizer.chat_template = template
    return tokenizer


def save_chat_llama(folder: Path) -> Path:
    """A tiny random Llama causal LM (tied embeddings) with ``chat_tokenizer``, saved."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from tests.family_configs import CONFIGS

    _, values = CONFIGS["llama"]
    wide = {"tie_word_embeddings": True, "initializer_range": 0.3}  # logits that can peak
    config = AutoConfig.for_model("llama", **{**values, **wide})
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    chat_tokenizer().save_pretrained(folder)
    return folder


def write_generation_task(folder: Path, n_train: int = 24, n_dev: int = 8, seed: int = 0) -> Path:
    """prompt/response jsonl: the answer says whether the prompt holds "good" or "bad"."""
    import random

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    fillers = ["the", "movie", "was", "very", "this", "film"]
    for split, count in (("train", n_train), ("dev", n_dev)):
        with open(folder / f"{split}.jsonl", "w", encoding="utf-8") as handle:
            for _ in range(count):
                word = rng.choice(sorted(ANSWERS))
                words = [*rng.sample(fillers, 3), word]
                rng.shuffle(words)
                row = {"prompt": " ".join(words), "response": ANSWERS[word]}
                handle.write(json.dumps(row) + "\n")
    return folder


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_chat_llama(tmp_path_factory.mktemp("llama") / "tiny-llama")


def kind():
    from contlearn.kinds import get

    return get("generation")


def rows_of(*prompts: str) -> list[tuple[str, ...]]:
    return [("user", p) for p in prompts]


# -- encoding ---------------------------------------------------------------------------------


def test_the_chat_template_encodes_the_prompt_and_the_response() -> None:
    tok = chat_tokenizer()
    prompts = kind().encode_split(
        tok,
        rows_of("the movie was good"),
        64,
        False,
        ["yes good"],
        training=False,
        max_new_tokens=5,
    )
    messages = [{"role": "user", "content": "the movie was good"}]
    expected = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    assert prompts.input_ids[0] == list(expected["input_ids"])
    answer = tok("yes good [SEP] ", add_special_tokens=False)["input_ids"]
    assert prompts.forced[0] == prompts.input_ids[0] + answer
    assert prompts.starts[0] == len(prompts.input_ids[0])
    assert prompts.stop_ids == (tok.convert_tokens_to_ids("[SEP]"),)
    assert prompts.max_new_tokens == 5 and prompts.width == len(answer)


def test_without_a_template_each_turn_is_a_line_and_the_response_ends_with_eos() -> None:
    tok = chat_tokenizer(template=None)
    row = ("system", "be brief", "user", "the film")
    train = kind().encode(tok, [row], 64, False, ["yes"])
    prompt = tok("be brief\nthe film\n", add_special_tokens=False)["input_ids"]
    assert train.input_ids[0] == prompt + tok("yes[SEP]", add_special_tokens=False)["input_ids"]
    assert train.targets == [len(prompt)]


def test_the_loss_covers_the_response_tokens_only() -> None:
    """Targets are -100 exactly on prompt and padding positions; the loss does not change when
    the logits at those positions do."""
    import torch

    tok = chat_tokenizer()
    texts = rows_of("the movie was very good", "bad")
    encoded = kind().encode(tok, texts, 64, False, ["yes good", "no"])
    targets = kind().batch_targets(encoded.targets, encoded, [0, 1])
    for row in range(2):
        ids, start = encoded.input_ids[row], encoded.targets[row]
        wanted = torch.full((targets.shape[1],), -100)
        wanted[start - 1 : len(ids) - 1] = torch.tensor(ids[start:])
        assert torch.equal(targets[row], wanted)
    logits = torch.randn(2, targets.shape[1], 120)
    before = kind().loss(logits, targets)
    ignored = targets == -100
    changed = logits.masked_fill(ignored[..., None], 5.0)
    assert torch.equal(kind().loss(changed, targets), before)
    assert not torch.equal(
        kind().loss(logits + (~ignored[..., None]) * 5 * torch.rand_like(logits), targets), before
    )


def test_a_long_prompt_loses_its_beginning_never_the_response(caplog) -> None:
    tok = chat_tokenizer()
    long = " ".join(["the movie was very good"] * 6)
    whole = kind().encode(tok, rows_of(long), 512, False, ["yes good"])
    cut = kind().encode(tok, rows_of(long), 24, False, ["yes good"])
    answer = len(whole.input_ids[0]) - whole.targets[0]
    assert len(cut.input_ids[0]) == 24
    assert cut.input_ids[0] == whole.input_ids[0][-24:]  # the prompt's end and the response
    assert cut.targets[0] == 24 - answer
    prompts = kind().encode(tok, rows_of(long), 24, False)
    assert prompts.input_ids[0] == whole.input_ids[0][: whole.targets[0]][-24:]
    with caplog.at_level("WARNING"):
        over = kind().encode(tok, rows_of("good"), 8, False, [" ".join(["yes"] * 12)])
    assert over.targets == [1] and len(over.input_ids[0]) == 8
    assert "1 response(s) longer than max length 8 lost their end" in caplog.text


# -- a generation task among other tasks -------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, llama: Path) -> tuple[Workspace, list]:
    """chat (generation, learned), then words (classification: chat verified in full), then
    chat2 (generation, one epoch: chat and words verified by the probe)."""
    tmp = tmp_path_factory.mktemp("gen")
    ws = fast_workspace(tmp / "ws", llama)
    ws.add_task("chat", write_generation_task(tmp / "chat", n_train=32), max_new_tokens=4)
    ws.add_task("words", write_keyword_task(tmp / "words", n_train=32, n_dev=8))
    ws.add_task("chat2", write_generation_task(tmp / "chat2", seed=3), max_new_tokens=3)
    results = ws.train_next(epochs=5, lr=0.02, batch_size=8)
    results += ws.train_next(epochs=1)
    results += ws.train_next(epochs=1, verify="probe")
    return ws, results


def test_a_generation_task_trains_and_stays_identical_while_others_train(trained) -> None:
    ws, (chat, words, chat2) = trained
    status = {row["name"]: row for row in ws.status()}
    assert status["chat"]["kind"] == "generation" and status["chat"]["metric"] == "accuracy"
    assert list(chat["metrics"]) == ["accuracy", "exact_match", "rouge_l"]
    assert chat["metrics"]["rouge_l"] > 0.5  # learned: the answers follow the prompts
    assert chat["history"][-1]["loss"] < chat["history"][0]["loss"]
    (after_words,) = words["verifications"]
    assert after_words["task"] == "chat" and after_words["outcome"] == "identical"
    assert after_words["mode"] == "full" and after_words["now"] == chat["metrics"]
    checked = {v["task"]: v for v in chat2["verifications"]}
    assert set(checked) == {"chat", "words"} and all(v["identical"] for v in checked.values())
    assert {v["mode"] for v in checked.values()} == {"probe"}
    assert checked["chat"]["examples_rerun"] == 8  # a generation batch re-run bit for bit
    run = ws.ledger.trained_run(ws.ledger.task("chat").id)
    assert run.config["train"]["max_new_tokens"] == 4  # recorded: every replay decodes as much


def test_audit_replays_every_task_bit_for_bit(trained) -> None:
    ws, _ = trained
    audit = ws.audit()
    assert audit["verdict"] == "clean"
    assert {t["task"]: t["outcome"] for t in audit["tasks"]} == {
        "chat": "identical",
        "words": "identical",
        "chat2": "identical",
    }


def test_the_stored_outputs_hold_the_generated_ids_and_the_reference_logits(trained) -> None:
    import torch

    from contlearn.files import load_tensors

    ws, (chat, *_) = trained
    saved = load_tensors(ws.artifact_files("chat")["logits"])["logits"]
    ids = kind().predictions(saved)
    assert saved.shape[0] == 8 and bool((saved[:, 0] == 4).all())
    assert all(1 <= len(row) <= 4 for row in ids)
    hashes = saved[:, 5:21]
    assert bool((hashes == hashes.round()).all()) and float(hashes.max()) < 2**16
    stats = saved[:, 21:].reshape(8, -1, 3)
    real = ~stats[..., 0].isnan()
    assert bool((stats[..., 0][real] <= stats[..., 2][real]).all())  # a logit <= the row's max
    assert bool((stats[..., 2][real] <= stats[..., 1][real]).all())  # max <= log-sum-exp
    assert kind().agreement(saved, saved) == (1.0, 0.0)
    other = saved.clone()
    other[0, 1] = other[0, 1] + 1
    share, _ = kind().agreement(saved, other)
    assert share < 1.0 and not bool(kind().same_predictions(saved, other)[0])
    assert torch.equal(kind().same_predictions(saved, other)[1:], torch.ones(7, dtype=torch.bool))


# -- predict and generate ----------------------------------------------------------------------


def test_predict_prints_the_generated_text(trained) -> None:
    ws, _ = trained
    result = invoke(
        ws, "predict", "chat", "--input", "-", stdin='{"prompt": "the film was good"}\n'
    )
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert row["text"] == row["label"] == "yes good"
    assert row["probabilities"] is None and row["tokens"] >= 2


def test_predict_takes_a_prompt_as_chat_turns(trained) -> None:
    from contlearn.errors import BadData

    ws, _ = trained
    turns = [{"role": "user", "content": "the film was good"}]
    (row,) = ws.predict("chat", [{"prompt": turns}])
    assert row["text"] == ws.predict("chat", [{"prompt": "the film was good"}])[0]["text"]
    with pytest.raises(BadData, match="row 1") as info:
        ws.predict("chat", [{"prompt": [*turns, {"role": "assistant", "content": "yes"}]}])
    assert "\n" not in str(info.value)


def test_generate_answers_an_argument_and_stdin(trained) -> None:
    ws, _ = trained
    one = invoke(ws, "generate", "chat", "the film was good")
    assert one.exit_code == 0, one.output
    assert one.output.strip().splitlines()[-1] == "yes good"
    many = invoke(
        ws, "generate", "chat", "--json", stdin="this movie was bad\n\nthe film was good\n"
    )
    assert many.exit_code == 0, many.output
    answers = json.loads(many.output)["answers"]
    prompts = ["this movie was bad", "the film was good"]
    assert [a["prompt"] for a in answers] == prompts  # the blank line skipped
    alone = [ws.generate("chat", [p])[0] for p in prompts]  # a batch answers as each alone
    assert [a["text"] for a in answers] == [a["text"] for a in alone]
    assert answers[1]["text"] == "yes good" and answers[1]["tokens"] == 3  # and the stop


def test_sampling_with_a_seed_is_reproducible(trained) -> None:
    ws, _ = trained
    prompts = ["the movie was good", "bad film"] * 3
    first = ws.generate("chat", prompts, temperature=2.0, seed=7, max_new_tokens=6)
    assert first == ws.generate("chat", prompts, temperature=2.0, seed=7, max_new_tokens=6)
    assert all(a["tokens"] <= 6 for a in first)
    greedy = ws.generate("chat", prompts, top_p=1e-6, temperature=1.0, seed=3)  # the argmax
    assert [a["text"] for a in greedy] == [a["text"] for a in ws.generate("chat", prompts)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["generate", "words", "good"],
            "task 'words' is a classification task, which generates "
            "no text: use `contlearn predict words`, or give a generation task",
        ),
        (
            ["generate", "chat", "good", "--max-new-tokens", "0"],
            "max new tokens must be 1-1024, got 0",
        ),
        (
            ["generate", "chat", "good", "--max-new-tokens", "5000"],
            "max new tokens must be 1-1024, got 5000",
        ),
        (["generate", "chat", "good", "--top-p", "0"], "top-p must be in (0, 1], got 0.0"),
        (
            ["generate", "chat", "-"],
            "no prompt given: pass one as an argument, or one per line on stdin",
        ),
    ],
)
def test_bad_generate_requests_are_refused_in_one_line(trained, args, message) -> None:
    ws, _ = trained
    result = invoke(ws, *args, stdin="")
    assert result.exit_code == 1, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_an_encoder_workspace_refuses_a_generation_task(word_workspace, tmp_path: Path) -> None:
    from contlearn.errors import ConfigError

    data = write_generation_task(tmp_path / "chat", n_train=4, n_dev=2)
    with pytest.raises(ConfigError, match="a generation task needs a decoder backbone") as info:
        word_workspace.add_task("chat", data)
    assert "\n" not in str(info.value) and word_workspace.tasks() == []
