"""The retry policy every outbound platform call follows.

A call gets a few short in-call attempts on Trio's clock: each attempt has a
timeout, the waits between attempts grow exponentially with full jitter, and
all attempts together stay within a deadline.  What the call still cannot do
goes back to the journal as a failed job, whose retries survive restarts.

Classification (:func:`classify_status`): connect errors, timeouts, 408, 425,
429 and 5xx are worth another attempt; 401 means "refresh the token once and
repeat"; every other 4xx fails at once.
"""

from __future__ import annotations

import email.utils
import enum
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar, final

import msgspec
import trio

from plaudit.config.model import RetryConfig
from plaudit.errors import PlatformError

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# 408 Request Timeout, 425 Too Early (RFC 8470), 429 Too Many Requests.
RETRYABLE_4XX: Final = frozenset({408, 425, 429})
# A Retry-After beyond one day is treated as one day, so a garbled or hostile
# header cannot park a job for years.
RETRY_AFTER_LIMIT: Final = 86_400.0


class Verdict(enum.StrEnum):
    """The action that the response status of one attempt calls for."""

    SUCCESS = "success"
    RETRY = "retry"
    # 401: the access token was rejected; refresh it once and repeat the request.
    REFRESH = "refresh"
    FAIL = "fail"


def classify_status(status: int) -> Verdict:
    """Classify an HTTP status as success, retry, refresh (401) or fail."""
    if 200 <= status < 300:
        return Verdict.SUCCESS

    if status == 401:
        return Verdict.REFRESH

    if status in RETRYABLE_4XX or 500 <= status < 600:
        return Verdict.RETRY

    return Verdict.FAIL


def parse_retry_after(
    value: str | None, *, now: float, limit: float = RETRY_AFTER_LIMIT
) -> float | None:
    """Return the delay a Retry-After header requests, in seconds, or None if absent or invalid.

    The header contains either delay-seconds or an HTTP-date (RFC 9110,
    section 10.2.3).  ``now`` is the current Unix time, for the HTTP-date
    form; a date in the past means 0.  Delays above ``limit`` seconds are cut
    to ``limit``.
    """
    if value is None:
        return None

    text = value.strip()
    if text.isascii() and text.isdigit():
        return min(float(text), limit)

    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None

    return min(max(0.0, moment.timestamp() - now), limit)


def backoff_ceiling(policy: RetryConfig, attempt: int) -> float:
    """Return the longest wait, in seconds, after failed attempt number ``attempt`` (from 1)."""
    # min() before the power would still overflow for huge attempts, so cap the exponent.
    exponent = min(attempt - 1, 64)
    return min(policy.backoff_max, policy.backoff_initial * 2.0**exponent)


def next_delay(
    policy: RetryConfig,
    error: PlatformError,
    *,
    attempt: int,
    elapsed: float,
    rng: random.Random,
) -> float | None:
    """Return the seconds to wait before the next attempt, or None to give up now.

    ``attempt`` counts the attempts made so far (from 1) and ``elapsed`` the
    seconds since the first began.  A wait that would end past the deadline
    gives up, and so does a Retry-After above ``retry_after_max``: the job-level
    retry waits for that instead of holding the caller.
    """
    return delay_for(
        policy,
        retryable=error.retryable,
        retry_after=error.retry_after,
        attempt=attempt,
        elapsed=elapsed,
        rng=rng,
    )


def delay_for(
    policy: RetryConfig,
    *,
    retryable: bool,
    retry_after: float | None,
    attempt: int,
    elapsed: float,
    rng: random.Random,
) -> float | None:
    """Return the seconds to wait before the next attempt, or None to give up now.

    The same rule as :func:`next_delay`, for failures that are not a
    PlatformError: ``retryable`` and ``retry_after`` (seconds) describe the
    failure of attempt number ``attempt``.
    """
    if not retryable or attempt >= policy.max_attempts:
        return None

    if retry_after is not None:
        if retry_after > policy.retry_after_max:
            return None
        delay = retry_after
    else:
        delay = rng.uniform(0.0, backoff_ceiling(policy, attempt))

    if elapsed + delay >= policy.deadline:
        return None

    return delay


RetryHook = Callable[[PlatformError, int, float], None]
"""Called before each wait with the error, the attempt that failed and the delay in seconds."""


