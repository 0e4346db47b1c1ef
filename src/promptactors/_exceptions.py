"""The exceptions promptactors raises, in one hierarchy.

Every error the runtime raises on purpose derives from :class:`PromptActorsError`, so an
embedding application can catch the whole family in one place. Driver errors (sqlite3,
asyncpg, httpx) never escape an adapter: they are translated into these with
``raise ... from exc``.

::

    PromptActorsError
    ├── InvalidInput (also ValueError)           bad arguments at a public entry point
    │   └── ConfigurationError                   invalid settings or configuration data
    ├── NotFound (also LookupError)              a named thing does not exist
    │   ├── PromptNotFound
    │   ├── ActionNotFound
    │   ├── RunNotFound
    │   └── InstanceNotFound
    ├── ActorError                               the actor kernel
    │   ├── ActorDead                            the actor is stopped (or was never started)
    │   ├── AskTimeout (also TimeoutError)       no reply within the ask's timeout
    │   │   └── SendTimeout                      ... because the mailbox stayed full: not sent
    │   └── MailboxFull                          try_tell on a full mailbox
    ├── SupervisionError                         the supervision tree
    │   ├── RestartIntensityExceeded             too many restarts in the period: escalation
    │   └── RuntimeFailed                        the root supervisor gave up; the runtime ends
    ├── ExecutionError                           executing a prompt
    │   ├── IllegalTransition                    a status change the status machine forbids
    │   ├── ChatNotAllowed                       a further turn on an instance without allow_chat
    │   ├── MissingVariables                     template variables without a value
    │   ├── BrokerError                          a broker failed to resolve a variable
    │   ├── AttemptsExhausted                    a turn failed on every attempt of its retry policy
    │   ├── TurnInProgress                       a turn is running (on_busy reject, or a full queue)
    │   ├── TurnCancelled                        the turn was cancelled by stop() or an interrupt
    │   └── ProviderError                        the LLM provider failed (see ``retryable``)
    │       ├── ProviderAuthenticationError      401/403: bad or missing API key
    │       ├── ProviderBadRequest               400/422: the request was rejected
    │       ├── ProviderNotFound                 404: unknown model or endpoint
    │       ├── ProviderRateLimited              429 (retryable unless a spend limit)
    │       ├── ProviderOverloaded               529 / overloaded_error (retryable)
    │       ├── ProviderServerError              5xx (retryable)
    │       ├── ProviderTimeout                  connect/read timeout (retryable before output)
    │       ├── ProviderConnectionError          connection refused/reset (retryable)
    │       ├── StreamTruncated                  the stream ended without its end marker
    │       └── InjectedFault                    a fault the simulated provider was told to raise
    └── StoreError                               persistence
        ├── StoreUnavailable                     the database cannot be reached or opened
        ├── StoreConflict                        an idempotency key or constraint was violated
        │   ├── RunInUse                         another owner holds the run (claim_run)
        │   └── StaleFence                       writes carried a fencing token that is stale
        └── SchemaError                          schema missing, too new, or a migration failed
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "ActionNotFound",
    "ActorDead",
    "ActorError",
    "AskTimeout",
    "AttemptsExhausted",
    "BrokerError",
    "ChatNotAllowed",
    "ConfigurationError",
    "ExecutionError",
    "IllegalTransition",
    "InjectedFault",
    "InstanceNotFound",
    "InvalidInput",
    "MailboxFull",
    "MissingVariables",
    "NotFound",
    "PromptActorsError",
    "PromptNotFound",
    "ProviderAuthenticationError",
    "ProviderBadRequest",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderNotFound",
    "ProviderOverloaded",
    "ProviderRateLimited",
    "ProviderServerError",
    "ProviderTimeout",
    "RestartIntensityExceeded",
    "RunInUse",
    "RunNotFound",
    "RuntimeFailed",
    "SchemaError",
    "SendTimeout",
    "StaleFence",
    "StoreConflict",
    "StoreError",
    "StoreUnavailable",
    "StreamTruncated",
    "SupervisionError",
    "TurnCancelled",
    "TurnInProgress",
]


class PromptActorsError(Exception):
    """Base class of every error promptactors raises on purpose."""


# -- bad input ---------------------------------------------------------------------------


class InvalidInput(PromptActorsError, ValueError):
    """Raised when a public entry point gets an argument it cannot accept.

    The message names the argument and says what is wrong with it (an empty id, an
    oversized input, a malformed prompt definition...). Nothing is changed.
    """


class ConfigurationError(InvalidInput):
    """Raised when settings or configuration data (price tables, provider config) are invalid."""


# -- lookups -----------------------------------------------------------------------------


class NotFound(PromptActorsError, LookupError):
    """Raised when a named thing does not exist. ``kind`` and ``key`` say which."""

    kind: str = "object"

    def __init__(self, key: str, message: str | None = None) -> None:
        self.key = key
        super().__init__(message or f"{self.kind} {key!r} not found")


class PromptNotFound(NotFound):
    """Raised when no prompt (or prompt builtin) has the given id."""

    kind = "prompt"


class ActionNotFound(NotFound):
    """Raised when no prompt action has the given id."""

    kind = "action"


class RunNotFound(NotFound):
    """Raised when no run has the given id."""

    kind = "run"


class InstanceNotFound(NotFound):
    """Raised when no live execution instance has the given id."""

    kind = "instance"


# -- the actor kernel --------------------------------------------------------------------


class ActorError(PromptActorsError):
    """Base class of the actor kernel's errors."""


