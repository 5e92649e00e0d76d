"""Polite storefront fetching against the sandbox's marketplace pages over real loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import httpx
import pytest
import trio

from plaudit.connectors.marketplace.errors import (
    BlockedPageError,
    MarkupDriftError,
    NotAStorefrontError,
)
from plaudit.connectors.marketplace.fetch import FetchPlan, StorefrontFetcher
from plaudit.connectors.marketplace.sites import get_site
from plaudit.connectors.marketplace.storefront import parse_storefront
from plaudit.connectors.marketplace.sync import plan_snapshot
from plaudit.connectors.marketplace.verify import verify_storefront
from plaudit.errors import PlatformError
from plaudit.journal import Journal
from plaudit.reviews.store import apply_snapshot
from plaudit.sandbox import SandboxOptions, serve_sandbox

HITCHED = get_site("hitched")
HOUR = 3600.0
TODAY = date(2026, 6, 1)


class FakeClock:
    """A monotonic clock that moves only when the test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sandbox:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.clock = FakeClock()
        self.user_agents: list[str] = []
        self.paths: list[str] = []

        async def remember(request: httpx.Request) -> None:
            self.user_agents.append(request.headers.get("user-agent", ""))
            self.paths.append(request.url.path)

        self.client = httpx.AsyncClient(event_hooks={"request": [remember]}, timeout=10.0)
        self.fetcher = StorefrontFetcher(
            self.client, contact="ops@example.com", min_interval=HOUR, clock=self.clock
        )

    def url(self, site: str, profile: str) -> str:
        return f"{self.base_url}/marketplace/{site}/{profile}.htm"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with trio.open_nursery() as nursery:
        # No scripted events, so pages change only when a test changes them.
        base_url = await nursery.start(serve_sandbox, SandboxOptions(script_seconds=0))
        running = Sandbox(base_url)
        async with running.client:
            yield running
        nursery.cancel_scope.cancel()


async def test_fetch_parses_json_ld_page(sandbox: Sandbox) -> None:
    url = sandbox.url("hitched", "willow-barn")

    result = await sandbox.fetcher.fetch(url, site=HITCHED, profile="willow-barn")

    assert result.outcome == "fetched"
    assert result.html is not None
    page = parse_storefront(result.html, site=HITCHED, profile="willow-barn")
    assert page.source == "json-ld"
    assert page.vendor.name == "Willow Barn"
    assert len(page.reviews) == 6
    assert page.vendor.review_count == 6


async def test_fetch_sends_honest_user_agent(sandbox: Sandbox) -> None:
    await sandbox.fetcher.fetch(
        sandbox.url("hitched", "willow-barn"), site=HITCHED, profile="willow-barn"
    )

    assert sandbox.paths == ["/robots.txt", "/marketplace/hitched/willow-barn.htm"]
    for agent in sandbox.user_agents:
        assert agent.startswith("Plaudit/")
        assert "ops@example.com" in agent


async def test_second_fetch_waits_an_hour(sandbox: Sandbox) -> None:
    url = sandbox.url("hitched", "willow-barn")
    await sandbox.fetcher.fetch(url, site=HITCHED, profile="willow-barn")
    sandbox.clock.now += HOUR - 1

    result = await sandbox.fetcher.fetch(url, site=HITCHED, profile="willow-barn")

    assert result.outcome == "too_soon"
    assert result.next_allowed_at == 1000.0 + HOUR
    assert sandbox.paths.count("/marketplace/hitched/willow-barn.htm") == 1


async def test_unchanged_page_is_not_modified(sandbox: Sandbox) -> None:
    url = sandbox.url("hitched", "willow-barn")
    await sandbox.fetcher.fetch(url, site=HITCHED, profile="willow-barn")
    sandbox.clock.now += HOUR

    result = await sandbox.fetcher.fetch(url, site=HITCHED, profile="willow-barn")

    assert result.outcome == "not_modified"
    assert result.html is None
    assert sandbox.fetcher.statistics()["not_modified"] == 1
    # robots.txt is read once per host, not once per page.
    assert sandbox.paths.count("/robots.txt") == 1


async def test_robots_disallowed_page_not_fetched(sandbox: Sandbox) -> None:
    url = f"{sandbox.base_url}/marketplace/private/secret.htm"

    result = await sandbox.fetcher.fetch(url, site=HITCHED, profile="secret")

    assert result.outcome == "disallowed"
    assert sandbox.paths == ["/robots.txt"]


async def test_challenge_page_raises_blocked(sandbox: Sandbox) -> None:
    with pytest.raises(BlockedPageError, match="Cloudflare challenge"):
        await sandbox.fetcher.fetch(
            sandbox.url("hitched", "challenge"), site=HITCHED, profile="challenge"
        )


