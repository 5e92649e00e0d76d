"""The shared retry policy: classification, Retry-After, backoff bounds and call_with_retry."""

from __future__ import annotations

import itertools
import random

import pytest
import trio

from plaudit.config.model import RetryConfig
from plaudit.errors import PlatformError
from plaudit.reliability.retry import (
    RETRY_AFTER_LIMIT,
    Verdict,
    backoff_ceiling,
    call_with_retry,
    classify_status,
    next_delay,
    parse_retry_after,
)

# 1,700,000,000 is Tue, 14 Nov 2023 22:13:20 GMT.
NOW = 1_700_000_000.0


def retryable(retry_after: float | None = None) -> PlatformError:
    return PlatformError("HTTP 503", retryable=True, status=503, retry_after=retry_after)


class Script:
    """An attempt function that raises the scripted errors, then returns "done"."""

    def __init__(self, *errors: PlatformError) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.started_at: list[float] = []

    async def __call__(self) -> str:
        self.calls += 1
        self.started_at.append(trio.current_time())
        if self.errors:
            raise self.errors.pop(0)
        return "done"


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.SUCCESS),
        (204, Verdict.SUCCESS),
        (401, Verdict.REFRESH),
        (408, Verdict.RETRY),
        (425, Verdict.RETRY),
        (429, Verdict.RETRY),
        (500, Verdict.RETRY),
        (503, Verdict.RETRY),
        (599, Verdict.RETRY),
        (400, Verdict.FAIL),
        (403, Verdict.FAIL),
        (404, Verdict.FAIL),
        (409, Verdict.FAIL),
        (302, Verdict.FAIL),
    ],
)
def test_status_classification(status: int, verdict: Verdict) -> None:
    assert classify_status(status) is verdict


def test_retry_after_seconds() -> None:
    assert parse_retry_after("120", now=NOW) == 120.0
    assert parse_retry_after(" 7 ", now=NOW) == 7.0


def test_retry_after_http_date() -> None:
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now=NOW) == 30.0


def test_retry_after_past_date_is_zero() -> None:
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:00 GMT", now=NOW) == 0.0


