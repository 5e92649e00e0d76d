"""Google incremental syncs by update time, and the full listings that find deletions."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import trio

from plaudit.actors.google import (
    FULL_SYNC_CURSOR,
    FetchPage,
    Finish,
    GoogleActor,
    PageArrived,
    begin,
    decide,
    incremental_mark,
)
from plaudit.config.model import GoogleConfig, GoogleLocation
from plaudit.connectors.google import GoogleClient, ReviewPage
from plaudit.daemon.children import ChildContext
from plaudit.journal import AsyncJournal, Journal
from plaudit.reviews.model import Review, format_timestamp
from plaudit.reviews.store import load_reviews
from plaudit.sandbox import SandboxOptions, serve_sandbox
from plaudit.sandbox import app as google_sandbox
from plaudit.sandbox.truth import truth_reviews
from plaudit.sandbox.world import DEFAULT_EPOCH
from tests.support import query, wait_for

PROFILE = "accounts/1001/locations/2001"
# Sandbox seconds over which the scripted events happen.
SCRIPT_SECONDS = 30.0


def review(review_id: str, updated_at: str) -> Review:
    return Review(
        platform="google",
        profile=PROFILE,
        review_id=review_id,
        stars=5,
        text="Lovely photos",
        author="Ana P",
        created_at="2026-01-01T10:00:00.000Z",
        updated_at=updated_at,
    )


def page(reviews: list[Review], token: str | None) -> ReviewPage:
    return ReviewPage(
        reviews=reviews, next_page_token=token, average_rating=5.0, total_review_count=9
    )


# The pure steps.


def test_listing_stops_at_older_page() -> None:
    state, _ = begin(PROFILE, stop_before="2026-06-01T00:00:00.000Z")
    newer = [review("a", "2026-06-03T00:00:00.000Z"), review("b", "2026-06-02T00:00:00.000Z")]
    state, action = decide(state, PageArrived(page(newer, "t2")))
    assert action == FetchPage(token="t2")

    older = [review("c", "2026-06-01T12:00:00.000Z"), review("d", "2026-05-20T00:00:00.000Z")]
    _state, action = decide(state, PageArrived(page(older, "t3")))
    assert isinstance(action, Finish)
    assert not action.complete
    assert sorted(item.review_id for item in action.reviews) == ["a", "b", "c", "d"]


def test_last_page_completes_incremental_listing() -> None:
    state, _ = begin(PROFILE, stop_before="2026-06-01T00:00:00.000Z")
    older = [review("a", "2026-05-01T00:00:00.000Z")]
    _state, action = decide(state, PageArrived(page(older, None)))
    assert isinstance(action, Finish)
    assert action.complete


def test_full_listing_ignores_update_times() -> None:
    state, _ = begin(PROFILE)
    older = [review("a", "2001-01-01T00:00:00.000Z")]
    _state, action = decide(state, PageArrived(page(older, "t2")))
    assert action == FetchPage(token="t2")


@pytest.mark.parametrize(
    ("high_water", "last_full", "expected"),
    [
        (None, 1000.0, None),
        ("2026-06-01T12:00:00.000Z", None, None),
        ("2026-06-01T12:00:00.000Z", 1000.0 - 86400.0, None),
        ("2026-06-01T12:00:00.000Z", 1000.0 - 10.0, "2026-06-01T11:00:00.000Z"),
    ],
)
def test_incremental_mark_cases(
    high_water: str | None, last_full: float | None, expected: str | None
) -> None:
    mark = incremental_mark(
        high_water=high_water,
        last_full=last_full,
        now=1000.0,
        full_interval=86400.0,
        overlap=3600.0,
    )
    assert mark == expected


@pytest.mark.parametrize(
    ("since_full", "expected_full"),
    [(3000.0, False), (3299.0, False), (3300.0, True), (3600.0, True)],
)
def test_full_listing_due_before_gap_exceeds(since_full: float, expected_full: bool) -> None:
    # Syncs every 300 s: the last sync that keeps the gap within 3600 s lists in full.
    mark = incremental_mark(
        high_water="2026-06-01T12:00:00.000Z",
        last_full=10_000.0 - since_full,
        now=10_000.0,
        full_interval=3600.0,
        overlap=3600.0,
        sync_interval=300.0,
    )
    assert (mark is None) is expected_full


def test_repeated_page_token_ends_listing() -> None:
    state, _ = begin(PROFILE)
    state, action = decide(
        state, PageArrived(page([review("a", "2026-06-03T00:00:00.000Z")], "t2"))
    )
    assert action == FetchPage(token="t2")

    looped = [review("b", "2026-06-02T00:00:00.000Z")]
    state, action = decide(state, PageArrived(page(looped, "t2")))
    assert isinstance(action, Finish)
    assert not action.complete
    assert sorted(item.review_id for item in action.reviews) == ["a", "b"]
    assert state.pages == 2


# On the sandbox.


@pytest.fixture
async def base_url(nursery: trio.Nursery) -> AsyncIterator[str]:
    # Scripted events from 1 s to 30 s of sandbox time: arrivals, edits, replies, deletions.
    # Held until the first full sync has listed the initial reviews.
    options = SandboxOptions(seed=11, script_seconds=SCRIPT_SECONDS, hold_script=True)
    url: str = await nursery.start(serve_sandbox, options)
    yield url


def config_for(base_url: str, *, full_sync_interval: float) -> GoogleConfig:
    return GoogleConfig(
        api_base=f"{base_url}/google/v4",
        token_url=f"{base_url}/google/oauth2/token",
        client_id=google_sandbox.SANDBOX_CLIENT_ID,
        client_secret=google_sandbox.SANDBOX_CLIENT_SECRET,
        refresh_token=google_sandbox.SANDBOX_REFRESH_TOKEN,
        page_size=20,
        request_timeout=5.0,
        full_sync_interval=full_sync_interval,
        locations=[GoogleLocation(account="accounts/1001", location="locations/2001")],
    )


def google_client(config: GoogleConfig) -> GoogleClient:
    return GoogleClient(
        config, client_secret=config.client_secret, refresh_token=config.refresh_token
    )


async def sandbox(base_url: str, path: str) -> Any:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"{base_url}{path}")).json()


async def list_requests(base_url: str) -> int:
    stats = await sandbox(base_url, "/_sandbox/stats")
    return int(stats["requests"].get("reviews.list", 0))


def stored(path: Path) -> list[Review]:
    with sqlite3.connect(path) as connection:
        reviews = load_reviews(connection, "google", PROFILE, include_deleted=True)
    return sorted(reviews, key=lambda item: item.review_id)


def sync_states(path: Path, key: str = "%") -> list[str]:
    rows = query(path, "SELECT state FROM jobs WHERE kind = 'google.sync' AND key LIKE ?", (key,))
    return [str(row[0]) for row in rows]


async def sync_once(actor: GoogleActor, writer: AsyncJournal, name: str) -> None:
    key = f"google.sync:{PROFILE}:{name}"
    await writer.enqueue(
        kind="google.sync",
        owner="google",
        key=key,
        payload={"account": "accounts/1001", "location": "locations/2001"},
    )
    actor.wake()
    await wait_for(
        lambda: sync_states(writer.journal.path, key) == ["succeeded"],
        timeout=60,
        what=f"the sync job {key}",
    )


async def release_script(base_url: str) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{base_url}/_sandbox/script", json={"held": False})
    response.raise_for_status()


async def wait_until_script_ends(base_url: str) -> None:
    with trio.fail_after(120):
        while (await sandbox(base_url, "/_sandbox/stats"))["elapsed"] <= SCRIPT_SECONDS:
            await trio.sleep(0.5)


async def test_incremental_then_full_sync(base_url: str, tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    opened = Journal.open(path, instance="incremental-1")
    context = ChildContext("test")
    async with trio.open_nursery() as nursery:
        writer = AsyncJournal(opened)
        await nursery.start(writer.run)
        actor = GoogleActor(
            writer,
            config_for(base_url, full_sync_interval=86400.0),
            google_client,
            lease_seconds=30.0,
        )
        nursery.start_soon(actor.start, context)
        # The first sync is full: nothing is stored yet.
        await wait_for(
            lambda: "succeeded" in sync_states(path), timeout=60, what="the first full sync"
        )
        first_requests = await list_requests(base_url)
        await release_script(base_url)
        after_full = stored(path)
        cursor = query(
            path,
            "SELECT value FROM cursors WHERE owner = 'google' AND name = ?",
            (FULL_SYNC_CURSOR.format(profile=PROFILE),),
        )

        # Let the whole script happen, then sync incrementally.
        await wait_until_script_ends(base_url)
        await sync_once(actor, writer, "incremental")
        incremental_requests = await list_requests(base_url) - first_requests
        after_incremental = stored(path)
        truth = truth_reviews(await sandbox(base_url, "/_sandbox/truth"))

        # A reload that makes every sync full finds the deletions.
        actor.reconfigure(config_for(base_url, full_sync_interval=0.001))
        await sync_once(actor, writer, "full")
        after_reconciliation = stored(path)
        context.stop_requested.set()
        actor.wake()
        await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
    opened.close()

    location_truth = sorted(
        (r for r in truth if r.profile == PROFILE), key=lambda item: item.review_id
    )
    deleted_ids = {r.review_id for r in location_truth if r.deleted_at is not None}
    changed = [
        r
        for r in location_truth
        if r.updated_at > format_timestamp(DEFAULT_EPOCH) and r.deleted_at is None
    ]
    assert deleted_ids, "the script deleted no review of this location; pick another seed"
    assert changed, "the script changed no review of this location; pick another seed"

    # 120 reviews at 20 a page.
    assert first_requests == 6
    assert len(after_full) == 120
    assert cursor

    # The incremental sync read one page or two, stored every scripted change...
    assert 1 <= incremental_requests <= 2
    by_id = {r.review_id: r for r in after_incremental}
    for review in changed:
        # A reply leaves updateTime as it was, so only a full listing must see it.
        current = by_id[review.review_id]
        assert msgspec.structs.replace(current, reply_text=None, reply_updated_at=None) == (
            msgspec.structs.replace(review, reply_text=None, reply_updated_at=None)
        )
    # ...and marked nothing deleted.
    assert all(r.deleted_at is None for r in after_incremental)

    # The full listing agrees with the sandbox, deletions included.
    live = [r for r in location_truth if r.deleted_at is None]
    assert [r for r in after_reconciliation if r.deleted_at is None] == live
    tombstoned = {r.review_id for r in after_reconciliation if r.deleted_at is not None}
    assert tombstoned == deleted_ids & {r.review_id for r in after_full}
