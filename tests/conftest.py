"""Shared fixtures: tiny random backbones saved as real model folders, and workspaces on them."""

from __future__ import annotations

import json
import shutil
import string
from pathlib import Path

import pytest

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [
    "good",
    "bad",
    "great",
    "awful",
    "movie",
    "film",
    "the",
    "a",
    "is",
    "was",
    "not",
    "very",
    "yes",
    "no",
    "cat",
    "dog",
    "sport",
    "news",
    "tech",
    "money",
    "same",
    "other",
    "true",
    "false",
    "and",
    "it",
    "this",
    "that",
]


def tiny_vocab() -> list[str]:
    letters = list(string.ascii_lowercase + string.digits)
    return SPECIAL + WORDS + letters + [f"##{c}" for c in letters] + list(".,!?'\"-")


def save_tiny_backbone(folder: Path, kind: str = "bert", seed: int = 0) -> Path:
    """A randomly initialised tiny encoder plus a WordPiece tokenizer, saved like a hub model."""
    import torch
    from transformers import (
        AutoModel,
        BertConfig,
        BertTokenizerFast,
        DistilBertConfig,
        ElectraConfig,
        RobertaConfig,
    )

    folder.mkdir(parents=True, exist_ok=True)
    vocab = tiny_vocab()
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    common = dict(vocab_size=len(vocab), max_position_embeddings=160)
    configs = {
        "bert": lambda: BertConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            **common,
        ),
        "roberta": lambda: RobertaConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            pad_token_id=0,
            **common,
        ),
        "electra": lambda: ElectraConfig(
            hidden_size=32,
            embedding_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            **common,
        ),
        "distilbert": lambda: DistilBertConfig(
            dim=32, n_layers=2, n_heads=2, hidden_dim=64, **common
        ),
    }
    torch.manual_seed(seed)
    AutoModel.from_config(configs[kind]()).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_family_backbone(folder: Path, label: str, pad: bool = True) -> Path:
    """A tiny random model of ``label`` (tests/family_configs.py, any built-in family, decoders
    too) with the tiny WordPiece tokenizer, saved like a hub model; ``pad=False`` saves a
    tokenizer without a pad token."""
    from transformers import BertTokenizerFast

    from tests.family_configs import tiny_model

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(tiny_vocab()) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    if not pad:
        tokenizer.pad_token = None
    tiny_model(label).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_causal_backbone(folder: Path, label: str, **save) -> Path:
    """A tiny random causal LM of decoder family ``label`` (its output projection saved too:
    ``lm_head.weight`` for an untied one) with the tiny WordPiece tokenizer, saved like a hub
    model; ``save``: ``save_pretrained``'s options (``max_shard_size`` for a sharded folder)."""
    from transformers import BertTokenizerFast

    from tests.family_configs import tiny_causal_lm

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {word: i for i, word in enumerate(tiny_vocab())}
    BertTokenizerFast(vocab=vocab, do_lower_case=True).save_pretrained(folder)
    tiny_causal_lm(label).save_pretrained(folder, **save)
    return folder


def tiny_adapted(num_layers: int = 2, hidden: int = 16):
    """A random BERT of ``num_layers`` layers, width ``hidden``, with its sites wrapped (no
    files, no ledger)."""
    import torch
    from transformers import AutoModel, BertConfig

    from contlearn.model.adapted import AdaptedModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50,
        hidden_size=hidden,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        intermediate_size=24,
    )
    return AdaptedModel(AutoModel.from_config(config))


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_backbone(tmp_path_factory.mktemp("backbone") / "tiny-bert")


