"""Listings that resume at the page where an interrupted one stopped.

Each page's reviews and the next page's cursor are committed as the page is
read, so a sync cut short by a failing page starts the next job at that
page.  The stand-ins log the page of every listing request, over real
loopback HTTP, on a virtual clock.
"""

from __future__ import annotations

import logging

import httpx
import pytest

from plaudit.actors.listing import ListingActor, ListingSource, sync_job
from plaudit.actors.sources import FacebookSource, TrustpilotSource
from plaudit.config.model import (
    BreakerConfig,
    FacebookConfig,
    FacebookPage,
    RetryConfig,
    TrustpilotBusinessUnit,
    TrustpilotConfig,
)
from plaudit.connectors.facebook import facebook_client
from plaudit.connectors.trustpilot import trustpilot_client
from plaudit.errors import PlatformError
from plaudit.journal import AsyncJournal
from plaudit.reliability.resume import MAX_RESUMES, listing_cursor, resume_count_cursor
from plaudit.reviews.store import load_reviews
from plaudit.sandbox import facebook as fb_sandbox
from plaudit.sandbox import trustpilot as tp_sandbox
from tests.support_listing import RefusingTransport, phantom_deleted, store_phantom

UNIT = tp_sandbox.UNIT_IDS[0]
PAGE = fb_sandbox.PAGE_IDS[0]
# One attempt a call, so a failing page fails the sync at once.
ONE_ATTEMPT = RetryConfig(max_attempts=1)


class FailingPage(RefusingTransport):
    """Fails the listing page ``page`` while ``failing`` is set."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.page = page
        self.failing = True

    def refuses(self, request: httpx.Request) -> bool:
        return self.failing and request.url.params.get("page") == self.page


def trustpilot_source(base_url: str, transport: httpx.AsyncBaseTransport) -> TrustpilotSource:
    config = TrustpilotConfig(
        api_base=f"{base_url}/trustpilot/v1",
        token_url=f"{base_url}/trustpilot/v1/oauth/oauth-business-users-for-applications/accesstoken",
        api_key=tp_sandbox.SANDBOX_API_KEY,
        api_secret=tp_sandbox.SANDBOX_API_SECRET,
        page_size=5,
        retry=ONE_ATTEMPT,
        business_units=[TrustpilotBusinessUnit(business_unit_id=UNIT)],
    )
    client = trustpilot_client(
        config, api_secret=tp_sandbox.SANDBOX_API_SECRET, transport=transport
    )
    return TrustpilotSource(config, client)


def facebook_source(base_url: str) -> FacebookSource:
    config = FacebookConfig(
        api_base=f"{base_url}/facebook/v19.0",
        page_size=5,
        retry=ONE_ATTEMPT,
        pages=[FacebookPage(page_id=PAGE, access_token=fb_sandbox.SANDBOX_PAGE_TOKEN)],
    )
    client = facebook_client(config, page_tokens={PAGE: fb_sandbox.SANDBOX_PAGE_TOKEN})
    return FacebookSource(config, client)


def listing_actor(journal: AsyncJournal, source: ListingSource) -> ListingActor:
    return ListingActor(
        journal, source, sync_interval=300.0, breaker=BreakerConfig(), lease_seconds=60.0
    )


async def run_sync(journal: AsyncJournal, actor: ListingActor, profile: str, slot: int) -> None:
    """Claim one sync job of ``profile`` and run it as the actor's loop does; raise its error."""
    await journal.enqueue(**sync_job(actor.name, profile, slot=slot, interval=300.0))
    (job,) = await journal.claim(actor.name, kinds=actor.kinds)
    effects = await actor.handle(job)
    await journal.complete(job.id, effects)


async def logged_pages(base_url: str, platform: str, field: str) -> list[str]:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{base_url}/_sandbox/{platform}/requests")
    response.raise_for_status()
    pages: list[str] = response.json()[field]
    return pages


async def stored_cursor(journal: AsyncJournal, platform: str, profile: str) -> str | None:
    return await journal.transaction(lambda tx: tx.get_cursor(platform, listing_cursor(profile)))


async def test_interrupted_listing_resumes_at_page_3(
    quiet_sandbox_url: str, journal: AsyncJournal
) -> None:
    transport = FailingPage("3")
    actor = listing_actor(journal, trustpilot_source(quiet_sandbox_url, transport))

    with pytest.raises(PlatformError):
        await run_sync(journal, actor, UNIT, slot=1)
    assert await logged_pages(quiet_sandbox_url, "trustpilot", "page") == ["1", "2"]
    assert await stored_cursor(journal, "trustpilot", UNIT) == "3"

    transport.failing = False
    await run_sync(journal, actor, UNIT, slot=2)
    pages = await logged_pages(quiet_sandbox_url, "trustpilot", "page")
    assert pages == ["1", "2", "3", "4", "5", "6"]
    await actor.source.aclose()


async def test_pages_before_failure_are_stored(
    quiet_sandbox_url: str, journal: AsyncJournal
) -> None:
    actor = listing_actor(journal, trustpilot_source(quiet_sandbox_url, FailingPage("3")))

    with pytest.raises(PlatformError):
        await run_sync(journal, actor, UNIT, slot=1)

    reviews = await journal.transaction(lambda tx: load_reviews(tx, "trustpilot", UNIT))
    # Two pages of five.
    assert len(reviews) == 10
    await actor.source.aclose()


