"""The shape of the common library: the transport knows no application, and no module of
gistsync imports itself back through another."""

from __future__ import annotations

import ast
from pathlib import Path

import gistsync

ROOT = Path(gistsync.__file__).parent
# What only the application knows: its messages, its routes, its settings.
APPLICATION = ("gistsync.contracts", "gistsync.routing", "gistsync.broker", "gistsync.settings")


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("gistsync")}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def graph() -> dict[str, set[str]]:
    return {module_name(path): imports(path) for path in ROOT.rglob("*.py")}


def test_the_transport_imports_nothing_of_the_application() -> None:
    for module, used in graph().items():
        if module.startswith("gistsync.transport"):
            assert not {u for u in used if u.startswith(APPLICATION)}, module


def test_no_import_cycle() -> None:
    edges = graph()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " → ".join((*path, module))
        for used in edges.get(module, ()):
            if used in edges:
                visit(used, (*path, module))

    for module in edges:
        visit(module, ())
