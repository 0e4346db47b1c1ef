"""The fixtures of ``test_cli.py`` (isolation, ``cli``, ``greet``) for every CLI test module."""

from test_cli import _isolated, cli, greet

__all__ = ["_isolated", "cli", "greet"]