async def test_completed_listing_clears_cursor(
    quiet_sandbox_url: str, journal: AsyncJournal
) -> None:
    transport = FailingPage("3")
    actor = listing_actor(journal, trustpilot_source(quiet_sandbox_url, transport))
    with pytest.raises(PlatformError):
        await run_sync(journal, actor, UNIT, slot=1)
    transport.failing = False

    await run_sync(journal, actor, UNIT, slot=2)
    assert await stored_cursor(journal, "trustpilot", UNIT) == ""

    # The next listing starts at the first page again.
    await run_sync(journal, actor, UNIT, slot=3)
    assert (await logged_pages(quiet_sandbox_url, "trustpilot", "page"))[6] == "1"
    await actor.source.aclose()


async def test_resumed_listing_infers_no_deletion(
    quiet_sandbox_url: str, journal: AsyncJournal
) -> None:
    await store_phantom(journal, "trustpilot", UNIT)
    transport = FailingPage("3")
    actor = listing_actor(journal, trustpilot_source(quiet_sandbox_url, transport))
    with pytest.raises(PlatformError):
        await run_sync(journal, actor, UNIT, slot=1)
    transport.failing = False

    await run_sync(journal, actor, UNIT, slot=2)
    assert not await phantom_deleted(journal, "trustpilot", UNIT)

    # A whole listing from the first page may, and does.
    await run_sync(journal, actor, UNIT, slot=3)
    assert await phantom_deleted(journal, "trustpilot", UNIT)
    await actor.source.aclose()


async def test_rejected_cursor_restarts_at_first_page(
    quiet_sandbox_url: str, journal: AsyncJournal, caplog: pytest.LogCaptureFixture
) -> None:
    # An expired or foreign cursor, which the stand-in rejects with Graph error code 100.
    await journal.transaction(lambda tx: tx.set_cursor("facebook", listing_cursor(PAGE), "zz"))
    actor = listing_actor(journal, facebook_source(quiet_sandbox_url))

    with caplog.at_level(logging.WARNING, logger="plaudit.actors.listing"):
        await run_sync(journal, actor, PAGE, slot=1)

    pages = await logged_pages(quiet_sandbox_url, "facebook", "after")
    assert pages[:2] == ["zz", ""]
    assert any(record.message == "listing.resume_rejected" for record in caplog.records)
    assert await stored_cursor(journal, "facebook", PAGE) == ""
    await actor.source.aclose()


async def test_sync_log_counts_changes_of_committed_pages(
    quiet_sandbox_url: str, journal: AsyncJournal, caplog: pytest.LogCaptureFixture
) -> None:
    actor = listing_actor(journal, facebook_source(quiet_sandbox_url))
    with caplog.at_level(logging.INFO, logger="plaudit.actors.listing"):
        await run_sync(journal, actor, PAGE, slot=1)
        await run_sync(journal, actor, PAGE, slot=2)

    stored = await journal.transaction(lambda tx: load_reviews(tx, "facebook", PAGE))
    first, second = [r for r in caplog.records if r.message == "listing.synced"]
    # The first sync stored every review through its page commits, and logs them as created.
    assert stored
    assert first.outcome["created"] == len(stored)
    assert first.outcome["unchanged"] == 0
    assert second.outcome["created"] == 0
    assert second.outcome["unchanged"] == len(stored)
    await actor.source.aclose()


async def test_resume_given_up_after_resumes_without_progress(
    quiet_sandbox_url: str, journal: AsyncJournal, caplog: pytest.LogCaptureFixture
) -> None:
    # Page 3 fails on every attempt.
    transport = FailingPage("3")
    actor = listing_actor(journal, trustpilot_source(quiet_sandbox_url, transport))
    with pytest.raises(PlatformError):
        await run_sync(journal, actor, UNIT, slot=1)

    for slot in range(2, 2 + MAX_RESUMES):
        with pytest.raises(PlatformError):
            await run_sync(journal, actor, UNIT, slot=slot)
    # Each of those resumed at page 3, whose requests fail before reaching the stand-in.
    assert await logged_pages(quiet_sandbox_url, "trustpilot", "page") == ["1", "2"]

    with (
        caplog.at_level(logging.WARNING, logger="plaudit.reliability.resume"),
        pytest.raises(PlatformError),
    ):
        await run_sync(journal, actor, UNIT, slot=2 + MAX_RESUMES)
    # The next one starts over at the first page, where new reviews appear.
    assert await logged_pages(quiet_sandbox_url, "trustpilot", "page") == ["1", "2", "1", "2"]
    assert any(record.message == "listing.resume_abandoned" for record in caplog.records)
    await actor.source.aclose()


async def test_committed_page_resets_resume_count(
    quiet_sandbox_url: str, journal: AsyncJournal
) -> None:
    transport = FailingPage("3")
    actor = listing_actor(journal, trustpilot_source(quiet_sandbox_url, transport))
    with pytest.raises(PlatformError):
        await run_sync(journal, actor, UNIT, slot=1)
    with pytest.raises(PlatformError):
        await run_sync(journal, actor, UNIT, slot=2)
    assert (
        await journal.transaction(lambda tx: tx.get_cursor("trustpilot", resume_count_cursor(UNIT)))
        == "1"
    )

    transport.page = "5"
    with pytest.raises(PlatformError):
        await run_sync(journal, actor, UNIT, slot=3)
    # Pages 3 and 4 were committed, so the count starts again from the resume at page 5.
    assert await stored_cursor(journal, "trustpilot", UNIT) == "5"
    assert (
        await journal.transaction(lambda tx: tx.get_cursor("trustpilot", resume_count_cursor(UNIT)))
        == "0"
    )
    await actor.source.aclose()
