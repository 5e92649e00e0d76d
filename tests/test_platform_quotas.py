"""Per-platform request limits and the usage headers that Facebook and Yelp send.

Limiter policy runs on the virtual clock; the connectors run against the
sandbox stand-ins over loopback HTTP, which send the headers in each
platform's format.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
import trio

from plaudit.config.model import (
    ApiLimitsConfig,
    FacebookConfig,
    FacebookLimits,
    FacebookPage,
    RetryConfig,
    TrustpilotConfig,
    YelpConfig,
    YelpLimits,
)
from plaudit.connectors.facebook import facebook_client
from plaudit.connectors.yelp import yelp_client
from plaudit.daemon.ctl import render_health
from plaudit.metrics import REGISTRY
from plaudit.reliability.limiter import QuotaLimiter, Usage, parse_usage_headers, quota_statistics
from plaudit.sandbox import SandboxOptions, serve_sandbox
from plaudit.sandbox import facebook as fb_sandbox
from plaudit.sandbox import yelp as yelp_sandbox

PAGE = fb_sandbox.PAGE_IDS[0]
BUSINESS = yelp_sandbox.BUSINESS_IDS[0]


@pytest.fixture
async def base_url(nursery: trio.Nursery, autojump_clock: trio.abc.Clock) -> AsyncIterator[str]:
    url: str = await nursery.start(serve_sandbox, SandboxOptions(seed=8, script_seconds=0))
    yield url


async def set_faults(base_url: str, platform: str, settings: dict[str, object]) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{base_url}/_sandbox/{platform}/faults", json=settings)
    response.raise_for_status()


def quota_gauge(platform: str) -> float | None:
    return REGISTRY.get_sample_value("plaudit_platform_quota_used_ratio", {"platform": platform})


async def elapsed_for(limiter: QuotaLimiter, requests: int) -> float:
    began = trio.current_time()
    for _ in range(requests):
        await limiter.acquire()
    return trio.current_time() - began


def test_each_platform_has_its_defaults() -> None:
    assert FacebookConfig(api_base="http://127.0.0.1:1").limits.requests_per_day == 0
    trustpilot = TrustpilotConfig(api_base="http://127.0.0.1:1", token_url="x", api_key="k")
    assert trustpilot.limits.requests_per_minute == 166
    assert YelpConfig(api_base="http://127.0.0.1:1").limits.requests_per_day == 5000


def test_partial_limits_table_keeps_platform_defaults() -> None:
    limits = msgspec.convert({"burst": 2}, YelpLimits)
    assert limits.burst == 2
    assert limits.requests_per_day == 5000
    assert limits.requests_per_minute == 300


def test_limits_reject_unknown_key() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"requests_per_hour": 2}, FacebookLimits)


async def test_burst_then_per_minute_rate(autojump_clock: trio.abc.Clock) -> None:
    limiter = QuotaLimiter("test-rate", ApiLimitsConfig(requests_per_minute=60, burst=2))
    # Two at once, then one a second.
    assert await elapsed_for(limiter, 4) == pytest.approx(2.0)


async def test_daily_limit_caps_requests(autojump_clock: trio.abc.Clock) -> None:
    config = ApiLimitsConfig(requests_per_minute=6000, burst=100, requests_per_day=3)
    limiter = QuotaLimiter("test-daily", config)
    assert await elapsed_for(limiter, 3) == pytest.approx(0.0)
    # The fourth waits for a third of a day's refill.
    assert await elapsed_for(limiter, 1) == pytest.approx(86_400 / 3)


async def test_graph_usage_over_share_pauses(autojump_clock: trio.abc.Clock) -> None:
    limiter = QuotaLimiter("test-graph", ApiLimitsConfig(usage_pause_seconds=120.0))
    limiter.observe(Usage(percent_used=85.0))
    assert limiter.statistics().used_ratio == pytest.approx(0.85)
    assert await elapsed_for(limiter, 1) == pytest.approx(120.0)
    assert limiter.statistics().pauses == 1


async def test_graph_usage_under_share_no_pause(autojump_clock: trio.abc.Clock) -> None:
    limiter = QuotaLimiter("test-graph-low", ApiLimitsConfig())
    limiter.observe(Usage(percent_used=50.0))
    assert await elapsed_for(limiter, 1) == pytest.approx(0.0)
    assert quota_gauge("test-graph-low") == pytest.approx(0.5)


async def test_count_quota_spread_until_reset(autojump_clock: trio.abc.Clock) -> None:
    limiter = QuotaLimiter("test-count", ApiLimitsConfig(usage_pause_share=0.8))
    # 80 % used, two calls left for 100 s: one every 50 s.
    limiter.observe(Usage(remaining=2.0, limit=10.0, reset_seconds=100.0))
    assert await elapsed_for(limiter, 1) == pytest.approx(50.0)


async def test_exhausted_quota_waits_for_reset(autojump_clock: trio.abc.Clock) -> None:
    limiter = QuotaLimiter("test-reset", ApiLimitsConfig(requests_per_minute=60, burst=5))
    limiter.observe(Usage(remaining=0.0, limit=10.0, reset_seconds=600.0))
    # The pause lasts until the reset, and the drained bucket adds one refill (1 s).
    assert await elapsed_for(limiter, 1) == pytest.approx(601.0)


def test_yelp_headers_read() -> None:
    now = datetime.datetime(2026, 3, 27, 23, 0, tzinfo=datetime.UTC).timestamp()
    headers = httpx.Headers(
        {
            "RateLimit-DailyLimit": "5000",
            "RateLimit-Remaining": "4000",
            "RateLimit-ResetTime": "2026-03-28T00:00:00+00:00",
        }
    )
    usage = parse_usage_headers(headers, now=now)
    assert usage == Usage(remaining=4000.0, reset_seconds=3600.0, limit=5000.0)
    assert usage is not None and usage.used_ratio() == pytest.approx(0.2)


def test_bad_reset_time_ignored() -> None:
    headers = httpx.Headers({"RateLimit-Remaining": "4", "RateLimit-ResetTime": "tomorrow"})
    assert parse_usage_headers(headers, now=0.0) == Usage(remaining=4.0)


async def test_yelp_standin_reports_daily_quota(base_url: str) -> None:
    await set_faults(base_url, "yelp", {"daily_limit": 10})
    client = yelp_client(
        YelpConfig(api_base=f"{base_url}/yelp/v3"), api_key=yelp_sandbox.SANDBOX_API_KEY
    )
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"{base_url}/yelp/v3/businesses/{BUSINESS}/reviews",
            headers={"Authorization": f"Bearer {yelp_sandbox.SANDBOX_API_KEY}"},
        )
    assert response.headers["RateLimit-DailyLimit"] == "10"
    assert response.headers["RateLimit-Remaining"] == "9"
    assert response.headers["RateLimit-ResetTime"].endswith("T00:00:00+00:00")

    await client.list_excerpts(BUSINESS)
    stats = quota_statistics("yelp")
    assert stats is not None and stats.used_ratio == pytest.approx(0.2)
    assert quota_gauge("yelp") == pytest.approx(0.2)
    await client.aclose()


async def test_yelp_exhausted_quota_pauses_client(base_url: str) -> None:
    await set_faults(base_url, "yelp", {"daily_limit": 1})
    client = yelp_client(
        YelpConfig(api_base=f"{base_url}/yelp/v3"), api_key=yelp_sandbox.SANDBOX_API_KEY
    )
    await client.list_excerpts(BUSINESS)

    stats = quota_statistics("yelp")
    assert stats is not None and stats.used_ratio == pytest.approx(1.0)
    # Paused until the next midnight UTC, which is at most a day away.
    assert 0 < stats.paused_seconds <= 86_400
    await client.aclose()


async def test_yelp_over_daily_limit_rejected(base_url: str) -> None:
    await set_faults(base_url, "yelp", {"daily_limit": 1})
    headers = {"Authorization": f"Bearer {yelp_sandbox.SANDBOX_API_KEY}"}
    url = f"{base_url}/yelp/v3/businesses/{BUSINESS}/reviews"
    async with httpx.AsyncClient() as http:
        await http.get(url, headers=headers)
        response = await http.get(url, headers=headers)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "ACCESS_LIMIT_REACHED"
    assert response.headers["RateLimit-Remaining"] == "0"


async def test_facebook_usage_pauses_client(base_url: str) -> None:
    await set_faults(base_url, "facebook", {"call_budget": 10})
    config = FacebookConfig(
        api_base=f"{base_url}/facebook/v19.0",
        retry=RetryConfig(max_attempts=1),
        limits=FacebookLimits(usage_pause_seconds=300.0),
        pages=[FacebookPage(page_id=PAGE, access_token=fb_sandbox.SANDBOX_PAGE_TOKEN)],
    )
    client = facebook_client(config, page_tokens={PAGE: fb_sandbox.SANDBOX_PAGE_TOKEN})

    for _ in range(7):
        await client.list_ratings_page(PAGE)
    stats = quota_statistics("facebook")
    assert stats is not None and stats.paused_seconds == 0
    assert quota_gauge("facebook") == pytest.approx(0.7)

    # The eighth call reports 80 % of the budget used, so requests pause.
    await client.list_ratings_page(PAGE)
    stats = quota_statistics("facebook")
    assert stats is not None and stats.pauses == 1
    # Loopback I/O lets the virtual clock move a little, never by minutes.
    assert stats.paused_seconds == pytest.approx(300.0, abs=5.0)
    await client.aclose()


def test_health_table_shows_quota() -> None:
    row = {"platform": "yelp", "profile": "", "state": "healthy", "quota_used": 0.42}
    lines = render_health({"subjects": [row]}).splitlines()
    assert "QUOTA USED" in lines[0]
    assert "42.00%" in lines[1]


def test_quota_limiter_repr() -> None:
    limiter = QuotaLimiter("test-repr", ApiLimitsConfig(), clock=lambda: 0.0)
    limiter.observe(Usage(percent_used=25.0))
    assert repr(limiter) == "<QuotaLimiter test-repr used=0.25 paused=0.0s pauses=0>"
