"""Baselines describe themselves: ``compare`` and the report ask a baseline's descriptor, never
its name, so a baseline registered from outside is listed, run and reported as it is, and no
module outside ``ops/baselines`` branches on a baseline's name (read with ``ast``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from contlearn.api import Workspace
from contlearn.errors import ContlearnError
from contlearn.ops.baselines import registry, results
from contlearn.ops.baselines.base import Baseline, Job, Recorded
from contlearn.ops.compare import check_methods
from contlearn.report.figures import PlotStyle
from tests.conftest import write_keyword_task

PACKAGE = Path(__file__).resolve().parent.parent / "contlearn"
OWNERS = ("ops/baselines/", "ops/full_finetune.py")  # the baselines and the sequential runner


def _baseline_names(adapters: bool) -> set[str]:
    return {
        name
        for b in registry.registered()
        if adapters or b is not registry.ADAPTERS
        for name in b.names
    }


def _named(node: ast.AST, names: set[str]) -> bool:
    """Whether ``node`` is one of ``names`` as a string, or a tuple, list or set holding one."""
    if isinstance(node, ast.Constant):
        return node.value in names
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_named(e, names) for e in node.elts)
    return False


def _operands(node: ast.AST) -> list[ast.AST]:
    """What ``node`` compares, matches or keys a table by."""
    if isinstance(node, ast.Compare):
        return [node.left, *node.comparators]
    if isinstance(node, ast.MatchValue):
        return [node.value]
    if isinstance(node, ast.Dict):
        return [k for k in node.keys if k is not None]
    return []


def _branches_on(tree: ast.AST, names: set[str]) -> list[int]:
    """Lines that compare with a name, match one, or key a table by one."""
    return [
        node.lineno
        for node in ast.walk(tree)
        if any(_named(operand, names) for operand in _operands(node))
    ]


def _modules() -> dict[str, ast.AST]:
    return {
        str(p.relative_to(PACKAGE)): ast.parse(p.read_text())
        for p in sorted(PACKAGE.rglob("*.py"))
        if not str(p.relative_to(PACKAGE)).startswith(OWNERS)
    }


def test_no_module_outside_the_baselines_branches_on_a_baseline_name() -> None:
    """The adapters' name is also every ``train-next`` run's method, which the ledger asks
    about; every other name is the baselines' own."""
    names = _baseline_names(adapters=False)
    found = {m: lines for m, tree in _modules().items() if (lines := _branches_on(tree, names))}
    assert found == {}


@pytest.mark.parametrize("module", ["ops/compare.py", "report/content.py", "report/figures.py"])
def test_compare_and_the_report_name_no_method_at_all(module: str) -> None:
    names = _baseline_names(adapters=True)
    tree = ast.parse((PACKAGE / module).read_text())
    named = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in names]
    assert named == []


def test_the_check_would_find_a_branch() -> None:
    tree = ast.parse('if name in ("ewc", "replay"):\n    pass\nSTYLES = {"joint": 1}\n')
    assert _branches_on(tree, _baseline_names(adapters=False)) == [1, 3]


def test_every_name_a_comparison_was_recorded_under_has_a_style() -> None:
    styles = registry.plot_styles()
    assert styles["full-finetune"] == styles["sequential"] == PlotStyle("--", "s")
    assert set(styles) >= {"adapter", "ewc", "replay", "joint", "separate"}


def test_a_taken_name_is_refused() -> None:
    with pytest.raises(ContlearnError, match="full-finetune"):
        registry.register(
            Baseline("full-finetune", "x", PlotStyle("-", "o"), results.per_task, lambda *_: 0)
        )


def _constant(baseline: Baseline, recorded: Recorded) -> dict:
    """A trivial baseline's results: 0.5 on every task at every step, nothing stored."""
    tasks = recorded.tasks
    cells = {(later.id, t.id): 0.5 for i, later in enumerate(tasks) for t in tasks[: i + 1]}
    zeros = [0] * len(tasks)
    stored = baseline.memory(0, zeros, zeros)
    return results.method_entry(baseline.label, tasks, cells, None, [], zeros, stored, zeros)


@pytest.fixture()
def constant(monkeypatch: pytest.MonkeyPatch) -> list[Job]:
    ran: list[Job] = []
    baseline = Baseline(
        "constant",
        "Always one half",
        PlotStyle("-", "x"),
        collect=_constant,
        memory=registry.kept_bytes,
        run=ran.append,
        needs_earlier=True,
    )
    monkeypatch.setitem(registry.BASELINES, baseline.name, baseline)
    return ran


def test_a_registered_baseline_is_listed_run_and_reported(
    constant: list[Job], workspace: Workspace, tmp_path: Path
) -> None:
    assert check_methods(("all",), 2)[-1] == "constant"
    assert "constant" not in check_methods(("all",), 1)  # it needs an earlier task
    for name in ("a", "b"):
        workspace.add_task(name, write_keyword_task(tmp_path / name, n_train=16, n_dev=8))
    workspace.train_next(all_tasks=True, epochs=1)
    out = workspace.compare(methods=("adapter", "constant"))
    assert [job.tasks for job in constant] == [
        [workspace.ledger.task("a"), workspace.ledger.task("b")]
    ]
    method = out["methods"]["constant"]
    assert method["label"] == "Always one half"
    assert method["matrix"] == [[0.5, None], [0.5, 0.5]]
    assert method["summary"]["bwt"] == 0.0
    again, files = workspace.rebuild_report(out=tmp_path / "report")
    assert again["methods"]["constant"]["matrix"] == method["matrix"]
    assert "Always one half" in files["md"].read_text()
    workspace.compare(
        methods=("adapter", "constant")
    )  # reused: its run is asked again, with nothing left
    assert len(constant) == 2
