"""Storefront snapshots applied to a real journal: deletions, pagination and the review window."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from plaudit.connectors.base import Capability, Connector, IngestionMode
from plaudit.connectors.marketplace.connector import marketplace_connectors
from plaudit.connectors.marketplace.errors import (
    BlockedPageError,
    MarkupDriftError,
    NotAStorefrontError,
)
from plaudit.connectors.marketplace.models import PageReview, Storefront, VendorCard, to_review
from plaudit.connectors.marketplace.sites import Site, get_site
from plaudit.connectors.marketplace.sync import health_problem, plan_snapshot
from plaudit.errors import PlatformError
from plaudit.journal import Journal
from plaudit.reviews.store import SyncOutcome, apply_snapshot, load_reviews

HITCHED = get_site("hitched")
THEKNOT = get_site("theknot")
TODAY = date(2026, 6, 1)
NOW = 1_780_272_000.0


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal.open(tmp_path / "journal.sqlite3")
    yield opened
    opened.close()


def item(review_id: str, day: str) -> PageReview:
    return PageReview(
        review_id=review_id, author=f"Couple {review_id}", rating=5.0, text="Lovely.", date=day
    )


def page(items: list[PageReview], count: int | None = None) -> Storefront:
    vendor = VendorCard(
        name="Willow Barn",
        rating=5.0,
        review_count=len(items) if count is None else count,
        url="https://www.hitched.co.uk/v_1.htm",
    )
    return Storefront(vendor=vendor, reviews=items, source="json-ld")


def sync(journal: Journal, storefront: Storefront, site: Site = HITCHED) -> SyncOutcome:
    with journal.transaction() as tx:
        stored = load_reviews(tx, site.name, "willow")
        plan = plan_snapshot(
            storefront, site=site, profile="willow", stored=stored, today=TODAY, now=NOW
        )
        return apply_snapshot(
            tx,
            platform=plan.platform,
            profile=plan.profile,
            reviews=plan.reviews,
            complete=plan.complete,
        )


def live_ids(journal: Journal, platform: str = "hitched") -> list[str]:
    with journal.transaction() as tx:
        return [review.review_id for review in load_reviews(tx, platform, "willow")]


def test_removed_recent_review_is_deleted(journal: Journal) -> None:
    sync(journal, page([item("a", "2026-05-01"), item("b", "2026-04-01")]))

    outcome = sync(journal, page([item("a", "2026-05-01")]))

    assert outcome.deleted == 1
    assert live_ids(journal) == ["a"]


def test_aged_out_review_is_kept(journal: Journal) -> None:
    sync(journal, page([item("a", "2026-05-01"), item("old", "2024-01-10")]))

    outcome = sync(journal, page([item("a", "2026-05-01")]))

    assert outcome.deleted == 0
    assert outcome.unchanged == 2
    assert live_ids(journal) == ["a", "old"]


def test_window_free_site_deletes_old(journal: Journal) -> None:
    sync(journal, page([item("a", "2026-05-01"), item("old", "2015-01-10")]), site=THEKNOT)

    outcome = sync(journal, page([item("a", "2026-05-01")]), site=THEKNOT)

    assert outcome.deleted == 1
    assert live_ids(journal, "theknot") == ["a"]


def test_paginated_page_deletes_nothing(journal: Journal) -> None:
    sync(journal, page([item("a", "2026-05-01"), item("b", "2026-04-01")]))

    outcome = sync(journal, page([item("c", "2026-05-20")], count=3))

    assert (outcome.created, outcome.deleted) == (1, 0)
    assert live_ids(journal) == ["a", "b", "c"]


def test_health_problem_causes() -> None:
    blocked = BlockedPageError(site="Hitched", profile="willow", signal="captcha form")
    drift = MarkupDriftError(site="Hitched", profile="willow", selector="h1", problem="gone")
    moved = NotAStorefrontError(site="Hitched", profile="willow", vendors=3)

    assert health_problem(blocked)[0] == "blocked"
    assert health_problem(drift)[0] == "markup_drift"
    assert "'h1'" in health_problem(drift)[1]
    assert health_problem(moved)[0] == "not_a_storefront"
    assert health_problem(PlatformError("x", retryable=True))[0] == "unavailable"
    assert health_problem(PlatformError("x", retryable=False))[0] == "failed"


@pytest.mark.parametrize(
    ("rating", "stars"), [(4.5, 5), (4.4, 4), (3.5, 4), (0.2, 1), (None, None)]
)
def test_to_review_rounds_half_up(rating: float | None, stars: int | None) -> None:
    source = PageReview(review_id="r", author="A", rating=rating, text="t", date=None)

    review = to_review(source, platform="hitched", profile="p", fallback_time=NOW)

    assert review.stars == stars
    assert review.created_at == "2026-06-01T00:00:00.000Z"


def test_connectors_declare_modes() -> None:
    connectors = marketplace_connectors()
    # Annotated so mypy checks that the class follows the Connector protocol.
    hitched: Connector = connectors["hitched"]
    zola = connectors["zola"]

    assert IngestionMode.PAGE in hitched.ingestion_modes
    assert Capability.VERIFY_PROFILE in hitched.capabilities
    assert IngestionMode.PAGE not in zola.ingestion_modes
    assert zola.ingestion_modes == {IngestionMode.EMAIL, IngestionMode.IMPORT}
    assert all(Capability.REPLY not in item.capabilities for item in connectors.values())
    assert (
        connectors["hitched"].request_link("https://www.hitched.co.uk/v_1.htm").endswith("#reviews")
    )