class ActorDead(ActorError):
    """Raised when a message is sent to, or awaited from, an actor that is stopped.

    Also raised in the caller of a pending ``ask`` when the actor stops (or is killed)
    before answering it.
    """


class AskTimeout(ActorError, TimeoutError):
    """Raised by ``ask`` when no reply arrives within its timeout.

    The message may still be processed later; its reply is then discarded.
    """


class SendTimeout(AskTimeout):
    """Raised by ``ask`` when the actor's mailbox stayed full for the whole timeout.

    Unlike its parent, it says the message was never accepted: the actor will not
    process it, so the caller may retry or report it without fear of a duplicate.
    """


class MailboxFull(ActorError):
    """Raised by ``try_tell`` when the actor's bounded mailbox has no room.

    The message was not accepted. ``tell`` waits for room instead (backpressure).
    """


# -- supervision -------------------------------------------------------------------------


class SupervisionError(PromptActorsError):
    """Base class of the supervision tree's errors."""


class RestartIntensityExceeded(SupervisionError):
    """Raised by a supervisor whose children restarted more than ``max_restarts`` times
    within ``period`` seconds. The supervisor has stopped all its children; its parent
    treats this as the supervisor's crash (escalation). ``__cause__`` is the last crash.
    """

    def __init__(self, supervisor: str, max_restarts: int, period: float) -> None:
        self.supervisor = supervisor
        self.max_restarts = max_restarts
        self.period = period
        super().__init__(
            f"supervisor {supervisor!r}: more than {max_restarts} restarts within "
            f"{period:g}s; children stopped, escalating"
        )


class RuntimeFailed(SupervisionError):
    """Raised out of the runtime when its root supervisor gives up. ``__cause__`` says why."""


# -- execution ---------------------------------------------------------------------------


class ExecutionError(PromptActorsError):
    """Base class of errors while executing a prompt."""


class IllegalTransition(ExecutionError):
    """Raised when a command asks for a status change the status machine forbids.

    The instance's state is unchanged.
    """

    def __init__(self, current: str, requested: str, detail: str | None = None) -> None:
        self.current = current
        self.requested = requested
        text = f"illegal transition {current!r} -> {requested!r}"
        super().__init__(f"{text}: {detail}" if detail else text)


class ChatNotAllowed(ExecutionError):
    """Raised when a further turn is requested on an instance whose ``allow_chat`` is off."""


