"""Supervision: child specs, restart strategies and intensity, dynamic children.

OTP's supervisor semantics on task groups; see :class:`Supervisor`.
"""

from ._child import ChildInfo as ChildInfo
from ._dynamic import DynamicSupervisor as DynamicSupervisor
from ._open import open_supervisor as open_supervisor
from ._spec import Backoff as Backoff
from ._spec import ChildSpec as ChildSpec
from ._spec import Restart as Restart
from ._spec import Strategy as Strategy
from ._spec import Termination as Termination
from ._supervisor import Supervisor as Supervisor

__all__ = [
    "Backoff",
    "ChildInfo",
    "ChildSpec",
    "DynamicSupervisor",
    "Restart",
    "Strategy",
    "Supervisor",
    "Termination",
    "open_supervisor",
]
