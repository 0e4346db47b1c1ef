"""The runtime: boots the supervision tree; the facade and instance handle users call."""

from ._runtime import ActionStart as ActionStart
from ._runtime import InstanceHandle as InstanceHandle
from ._runtime import Runtime as Runtime
from ._runtime import TurnStream as TurnStream
from ._runtime import open_runtime as open_runtime

__all__ = ["ActionStart", "InstanceHandle", "Runtime", "TurnStream", "open_runtime"]
