"""promptactors: an actor-model runtime on trio that executes LLM prompts.

The public API is re-exported here from private modules; ``__all__`` is frozen by a test.
"""

from ._exceptions import *  # noqa: F403 - the exception names are part of the public API
from ._exceptions import __all__ as _exception_names
from ._version import __version__ as __version__
from .actors import DEFAULT_ASK_TIMEOUT as DEFAULT_ASK_TIMEOUT
from .actors import DEFAULT_MAILBOX_SIZE as DEFAULT_MAILBOX_SIZE
from .actors import Actor as Actor
from .actors import ActorRef as ActorRef
from .actors import handler as handler
from .actors import spawn as spawn

__all__ = [
    "DEFAULT_ASK_TIMEOUT",
    "DEFAULT_MAILBOX_SIZE",
    "Actor",
    "ActorRef",
    "__version__",
    "handler",
    "spawn",
    *_exception_names,
]