class MissingVariables(ExecutionError):
    """Raised when templates need variables that no layer provides. ``names`` lists them all."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(sorted(set(names)))
        super().__init__("missing variables: " + ", ".join(self.names))


class BrokerError(ExecutionError):
    """Raised when a broker fails to resolve a mapped variable. Names the broker and variable."""

    def __init__(self, broker_id: str, variable: str, reason: str) -> None:
        self.broker_id = broker_id
        self.variable = variable
        super().__init__(f"broker {broker_id!r} failed to resolve {variable!r}: {reason}")


class AttemptsExhausted(ExecutionError):
    """Raised when a turn failed on each of its attempts. ``__cause__`` is the last failure."""


class TurnInProgress(ExecutionError):
    """A turn was refused because one is running (``on_busy="reject"``), the turn queue
    is full (``on_busy="enqueue"``), or the instance is stopping."""


class TurnCancelled(ExecutionError):
    """The turn was cancelled by ``stop()`` or an ``interrupt``; ``partial_text`` is what
    it had streamed (kept in the conversation as an assistant message marked partial)."""

    def __init__(self, message: str, partial_text: str = "") -> None:
        super().__init__(message)
        self.partial_text = partial_text


class ProviderError(ExecutionError):
    """Raised when the LLM provider fails.

    ``retryable`` says whether the same request may succeed if sent again (before any
    output was received); ``status_code`` is the HTTP status where there was one;
    ``retry_after`` the delay in seconds the provider asked for, if it said one.
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
        retryable: bool | None = None,
    ) -> None:
        self.provider = provider
        self.status_code = status_code
        self.retry_after = retry_after
        if retryable is not None:
            self.retryable = retryable
        super().__init__(message)


class ProviderAuthenticationError(ProviderError):
    """The provider refused the credentials (HTTP 401/403). Not retried."""


class ProviderBadRequest(ProviderError):
    """The provider rejected the request as malformed (HTTP 400/422). Not retried."""


class ProviderNotFound(ProviderError):
    """The provider does not know the model or endpoint (HTTP 404). Not retried."""


class ProviderRateLimited(ProviderError):
    """HTTP 429. Retried, honouring ``retry_after``, unless it reports a spend limit."""

    retryable = True


class ProviderOverloaded(ProviderError):
    """HTTP 529 or an ``overloaded_error`` event. Retried with backoff."""

    retryable = True


class ProviderServerError(ProviderError):
    """HTTP 5xx (and 408/409). Retried with backoff."""

    retryable = True


class ProviderTimeout(ProviderError):
    """A connect or read timeout. Retried when no output had been received."""

    retryable = True


class ProviderConnectionError(ProviderError):
    """The connection could not be made or broke. Retried when no output had been received."""

    retryable = True


class StreamTruncated(ProviderError):
    """The stream ended without its end marker; the partial text received is kept."""

    retryable = True


class InjectedFault(ProviderError):
    """A fault the simulated provider was configured to inject (chaos and tests)."""

    retryable = True


# -- persistence -------------------------------------------------------------------------


class StoreError(PromptActorsError):
    """Base class of persistence errors. ``__cause__`` holds the driver's exception."""


class StoreUnavailable(StoreError):
    """The database cannot be reached, opened, or has gone away. Accepted data is kept
    in memory by the caller and the operation may be retried."""


class StoreConflict(StoreError):
    """A write violated a key or constraint that is not an idempotent replay."""


class RunInUse(StoreConflict):
    """Raised by ``claim_run`` when another owner holds the run and its lease has not expired.

    ``run_id`` names the run and ``owner_id`` its current owner (the instance or executor
    that claimed it). Nothing is changed.
    """

    def __init__(self, run_id: str, owner_id: str, message: str | None = None) -> None:
        self.run_id = run_id
        self.owner_id = owner_id
        super().__init__(message or f"run {run_id!r} is in use by {owner_id!r}")


class StaleFence(StoreConflict):
    """Raised by ``Store.apply`` when operations carry a fencing token that is not the
    run's current one: another owner has claimed the run since. The whole batch is refused.

    ``stale`` lists ``(index, run_id)`` for every refused operation: its position in the
    sequence given to ``apply``, and the run it writes (None for a task without a run). A
    group committer drops exactly those operations and commits the others again.
    """

    def __init__(self, stale: Iterable[tuple[int, str | None]], message: str | None = None) -> None:
        self.stale = tuple(stale)
        runs = ", ".join(sorted({repr(run_id) for _, run_id in self.stale}))
        super().__init__(message or f"stale fencing token for run {runs}: claimed by another owner")

    def only(self, index: int) -> StaleFence:
        """The refusal of the one operation at ``index`` (for its own waiter)."""
        return StaleFence(pair for pair in self.stale if pair[0] == index)


class SchemaError(StoreError):
    """The database schema is missing or newer than this version, or a migration failed."""
