"""Locate data folders that ship in the wheel but live at the top of a source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """Return the folder ``name`` (``sql``, ``_benchmarks``...) of this installation.

    A wheel carries it inside the package; an editable install from a checkout finds it
    at the checkout's top. Raises ``FileNotFoundError`` naming both places.
    """
    packaged = _PACKAGE / name
    if packaged.is_dir():
        return packaged
    checkout = _PACKAGE.parents[1] / name.lstrip("_")
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(
        f"promptactors data folder {name!r} not found at {packaged} or {checkout}"
    )
