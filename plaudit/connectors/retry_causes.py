"""The cause of a failed platform call attempt, as a bounded metric label.

The connectors translate every foreign exception into PlatformError with
``raise ... from``, so the cause is read from the status and from the
exception that the error was raised from.
"""

from __future__ import annotations

from typing import Final, Literal

import httpx
import msgspec

from plaudit.errors import PlatformError
from plaudit.metrics import PLATFORM_RETRIES

RetryCause = Literal[
    "server_error",
    "rate_limited",
    "unauthorized",
    "timeout",
    "connection",
    "malformed_body",
    "missing_field",
    "other",
]
RETRY_CAUSES: Final[tuple[RetryCause, ...]] = (
    "server_error",
    "rate_limited",
    "unauthorized",
    "timeout",
    "connection",
    "malformed_body",
    "missing_field",
    "other",
)


def retry_cause(error: PlatformError) -> RetryCause:
    """Return what made a platform call attempt fail."""
    server_side = error.status is not None and error.status >= 500
    if error.status == 429 or (error.retry_after is not None and not server_side):
        # Facebook signals throttling with HTTP 400 and an error code; its
        # connector keeps the Retry-After.
        return "rate_limited"
    if error.status is not None:
        return _status_cause(error.status)

    origin = error.__cause__
    if isinstance(origin, httpx.TimeoutException):
        return "timeout"
    if isinstance(origin, httpx.TransportError):
        return "connection"
    # msgspec words a required field that is absent as "Object missing required field".
    if isinstance(origin, msgspec.ValidationError) and "missing required field" in str(origin):
        return "missing_field"
    if isinstance(origin, msgspec.DecodeError | ValueError):
        return "malformed_body"
    return "other"


def _status_cause(status: int) -> RetryCause:
    if status == 401:
        return "unauthorized"
    if status == 408:
        return "timeout"
    if status >= 500:
        return "server_error"
    return "other"


def count_retry(platform: str, error: PlatformError) -> None:
    """Count one failed attempt that the caller repeats, by platform and cause."""
    PLATFORM_RETRIES.labels(platform=platform, cause=retry_cause(error)).inc()
