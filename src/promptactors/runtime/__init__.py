"""The runtime: boots the supervision tree; the facade and instance handle users call."""

from ._boot import open_runtime as open_runtime
from ._handle import InstanceHandle as InstanceHandle
from ._handle import TurnStream as TurnStream
from ._runtime import ActionStart as ActionStart
from ._runtime import Runtime as Runtime

__all__ = ["ActionStart", "InstanceHandle", "Runtime", "TurnStream", "open_runtime"]
