"""The ``promptactors`` command line (typer + rich). It only calls the public API."""

from ._main import main as main

__all__ = ["main"]
