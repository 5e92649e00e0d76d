"""Replies posted by the platform actors to the sandbox stand-ins, in real time.

Each test runs a real journal file, the real connector and actor, and the
sandbox on loopback: the reply is queued as ``ctl review reply`` queues it,
the actor posts it, and a later sync reads it back from the stand-in.  The
journal's worker thread rules out trio's autojump clock, which would skip
ahead while the thread works, so each step waits for its job's state.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from plaudit.actors.base import Actor
from plaudit.actors.google import GoogleActor
from plaudit.actors.listing import ListingActor
from plaudit.actors.sources import FacebookSource, TrustpilotSource
from plaudit.config.model import (
    FacebookConfig,
    FacebookPage,
    GoogleConfig,
    GoogleLocation,
    RateLimitConfig,
    RetryConfig,
    TrustpilotBusinessUnit,
    TrustpilotConfig,
)
from plaudit.connectors.facebook import facebook_client
from plaudit.connectors.google import GoogleClient
from plaudit.connectors.trustpilot import trustpilot_client
from plaudit.daemon.children import ChildContext
from plaudit.journal import AsyncJournal, Journal, Tx
from plaudit.reviews.model import Review
from plaudit.reviews.reply_commands import queue_reply
from plaudit.reviews.store import apply_snapshot, load_reviews
from plaudit.sandbox import SandboxOptions, serve_sandbox
from plaudit.sandbox import app as google_sandbox
from plaudit.sandbox import facebook as fb_sandbox
from plaudit.sandbox import trustpilot as tp_sandbox
from tests.support import query, wait_for

GOOGLE_ACCOUNT = "accounts/1001"
GOOGLE_LOCATION = "locations/2001"
GOOGLE_PROFILE = f"{GOOGLE_ACCOUNT}/{GOOGLE_LOCATION}"
REPLY_ROUTES = {"google": "reviews.reply", "facebook": "fb.comment", "trustpilot": "tp.reply"}
# Real seconds allowed for one job to finish, generous for a loaded machine.
JOB_TIMEOUT = 60.0
# Long enough that a job waiting for the edit limiter keeps its lease.
LEASE = 600.0


@pytest.fixture
async def base_url(nursery: trio.Nursery) -> AsyncIterator[str]:
    # No scripted events: only the replies change the stand-ins.
    url: str = await nursery.start(serve_sandbox, SandboxOptions(seed=6, script_seconds=0))
    yield url


def google_actor(base_url: str, journal: AsyncJournal, *, edits_per_minute: int = 10) -> Actor:
    config = GoogleConfig(
        api_base=f"{base_url}/google/v4",
        token_url=f"{base_url}/google/oauth2/token",
        client_id=google_sandbox.SANDBOX_CLIENT_ID,
        client_secret=google_sandbox.SANDBOX_CLIENT_SECRET,
        refresh_token=google_sandbox.SANDBOX_REFRESH_TOKEN,
        # One attempt per job, so a 5xx reaches the journal's retry.
        retry=RetryConfig(max_attempts=1),
        limits=RateLimitConfig(edits_per_minute=edits_per_minute),
        sync_interval=3600.0,
        locations=[GoogleLocation(account=GOOGLE_ACCOUNT, location=GOOGLE_LOCATION)],
    )

    def client(settings: GoogleConfig) -> GoogleClient:
        return GoogleClient(
            settings, client_secret=settings.client_secret, refresh_token=settings.refresh_token
        )

    return GoogleActor(journal, config, client, lease_seconds=LEASE)


def listing_actor(
    platform: str,
    base_url: str,
    journal: AsyncJournal,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Actor:
    source: FacebookSource | TrustpilotSource
    if platform == "facebook":
        page_id = fb_sandbox.PAGE_IDS[0]
        facebook = FacebookConfig(
            api_base=f"{base_url}/facebook/v19.0",
            pages=[FacebookPage(page_id=page_id, access_token=fb_sandbox.SANDBOX_PAGE_TOKEN)],
            sync_interval=3600.0,
        )
        tokens = {page_id: fb_sandbox.SANDBOX_PAGE_TOKEN}
        client = facebook_client(facebook, page_tokens=tokens, transport=transport)
        source = FacebookSource(facebook, client)
    else:
        trustpilot = TrustpilotConfig(
            api_base=f"{base_url}/trustpilot/v1",
            token_url=f"{base_url}/trustpilot/v1/oauth/oauth-business-users-for-applications/accesstoken",
            api_key=tp_sandbox.SANDBOX_API_KEY,
            api_secret=tp_sandbox.SANDBOX_API_SECRET,
            business_units=[TrustpilotBusinessUnit(business_unit_id=tp_sandbox.UNIT_IDS[0])],
            sync_interval=3600.0,
        )
        tp_client = trustpilot_client(
            trustpilot, api_secret=trustpilot.api_secret, transport=transport
        )
        source = TrustpilotSource(trustpilot, tp_client)
    return ListingActor(
        journal,
        source,
        sync_interval=3600.0,
        breaker=source.config.breaker,
        lease_seconds=LEASE,
    )


class Running:
    """A journal writer and one actor, running until the test's block ends."""

    def __init__(self, writer: AsyncJournal, actor: Actor, context: ChildContext) -> None:
        self.writer = writer
        self.actor = actor
        self.context = context

    async def queue(self, reference: str, text: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.writer.transaction(
            lambda tx: queue_reply(tx, reference, text)
        )
        self.actor.wake()
        return result

    async def sync_again(self, name: str) -> None:
        """Queue one more sync of the actor's profile, due now, and let it run."""
        platform = self.actor.name
        if platform == "google":
            payload: dict[str, Any] = {"account": GOOGLE_ACCOUNT, "location": GOOGLE_LOCATION}
        else:
            profile = fb_sandbox.PAGE_IDS[0] if platform == "facebook" else tp_sandbox.UNIT_IDS[0]
            payload = {"profile": profile}
        kind = f"{platform}.sync"
        key = f"{kind}:{name}"
        await self.writer.enqueue(kind=kind, owner=platform, key=key, payload=payload)
        self.actor.wake()
        await wait_for(
            lambda: job_state(self.writer.journal.path, key) == "succeeded",
            timeout=JOB_TIMEOUT,
            what=f"the sync job {key}",
        )


async def run_actor(path: Path, make_actor: Any, body: Any, *, before: Any = None) -> None:
    """Open the journal, run ``before(tx)`` if given, start the actor, await ``body(running)``."""
    # A failed job is due again 0.01 s of wall-clock time later, so it retries at once.
    opened = Journal.open(path, instance="replies", retry_initial=0.01)
    if before is not None:
        with opened.transaction() as tx:
            before(tx)
    context = ChildContext("test")
    try:
        async with trio.open_nursery() as nursery:
            writer = AsyncJournal(opened)
            await nursery.start(writer.run)
            actor = make_actor(writer)
            nursery.start_soon(actor.start, context)
            # The actor's first sync stores the reviews that the body replies to.
            await wait_for(
                lambda: "succeeded" in job_states(path, f"{actor.name}.sync"),
                timeout=JOB_TIMEOUT,
                what=f"the first {actor.name} sync",
            )
            await body(Running(writer, actor, context))
            context.stop_requested.set()
            actor.wake()
            await trio.sleep(1.0)
            nursery.cancel_scope.cancel()
    finally:
        opened.close()


def stored(path: Path, platform: str) -> list[Review]:
    with sqlite3.connect(path) as connection:
        return load_reviews(connection, platform, include_deleted=True)


def replied_events(path: Path, review_id: str) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT key FROM events WHERE type = 'review.replied' AND subject = ?", (review_id,)
        ).fetchall()
    return [{"key": row[0]} for row in rows]


