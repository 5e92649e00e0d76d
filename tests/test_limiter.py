"""Token buckets on the virtual clock, and the quota headers they read."""

from __future__ import annotations

import httpx
import pytest
import trio

from plaudit.config.model import GoogleConfig, RateLimitConfig
from plaudit.connectors.google import GoogleClient
from plaudit.reliability.limiter import TokenBucket, Usage, parse_usage_headers
from plaudit.sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_REFRESH_TOKEN,
    SandboxOptions,
    serve_sandbox,
)


async def test_burst_then_steady_rate(autojump_clock: trio.abc.Clock) -> None:
    bucket = TokenBucket.per_minute("test", 300)
    began = trio.current_time()
    for _ in range(300):
        await bucket.acquire()
    # The whole minute's quota is there at once.
    assert trio.current_time() - began == pytest.approx(0.0)

    for _ in range(10):
        await bucket.acquire()
    # Then one token every 0.2 s (300 a minute).
    assert trio.current_time() - began == pytest.approx(2.0)


async def test_rate_over_a_long_run(autojump_clock: trio.abc.Clock) -> None:
    bucket = TokenBucket.per_minute("test.edits", 10)
    began = trio.current_time()
    for _ in range(40):
        await bucket.acquire()
    # 10 at once, then 30 more at 10 a minute.
    assert trio.current_time() - began == pytest.approx(180.0)
    statistics = bucket.statistics()
    assert statistics.acquired == 40
    assert statistics.waited_seconds > 0


async def test_waiters_served_in_order(autojump_clock: trio.abc.Clock) -> None:
    bucket = TokenBucket("test", rate=1.0, capacity=1.0)
    await bucket.acquire()
    served: list[int] = []

    async def take(number: int) -> None:
        await bucket.acquire()
        served.append(number)

    async with trio.open_nursery() as nursery:
        for number in range(5):
            nursery.start_soon(take, number)
            await trio.sleep(0.01)
    assert served == [0, 1, 2, 3, 4]


async def test_tokens_refill_to_capacity_only(autojump_clock: trio.abc.Clock) -> None:
    bucket = TokenBucket("test", rate=2.0, capacity=4.0)
    await trio.sleep(3600)
    assert bucket.statistics().tokens == 4.0
    assert bucket.try_acquire(4.0) is True
    assert bucket.try_acquire() is False
    assert bucket.delay_for() == pytest.approx(0.5)


async def test_observed_remaining_drains(autojump_clock: trio.abc.Clock) -> None:
    bucket = TokenBucket("test", rate=1.0, capacity=100.0)
    bucket.observe_remaining(2)
    assert bucket.statistics().tokens == 2.0
    # A report of more than we have never adds tokens.
    bucket.observe_remaining(50)
    assert bucket.statistics().tokens == 2.0


async def test_exhausted_quota_waits_for_reset(autojump_clock: trio.abc.Clock) -> None:
    bucket = TokenBucket("test", rate=1.0, capacity=100.0)
    bucket.observe_remaining(0, reset_seconds=30)
    began = trio.current_time()
    await bucket.acquire()
    assert trio.current_time() - began == pytest.approx(31.0)


async def test_impossible_cost_rejected() -> None:
    bucket = TokenBucket("test", rate=1.0, capacity=2.0)
    with pytest.raises(ValueError, match="can never be met"):
        await bucket.acquire(3.0)


def test_invalid_settings_rejected() -> None:
    with pytest.raises(ValueError, match="rate must be positive"):
        TokenBucket("test", rate=0.0, capacity=1.0)
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        TokenBucket("test", rate=1.0, capacity=0.5)


def test_repr_names_the_bucket() -> None:
    bucket = TokenBucket("google", rate=5.0, capacity=300.0, clock=lambda: 0.0)
    assert repr(bucket) == "<TokenBucket google rate=5/s tokens=300.00/300 waiting=0>"


def test_ietf_headers_read() -> None:
    headers = httpx.Headers({"RateLimit-Remaining": "12", "RateLimit-Reset": "30"})
    assert parse_usage_headers(headers) == Usage(remaining=12.0, reset_seconds=30.0)


def test_x_ratelimit_headers_read() -> None:
    headers = httpx.Headers({"x-ratelimit-remaining": "0"})
    assert parse_usage_headers(headers) == Usage(remaining=0.0)


def test_graph_usage_headers_read() -> None:
    business = (
        '{"123": [{"type": "pages", "call_count": 41, "total_cputime": 12, '
        '"total_time": 77, "estimated_time_to_regain_access": 900}]}'
    )
    headers = httpx.Headers(
        {
            "X-App-Usage": '{"call_count": 5, "total_cputime": 1, "total_time": 3}',
            "X-Business-Use-Case-Usage": business,
        }
    )
    assert parse_usage_headers(headers) == Usage(percent_used=77.0)


@pytest.mark.parametrize(
    "headers",
    [{}, {"RateLimit-Remaining": "many"}, {"RateLimit-Remaining": "-3"}, {"X-App-Usage": "{"}],
)
def test_missing_or_bad_headers_ignored(headers: dict[str, str]) -> None:
    assert parse_usage_headers(httpx.Headers(headers)) is None


async def test_google_client_waits_for_quota(
    nursery: trio.Nursery, autojump_clock: trio.abc.Clock
) -> None:
    base_url: str = await nursery.start(serve_sandbox, SandboxOptions(seed=2))
    config = GoogleConfig(
        api_base=f"{base_url}/google/v4",
        token_url=f"{base_url}/google/oauth2/token",
        client_id=SANDBOX_CLIENT_ID,
        limits=RateLimitConfig(requests_per_minute=2),
    )
    client = GoogleClient(
        config, client_secret=SANDBOX_CLIENT_SECRET, refresh_token=SANDBOX_REFRESH_TOKEN
    )
    async with client:
        began = trio.current_time()
        for _ in range(3):
            await client.list_reviews_page("accounts/1001", "locations/2001")
        # Two requests at once, the third when a token arrives 30 s later.
        assert trio.current_time() - began == pytest.approx(30.0, abs=1.0)
