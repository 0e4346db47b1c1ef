"""The seam itself: one dispatcher, and the private anyio detail its spawn fast path uses."""

from __future__ import annotations

import ast
from pathlib import Path

import anyio
import pytest
import trio
import trio.testing

import promptactors._backend
from promptactors._backend import get_backend
from promptactors._backend._primitives import trio_nursery_of

BACKEND = Path(promptactors._backend.__file__).parent
PACKAGE = BACKEND.parent


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_only_the_primitives_module_asks_which_async_library_runs() -> None:
    """Everything else (the ticker, the bridge, the kernel) dispatches through get_backend()."""
    offenders = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path != BACKEND / "_primitives.py" and "sniffio" in _imported_roots(path)
    )
    assert offenders == []


@pytest.mark.parametrize("anyio_backend", ["trio"])
@pytest.mark.anyio
async def test_an_anyio_task_group_on_trio_still_exposes_its_trio_nursery(
    anyio_backend: str,
) -> None:
    """The actor spawn fast path relies on anyio's private ``TaskGroup._nursery``."""
    async with anyio.create_task_group() as tg:
        nursery = trio_nursery_of(tg)
        assert nursery is not None, (
            f"anyio {_anyio_version()} no longer keeps a trio.Nursery in "
            f"{type(tg).__module__}.{type(tg).__qualname__}._nursery: "
            "promptactors._backend._primitives._trio_start_soon now falls back to "
            "anyio's start_soon (a task handle, a cancel scope and an event per actor: "
            "slower spawns, ~1 KB more per actor). Find where the nursery went, or a "
            "public API with the same cost, and update trio_nursery_of()."
        )
        started: list[trio.lowlevel.Task] = []

        async def child() -> None:
            started.append(trio.lowlevel.current_task())
            await trio.sleep_forever()

        get_backend().start_soon(tg, child)
        await trio.testing.wait_all_tasks_blocked()
        assert started[0].parent_nursery is nursery
        tg.cancel_scope.cancel()  # the fast-path task is cancelled with its task group


@pytest.mark.parametrize("anyio_backend", ["trio"])
@pytest.mark.anyio
async def test_a_trio_nursery_is_used_as_it_is(anyio_backend: str) -> None:
    """A plain trio nursery (no anyio around it) takes the task directly."""
    async with trio.open_nursery() as nursery:
        assert trio_nursery_of(nursery) is None
        done = trio.Event()

        async def child() -> None:
            done.set()

        get_backend().start_soon(nursery, child)
        with trio.fail_after(5):
            await done.wait()


def _anyio_version() -> str:
    from importlib.metadata import version

    return version("anyio")
