"""Storefront review pages: next-page links, the page budget, and the actor against the sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import httpx
import msgspec
import pytest
import trio

from plaudit.actors.marketplace import MarketplaceActor
from plaudit.config.model import MarketplaceConfig
from plaudit.connectors.marketplace.fetch import StorefrontFetcher
from plaudit.connectors.marketplace.models import PageReview, Storefront, VendorCard
from plaudit.connectors.marketplace.pagination import (
    PagedStorefront,
    merge_reviews,
    next_page_url,
    read_further_pages,
)
from plaudit.connectors.marketplace.sites import Site, get_site
from plaudit.connectors.marketplace.storefront import parse_storefront
from plaudit.connectors.marketplace.sync import plan_snapshot
from plaudit.journal import AsyncJournal, Journal
from plaudit.reviews.store import load_reviews
from plaudit.sandbox.marketplace import PAGE_SIZE
from tests.support import start_sandbox
from tests.test_marketplace_actor import run_until, sandbox_profile

HITCHED = get_site("hitched")
# Reviews per sandbox profile; with PAGE_SIZE 2 they fill three pages.
REVIEWS = 6


@pytest.fixture
async def sandbox() -> AsyncIterator[str]:
    async with trio.open_nursery() as nursery:
        yield await start_sandbox(nursery, seed=7, script_seconds=0.0)
        nursery.cancel_scope.cancel()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30.0) as opened:
        yield opened


def paged_url(base_url: str, profile: str, *, site: str = "hitched") -> str:
    return f"{base_url}/marketplace/{site}/paged/{profile}.htm"


async def first_page(
    fetcher: StorefrontFetcher, url: str, profile: str, *, site: Site = HITCHED
) -> tuple[Storefront, str]:
    result = await fetcher.fetch(url, site=site, profile=profile)
    assert result.html is not None
    return parse_storefront(result.html, site=site, profile=profile), result.final_url


async def read_all(
    client: httpx.AsyncClient,
    base_url: str,
    profile: str,
    *,
    max_pages: int,
    site: Site = HITCHED,
) -> tuple[PagedStorefront, StorefrontFetcher]:
    fetcher = StorefrontFetcher(client, contact="tests@example.com")
    url = paged_url(base_url, profile, site=site.name)
    page, final_url = await first_page(fetcher, url, profile, site=site)
    paged = await read_further_pages(
        fetcher, page, final_url, site=site, profile=profile, max_pages=max_pages, page_delay=0.01
    )
    return paged, fetcher


def review(review_id: str) -> PageReview:
    return PageReview(review_id=review_id, author="A", rating=5.0, text="t", date=None)


def test_next_link_resolved_on_same_host() -> None:
    page = "https://www.hitched.co.uk/v/barn.htm?page=1"

    assert next_page_url(page, "?page=2#reviews", visited=set()) == (
        "https://www.hitched.co.uk/v/barn.htm?page=2"
    )
    assert next_page_url(page, "https://tracker.example/next", visited=set()) is None
    assert next_page_url(page, "http://www.hitched.co.uk/v/barn.htm?page=2", visited=set()) is None
    assert next_page_url(page, "?page=1", visited={page}) is None
    assert next_page_url(page, None, visited=set()) is None


def test_merge_keeps_first_of_repeats() -> None:
    merged = merge_reviews([[review("a"), review("b")], [review("b"), review("c")]])

    assert [item.review_id for item in merged] == ["a", "b", "c"]


async def test_json_ld_pages_all_read(sandbox: str, client: httpx.AsyncClient) -> None:
    paged, fetcher = await read_all(client, sandbox, "willow-barn", max_pages=10)

    assert paged.pages == REVIEWS // PAGE_SIZE
    assert paged.stopped is None
    assert len({item.review_id for item in paged.page.reviews}) == REVIEWS
    assert paged.page.vendor.review_count == REVIEWS
    assert paged.page.next_page is None
    assert fetcher.statistics()["requests"] == REVIEWS // PAGE_SIZE
    snapshot = plan_snapshot(
        paged.page, site=HITCHED, profile="willow-barn", stored=[], today=date.today(), now=0.0
    )
    assert snapshot.complete is True


async def test_markup_pages_all_read(sandbox: str, client: httpx.AsyncClient) -> None:
    paged, _ = await read_all(client, sandbox, "finca-olivos", max_pages=10, site=get_site("bodas"))

    assert paged.page.source == "markup"
    assert len(paged.page.reviews) == REVIEWS
    assert all(item.date for item in paged.page.reviews)


async def test_page_budget_stops_partial(sandbox: str, client: httpx.AsyncClient) -> None:
    paged, fetcher = await read_all(client, sandbox, "willow-barn", max_pages=2)

    assert paged.pages == 2
    assert paged.stopped == "page budget of 2 reached"
    assert len(paged.page.reviews) == 2 * PAGE_SIZE
    assert fetcher.statistics()["requests"] == 2
    snapshot = plan_snapshot(
        paged.page, site=HITCHED, profile="willow-barn", stored=[], today=date.today(), now=0.0
    )
    assert snapshot.complete is False


async def test_off_host_link_not_followed(client: httpx.AsyncClient) -> None:
    fetcher = StorefrontFetcher(client, contact="tests@example.com")
    first = Storefront(
        vendor=VendorCard(name="Barn", rating=4.0, review_count=9, url=""),
        reviews=[review("a")],
        source="json-ld",
        next_page="https://elsewhere.example/reviews?page=2",
    )

    paged = await read_further_pages(
        fetcher, first, "https://www.hitched.co.uk/v/barn.htm", site=HITCHED, profile="barn"
    )

    assert paged.pages == 1
    assert paged.stopped is not None
    assert "leaves the host" in paged.stopped
    assert fetcher.statistics()["requests"] == 0


async def test_missing_page_keeps_earlier(sandbox: str, client: httpx.AsyncClient) -> None:
    fetcher = StorefrontFetcher(client, contact="tests@example.com")
    page, url = await first_page(fetcher, paged_url(sandbox, "willow-barn"), "willow-barn")
    broken = Storefront(
        vendor=page.vendor, reviews=page.reviews, source=page.source, next_page="?page=99"
    )

    paged = await read_further_pages(
        fetcher, broken, url, site=HITCHED, profile="willow-barn", page_delay=0.01
    )

    assert paged.pages == 1
    assert paged.stopped is not None
    assert paged.stopped.startswith("page 2 failed")
    assert "HTTP 404" in paged.stopped
    assert len(paged.page.reviews) == PAGE_SIZE


async def test_actor_stores_every_page(sandbox: str, tmp_path: Path) -> None:
    opened = Journal.open(tmp_path / "journal.sqlite3")
    journal = AsyncJournal(opened, window=0.0)
    profile = sandbox_profile(sandbox, "willow-barn", "Willow Barn")
    profile = msgspec.structs.replace(
        profile, storefront_url=paged_url(sandbox, "willow-barn"), max_pages=10
    )
    config = MarketplaceConfig(profiles=[profile], page_delay=0.01)
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        actor = MarketplaceActor(journal, HITCHED, config, lease_seconds=30.0, poll_interval=0.05)

        async def synced() -> bool:
            rows = await journal.transaction(lambda tx: load_reviews(tx, "hitched", "willow-barn"))
            return len(rows) == REVIEWS

        await run_until(actor, synced, timeout=30.0)
        nursery.cancel_scope.cancel()
    opened.close()

    assert actor.marketplace_statistics().fetcher["requests"] == REVIEWS // PAGE_SIZE
