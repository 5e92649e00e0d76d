"""Google full listings that resume at the page where an interrupted one stopped.

Each page of a full listing is committed with the token of the next page, so
a sync cut short by a failing page starts the next job at that page.  The
actor talks to the sandbox over real loopback HTTP, on a virtual clock.  A
transport in between records the page token of each listing request, and it
can fail one of them.
"""

from __future__ import annotations

import logging

import httpx
import pytest

from plaudit.actors.google import (
    FULL_SYNC_CURSOR,
    FetchPage,
    Finish,
    GoogleActor,
    PageArrived,
    begin,
    decide,
    sync_job,
)
from plaudit.config.model import GoogleConfig, GoogleLocation, RetryConfig
from plaudit.connectors.google import GoogleClient, ReviewPage
from plaudit.errors import PlatformError
from plaudit.journal import AsyncJournal
from plaudit.reliability.resume import listing_cursor
from plaudit.reviews.model import Review
from plaudit.reviews.store import load_reviews
from plaudit.sandbox import app as google_sandbox
from plaudit.sandbox.truth import truth_reviews
from tests.support_listing import RefusingTransport, phantom_deleted, store_phantom

LOCATION = GoogleLocation(account="accounts/1001", location="locations/2001")
PROFILE = f"{LOCATION.account}/{LOCATION.location}"
PAGE_SIZE = 20


class PageRecorder(RefusingTransport):
    """Records the page token of each listing request.

    While ``fail_at`` is set, the listing request with that 1-based number
    fails with a refused connection.
    """

    def __init__(self, *, fail_at: int | None = None) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.tokens: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if is_listing(request):
            self.tokens.append(request.url.params.get("pageToken", ""))
        return await super().handle_async_request(request)

    def refuses(self, request: httpx.Request) -> bool:
        return is_listing(request) and self.fail_at == len(self.tokens)


def is_listing(request: httpx.Request) -> bool:
    return request.url.path.endswith("/reviews")


def google_actor(journal: AsyncJournal, base_url: str, transport: PageRecorder) -> GoogleActor:
    config = GoogleConfig(
        api_base=f"{base_url}/google/v4",
        token_url=f"{base_url}/google/oauth2/token",
        client_id=google_sandbox.SANDBOX_CLIENT_ID,
        client_secret=google_sandbox.SANDBOX_CLIENT_SECRET,
        refresh_token=google_sandbox.SANDBOX_REFRESH_TOKEN,
        page_size=PAGE_SIZE,
        # One attempt a call, so a failing page fails the sync at once.
        retry=RetryConfig(max_attempts=1),
        locations=[LOCATION],
    )

    def client_factory(config: GoogleConfig) -> GoogleClient:
        return GoogleClient(
            config,
            client_secret=config.client_secret,
            refresh_token=config.refresh_token,
            transport=transport,
        )

    actor = GoogleActor(journal, config, client_factory, lease_seconds=60.0)
    actor.client = client_factory(config)
    return actor


async def run_sync(journal: AsyncJournal, actor: GoogleActor, slot: int) -> None:
    """Claim one sync job and run it as the actor's loop does; raise its error."""
    await journal.enqueue(**sync_job(LOCATION, slot=slot, interval=300.0))
    (job,) = await journal.claim("google", kinds=actor.kinds)
    effects = await actor.handle(job)
    await journal.complete(job.id, effects)


async def sandbox_review_ids(base_url: str) -> set[str]:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{base_url}/_sandbox/truth")
    truth = truth_reviews(response.json())
    return {r.review_id for r in truth if r.profile == PROFILE and r.deleted_at is None}


async def stored_cursor(journal: AsyncJournal, name: str) -> str | None:
    return await journal.transaction(lambda tx: tx.get_cursor("google", name))


async def stored_reviews(journal: AsyncJournal) -> list[Review]:
    return await journal.transaction(
        lambda tx: load_reviews(tx, "google", PROFILE, include_deleted=True)
    )


# The pure steps.


def page(review_ids: list[str], token: str | None) -> ReviewPage:
    reviews = [
        Review(
            platform="google",
            profile=PROFILE,
            review_id=review_id,
            stars=5,
            text="Great band",
            author="Sam K",
            created_at="2026-01-01T10:00:00.000Z",
            updated_at="2026-01-01T10:00:00.000Z",
        )
        for review_id in review_ids
    ]
    return ReviewPage(
        reviews=reviews, next_page_token=token, average_rating=5.0, total_review_count=1
    )


def test_resumed_listing_asks_for_the_stored_token() -> None:
    _state, action = begin(PROFILE, resume="t7")
    assert action == FetchPage(token="t7")


