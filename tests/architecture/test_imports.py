"""Imports run one way, from the floor up, and never in a circle (CONTRIBUTING.md's map).

Read from the source, not by importing it: every ``import`` of one of our modules, at any
depth of a module (function bodies included), must point to a layer at or below the
importer's; and the imports at module level (``TYPE_CHECKING`` blocks included: a circle of
types is a circle a reader follows too) must form no circle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).parents[2]
PACKAGES = ("coeflow", "topics", "actions", "processor", "executors", "bench")

LAYERS: tuple[tuple[str, ...], ...] = (
    ("coeflow",),  # the base
    ("topics",),  # schemas
    ("actions", "processor.core"),  # the pure core
    ("executors", "processor"),  # shells
    ("coeflow.tools", "coeflow.__main__", "bench"),  # the command line and the benchmark
)
"""Each module belongs to the layer of the longest prefix it has (``processor.core.x`` is
core, ``processor.x`` a shell)."""


def layer(module: str) -> int:
    best, rank = "", -1
    for n, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, rank = prefix, n
    assert rank >= 0, f"{module} is in no layer"
    return rank


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = modules()


def imports(path: Path, *, module_level: bool) -> Iterator[tuple[str, int]]:
    """Our modules that ``path`` imports, with the line; ``module_level``: only the imports
    at the top of the module (and in its ``if TYPE_CHECKING:`` blocks), not in functions."""

    def walk(nodes: list[ast.stmt]) -> Iterator[ast.stmt]:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                yield from walk(node.body)
                continue
            yield node
            if not module_level:
                for child in ast.walk(node):
                    if child is not node and isinstance(child, ast.Import | ast.ImportFrom):
                        yield child

    for node in walk(ast.parse(path.read_text()).body):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            if name in MODULES:
                yield name, node.lineno


def test_every_import_points_down_or_sideways() -> None:
    upward = [
        f"{module} (line {line}) imports {target}"
        for module, path in MODULES.items()
        for target, line in imports(path, module_level=False)
        if layer(target) > layer(module)
    ]
    assert not upward, "imports against the layers:\n" + "\n".join(sorted(set(upward)))


def test_no_module_imports_itself_in_a_circle() -> None:
    graph = {
        module: {t for t, _ in imports(path, module_level=True) if t != module}
        for module, path in MODULES.items()
    }
    circles = []
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            circles.append(" → ".join([*trail[trail.index(module) :], module]))
            return
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, [*trail, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    assert not circles, "circles of imports:\n" + "\n".join(sorted(set(circles)))


def test_the_layers_know_every_package() -> None:
    assert {m.split(".")[0] for m in MODULES} == set(PACKAGES)
    assert (
        layer("processor.core.pipeline") < layer("processor.changes") < layer("coeflow.tools.cli")
    )
