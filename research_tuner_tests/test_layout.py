"""The package's shape: lib/ imports no Dagster, imports go downward only (no cycle, hidden in a function or
not), a stage never reaches into another stage, and no module grows past about 350 lines."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "research_tuner"
STAGES = ("questions", "approaches", "training", "evaluation", "release")
MAX_LINES = 350
#: lib modules that are programs of their own (started as `python -m`), allowed to read the settings module.
ENTRY_POINTS = {"research_tuner.lib.training.distributed_worker"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _resolve(name: str) -> str | None:
    """The project module an import refers to (the deepest one that exists), or None for a third-party one."""
    while name and name not in modules():
        name = name.rpartition(".")[0]
    return name or None


@cache
def imports(module: str, *, typed: bool = False) -> frozenset[str]:
    """Project modules `module` imports anywhere in its body (functions included); `typed` adds those imported
    only for type checking."""
    tree = ast.parse(modules()[module].read_text())
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_block(node) and not typed:
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(filter(None, (_resolve(a.name) for a in node.names)))
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                target = _resolve(f"{node.module}.{alias.name}") or _resolve(node.module)
                if target:
                    found.add(target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(module)
    return frozenset(found)


def third_party_imports(module: str) -> set[str]:
    tree = ast.parse(modules()[module].read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def lib_modules() -> list[str]:
    return sorted(m for m in modules() if m.startswith("research_tuner.lib"))


def test_the_library_imports_no_dagster():
    offenders = {m: sorted(third_party_imports(m) & {"dagster", "dagster_k8s", "dagster_postgres"})
                 for m in lib_modules()}
    assert {m: d for m, d in offenders.items() if d} == {}


def test_there_is_no_import_cycle():
    """Type-checking imports count: a cycle through them breaks a type checker and hides a wrong layering."""
    graph = {m: imports(m, typed=True) for m in modules()}
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                walk(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "lib" else ""


#: What each library package may import besides itself.
ALLOWED = {"shared": set(), "teacher": {"shared"}, "generation": {"shared", "teacher"},
           "curation": {"shared", "teacher", "generation"}, "training": {"shared"},
           "evaluation": {"shared", "teacher"}, "release": {"shared"}}
#: The library packages each asset stage calls besides shared/ and teacher/: the question and approach stages
#: each have the teacher write (generation) and keep what passes (curation); the release writes the training's
#: model card.
ASSETS_READ = {"questions": {"generation", "curation"}, "approaches": {"generation", "curation"},
               "training": {"training"}, "evaluation": {"evaluation"}, "release": {"release", "training"}}


@pytest.mark.parametrize("module", lib_modules())
def test_library_imports_go_downward_only(module):
    """A stage's library imports `shared` (and `teacher` where it asks an LLM), never another stage; and the
    library reads the Dagster-free settings module only for type annotations (the settings object is passed in)."""
    layer = _layer(module)
    for target in imports(module):
        if not target.startswith("research_tuner.lib"):
            assert module in ENTRY_POINTS or target == "research_tuner", f"{module} imports {target} at run time"
            continue
        other = _layer(target)
        assert other in ALLOWED.get(layer, set()) | {layer, ""}, f"{module} imports {target}"


@pytest.mark.parametrize("stage", STAGES)
def test_an_asset_module_imports_its_own_library_shared_teacher_and_the_infrastructure(stage):
    module = f"research_tuner.{stage}.assets"
    for target in imports(module):
        parts = target.split(".")
        if parts[1] == "lib":
            assert _layer(target) in {"shared", "teacher"} | ASSETS_READ[stage], (
                f"{module} imports {target}")
        else:
            assert parts[1] not in STAGES, f"{module} imports another stage's {target}"


def test_no_module_is_much_longer_than_350_lines():
    lengths = {m: len(p.read_text().splitlines()) for m, p in modules().items()}
    assert {m: n for m, n in lengths.items() if n > MAX_LINES} == {}


def test_the_checker_sees_imports_inside_functions():
    """The cycle and layer checks read imports hidden in function bodies too (the kind a cycle hides behind)."""
    assert "research_tuner.lib.training.train" in imports("research_tuner.training.assets")
    assert "research_tuner.settings" in imports("research_tuner.lib.training.trainer", typed=True)
    assert "research_tuner.settings" not in imports("research_tuner.lib.training.trainer")


def test_the_library_has_one_package_per_stage_and_what_they_share():
    packages = {p.name for p in (PACKAGE / "lib").iterdir() if (p / "__init__.py").exists()}
    assert packages == set(ALLOWED)
