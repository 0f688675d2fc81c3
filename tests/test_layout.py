"""The package's shape: no import cycle, not even through a function-level or type-only import,
and dependencies pointing one way, read from the source with ``ast``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "contlearn"
# What the lower layers may never import: the use cases, the Python API and the command line.
LOWER = (
    "contlearn.kinds",
    "contlearn.model",
    "contlearn.train",
    "contlearn.eval",
    "contlearn.data",
    "contlearn.ledger",
    "contlearn.report",
    "contlearn.interop",
)
UPPER = ("contlearn.ops", "contlearn.api", "contlearn.cli", "contlearn.serve")
# The runtime the use cases share (context, verification, training one task, runs...) sits
# below them: it never imports a use case, the API, the CLI or the server.
RUNTIME = ("contlearn.runtime",)
# Model, training and evaluation code runs without a ledger, artifact files or use cases.
NO_LEDGER = ("contlearn.kinds", "contlearn.model", "contlearn.train", "contlearn.eval")
LEDGER_SIDE = ("contlearn.ledger", "contlearn.artifacts", "contlearn.files", *RUNTIME, *UPPER)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str) -> set[str]:
    """Every contlearn module ``module`` imports, anywhere in it (top level, inside functions,
    under ``if TYPE_CHECKING``); ``from pkg import name`` counts as the submodule when it is one."""
    path = MODULES[module]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node, path.name == "__init__.py")
            subs = {f"{target}.{alias.name}" for alias in node.names}
            found |= (subs & MODULES.keys()) or {target}
            found |= {target} if not subs <= MODULES.keys() else set()
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: imports_of(module) for module in MODULES}


def _cycle() -> list[str] | None:
    """One import cycle, as the list of modules around it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(GRAPH):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_graph_is_read_from_real_imports() -> None:
    assert "contlearn.ops.train_next" in GRAPH["contlearn.api"]  # a function-level import
    assert "contlearn.model.routing" in GRAPH["contlearn.model.adapted"]
    assert "contlearn.runtime.context" in GRAPH["contlearn.runtime.verify"]
    assert "contlearn.runtime.verify" in GRAPH["contlearn.ops.audit"]


def test_no_import_cycle() -> None:
    cycle = _cycle()
    assert cycle is None, " -> ".join(cycle)


def test_a_cycle_would_be_found() -> None:
    GRAPH["contlearn.errors"].add("contlearn.api")
    try:
        assert _cycle() is not None
    finally:
        GRAPH["contlearn.errors"].discard("contlearn.api")


def _inside(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _inside(m, LOWER)))
def test_lower_layers_never_import_the_use_cases_api_or_cli(module: str) -> None:
    assert not [m for m in GRAPH[module] if _inside(m, UPPER)]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _inside(m, RUNTIME)))
def test_the_runtime_never_imports_the_use_cases_api_cli_or_server(module: str) -> None:
    assert not [m for m in GRAPH[module] if _inside(m, UPPER)]


def test_lower_layers_never_import_the_runtime() -> None:
    lower = [m for m in MODULES if _inside(m, LOWER)]
    assert not [(m, n) for m in lower for n in GRAPH[m] if _inside(n, RUNTIME)]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _inside(m, NO_LEDGER)))
def test_model_training_and_evaluation_need_no_ledger(module: str) -> None:
    assert not [m for m in GRAPH[module] if _inside(m, LEDGER_SIDE)]


def test_use_cases_never_take_the_workspace() -> None:
    for module in (m for m in MODULES if _inside(m, ("contlearn.ops",))):
        assert "contlearn.api" not in GRAPH[module], module
        names = {
            n.id
            for n in ast.walk(ast.parse(MODULES[module].read_text()))
            if isinstance(n, ast.Name)
        }
        assert "Workspace" not in names, module


def test_every_module_says_what_it_owns() -> None:
    missing = [m for m, p in MODULES.items() if not ast.get_docstring(ast.parse(p.read_text()))]
    assert missing == []


def test_only_the_task_kinds_ask_what_kind_a_task_is() -> None:
    """Classification or regression (and every later kind) is decided behind contlearn.kinds:
    no other module tests ``labels is None`` or compares a problem type."""
    asks = ("labels is None", "labels is not None", 'problem_type == "', "problem_type != ")
    found = [
        (module, phrase)
        for module, path in MODULES.items()
        if not _inside(module, ("contlearn.kinds", "contlearn.data"))
        for phrase in asks
        if phrase in path.read_text()
    ]
    assert found == []
