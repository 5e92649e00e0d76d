"""Deletions implied by a paged listing are confirmed by a second listing before they count."""

from __future__ import annotations

import json

import pytest

from plaudit.errors import PlatformError
from plaudit.journal import AsyncJournal, Tx
from plaudit.reliability.reconcile import (
    ProfileListing,
    absent_ids,
    confirmed_listing,
    live_review_ids,
    merge_listings,
)
from plaudit.reviews.model import Review
from plaudit.reviews.store import apply_snapshot
from plaudit.sandbox.app import Request
from plaudit.sandbox.facebook import PAGE_IDS, SANDBOX_PAGE_TOKEN, FacebookStandIn

PROFILE = "5e1f00000000000000000001"


def review(review_id: str, *, text: str = "Lovely day") -> Review:
    return Review(
        platform="trustpilot",
        review_id=review_id,
        profile=PROFILE,
        stars=5,
        text=text,
        author="Ana",
        created_at="2026-01-01T00:00:00.000Z",
        updated_at="2026-01-01T00:00:00.000Z",
    )


def listing(*ids: str, complete: bool = True, text: str = "Lovely day") -> ProfileListing:
    return ProfileListing(reviews=[review(i, text=text) for i in ids], complete=complete)


class Lister:
    """A lister that returns the queued listings in order or raises a queued error."""

    def __init__(self, *outcomes: ProfileListing | PlatformError) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    async def __call__(self) -> ProfileListing:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, PlatformError):
            raise outcome
        return outcome


async def store(journal: AsyncJournal, *ids: str) -> None:
    def write(tx: Tx) -> None:
        apply_snapshot(
            tx, platform="trustpilot", profile=PROFILE, reviews=listing(*ids).reviews, complete=True
        )

    await journal.transaction(write)


async def confirm(journal: AsyncJournal, lister: Lister) -> ProfileListing:
    return await confirmed_listing(
        journal, platform="trustpilot", profile=PROFILE, list_profile=lister
    )


def ids_of(result: ProfileListing) -> set[str]:
    return {item.review_id for item in result.reviews}


def test_absent_ids_are_stored_minus_listed() -> None:
    assert absent_ids({"a", "b", "c"}, listing("a", "c").reviews) == {"b"}
    assert absent_ids(set(), listing("a").reviews) == set()


def test_merge_keeps_later_content() -> None:
    merged = merge_listings(listing("a", "b", text="old"), listing("b", "c", text="new"))
    texts = {item.review_id: item.text for item in merged.reviews}
    assert texts == {"a": "old", "b": "new", "c": "new"}
    assert merged.complete


def test_merge_of_partial_is_partial() -> None:
    assert not merge_listings(listing("a"), listing("a", complete=False)).complete


async def test_live_ids_skip_deleted(journal: AsyncJournal) -> None:
    await store(journal, "a", "b")
    await store(journal, "a")
    assert await live_review_ids(journal, "trustpilot", PROFILE) == {"a"}
    assert await live_review_ids(journal, "trustpilot", "other") == set()


async def test_nothing_absent_lists_once(journal: AsyncJournal) -> None:
    await store(journal, "a", "b")
    lister = Lister(listing("a", "b", "c"))
    result = await confirm(journal, lister)
    assert lister.calls == 1
    assert ids_of(result) == {"a", "b", "c"}


async def test_partial_listing_lists_once(journal: AsyncJournal) -> None:
    await store(journal, "a", "b")
    lister = Lister(listing("a", complete=False))
    result = await confirm(journal, lister)
    assert lister.calls == 1
    assert not result.complete


async def test_shifted_page_keeps_review(journal: AsyncJournal) -> None:
    await store(journal, "a", "b", "c")
    # The first listing skipped "b" (its page shifted); the second serves it.
    lister = Lister(listing("a", "c"), listing("a", "b", "c"))
    result = await confirm(journal, lister)
    assert lister.calls == 2
    assert ids_of(result) == {"a", "b", "c"}
    assert result.complete


async def test_deletion_confirmed_by_both(journal: AsyncJournal) -> None:
    await store(journal, "a", "b", "c")
    lister = Lister(listing("a", "c"), listing("a", "c"))
    result = await confirm(journal, lister)
    assert ids_of(result) == {"a", "c"}
    assert result.complete


async def test_failed_second_listing_is_partial(journal: AsyncJournal) -> None:
    await store(journal, "a", "b")
    lister = Lister(listing("a"), PlatformError("HTTP 500", retryable=True))
    result = await confirm(journal, lister)
    assert ids_of(result) == {"a"}
    assert not result.complete


async def test_permanent_second_failure_raises(journal: AsyncJournal) -> None:
    await store(journal, "a", "b")
    lister = Lister(listing("a"), PlatformError("HTTP 403", retryable=False))
    with pytest.raises(PlatformError, match="403"):
        await confirm(journal, lister)


async def test_snapshot_of_shifted_page_deletes_nothing(journal: AsyncJournal) -> None:
    await store(journal, "a", "b", "c")
    result = await confirm(journal, Lister(listing("a", "c"), listing("a", "b", "c")))

    def write(tx: Tx) -> int:
        outcome = apply_snapshot(
            tx,
            platform="trustpilot",
            profile=PROFILE,
            reviews=result.reviews,
            complete=result.complete,
        )
        return outcome.deleted

    assert await journal.transaction(write) == 0
    assert await live_review_ids(journal, "trustpilot", PROFILE) == {"a", "b", "c"}


# The Facebook stand-in's cursors, which the listing above must survive.


def ratings_request(after: str | None, *, limit: int) -> Request:
    query = {"limit": str(limit)} | ({"after": after} if after else {})
    return Request(
        method="GET",
        path=f"/facebook/v19.0/{PAGE_IDS[0]}/ratings",
        query=query,
        headers={"authorization": f"Bearer {SANDBOX_PAGE_TOKEN}"},
        body=b"",
    )


async def fetch_page(stand_in: FacebookStandIn, after: str | None) -> dict[str, object]:
    request = ratings_request(after, limit=10)
    _method, pattern, _name, handler = stand_in.routes()[0]
    match = pattern.match(request.path)
    assert match is not None
    response = await handler(request, match)
    assert response.status == 200, response.body
    page: dict[str, object] = json.loads(response.body)
    return page


async def test_graph_cursor_survives_deletion() -> None:
    stand_in = FacebookStandIn(seed=2, elapsed=lambda: 0.0, script_seconds=0)
    live_before = [item.review_id for item in stand_in.world.live(PAGE_IDS[0])]
    first = await fetch_page(stand_in, None)
    paging = first["paging"]
    assert isinstance(paging, dict)
    # A rating of the first page disappears before the second page is read.
    stand_in.world.live(PAGE_IDS[0])[0].deleted = 1.0
    second = await fetch_page(stand_in, paging["cursors"]["after"])
    data = second["data"]
    assert isinstance(data, list)
    served = [str(item["open_graph_story"]["id"]).split("_")[1] for item in data]
    assert served[0] == live_before[10][2:]
    assert len(served) == 10
