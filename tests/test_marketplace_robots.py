"""robots.txt outcomes of the storefront fetcher: 4xx, 5xx, a failed refresh and a disallow."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from plaudit.connectors.marketplace.fetch import (
    ROBOTS_MAX_AGE,
    RobotsUnavailableError,
    StorefrontFetcher,
)
from plaudit.connectors.marketplace.sites import get_site

HITCHED = get_site("hitched")
PAGE = "http://127.0.0.1:9/marketplace/hitched/willow-barn.htm"
STOREFRONT = (
    '<html><head><script type="application/ld+json">{"@type": "LocalBusiness", '
    '"name": "Willow Barn"}</script></head><body></body></html>'
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fetcher_for(
    robots: Callable[[], httpx.Response], clock: Clock, requests: list[str]
) -> StorefrontFetcher:
    """Build a fetcher whose transport returns ``robots()`` for robots.txt and 200 for pages."""

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request.url.path)
        if request.url.path == "/robots.txt":
            return robots()
        return httpx.Response(200, text=STOREFRONT)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    return StorefrontFetcher(client, contact="ops@example.com", clock=clock)


async def test_robots_404_means_no_rules() -> None:
    requests: list[str] = []
    fetcher = fetcher_for(lambda: httpx.Response(404), Clock(), requests)

    result = await fetcher.fetch(PAGE, site=HITCHED, profile="willow-barn")

    assert result.outcome == "fetched"
    assert requests == ["/robots.txt", "/marketplace/hitched/willow-barn.htm"]


async def test_robots_503_raises_retryable_error() -> None:
    requests: list[str] = []
    fetcher = fetcher_for(lambda: httpx.Response(503), Clock(), requests)

    with pytest.raises(RobotsUnavailableError) as caught:
        await fetcher.fetch(PAGE, site=HITCHED, profile="willow-barn")

    assert caught.value.retryable is True
    assert "failed to read http://127.0.0.1:9/robots.txt (HTTP 503)" in str(caught.value)
    assert "retried later" in str(caught.value)
    assert "disallow" not in str(caught.value)
    assert requests == ["/robots.txt"]
    assert fetcher.statistics()["robots_failures"] == 1


async def test_robots_failure_not_cached() -> None:
    requests: list[str] = []
    answers = [httpx.Response(500), httpx.Response(200, text="User-agent: *\nAllow: /\n")]
    fetcher = fetcher_for(lambda: answers.pop(0), Clock(), requests)

    with pytest.raises(RobotsUnavailableError):
        await fetcher.fetch(PAGE, site=HITCHED, profile="willow-barn")
    result = await fetcher.fetch(PAGE, site=HITCHED, profile="willow-barn")

    assert result.outcome == "fetched"
    assert requests.count("/robots.txt") == 2


async def test_failed_refresh_keeps_earlier_rules() -> None:
    requests: list[str] = []
    clock = Clock()
    answers = [
        httpx.Response(200, text="User-agent: *\nDisallow: /marketplace/private/\n"),
        httpx.Response(503),
    ]
    fetcher = fetcher_for(lambda: answers.pop(0), clock, requests)
    await fetcher.fetch(PAGE, site=HITCHED, profile="willow-barn")

    clock.now += ROBOTS_MAX_AGE + 1
    result = await fetcher.fetch(PAGE, site=HITCHED, profile="willow-barn")

    assert result.outcome == "fetched"
    assert requests.count("/robots.txt") == 2
    assert fetcher.statistics()["robots_failures"] == 1


async def test_robots_disallow_still_reported() -> None:
    requests: list[str] = []
    rules = "User-agent: *\nDisallow: /marketplace/\n"
    fetcher = fetcher_for(lambda: httpx.Response(200, text=rules), Clock(), requests)

    result = await fetcher.fetch(PAGE, site=HITCHED, profile="willow-barn")

    assert result.outcome == "disallowed"
    assert requests == ["/robots.txt"]
