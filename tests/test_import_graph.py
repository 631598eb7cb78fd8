"""The import graph of flanjax has no cycle, and data code never imports model code.

Every `import flanjax...` / `from flanjax... import ...` counts, at any level
(inside functions too), except under `if TYPE_CHECKING:`. `tasks/` installs as
`flanjax.tasks` (setup.py) and is read under that name. `from flanjax.data
import heldout` is an edge to module `flanjax.data.heldout`; a name that is not
a module is an edge to the module it comes from.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"flanjax": ROOT / "flanjax", "flanjax.tasks": ROOT / "tasks"}
MODEL_CODE = (
    "flanjax.models",
    "flanjax.train_step",
    "flanjax.trainer",
    "flanjax.inference",
    "flanjax.evaluation",
    "flanjax.checkpointing",
)


def module_files() -> dict[str, Path]:
    """Module name -> file, for every .py under flanjax/ and tasks/."""
    out = {}
    for package, root in SOURCES.items():
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join([package, *parts])] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST, module: str, is_package: bool):
    """(module name, imported names) of every import under `node`, skipping TYPE_CHECKING."""
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        for child in node.orelse:
            yield from _imports(child, module, is_package)
        return
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name, ()
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            parts = module.split(".")
            keep = len(parts) - node.level + (1 if is_package else 0)
            base = ".".join(parts[:keep] + ([base] if base else []))
        yield base, tuple(a.name for a in node.names)
    for child in ast.iter_child_nodes(node):
        yield from _imports(child, module, is_package)


def import_graph() -> dict[str, set[str]]:
    """Module -> the flanjax modules it imports."""
    files = module_files()
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        edges = set()
        for base, names in _imports(tree, module, path.name == "__init__.py"):
            if base != "flanjax" and not base.startswith("flanjax."):
                continue
            subs = [f"{base}.{n}" for n in names if f"{base}.{n}" in files]
            if subs:
                edges.update(subs)
            if len(subs) < len(names) or not names:
                edges.add(base)
        edges.discard(module)
        graph[module] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as [m0, m1, ..., m0], or None."""
    state: dict[str, int] = {}  # 1: on the DFS stack, 2: done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return [*stack[stack.index(n) :], n]
            if n not in state and (cycle := visit(n)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_graph_resolves_submodules_and_skips_type_checking():
    graph = import_graph()
    assert "flanjax.data.registry" in graph["flanjax.data.mixing"]  # `from flanjax.data import`
    assert "flanjax.data" not in graph["flanjax.data.mixing"]
    assert "flanjax.data.templates" in graph["flanjax.data.registry"]  # `from x.y import Name`
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from flanjax import trainer\n"
        "def f():\n    import flanjax.models.t5\n"
    )
    got = [b for b, _ in _imports(tree, "flanjax.x", False)]
    assert got == ["typing", "flanjax.models.t5"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_data_code_never_imports_model_code():
    graph = import_graph()
    bad = {
        (m, n)
        for m, edges in graph.items()
        if m == "flanjax.data" or m.startswith("flanjax.data.")
        for n in edges
        if any(n == p or n.startswith(p + ".") for p in MODEL_CODE)
    }
    assert not bad, f"data modules import model code: {sorted(bad)}"
