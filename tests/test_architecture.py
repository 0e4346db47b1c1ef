"""The layering DESIGN.md draws, written as data once and checked on every source file.

``LAYERS`` says, for each unit of the package (a subpackage, or a top-level module), which
other units it may import. Arrows point one way: the seam (``_backend``) at the bottom,
then the kernel, the supervisors, the pure message/state types, the adapters (providers,
store), the engine's actors, the runtime that wires them, and the command line on top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import promptactors

PACKAGE = Path(promptactors.__file__).parent

#: unit -> the units of ours it may import (besides itself).
LAYERS: dict[str, frozenset[str]] = {
    "_exceptions": frozenset(),
    "_version": frozenset(),
    "_resources": frozenset(),
    "_backend": frozenset({"_exceptions"}),
    "kernel": frozenset({"_backend", "_exceptions"}),
    "supervisors": frozenset({"kernel", "_exceptions"}),
    "messages": frozenset({"state", "_exceptions"}),
    "state": frozenset({"messages", "_exceptions"}),
    "providers": frozenset({"_backend", "_exceptions"}),
    "store": frozenset({"_backend", "messages", "_resources", "_exceptions"}),
    "actors": frozenset(
        {"kernel", "supervisors", "messages", "state", "providers", "store", "_exceptions"}
    ),
    "_prompt_files": frozenset({"messages", "_exceptions"}),
    "_settings": frozenset({"_exceptions"}),
    "runtime": frozenset(
        {
            "kernel",
            "supervisors",
            "messages",
            "state",
            "providers",
            "store",
            "actors",
            "_settings",
            "_exceptions",
        }
    ),
    "_load": frozenset({"kernel", "messages", "runtime", "_exceptions"}),
    "testing": frozenset({"kernel", "providers", "store", "runtime", "_exceptions"}),
    "_chaos": frozenset(
        {
            "kernel",
            "messages",
            "providers",
            "store",
            "runtime",
            "_load",
            "testing",
            "_backend",
            "_settings",
            "_exceptions",
        }
    ),
    "__init__": frozenset(
        {
            "kernel",
            "messages",
            "actors",
            "runtime",
            "_exceptions",
            "_load",
            "_chaos",
            "_prompt_files",
            "_settings",
            "_version",
        }
    ),
    # The command line talks to the public API only (checked below, name by name).
    "cli": frozenset({"__init__", "store", "providers", "messages", "state", "testing"}),
    "__main__": frozenset({"cli"}),
}

#: The concurrency libraries: only the seam imports them.
BACKEND_LIBRARIES = frozenset({"trio", "asyncio", "sniffio", "outcome"})
#: What the pure packages must not touch (no I/O, no concurrency).
IMPURE = frozenset({"trio", "anyio", "asyncio", "httpx", "asyncpg", "sqlite3", "structlog"})


def _unit(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    """Every module a file imports, relative imports resolved to absolute names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolve against the file's package
                parts = path.relative_to(PACKAGE.parent).with_suffix("").parts[: -node.level]
                module = ".".join((*parts, module)) if module else ".".join(parts)
            found.add(module)
    return found


def _our_unit(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "promptactors":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_unit_of_the_package_has_a_row_in_the_table() -> None:
    """A new subpackage or top-level module must say where it sits."""
    assert {_unit(path) for path in SOURCES} <= set(LAYERS)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_one_way(path: Path) -> None:
    """Each file imports only the units its layer allows."""
    unit = _unit(path)
    allowed = LAYERS[unit] | {unit}
    ours = {u for m in _imports(path) if (u := _our_unit(m)) is not None}
    assert ours <= allowed, f"{unit} may not import {sorted(ours - allowed)}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_backend_seam_imports_trio_asyncio_sniffio_outcome(path: Path) -> None:
    """trio, asyncio, sniffio and outcome are reached through ``promptactors._backend`` only."""
    if _unit(path) == "_backend":
        return
    direct = {m for m in _imports(path) if m.split(".")[0] in BACKEND_LIBRARIES}
    assert not direct, f"imports {sorted(direct)}: go through promptactors._backend"


@pytest.mark.parametrize(
    "path",
    [p for p in SOURCES if _unit(p) in {"state", "messages"}],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_pure_packages_do_no_io(path: Path) -> None:
    """state/ and messages/ do no I/O and no concurrency: pure functions and frozen types."""
    assert not {m.split(".")[0] for m in _imports(path)} & IMPURE


@pytest.mark.parametrize(
    "path",
    [p for p in SOURCES if _unit(p) == "cli"],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_the_command_line_imports_no_private_module(path: Path) -> None:
    """The CLI is a user of the public API: no ``promptactors._x`` or ``pkg._x`` import."""
    private = [
        m
        for m in _imports(path)
        if _our_unit(m) not in (None, "cli")
        and any(part.startswith("_") for part in m.split(".")[1:])
    ]
    assert private == []


def test_nothing_imports_the_command_line() -> None:
    """The CLI sits on top: no library module imports promptactors.cli."""
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in SOURCES
        if _unit(path) not in {"cli", "__main__"}
        and any(_our_unit(m) == "cli" for m in _imports(path))
    ]
    assert offenders == []


def test_no_module_holds_two_ideas() -> None:
    """No source module grows past 600 lines (STYLE.md: a sign it holds two ideas)."""
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in SOURCES
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 600
    }
    assert long == {}
