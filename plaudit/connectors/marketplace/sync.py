"""The decision step of a storefront sync: what a fetched page means for the stored reviews.

Pure: it takes the parsed page, the stored reviews and today's date, and
returns the snapshot to apply with :func:`plaudit.reviews.store.apply_snapshot`.

A review missing from the page is deleted only when the page shows the
vendor's whole review count.  On a paginated page the absence means nothing.
On the European sites reviews older than the review window drop off the
page, so a stored review past the window is carried over unchanged instead
of being marked deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import final

import msgspec

from plaudit.connectors.marketplace.errors import (
    BlockedPageError,
    MarkupDriftError,
    NotAStorefrontError,
)
from plaudit.connectors.marketplace.models import Storefront, to_review
from plaudit.connectors.marketplace.sites import Site, in_review_window
from plaudit.errors import PlatformError
from plaudit.reviews.model import Review


@final
class StorefrontSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The arguments for apply_snapshot, and what the decision left out."""

    platform: str
    profile: str
    reviews: list[Review]
    # True when missing reviews may be marked deleted.
    complete: bool
    # Stored reviews past the site's review window, carried over unchanged.
    aged_out: list[str]


def plan_snapshot(
    page: Storefront,
    *,
    site: Site,
    profile: str,
    stored: Sequence[Review],
    today: date,
    now: float,
) -> StorefrontSnapshot:
    """Decide the snapshot for one fetched storefront page.

    ``now`` (Unix seconds) dates reviews the page shows without a date.
    """
    reviews = [
        to_review(item, platform=site.name, profile=profile, fallback_time=now)
        for item in page.reviews
    ]
    shown = {review.review_id for review in reviews}
    complete = page.vendor.review_count == len(reviews)
    aged_out = [
        review
        for review in stored
        if review.review_id not in shown
        and review.deleted_at is None
        and not in_review_window(site, date.fromisoformat(review.created_at[:10]), today=today)
    ]
    return StorefrontSnapshot(
        platform=site.name,
        profile=profile,
        reviews=reviews + aged_out,
        complete=complete,
        aged_out=[review.review_id for review in aged_out],
    )


def health_problem(error: PlatformError) -> tuple[str, str]:
    """Return the health cause and message for a failed storefront read.

    Each of these means "degraded", never "zero reviews": the cause names
    which, so an operator knows whether to slow down, fix a URL or wait for
    a parser update.
    """
    if isinstance(error, BlockedPageError):
        return "blocked", str(error)
    if isinstance(error, MarkupDriftError):
        return "markup_drift", str(error)
    if isinstance(error, NotAStorefrontError):
        return "not_a_storefront", str(error)
    return ("unavailable" if error.retryable else "failed"), str(error)