async def test_moved_storefront_is_listing(sandbox: Sandbox) -> None:
    result = await sandbox.fetcher.fetch(
        sandbox.url("hitched", "moved"), site=HITCHED, profile="moved"
    )

    assert result.outcome == "fetched"
    assert result.final_url.endswith("/marketplace/hitched/search")
    assert result.html is not None
    with pytest.raises(NotAStorefrontError):
        parse_storefront(result.html, site=HITCHED, profile="moved")
    verification = verify_storefront(
        result.html, site=HITCHED, profile="moved", expected_name="Old Mill House"
    )
    assert verification.state == "not_a_storefront"


async def test_spanish_markup_page(sandbox: Sandbox) -> None:
    bodas = get_site("bodas")

    result = await sandbox.fetcher.fetch(
        sandbox.url("bodas", "finca-olivos"), site=bodas, profile="finca-olivos"
    )

    assert result.html is not None
    page = parse_storefront(result.html, site=bodas, profile="finca-olivos")
    assert page.source == "markup"
    assert len(page.reviews) == 6
    assert all(review.date for review in page.reviews)


async def test_renamed_class_is_drift(sandbox: Sandbox) -> None:
    result = await sandbox.fetcher.fetch(
        sandbox.url("hitched", "renamed-class"), site=HITCHED, profile="renamed-class"
    )

    assert result.html is not None
    with pytest.raises(MarkupDriftError, match=r"li\.storefrontReviewsTile"):
        parse_storefront(result.html, site=HITCHED, profile="renamed-class")


async def test_missing_storefront_not_retryable(sandbox: Sandbox) -> None:
    with pytest.raises(PlatformError, match="was not found") as caught:
        await sandbox.fetcher.fetch(sandbox.url("hitched", "absent"), site=HITCHED, profile="x")

    assert caught.value.retryable is False
    assert caught.value.status == 404
    again = await sandbox.fetcher.fetch(sandbox.url("hitched", "absent"), site=HITCHED, profile="x")
    assert again.outcome == "too_soon"


async def test_unreachable_robots_fails_retryably() -> None:
    # A port on loopback that nothing listens on: bind, read the port, close.
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with httpx.AsyncClient(timeout=5.0) as client:
        fetcher = StorefrontFetcher(client, contact="ops@example.com", clock=FakeClock())
        # robots.txt is unreachable too, so no page of the host is requested now.
        with pytest.raises(PlatformError, match=r"failed to read .*/robots\.txt") as caught:
            await fetcher.fetch(
                f"http://127.0.0.1:{port}/marketplace/hitched/willow-barn.htm",
                site=HITCHED,
                profile="willow-barn",
            )

    assert caught.value.retryable is True
    assert "disallows" not in str(caught.value)


def test_plan_rejects_zero_interval() -> None:
    with pytest.raises(ValueError, match="invalid min_interval 0"):
        FetchPlan(min_interval=0)


def test_plan_conditional_headers() -> None:
    plan = FetchPlan()
    headers = httpx.Headers({"ETag": '"abc"', "Last-Modified": "Tue, 14 May 2024 09:00:00 GMT"})

    plan.record("p", now=5.0, status=200, headers=headers)
    plan.record("q", now=5.0, status=500, headers=headers)

    assert plan.request_headers("p") == {
        "If-None-Match": '"abc"',
        "If-Modified-Since": "Tue, 14 May 2024 09:00:00 GMT",
    }
    assert plan.request_headers("q") == {}
    assert plan.statistics() == {"profiles": 2, "with_validators": 1}
    assert plan.next_allowed_at("p") == 5.0 + 3600.0


async def test_synced_page_matches_truth(sandbox: Sandbox, tmp_path: Path) -> None:
    result = await sandbox.fetcher.fetch(
        sandbox.url("hitched", "willow-barn"), site=HITCHED, profile="willow-barn"
    )
    assert result.html is not None
    page = parse_storefront(result.html, site=HITCHED, profile="willow-barn")
    truth = (await sandbox.client.get(f"{sandbox.base_url}/_sandbox/truth")).json()

    journal = Journal.open(tmp_path / "journal.sqlite3")
    try:
        with journal.transaction() as tx:
            snapshot = plan_snapshot(
                page, site=HITCHED, profile="willow-barn", stored=[], today=TODAY, now=0.0
            )
            outcome = apply_snapshot(
                tx,
                platform=snapshot.platform,
                profile=snapshot.profile,
                reviews=snapshot.reviews,
                complete=snapshot.complete,
            )
        stored = journal.query("SELECT review_id, stars, author, text, created_at FROM reviews")
    finally:
        journal.close()

    profiles = {entry["profile"]: entry["reviews"] for entry in truth["marketplace"]["profiles"]}
    expected = {
        (
            review["review_id"],
            review["stars"],
            review["author"],
            review["text"],
            review["created_at"][:10] + "T00:00:00.000Z",
        )
        for review in profiles["willow-barn"]
        if review["deleted_at"] is None
    }
    assert snapshot.complete is True
    assert outcome.created == len(expected)
    assert set(stored) == expected