@pytest.mark.parametrize("value", ["soon", "", "-5", "1.5", "Tue, 99 Nov", "\u0661\u0662", None])
def test_retry_after_garbage_ignored(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


def test_retry_after_capped() -> None:
    assert parse_retry_after("99999999999999999999", now=NOW) == RETRY_AFTER_LIMIT
    assert parse_retry_after("Fri, 01 Jan 2100 00:00:00 GMT", now=NOW) == RETRY_AFTER_LIMIT
    assert parse_retry_after("600", now=NOW, limit=60.0) == 60.0


def test_backoff_ceiling_doubles_to_max() -> None:
    policy = RetryConfig(backoff_initial=0.5, backoff_max=8.0)
    ceilings = [backoff_ceiling(policy, attempt) for attempt in range(1, 8)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert backoff_ceiling(policy, 10_000) == 8.0


def test_full_jitter_stays_within_ceiling() -> None:
    policy = RetryConfig(max_attempts=100, deadline=10_000.0)
    rng = random.Random(7)
    for attempt in range(1, 8):
        delays = [
            next_delay(policy, retryable(), attempt=attempt, elapsed=0.0, rng=rng)
            for _ in range(500)
        ]
        ceiling = backoff_ceiling(policy, attempt)
        assert all(delay is not None and 0.0 <= delay <= ceiling for delay in delays)
        # Full jitter spreads the waits over the whole range, not near the ceiling.
        assert min(d for d in delays if d is not None) < ceiling * 0.1
        assert max(d for d in delays if d is not None) > ceiling * 0.9


def test_no_retry_after_last_attempt() -> None:
    policy = RetryConfig(max_attempts=3)
    rng = random.Random(1)
    assert next_delay(policy, retryable(), attempt=2, elapsed=0.0, rng=rng) is not None
    assert next_delay(policy, retryable(), attempt=3, elapsed=0.0, rng=rng) is None


def test_permanent_error_not_retried() -> None:
    error = PlatformError("HTTP 404", retryable=False, status=404)
    assert next_delay(RetryConfig(), error, attempt=1, elapsed=0.0, rng=random.Random()) is None


def test_retry_after_used_as_delay() -> None:
    delay = next_delay(RetryConfig(), retryable(4.0), attempt=1, elapsed=0.0, rng=random.Random())
    assert delay == 4.0


def test_long_retry_after_gives_up() -> None:
    policy = RetryConfig(retry_after_max=30.0)
    rng = random.Random()
    assert next_delay(policy, retryable(31.0), attempt=1, elapsed=0.0, rng=rng) is None


def test_deadline_gives_up() -> None:
    policy = RetryConfig(max_attempts=10, deadline=10.0)
    rng = random.Random()
    assert next_delay(policy, retryable(3.0), attempt=1, elapsed=6.0, rng=rng) == 3.0
    assert next_delay(policy, retryable(3.0), attempt=1, elapsed=7.0, rng=rng) is None


async def test_call_retries_then_succeeds(autojump_clock: trio.abc.Clock) -> None:
    attempt = Script(retryable(), retryable())
    seen: list[tuple[int, float]] = []
    result = await call_with_retry(
        attempt,
        policy=RetryConfig(max_attempts=3),
        what="GET reviews",
        rng=random.Random(3),
        on_retry=lambda error, number, delay: seen.append((number, delay)),
    )
    assert result == "done"
    assert attempt.calls == 3
    assert [number for number, _ in seen] == [1, 2]
    # The attempts start after the waits, on the virtual clock.
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempt.started_at)]
    assert gaps == pytest.approx([delay for _, delay in seen])


async def test_call_raises_last_error(autojump_clock: trio.abc.Clock) -> None:
    errors = [retryable(), retryable(), PlatformError("third", retryable=True)]
    attempt = Script(*errors, retryable())
    with pytest.raises(PlatformError, match="third"):
        await call_with_retry(attempt, policy=RetryConfig(max_attempts=3), what="GET reviews")
    assert attempt.calls == 3


async def test_call_honours_retry_after(autojump_clock: trio.abc.Clock) -> None:
    attempt = Script(retryable(retry_after=5.0))
    await call_with_retry(attempt, policy=RetryConfig(), what="GET reviews")
    assert attempt.started_at[1] - attempt.started_at[0] == pytest.approx(5.0)


async def test_slow_attempt_times_out(autojump_clock: trio.abc.Clock) -> None:
    calls = 0

    async def slow() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await trio.sleep(1000)
        return "done"

    policy = RetryConfig(attempt_timeout=10.0, max_attempts=2)
    assert await call_with_retry(slow, policy=policy, what="GET reviews") == "done"
    assert calls == 2


async def test_timeouts_until_gave_up(autojump_clock: trio.abc.Clock) -> None:
    async def hang() -> str:
        await trio.sleep(1000)
        return "never"

    policy = RetryConfig(attempt_timeout=5.0, max_attempts=2)
    with pytest.raises(PlatformError, match=r"attempt timeout of 5\.0 s") as caught:
        await call_with_retry(hang, policy=policy, what="GET reviews")
    assert caught.value.retryable is True


async def test_total_deadline_bounds_call(autojump_clock: trio.abc.Clock) -> None:
    attempt = Script(*[retryable(retry_after=4.0) for _ in range(10)])
    policy = RetryConfig(max_attempts=10, deadline=10.0)
    began = trio.current_time()
    with pytest.raises(PlatformError):
        await call_with_retry(attempt, policy=policy, what="GET reviews")
    # Waits of 4 s at 0 and 4 s fit; a third would end at 12 s, past the deadline.
    assert attempt.calls == 3
    assert trio.current_time() - began < 10.0