@pytest.fixture(scope="session")
def word_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT with a WordPiece tokenizer that knows the tiny vocabulary, built from the
    vocabulary itself (``BertTokenizerFast(vocab_file=...)`` loads no vocabulary under
    transformers 5: ``tiny_backbone``'s tokenizer reads every word as [UNK]). The kinds that
    point at words (tagging, extractive QA) need to tell them apart."""
    from transformers import BertTokenizerFast

    folder = save_tiny_backbone(tmp_path_factory.mktemp("words") / "tiny-bert", seed=1)
    vocab = {word: i for i, word in enumerate(tiny_vocab())}
    BertTokenizerFast(vocab=vocab, do_lower_case=True).save_pretrained(folder)
    return folder


# a base reference set a generation test measures in milliseconds (the built-in set: its own test)
SMALL_BASE_SET = {
    "texts": ["the movie was very good", "this film was bad"],
    "instructions": ["the film", "good or bad"],
    "max_new_tokens": 4,
}


def fast_workspace(root: Path, backbone: Path):
    """An initialised workspace at ``root`` on ``backbone``, with fast training defaults and a
    small base reference set."""
    from contlearn.api import Workspace

    Workspace.create(root, backbone=str(backbone))
    text = (root / "tasks.toml").read_text()
    text = text.replace("epochs = 3", "epochs = 2").replace("max_length = 128", "max_length = 32")
    (root / "tasks.toml").write_text(text.replace("lr = 0.001", "lr = 0.005"))
    (root / "base_reference.json").write_text(json.dumps(SMALL_BASE_SET))
    return Workspace.open(root)


@pytest.fixture()
def word_workspace(tmp_path: Path, word_backbone: Path):
    """``workspace`` on ``word_backbone``."""
    return fast_workspace(tmp_path / "ws", word_backbone)


@pytest.fixture()
def workspace(tmp_path: Path, tiny_backbone: Path):
    """An initialised workspace on the tiny backbone, with fast training defaults."""
    return fast_workspace(tmp_path / "ws", tiny_backbone)


def settled(ws) -> Path:
    """``ws``'s root once its ledger connections are closed (the last one folds SQLite's WAL
    into the database file), ready to be copied by :func:`copy_workspace`."""
    ws.ledger.engine.dispose()
    return ws.root


def copy_workspace(source: Path, root: Path):
    """A copy at ``root`` of the workspace at ``source`` (tasks.toml, ledger, artifacts), open.

    A fixture that trains the same workspace for several tests builds it once and hands each
    test a copy: the ledger records the backbone and each task's data folder by absolute path,
    and those stay where they are (shared, so a test that edits them builds its own)."""
    from contlearn.api import Workspace

    shutil.copytree(source, root)
    return Workspace.open(root)


def write_keyword_task(
    folder: Path,
    *,
    n_train: int = 96,
    n_dev: int = 32,
    seed: int = 0,
    keywords: dict[str, str] | None = None,
) -> Path:
    """A csv task folder whose label is decided by a keyword in the text (learnable)."""
    import csv
    import random

    keywords = keywords or {"pos": "good", "neg": "bad"}
    rng = random.Random(seed)
    fillers = ["the", "movie", "film", "was", "very", "cat", "dog", "this", "it", "is"]
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", n_train), ("dev", n_dev)):
        with open(folder / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            for _ in range(count):
                label = rng.choice(sorted(keywords))
                words = rng.sample(fillers, 4) + [keywords[label]]
                rng.shuffle(words)
                writer.writerow([" ".join(words), label])
    return folder


def add_two_tasks(ws, data: Path):
    """``ws`` with two keyword tasks registered, a then b, their folders under ``data``."""
    a = write_keyword_task(data / "a", seed=1)
    b = write_keyword_task(data / "b", seed=2, keywords={"x": "cat", "y": "dog", "z": "news"})
    ws.add_task("a", a)
    ws.add_task("b", b)
    return ws


@pytest.fixture()
def two_tasks(workspace, tmp_path: Path):
    """The workspace with two keyword tasks registered, a then b."""
    return add_two_tasks(workspace, tmp_path)


@pytest.fixture(scope="session")
def trained_once(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    """The root of ``two_tasks``'s workspace with both tasks trained, built once a session."""
    base = tmp_path_factory.mktemp("trained")
    ws = add_two_tasks(fast_workspace(base / "ws", tiny_backbone), base)
    ws.train_next(all_tasks=True, epochs=1)
    return settled(ws)


@pytest.fixture()
def trained(trained_once: Path, tmp_path: Path):
    """A copy of ``two_tasks`` with both tasks trained (one epoch each), at ``tmp_path / "ws"``;
    the tasks' data folders are shared: read them, never edit them."""
    return copy_workspace(trained_once, tmp_path / "ws")


def invoke(ws, *args: str, stdin: str | None = None):
    """``contlearn ARGS -w WS`` in this process, through click's runner."""
    from click.testing import CliRunner

    from contlearn.cli import main

    return CliRunner().invoke(main, [*args, "-w", str(ws.root)], input=stdin)


@pytest.fixture(scope="session")
def pg_server():
    from tests.pg import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path: Path) -> str:
    """A fresh, empty ledger database: an SQLite file, or a database on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    from tests.pg import create_database

    server = request.getfixturevalue("pg_server")
    return create_database(server, f"t_{abs(hash(request.node.nodeid)) % 10**10}")


# Tests that start other processes (the CLI, torchrun, a built wheel, signals, crashes) or a
# PostgreSQL server: marked ``slow``. `make test` and CI run every test; `make test-fast` (or
# ``pytest -m "not slow"``) leaves these out while working.
SLOW_MODULES = {
    "test_wheel",
    "test_distributed",
    "test_crash",
    "test_signals",
    "test_workers",
    "test_faults",
    "test_gpu_check",
}


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        params = getattr(getattr(item, "callspec", None), "params", {})
        on_postgres = "pg_server" in item.fixturenames or params.get("db_url") == "postgresql"
        if module in SLOW_MODULES or on_postgres:
            item.add_marker(pytest.mark.slow)
