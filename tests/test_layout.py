"""The package's import structure: the layers the design names, without import circles.

The graph is read from the source (every ``import`` statement, including those inside functions;
``if TYPE_CHECKING:`` blocks excluded, as they never run), so a lazy import that closes a loop
counts as much as a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ddcmh_core"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _runtime_imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    found: set[str] = set()
    package_parts = module.split(".") if is_package else module.split(".")[:-1]

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking_block(child):
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package_parts[: len(package_parts) - child.level + 1]
                    target = ".".join([*base, child.module] if child.module else base)
                else:
                    target = child.module or ""
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in child.names)
            visit(child)

    visit(tree)
    return {name for name in found if name.startswith("ddcmh_core")}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported = _runtime_imports(ast.parse(path.read_text()), name, path.name == "__init__.py")
        edges[name] = {target for target in imported if target in modules and target != name}
    return edges


def _reachable(graph: dict[str, set[str]], start: str, within: set[str] | None = None) -> set[str]:
    seen: set[str] = set()
    stack = [start]
    while stack:
        for target in graph.get(stack.pop(), set()):
            if target not in seen and (within is None or target in within):
                seen.add(target)
                stack.append(target)
    return seen


def test_the_graph_is_read_from_the_source(graph: dict[str, set[str]]) -> None:
    assert "ddcmh_core.plugins" in graph["ddcmh_core.model_file"]
    assert "ddcmh_core.hasher_file" in graph["ddcmh_core.hasher"]  # the lazy import inside save()


def test_hasher_registry_and_hook_specs_import_no_loop(graph: dict[str, set[str]]) -> None:
    trio = {"ddcmh_core.hasher", "ddcmh_core.plugins", "ddcmh_core.hookspecs"}
    for module in trio:
        assert module not in _reachable(graph, module, within=trio), f"{module} imports itself back"
    assert "ddcmh_core.plugins" not in graph["ddcmh_core.hasher"]


def test_the_model_file_format_does_not_import_the_methods(graph: dict[str, set[str]]) -> None:
    methods = {name for name in graph if name.startswith("ddcmh_core.methods")}
    assert not graph["ddcmh_core.model_file"] & methods
    assert not graph["ddcmh_core.hasher_file"] & methods


def test_no_method_imports_tuning(graph: dict[str, set[str]]) -> None:
    for name in (name for name in graph if name.startswith("ddcmh_core.methods")):
        assert "ddcmh_core.tuning" not in _reachable(graph, name), f"{name} reaches ddcmh_core.tuning"


def test_the_engine_knows_no_method(graph: dict[str, set[str]]) -> None:
    for name in (name for name in graph if name.startswith("ddcmh_core.engine")):
        assert not {target for target in graph[name] if target.startswith("ddcmh_core.methods")}, name
