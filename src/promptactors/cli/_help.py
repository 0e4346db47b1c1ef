"""Help that shows what to type: the command and group classes every command uses.

typer's rich help shows each parameter's Python type as a placeholder: ``--json <bool>``
for a flag that takes no value, ``--var <list[str]>``, and ``{prompt}`` for a required
argument in the usage line. These classes replace those before help is drawn: a flag gets
no placeholder, an option its metavar (or a word for its type: TEXT, INTEGER...), an
argument its name in capitals (``PROMPT``; ``[PROMPT]`` when optional).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

if TYPE_CHECKING:
    from typer._click import Context, Parameter

__all__ = ["Command", "Group"]

_TYPE_WORDS = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "Path": "PATH"}


class _Argument(TyperArgument):
    """An argument shown by its metavar alone (no ``<str>``, no braces)."""

    def display_type_rich(self, ctx: Context) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")


def _plain(params: list[Parameter]) -> list[Parameter]:
    for param in params:
        if isinstance(param, TyperOption) and param.metavar is None:
            if param.is_flag or param.count:
                param.metavar = ""
            else:
                annotation = param.type_descriptor.annotation
                word = getattr(annotation, "__name__", "")
                if word == "list":
                    word = getattr(param.type_descriptor.annotation.__args__[0], "__name__", "")
                param.metavar = _TYPE_WORDS.get(word, "VALUE")
        elif isinstance(param, TyperArgument) and not isinstance(param, _Argument):
            # typer builds its parameters itself and takes no class for them: the argument
            # becomes our subclass (no state of its own) so usage and help read as above.
            if param.metavar is None and param.name:
                param.metavar = param.name.upper()
            param.__class__ = _Argument
    return params


class Command(TyperCommand):
    """A command whose help shows metavars, not Python types."""

    def get_params(self, ctx: Context) -> list[Parameter]:
        return _plain(super().get_params(ctx))


class Group(TyperGroup):
    """A group whose help shows metavars, not Python types (give its commands ``Command``)."""

    def get_params(self, ctx: Context) -> list[Parameter]:
        return _plain(super().get_params(ctx))
