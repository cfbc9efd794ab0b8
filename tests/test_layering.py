"""Import direction: cli -> experiments -> recipes -> training -> models -> heads -> blocks -> solvers, layers
(bench: blocks, layers).

A module may import hamburger subpackages of its own level or below, never above.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "src" / "hamburger"
LEVEL = {
    "utils": -1,
    "solvers": 0,
    "layers": 0,
    "blocks": 1,
    "heads": 2,
    "models": 3,
    "training": 4,
    "recipes": 5,
    "bench": 5,
    "experiments": 6,
    "cli": 7,
    "demo": 7,
    "__main__": 7,
}
FORBIDDEN_SIBLINGS = {
    ("solvers", "layers"),
    ("layers", "solvers"),
    ("bench", "recipes"),
    ("recipes", "bench"),
    ("bench", "training"),
}


def _hamburger_imports(path: pathlib.Path) -> set[str]:
    """Top-level hamburger subpackages imported by ``path`` (absolute and relative imports)."""
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = list(rel.parts)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level]
                target = base + (node.module.split(".") if node.module else [])
                if not target:  # "from . import x" in the package root
                    target = [alias.name for alias in node.names][:1]
            elif node.module and node.module.split(".")[0] == "hamburger":
                target = node.module.split(".")[1:] or [alias.name for alias in node.names][:1]
            else:
                continue
            if target:
                found.add(target[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names = alias.name.split(".")
                if names[0] == "hamburger" and len(names) > 1:
                    found.add(names[1])
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0].removesuffix(".py") in LEVEL)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    for target in _hamburger_imports(path):
        if target not in LEVEL:
            continue
        assert (own, target) not in FORBIDDEN_SIBLINGS, f"{path.name}: {own} must not import {target}"
        assert LEVEL[target] <= LEVEL[own], f"{path.relative_to(PACKAGE)} ({own}) imports {target}, a higher layer"


# --------------------------------------------------------------------------- import cycles
# Every import statement counts, wherever it sits (module level, inside a function or a method:
# a lazy import still runs, and a cycle through it is a cycle the next refactor turns into an
# ImportError). Only ``if TYPE_CHECKING:`` blocks are left out: they never run.


def _module_name(path: pathlib.Path, root: pathlib.Path, package: str) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package, *parts])


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST):
    """Every Import / ImportFrom in ``tree``, at any depth, except under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def import_graph(root: pathlib.Path, package: str = "hamburger") -> dict[str, set[str]]:
    """Module import graph of the package in folder ``root`` (named ``package``): module -> modules it imports.

    Relative imports are resolved against the importing module (``__init__.py`` is its package);
    ``from pkg import name`` is an edge to ``pkg.name`` when that is a module of the package, else to ``pkg``.
    Only edges between modules of the package are kept.
    """
    paths = sorted(root.rglob("*.py"))
    modules = {_module_name(path, root, package): path for path in paths}
    graph: dict[str, set[str]] = {name: set() for name in modules}

    def resolve(name: str) -> str | None:
        # "hamburger.models.zoo.create_model" is no module: walk up to the longest module prefix.
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = name.split(".")
                    drop = node.level - 1 if is_package else node.level
                    if drop >= len(base):
                        raise ValueError(f"{path}: relative import beyond the top-level package")
                    base = base[: len(base) - drop] if drop else base
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets = []
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    targets.append(sub if sub in modules else module)
            for target in targets:
                if target.split(".")[0] != package:
                    continue
                resolved = resolve(target)
                if resolved is not None and resolved != name:
                    graph[name].add(resolved)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle path ``[a, b, ..., a]`` per strongly connected component with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[set[str]] = []
    counter = 0

    for start in sorted(graph):  # iterative Tarjan: no recursion limit on deep graphs
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)

    cycles = []
    for component in components:
        first = min(component)
        # shortest path first -> ... -> first inside the component (breadth-first)
        parents: dict[str, str] = {}
        frontier = [first]
        found = None
        while frontier and found is None:
            following = []
            for node in frontier:
                for child in sorted(graph[node] & component):
                    if child == first:
                        found = node
                        break
                    if child not in parents:
                        parents[child] = node
                        following.append(child)
                if found is not None:
                    break
            frontier = following
        path = [first]
        node = found
        while node != first:
            path.append(node)
            node = parents[node]
        path.append(first)
        cycles.append([first, *reversed(path[1:-1]), first])
    return cycles


def _format(cycles: list[list[str]]) -> str:
    return "; ".join(" -> ".join(cycle) for cycle in cycles)


def test_no_import_cycles():
    cycles = find_cycles(import_graph(PACKAGE))
    assert not cycles, f"import cycles between hamburger modules: {_format(cycles)}"


def _plant(root: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
    for relative, text in files.items():
        path = root / "pkg" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "pkg"


def test_cycle_check_catches_a_planted_lazy_cycle(tmp_path):
    package = _plant(
        tmp_path,
        {
            "__init__.py": "",
            "a/__init__.py": "from .one import f\n",
            "a/one.py": "def f():\n    from ..b import two\n    return two\n",
            "b/__init__.py": "",
            "b/two.py": "import pkg.c.three\n",
            "c/__init__.py": "",
            "c/three.py": "class K:\n    def m(self):\n        from pkg.a import one\n",
            "d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import one\n",
        },
    )
    graph = import_graph(package, "pkg")
    assert graph["pkg.a"] == {"pkg.a.one"}
    assert graph["pkg.a.one"] == {"pkg.b.two"}  # `from ..b import two`: the submodule, not pkg.b
    assert graph["pkg.d"] == set()  # TYPE_CHECKING imports never run
    assert find_cycles(graph) == [["pkg.a.one", "pkg.b.two", "pkg.c.three", "pkg.a.one"]]
    assert "pkg.a.one -> pkg.b.two -> pkg.c.three -> pkg.a.one" in _format(find_cycles(graph))


def test_cycle_check_passes_an_acyclic_package_and_sees_a_two_module_cycle(tmp_path):
    package = _plant(
        tmp_path,
        {
            "__init__.py": "from . import x\n",
            "x.py": "from .y import g\n",
            "y.py": "import os\ndef g():\n    return os\n",
        },
    )
    assert find_cycles(import_graph(package, "pkg")) == []
    (package / "y.py").write_text("def g():\n    from pkg import x\n    return x\n", encoding="utf-8")
    assert find_cycles(import_graph(package, "pkg")) == [["pkg.x", "pkg.y", "pkg.x"]]
