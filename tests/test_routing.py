"""Prediction without a task name: routing statistics written with each task, the router over
them, ``predict`` with the task ``auto`` through the API and the command line, and the audit of
the routing files."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from tests.conftest import copy_workspace, fast_workspace, invoke, settled

FILM = ["good", "bad", "great", "awful", "movie", "film", "very", "not"]
PETS = ["cat", "dog", "sport", "news", "tech", "money", "same", "other"]


def write_words_task(folder: Path, words: list[str], keywords: dict[str, str], seed: int) -> Path:
    """A csv task whose texts use only ``words``; the label is the keyword a text holds."""
    rng = random.Random(seed)
    fillers = [w for w in words if w not in keywords.values()]
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", 64), ("dev", 24)):
        with open(folder / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            for _ in range(count):
                label = rng.choice(sorted(keywords))
                text = rng.choices(fillers, k=rng.randint(3, 6)) + [keywords[label]]
                rng.shuffle(text)
                writer.writerow([" ".join(text), label])
    return folder


def dev_texts(folder: Path) -> list[str]:
    with open(folder / "dev.csv", encoding="utf-8") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def routed_once(tmp_path_factory: pytest.TempPathFactory, word_backbone: Path) -> Path:
    """A workspace with two tasks of disjoint vocabularies, trained; the routing files of the
    first as they were before the second trained are kept beside it."""
    base = tmp_path_factory.mktemp("routing")
    ws = fast_workspace(base / "ws", word_backbone)
    ws.add_task("film", write_words_task(base / "film", FILM, {"pos": "good", "neg": "bad"}, 1))
    ws.add_task("pets", write_words_task(base / "pets", PETS, {"a": "cat", "b": "dog"}, 2))
    ws.train_next(epochs=1)
    first = {p.name: p.read_bytes() for p in ws.task_dir("film").rglob("routing.*")}
    (base / "before.json").write_text(json.dumps({k: v.hex() for k, v in first.items()}))
    ws.train_next(epochs=1)
    return settled(ws)


@pytest.fixture()
def routed(routed_once: Path, tmp_path: Path):
    return copy_workspace(routed_once, tmp_path / "ws")


def test_disjoint_vocabularies_route_perfectly(routed) -> None:
    film, pets = (Path(routed.ledger.task(n).data_source) for n in ("film", "pets"))
    rows = [{"text": t} for t in dev_texts(film)] + [{"text": t} for t in dev_texts(pets)]
    truth = ["film"] * len(dev_texts(film)) + ["pets"] * len(dev_texts(pets))
    routes = routed.route(rows)
    assert [r["task"] for r in routes] == truth
    assert all(0.5 < r["confidence"] <= 1.0 for r in routes)
    results = routed.predict(None, rows)
    assert [r["task"] for r in results] == truth
    named = routed.predict("film", rows[:3])
    assert [r["label"] for r in results[:3]] == [r["label"] for r in named]
    assert {"confidence", "label", "probabilities"} <= set(results[0])


def test_routing_file_of_an_earlier_task_never_changes(routed_once: Path, routed) -> None:
    before = json.loads((routed_once.parent / "before.json").read_text())
    after = {p.name: p.read_bytes().hex() for p in routed.task_dir("film").rglob("routing.*")}
    assert set(before) == {"routing.safetensors", "routing.json"}
    assert after == before
    files = routed.artifact_files("film")
    assert files["routing"].read_bytes().hex() == before["routing.safetensors"]
