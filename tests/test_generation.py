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
    config = AutoConfig.for_model("llama", **{**values, "tie_word_embeddings": True})
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


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, llama: Path) -> tuple[Workspace, list]:
    """chat (generation), then words (classification), then chat2 (generation, verified by
    the probe): the runs' results."""
    tmp = tmp_path_factory.mktemp("gen")
    ws = fast_workspace(tmp / "ws", llama)
    ws.add_task("chat", write_generation_task(tmp / "chat"), max_new_tokens=4)
    ws.add_task("words", write_keyword_task(tmp / "words", n_train=32, n_dev=8))
    ws.add_task("chat2", write_generation_task(tmp / "chat2", seed=3), max_new_tokens=3)
    results = ws.train_next(epochs=2)
    results += ws.train_next(epochs=1)
    results += ws.train_next(epochs=1, verify="probe")
    return ws, results
