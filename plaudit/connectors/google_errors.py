"""Translation of Google Business Profile API failures into Plaudit's errors.

HTTP statuses and httpx exceptions become :class:`~plaudit.errors.PlatformError`
with Google's own error message and a hint for the operator, and each failure
gets the outcome label of the ``plaudit_platform_requests_total`` metric.
"""

from __future__ import annotations

import httpx
import msgspec

from plaudit.connectors.apiclient import body_excerpt
from plaudit.errors import PlatformError
from plaudit.reliability.retry import Verdict, classify_status, parse_retry_after


class _ApiErrorDetail(msgspec.Struct, kw_only=True):
    code: int = 0
    message: str = ""
    status: str = ""


class _ApiError(msgspec.Struct, kw_only=True):
    error: _ApiErrorDetail


def error_message(response: httpx.Response) -> str:
    """Return the API's own error message, or the start of the body without one."""
    try:
        return msgspec.json.decode(response.content, type=_ApiError).error.message
    except msgspec.DecodeError:
        return body_excerpt(response)


def status_hint(status: int) -> str:
    """Return what the operator should check after a rejected request with ``status``."""
    if status == 403:
        return (
            "check that Business Profile API access is approved "
            "and that the account manages this location"
        )

    if status == 404:
        return "check the account, location and review ids in [platforms.google]"

    return "the request was rejected; check the request and the configuration"


def raise_for_status(response: httpx.Response, what: str, *, now: float) -> None:
    """Raise PlatformError unless the response is 2xx."""
    status = response.status_code
    verdict = classify_status(status)
    if verdict is Verdict.SUCCESS:
        return

    message = error_message(response)
    if verdict is Verdict.RETRY:
        raise PlatformError(
            f"{what} failed with HTTP {status}: {message}; the call will be retried",
            retryable=True,
            status=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After"), now=now),
        )

    raise PlatformError(
        f"{what} failed with HTTP {status}: {message}; {status_hint(status)}",
        retryable=False,
        status=status,
    )
