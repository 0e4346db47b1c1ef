"""The dynamic supervisor: many children of one kind, started on demand."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._exceptions import InvalidInput
from ._supervisor import Supervisor

if TYPE_CHECKING:
    from ..kernel import ActorRef
    from ._spec import Backoff, ChildSpec

__all__ = ["DynamicSupervisor"]


class DynamicSupervisor(Supervisor):
    """A one-for-one supervisor for many children of one kind, started on demand.

    Children are usually ``temporary`` or ``transient`` (an execution instance, a session).
    A child that will not run again is forgotten at once. ``max_children`` bounds how many
    may exist; :meth:`start_child` raises ``InvalidInput`` beyond it.
    """

    _keeps_specs = False

    def __init__(
        self,
        *,
        max_restarts: int = 3,
        period: float = 5.0,
        backoff: Backoff | None = None,
        max_children: int | None = None,
        name: str = "dynamic",
    ) -> None:
        if max_children is not None and max_children < 0:
            raise InvalidInput(f"max_children must be >= 0 or None, got {max_children}")
        super().__init__(
            (),
            strategy="one_for_one",
            max_restarts=max_restarts,
            period=period,
            backoff=backoff,
            name=name,
        )
        self.max_children = max_children

    async def start_child(self, spec: ChildSpec) -> ActorRef[Any] | Supervisor:
        """As :meth:`Supervisor.start_child`; also raises ``InvalidInput`` when
        ``max_children`` children exist."""
        if self.max_children is not None and len(self._children) >= self.max_children:
            raise InvalidInput(
                f"supervisor {self.name!r} has {len(self._children)} children: max_children "
                f"({self.max_children}) reached"
            )
        return await super().start_child(spec)