def job_state(path: Path, key: str) -> str:
    rows = query(path, "SELECT state FROM jobs WHERE key = ?", (key,))
    return str(rows[0][0]) if rows else ""


def job_states(path: Path, kind: str) -> list[str]:
    return [str(row[0]) for row in query(path, "SELECT state FROM jobs WHERE kind = ?", (kind,))]


async def wait_for_replies_finished(path: Path) -> None:
    """Wait until every reply job has succeeded or is dead."""

    def finished() -> bool:
        states = job_states(path, "review.reply")
        return bool(states) and set(states) <= {"succeeded", "dead"}

    await wait_for(finished, timeout=JOB_TIMEOUT, what="every reply job to succeed or die")


def reply_jobs(path: Path) -> list[tuple[str, int, str | None]]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT state, attempts, last_error FROM jobs WHERE kind = 'review.reply' ORDER BY id"
        ).fetchall()
    return [(row[0], row[1], row[2]) for row in rows]


async def route_count(base_url: str, route: str) -> int:
    async with httpx.AsyncClient() as http:
        stats = (await http.get(f"{base_url}/_sandbox/stats")).json()
    return int(stats["requests"].get(route, 0))


async def set_faults(base_url: str, platform: str, **changes: Any) -> None:
    path = "/_sandbox/faults" if platform == "google" else f"/_sandbox/{platform}/faults"
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{base_url}{path}", json=changes)
        response.raise_for_status()


def unreplied(path: Path, platform: str, count: int = 1) -> list[Review]:
    found = [review for review in stored(path, platform) if review.reply_text is None]
    found = [review for review in found if not review.review_id.startswith("derived-")]
    assert len(found) >= count, f"the sandbox profile has fewer than {count} unreplied reviews"
    return found[:count]


