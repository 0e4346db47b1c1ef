"""HTTP statuses, error bodies and in-stream error events, translated into our exceptions.

Both HTTP adapters (OpenAI-compatible and Anthropic) classify failures here, so a 429 or an
``overloaded_error`` means the same thing whichever provider sent it. Every message is
scrubbed of the endpoint's API key before it is put into an exception.
"""

from __future__ import annotations

import email.utils
import json
import time
from typing import TYPE_CHECKING, Any

from promptactors._exceptions import (
    ProviderAuthenticationError,
    ProviderBadRequest,
    ProviderError,
    ProviderNotFound,
    ProviderOverloaded,
    ProviderRateLimited,
    ProviderServerError,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "error_from_payload",
    "error_from_response",
    "parse_retry_after",
    "scrub",
]

_MAX_DETAIL = 300

# Error `type`/`code` strings (OpenAI and Anthropic) and the exception they stand for.
_TYPE_TO_ERROR: dict[str, type[ProviderError]] = {
    "authentication_error": ProviderAuthenticationError,
    "permission_error": ProviderAuthenticationError,
    "invalid_api_key": ProviderAuthenticationError,
    "invalid_request_error": ProviderBadRequest,
    "request_too_large": ProviderBadRequest,
    "not_found_error": ProviderNotFound,
    "model_not_found": ProviderNotFound,
    "rate_limit_error": ProviderRateLimited,
    "rate_limit_exceeded": ProviderRateLimited,
    "insufficient_quota": ProviderRateLimited,
    "overloaded_error": ProviderOverloaded,
    "api_error": ProviderServerError,
    "server_error": ProviderServerError,
    "timeout_error": ProviderServerError,
}

# A 429 that will not clear by waiting: the account is out of credit or over its budget.
_SPEND_LIMIT_MARKERS = ("insufficient_quota", "billing", "spend limit", "credit balance", "quota")


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Return ``text`` with every non-empty secret in ``secrets`` replaced by ``***``."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, "***")
    return text


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """The delay in seconds a response asks for, or None.

    ``retry-after-ms`` (milliseconds, as OpenAI and Anthropic send it) wins over
    ``retry-after`` (seconds, or an HTTP date). Negative or unparsable values are ignored.
    """
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            value = float(raw_ms) / 1000.0
        except ValueError:
            value = -1.0
        if value >= 0.0:
            return value
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        parsed = email.utils.parsedate_tz(raw)
        if parsed is None:
            return None
        seconds = email.utils.mktime_tz(parsed) - (time.time() if now is None else now)
    return seconds if seconds >= 0.0 else None


def _class_for_status(status: int) -> type[ProviderError]:
    if status in (401, 403):
        return ProviderAuthenticationError
    if status in (400, 413, 422):
        return ProviderBadRequest
    if status == 404:
        return ProviderNotFound
    if status == 429:
        return ProviderRateLimited
    if status == 529:
        return ProviderOverloaded
    if status in (408, 409) or status >= 500:
        return ProviderServerError
    return ProviderError


def _describe(payload: Any) -> tuple[str | None, str | None, str | None]:
    """(type, code, message) of an error body in the OpenAI or Anthropic shape."""
    if not isinstance(payload, dict):
        return None, None, None
    error = payload.get("error", payload)
    if isinstance(error, str):
        return None, None, error
    if not isinstance(error, dict):
        return None, None, None
    kind = error.get("type")
    code = error.get("code")
    message = error.get("message")
    return (
        kind if isinstance(kind, str) else None,
        code if isinstance(code, str) else None,
        message if isinstance(message, str) else None,
    )


def _is_spend_limit(kind: str | None, code: str | None, message: str | None) -> bool:
    text = " ".join(part for part in (kind, code, message) if part).lower()
    return any(marker in text for marker in _SPEND_LIMIT_MARKERS)


def _build(
    cls: type[ProviderError],
    *,
    provider: str,
    status: int | None,
    kind: str | None,
    code: str | None,
    message: str | None,
    retry_after: float | None,
    secrets: Iterable[str],
) -> ProviderError:
    retryable: bool | None = None
    if cls is ProviderRateLimited and _is_spend_limit(kind, code, message):
        retryable = False
    if status == 408 or status == 409:
        retryable = True
    parts = [f"{provider}:"]
    parts.append(f"HTTP {status}" if status is not None else "error in stream")
    label = kind or code
    if label:
        parts.append(f"({label})")
    text = " ".join(parts)
    if message:
        text = f"{text}: {message[:_MAX_DETAIL]}"
    return cls(
        scrub(text, secrets),
        provider=provider,
        status_code=status,
        retry_after=retry_after,
        retryable=retryable,
    )


def error_from_response(
    provider: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    secrets: Iterable[str] = (),
) -> ProviderError:
    """The exception for a non-2xx response, classified by status then by the error body.

    The body may be JSON in the OpenAI (``{"error": {"type", "code", "message"}}``) or
    Anthropic (``{"type": "error", "error": {...}}``) shape, or anything else.
    """
    try:
        payload: Any = json.loads(body) if body else None
    except ValueError:
        payload = None
    kind, code, message = _describe(payload)
    if message is None and payload is None and body:
        message = body[:_MAX_DETAIL].decode("utf-8", "replace").strip() or None
    cls = _class_for_status(status)
    if kind == "overloaded_error" and status >= 500:
        cls = ProviderOverloaded  # Anthropic may send it on a plain 5xx too
    return _build(
        cls,
        provider=provider,
        status=status,
        kind=kind,
        code=code,
        message=message,
        retry_after=parse_retry_after(headers),
        secrets=secrets,
    )


def error_from_payload(
    provider: str, payload: Any, *, secrets: Iterable[str] = ()
) -> ProviderError:
    """The exception for an error reported inside a stream (an ``error`` event or object).

    Classified by ``error.type`` (then ``error.code``); an unknown type is a server error,
    retryable like one. A numeric ``code`` (some OpenAI-compatible servers send the HTTP
    status there) is classified as that status.
    """
    kind, code, message = _describe(payload)
    cls = _TYPE_TO_ERROR.get(kind or "") or _TYPE_TO_ERROR.get(code or "")
    status: int | None = None
    if cls is None:
        error = payload.get("error") if isinstance(payload, dict) else None
        raw_code = error.get("code") if isinstance(error, dict) else None
        if isinstance(raw_code, int) and 400 <= raw_code <= 599:
            status = raw_code
            cls = _class_for_status(raw_code)
        else:
            cls = ProviderServerError
    return _build(
        cls,
        provider=provider,
        status=status,
        kind=kind,
        code=code,
        message=message,
        retry_after=None,
        secrets=secrets,
    )
