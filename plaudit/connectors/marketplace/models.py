"""Records the marketplace parsers produce."""

from __future__ import annotations

import hashlib
import math
from typing import final

import msgspec

from plaudit.reviews.model import Review, format_timestamp


@final
class VendorCard(msgspec.Struct, frozen=True, kw_only=True):
    """One vendor as a page shows it: a listing card or a storefront header."""

    name: str
    # Average stars out of 5; None for a vendor without reviews yet.
    rating: float | None
    review_count: int
    url: str


@final
class PageReview(msgspec.Struct, frozen=True, kw_only=True):
    """One review read from a storefront page or a notification e-mail."""

    # The site's own id, or an id derived from the content when it shows none.
    review_id: str
    author: str
    # Stars from 1 to 5; None when the source gives no rating.
    rating: float | None
    text: str
    # ISO date (YYYY-MM-DD); the sites show no time of day.
    date: str | None
    reply: str | None = None
    url: str | None = None


@final
class Storefront(msgspec.Struct, frozen=True, kw_only=True):
    """A vendor's storefront page: its header and the reviews it shows."""

    vendor: VendorCard
    reviews: list[PageReview]
    # The source of the vendor and the reviews: "json-ld", "markup", or
    # "json-ld+markup" for a vendor from JSON-LD and reviews from the markup.
    source: str
    # The href of the page's next-page link as written (often relative), or
    # None on the last or only page of reviews.
    next_page: str | None = None


def derived_review_id(*parts: str) -> str:
    """Return a stable id from the review's content, for sources that show no id.

    Whitespace and case are normalised first, so the same review read twice,
    from a page or from a file, gets the same id.
    """
    normalised = ["\x1f".join(" ".join(part.split()).casefold() for part in parts)]
    return "c-" + hashlib.sha256(normalised[0].encode("utf-8")).hexdigest()[:24]


def to_review(item: PageReview, *, platform: str, profile: str, fallback_time: float) -> Review:
    """Convert a parsed review into the journal's record.

    Ratings are rounded half up to whole stars (4.5 becomes 5) because the
    journal stores integers.  ``fallback_time`` (Unix seconds) dates a review
    whose source shows no date.
    """
    created = f"{item.date}T00:00:00.000Z" if item.date else format_timestamp(fallback_time)
    stars = None if item.rating is None else max(1, min(5, math.floor(item.rating + 0.5)))
    return Review(
        platform=platform,
        profile=profile,
        review_id=item.review_id,
        stars=stars,
        text=item.text,
        author=item.author,
        created_at=created,
        updated_at=created,
        reply_text=item.reply,
        reply_updated_at=created if item.reply else None,
    )
