"""The shape of the common library: the transport knows no application, and no module of
gistsync imports itself back through another."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

import gistsync

ROOT = Path(gistsync.__file__).parent
REPO = Path(__file__).parents[2]
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


def runtime_distributions() -> set[str]:
    """gistsync's dependencies and theirs, without extras: what the image installs."""
    seen: set[str] = set()
    todo = ["gistsync"]
    while todo:
        name = canonical(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        for line in metadata.requires(name) or ():
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def test_the_shipped_packages_import_only_what_the_image_installs() -> None:
    """Dev-only helpers (openapi-core contracts, test fakes) live in tests/, not in the wheel."""
    installed = runtime_distributions()
    owners = metadata.packages_distributions()
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    shipped = [REPO / path for path in packages["targets"]["wheel"]["packages"]]
    own = {path.name for path in shipped}
    wrong = []
    for package in shipped:
        for path in package.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = (
                    [node.module]
                    if isinstance(node, ast.ImportFrom) and node.module and not node.level
                    else [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else []
                )
                for name in names:
                    top = name.partition(".")[0]
                    if top in own or top in sys.stdlib_module_names:
                        continue
                    if not {canonical(d) for d in owners.get(top, [])} & installed:
                        wrong.append(f"{path.relative_to(REPO)}: {name}")
    assert wrong == []