@pytest.mark.parametrize("platform", ["google", "facebook", "trustpilot"])
async def test_reply_reaches_stand_in_once(platform: str, base_url: str, tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    target: list[Review] = []

    def make(writer: AsyncJournal) -> Actor:
        if platform == "google":
            return google_actor(base_url, writer)
        return listing_actor(platform, base_url, writer)

    async def body(running: Running) -> None:
        target.extend(unreplied(path, platform))
        queued = await running.queue(f"{platform}:{target[0].review_id}", "Thank you both!")
        assert queued["state"] == "queued"
        await wait_for_replies_finished(path)
        await running.sync_again("after-reply")

    await run_actor(path, make, body)

    review_id = target[0].review_id
    after = {review.review_id: review for review in stored(path, platform)}
    assert after[review_id].reply_text == "Thank you both!"
    assert await route_count(base_url, REPLY_ROUTES[platform]) == 1
    assert reply_jobs(path) == [("succeeded", 1, None)]
    assert len(replied_events(path, review_id)) == 1


async def test_google_limiter_spaces_edits(base_url: str, tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    route = REPLY_ROUTES["google"]
    counts: list[int] = []

    async def body(running: Running) -> None:
        for number, review in enumerate(unreplied(path, "google", 4)):
            await running.queue(f"google:{review.review_id}", f"Thank you, guest {number}!")
        # A burst of 2 edits, then one every 30 s at 2 edits a minute.  In real
        # time, each count is read at least 15 s from the edits before and after it.
        await trio.sleep(15.0)
        counts.append(await route_count(base_url, route))
        await trio.sleep(30.0)
        counts.append(await route_count(base_url, route))
        await trio.sleep(50.0)
        counts.append(await route_count(base_url, route))

    await run_actor(path, lambda writer: google_actor(base_url, writer, edits_per_minute=2), body)

    assert counts == [2, 3, 4]
    assert [job[0] for job in reply_jobs(path)] == ["succeeded"] * 4


async def test_reply_to_deleted_review_fails(base_url: str, tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    # Stored, but not on the platform, so the stand-in returns 404.
    gone = Review(
        platform="google",
        profile=GOOGLE_PROFILE,
        review_id="GoneReview1",
        stars=4,
        text="Lovely",
        author="Bea R",
        created_at="2026-01-01T00:00:00.000Z",
        updated_at="2026-01-01T00:00:00.000Z",
    )

    def before(tx: Tx) -> None:
        apply_snapshot(
            tx, platform="google", profile=GOOGLE_PROFILE, reviews=[gone], complete=False
        )
        queue_reply(tx, "google:GoneReview1", "Thank you!")

    async def body(running: Running) -> None:
        await wait_for_replies_finished(path)

    await run_actor(path, lambda writer: google_actor(base_url, writer), body, before=before)

    [(state, attempts, error)] = reply_jobs(path)
    assert state == "dead"
    assert attempts == 1
    assert error is not None
    assert "google:GoneReview1" in error
    assert "deleted" in error
    assert replied_events(path, "GoneReview1") == []


async def test_reply_5xx_retries_through_journal(base_url: str, tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    target: list[Review] = []

    async def body(running: Running) -> None:
        await set_faults(base_url, "google", next_statuses=[503], routes=["reviews.reply"])
        target.extend(unreplied(path, "google"))
        await running.queue(f"google:{target[0].review_id}", "Thank you!")
        await wait_for_replies_finished(path)

    await run_actor(path, lambda writer: google_actor(base_url, writer), body)

    [(state, attempts, error)] = reply_jobs(path)
    assert state == "succeeded"
    assert attempts == 2
    assert error is not None
    assert "503" in error
    assert await route_count(base_url, "reviews.reply") == 2
    assert len(replied_events(path, target[0].review_id)) == 1


class LostCommentResponse(httpx.AsyncBaseTransport):
    """Forwards requests over loopback HTTP; the first comment POST arrives, its response not."""

    def __init__(self) -> None:
        self.lost = 0
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if request.method == "POST" and request.url.path.endswith("/comments") and not self.lost:
            await response.aclose()
            self.lost += 1
            raise httpx.ReadError("connection reset by the test", request=request)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_facebook_reply_lost_response_posts_once(base_url: str, tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    transport = LostCommentResponse()
    target: list[Review] = []

    async def body(running: Running) -> None:
        target.extend(unreplied(path, "facebook"))
        await running.queue(f"facebook:{target[0].review_id}", "Thank you both!")
        await wait_for_replies_finished(path)

    await run_actor(
        path, lambda writer: listing_actor("facebook", base_url, writer, transport), body
    )

    async with httpx.AsyncClient() as http:
        posted = (await http.get(f"{base_url}/_sandbox/facebook/requests")).json()["comments"]
    # Facebook created the comment on the first attempt; the retry found it there.
    assert transport.lost == 1
    assert list(posted.values()) == [1]
    [(state, attempts, error)] = reply_jobs(path)
    assert (state, attempts) == ("succeeded", 2)
    assert error is not None
    after = {review.review_id: review for review in stored(path, "facebook")}
    assert after[target[0].review_id].reply_text == "Thank you both!"
    assert len(replied_events(path, target[0].review_id)) == 1
