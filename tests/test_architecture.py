"""The layering DESIGN.md draws, checked on the source: what may import what."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import promptactors

PACKAGE = Path(promptactors.__file__).parent


def _imports(path: Path) -> set[str]:
    """Top-level module names and promptactors subpackages a file imports."""
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


def _files(*subpackages: str) -> list[Path]:
    return sorted(p for sub in subpackages for p in (PACKAGE / sub).rglob("*.py"))


@pytest.mark.parametrize("path", _files("actors", "supervisors"), ids=lambda p: p.name)
def test_kernel_code_reaches_trio_and_asyncio_only_through_the_backend_seam(path: Path) -> None:
    """Only actors/_backend.py imports trio or asyncio; the kernel runs on either backend."""
    if path.name == "_backend.py":
        return
    direct = {m for m in _imports(path) if m.split(".")[0] in {"trio", "asyncio"}}
    assert not direct, f"{path.name} imports {direct}: go through actors/_backend.py"


@pytest.mark.parametrize("path", _files("state", "messages"), ids=lambda p: p.name)
def test_pure_packages_import_only_each_others_types(path: Path) -> None:
    """state/ and messages/ do no I/O and know nothing of actors, stores or providers."""
    ours = {m for m in _imports(path) if m.startswith("promptactors.")}
    allowed = ("promptactors.state", "promptactors.messages", "promptactors._exceptions")
    assert all(m.startswith(allowed) for m in ours), ours
    banned = {"trio", "anyio", "asyncio", "httpx", "asyncpg", "sqlite3"}
    assert not {m.split(".")[0] for m in _imports(path)} & banned


def test_nothing_imports_the_command_line() -> None:
    """The CLI sits on top: no library module imports promptactors.cli."""
    offenders = [
        path.name
        for path in PACKAGE.rglob("*.py")
        if "cli" not in path.relative_to(PACKAGE).parts
        and any(m.startswith("promptactors.cli") for m in _imports(path))
    ]
    assert offenders == []