def test_resume_token_served_again_ends_listing() -> None:
    state, _ = begin(PROFILE, resume="t7")
    _state, action = decide(state, PageArrived(page(["a"], "t7")))
    assert isinstance(action, Finish)
    assert not action.complete


# On the sandbox.


async def test_pages_before_failure_are_stored(
    quiet_sandbox_url: str, journal: AsyncJournal
) -> None:
    transport = PageRecorder(fail_at=3)
    actor = google_actor(journal, quiet_sandbox_url, transport)

    with pytest.raises(PlatformError):
        await run_sync(journal, actor, slot=1)

    assert len(await stored_reviews(journal)) == 2 * PAGE_SIZE
    # The cursor names the page that failed.
    assert await stored_cursor(journal, listing_cursor(PROFILE)) == transport.tokens[2]


async def test_interrupted_listing_resumes_at_failed_page(
    quiet_sandbox_url: str, journal: AsyncJournal, caplog: pytest.LogCaptureFixture
) -> None:
    transport = PageRecorder(fail_at=3)
    actor = google_actor(journal, quiet_sandbox_url, transport)
    with pytest.raises(PlatformError):
        await run_sync(journal, actor, slot=1)
    failed_token = transport.tokens[2]

    transport.fail_at = None
    with caplog.at_level(logging.INFO, logger="plaudit.actors.google"):
        await run_sync(journal, actor, slot=2)

    # The second job asked for the failed page first, and never for the first page.
    resumed = transport.tokens[3:]
    assert resumed[0] == failed_token
    assert "" not in resumed
    assert any(record.message == "google.listing_resumed" for record in caplog.records)
    # Every review of the location is stored, and nothing else.
    listed = {r.review_id for r in await stored_reviews(journal)}
    assert listed == await sandbox_review_ids(quiet_sandbox_url)
    assert await stored_cursor(journal, listing_cursor(PROFILE)) == ""


async def test_resumed_listing_is_not_a_full_listing(
    quiet_sandbox_url: str, journal: AsyncJournal
) -> None:
    await store_phantom(journal, "google", PROFILE)
    transport = PageRecorder(fail_at=2)
    actor = google_actor(journal, quiet_sandbox_url, transport)
    with pytest.raises(PlatformError):
        await run_sync(journal, actor, slot=1)
    transport.fail_at = None

    await run_sync(journal, actor, slot=2)
    # It lacked the first page, so it inferred no deletion and left the next sync full.
    assert not await phantom_deleted(journal, "google", PROFILE)
    assert await stored_cursor(journal, FULL_SYNC_CURSOR.format(profile=PROFILE)) is None

    before = len(transport.tokens)
    await run_sync(journal, actor, slot=3)
    # The next listing starts at the first page and may, and does, infer the deletion.
    assert transport.tokens[before] == ""
    assert await phantom_deleted(journal, "google", PROFILE)
    assert await stored_cursor(journal, FULL_SYNC_CURSOR.format(profile=PROFILE))


async def test_rejected_token_restarts_at_first_page(
    quiet_sandbox_url: str, journal: AsyncJournal, caplog: pytest.LogCaptureFixture
) -> None:
    # A token the sandbox cannot decode, which makes it return 400 INVALID_ARGUMENT.
    await journal.transaction(lambda tx: tx.set_cursor("google", listing_cursor(PROFILE), "zz"))
    transport = PageRecorder()
    actor = google_actor(journal, quiet_sandbox_url, transport)

    with caplog.at_level(logging.WARNING, logger="plaudit.actors.google"):
        await run_sync(journal, actor, slot=1)

    assert transport.tokens[:2] == ["zz", ""]
    assert any(record.message == "google.resume_rejected" for record in caplog.records)
    assert await stored_cursor(journal, listing_cursor(PROFILE)) == ""
    # Having started over, the listing was whole and counts as the full one.
    assert await stored_cursor(journal, FULL_SYNC_CURSOR.format(profile=PROFILE))


async def test_incremental_listing_leaves_cursor_alone(
    quiet_sandbox_url: str, journal: AsyncJournal
) -> None:
    transport = PageRecorder()
    actor = google_actor(journal, quiet_sandbox_url, transport)
    await run_sync(journal, actor, slot=1)
    # A stale cursor left from some interrupted full listing.
    await journal.transaction(lambda tx: tx.set_cursor("google", listing_cursor(PROFILE), "zz"))

    before = len(transport.tokens)
    await run_sync(journal, actor, slot=2)
    # The full listing was recent, so this sync is incremental and starts at the first page.
    assert transport.tokens[before] == ""
    assert "zz" not in transport.tokens
    assert await stored_cursor(journal, listing_cursor(PROFILE)) == "zz"
