"""HTTP statuses, error bodies and in-stream errors become our exceptions."""

from __future__ import annotations

import json

import pytest

from promptactors import _exceptions as exc
from promptactors.providers._errors import (
    error_from_payload,
    error_from_response,
    parse_retry_after,
    scrub,
)


def body(kind: str | None = None, code: str | None = None, message: str = "nope") -> bytes:
    return json.dumps({"error": {"type": kind, "code": code, "message": message}}).encode()


@pytest.mark.parametrize(
    ("status", "expected", "retryable"),
    [
        (400, exc.ProviderBadRequest, False),
        (401, exc.ProviderAuthenticationError, False),
        (403, exc.ProviderAuthenticationError, False),
        (404, exc.ProviderNotFound, False),
        (408, exc.ProviderServerError, True),
        (409, exc.ProviderServerError, True),
        (422, exc.ProviderBadRequest, False),
        (429, exc.ProviderRateLimited, True),
        (500, exc.ProviderServerError, True),
        (503, exc.ProviderServerError, True),
        (529, exc.ProviderOverloaded, True),
    ],
)
def test_each_status_maps_to_its_error_kind(
    status: int, expected: type[exc.ProviderError], retryable: bool
) -> None:
    """The status decides the exception class and whether it is retryable."""
    error = error_from_response("openai", status, {}, body())
    assert type(error) is expected
    assert error.retryable is retryable
    assert error.status_code == status
    assert error.provider == "openai"


def test_a_spend_limit_429_is_not_retryable() -> None:
    """``insufficient_quota`` means waiting will not help."""
    error = error_from_response("openai", 429, {}, body("insufficient_quota", "insufficient_quota"))
    assert isinstance(error, exc.ProviderRateLimited)
    assert error.retryable is False


def test_an_overloaded_error_body_on_a_5xx_is_overload() -> None:
    """Anthropic's ``overloaded_error`` is classified as overload whatever the 5xx."""
    error = error_from_response("anthropic", 500, {}, body("overloaded_error"))
    assert isinstance(error, exc.ProviderOverloaded)


def test_retry_after_headers_are_parsed_ms_first() -> None:
    """``retry-after-ms`` wins; ``retry-after`` is seconds or an HTTP date."""
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "Thu, 01 Jan 1970 00:00:10 GMT"}, now=4.0) == 6.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({"retry-after-ms": "-5"}) is None
    assert parse_retry_after({}) is None


def test_a_response_error_carries_retry_after() -> None:
    """The delay the server asked for is on the exception."""
    error = error_from_response("openai", 429, {"retry-after": "2"}, body())
    assert error.retry_after == 2.0


def test_a_non_json_error_body_is_quoted_in_the_message() -> None:
    """A plain-text body still explains the failure."""
    error = error_from_response("openai", 502, {}, b"Bad Gateway from the proxy")
    assert "Bad Gateway from the proxy" in str(error)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"type": "error", "error": {"type": "overloaded_error"}}, exc.ProviderOverloaded),
        ({"type": "error", "error": {"type": "rate_limit_error"}}, exc.ProviderRateLimited),
        ({"type": "error", "error": {"type": "invalid_request_error"}}, exc.ProviderBadRequest),
        ({"error": {"type": "server_error", "message": "boom"}}, exc.ProviderServerError),
        ({"error": {"code": 429, "message": "slow down"}}, exc.ProviderRateLimited),
        ({"error": {"type": "something_new"}}, exc.ProviderServerError),
        ({"error": "just a string"}, exc.ProviderServerError),
    ],
)
def test_in_stream_errors_are_classified_by_type(
    payload: dict[str, object], expected: type[exc.ProviderError]
) -> None:
    """``error.type`` (or a numeric ``code``) decides the class of an in-stream error."""
    assert type(error_from_payload("p", payload)) is expected


def test_the_api_key_is_scrubbed_from_messages() -> None:
    """A key echoed back by the server never reaches the exception message."""
    key = "sk-test-SECRET-123"
    error = error_from_response(
        "openai",
        401,
        {},
        body("invalid_api_key", message=f"Incorrect API key {key}"),
        secrets=(key,),
    )
    assert key not in str(error)
    assert key not in repr(error)
    assert scrub(f"a {key} b", (key, "")) == "a *** b"