@final
class Failure(msgspec.Struct, frozen=True, kw_only=True):
    """How the retry policy sees one failed attempt."""

    retryable: bool
    # Seconds the server asked to wait, from a Retry-After header or its equivalent.
    retry_after: float | None = None
    # The protocol status of the failure (HTTP status, SMTP reply code), for the log.
    status: int | None = None


Classifier = Callable[[Exception], Failure | None]
"""Describes a failed attempt's exception, or returns None for one to raise at once."""


@final
class AttemptTimeoutError(PlatformError):
    """One attempt ran past ``attempt_timeout`` and was cancelled; always retryable."""

    def __init__(self, what: str, timeout: float) -> None:
        super().__init__(
            f"{what} did not finish within the attempt timeout of {timeout} s; "
            "the call will be retried, raise retry.attempt_timeout if the platform is slow",
            retryable=True,
        )


def platform_failure(error: Exception) -> Failure | None:
    """Describe a PlatformError by its own ``retryable`` and ``retry_after``; None for others."""
    if not isinstance(error, PlatformError):
        return None
    return Failure(retryable=error.retryable, retry_after=error.retry_after, status=error.status)


async def call_with_retry(
    attempt: Callable[[], Awaitable[_T]],
    *,
    policy: RetryConfig,
    what: str,
    rng: random.Random | None = None,
    sleep: Callable[[float], Awaitable[None]] = trio.sleep,
    clock: Callable[[], float] = trio.current_time,
    on_retry: RetryHook | None = None,
) -> _T:
    """Run ``attempt`` until it succeeds or the policy gives up, and return its result.

    ``attempt`` raises PlatformError for a failure; ``retryable`` and
    ``retry_after`` on the error steer the policy.  An attempt that runs past
    ``attempt_timeout`` is cancelled and counts as a retryable failure.  The
    last error is re-raised when the policy gives up.
    """

    def hook(error: Exception, number: int, delay: float) -> None:
        if on_retry is not None and isinstance(error, PlatformError):
            on_retry(error, number, delay)

    return await retry_call(
        attempt,
        policy=policy,
        what=what,
        classify=platform_failure,
        rng=rng,
        sleep=sleep,
        clock=clock,
        on_retry=hook,
    )


async def retry_call(
    attempt: Callable[[], Awaitable[_T]],
    *,
    policy: RetryConfig,
    what: str,
    classify: Classifier,
    rng: random.Random | None = None,
    sleep: Callable[[float], Awaitable[None]] = trio.sleep,
    clock: Callable[[], float] = trio.current_time,
    on_retry: Callable[[Exception, int, float], None] | None = None,
    cancel_slow_attempts: bool = True,
) -> _T:
    """Run ``attempt`` until it succeeds or the policy gives up, and return its result.

    ``classify`` describes each exception of a failed attempt; one it
    returns None for is raised at once, and the last one is raised when the
    policy gives up.  With ``cancel_slow_attempts``, an attempt that runs
    past ``attempt_timeout`` is cancelled and raises AttemptTimeoutError,
    which is retryable.  Callers whose attempt must never be cancelled
    halfway (an SMTP transaction after DATA) pass False and bound each
    attempt themselves.
    """
    rng = rng or random.Random()
    started = clock()
    number = 1
    while True:
        try:
            if cancel_slow_attempts:
                return await _one_attempt(attempt, policy, what)
            return await attempt()
        except Exception as error:
            failure = classify(error)
            if isinstance(error, AttemptTimeoutError):
                failure = Failure(retryable=True)
            if failure is None:
                raise
            delay = delay_for(
                policy,
                retryable=failure.retryable,
                retry_after=failure.retry_after,
                attempt=number,
                elapsed=clock() - started,
                rng=rng,
            )
            if delay is None:
                raise

            if on_retry is not None:
                on_retry(error, number, delay)
            log.warning(
                "platform.request_retry",
                extra={
                    "request": what,
                    "attempt": number,
                    "status": failure.status,
                    "delay_seconds": round(delay, 3),
                    "error": str(error),
                },
            )
            await sleep(delay)
            number += 1


async def _one_attempt(attempt: Callable[[], Awaitable[_T]], policy: RetryConfig, what: str) -> _T:
    with trio.move_on_after(policy.attempt_timeout):
        return await attempt()

    # Reached only when the timeout cancelled the attempt.
    raise AttemptTimeoutError(what, policy.attempt_timeout)
