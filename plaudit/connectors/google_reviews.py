"""Google review listings, page by page, and the checks on ids and reply text.

The functions here send no requests.  :class:`~plaudit.connectors.google.GoogleClient`
passes its page fetch to :func:`collect_listing` and calls the checks before
a request leaves.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Final, final

import msgspec

from plaudit.connectors.google_parse import ReviewPage, deduplicate_reviews
from plaudit.reviews.model import Review

# Logs under the name of the façade module, so log lines keep their logger name.
log = logging.getLogger("plaudit.connectors.google")

# The listing order that incremental syncs rely on.
ORDER_BY: Final = "updateTime desc"
# Maximum reply size in UTF-8 bytes.
# NOTE: taken from third-party Business Profile integration docs; not yet
# checked against Google's own ReviewReply reference.
MAX_REPLY_BYTES: Final = 4096
# Review and resource ids are URL-safe base64 or digits; anything else would
# change the request path.
_ID = r"[A-Za-z0-9_-]+"
_ACCOUNT = re.compile(rf"accounts/{_ID}")
_LOCATION = re.compile(rf"locations/{_ID}")
_REVIEW_ID = re.compile(_ID)

FetchPage = Callable[[str | None], Awaitable[ReviewPage]]
"""Fetches the page of a listing that a page token names (None for the first page)."""


@final
class ReviewListing(msgspec.Struct, frozen=True, kw_only=True):
    """All the reviews of a location, gathered page by page."""

    reviews: list[Review]
    average_rating: float | None
    total_review_count: int | None
    # False when paging stopped early (page limit or a repeated page token),
    # so reviews missing from the listing must not be taken as deleted.
    complete: bool
    pages: int
    duplicate_ids: list[str] = msgspec.field(default_factory=list)


def profile_name(account: str, location: str) -> str:
    """Return the profile id ``accounts/A/locations/L``, or raise ValueError naming the bad part."""
    if not _ACCOUNT.fullmatch(account):
        raise ValueError(f"invalid Google account {account!r}: expected the form accounts/123")

    if not _LOCATION.fullmatch(location):
        raise ValueError(f"invalid Google location {location!r}: expected the form locations/456")

    return f"{account}/{location}"


def check_review_id(review_id: str) -> None:
    """Raise ValueError unless ``review_id`` is safe to put in a request path."""
    if not _REVIEW_ID.fullmatch(review_id):
        raise ValueError(
            f"invalid Google review id {review_id!r}: expected letters, digits, '-' and '_' only"
        )


def check_reply_text(text: str) -> None:
    """Raise ValueError for an empty reply or one over MAX_REPLY_BYTES."""
    if not text.strip():
        raise ValueError("invalid reply: the text is empty; write the reply before posting it")

    size = len(text.encode("utf-8"))
    if size > MAX_REPLY_BYTES:
        raise ValueError(
            f"invalid reply: {size} bytes of UTF-8, Google accepts at most {MAX_REPLY_BYTES}; "
            "shorten the reply"
        )


async def collect_listing(profile: str, fetch_page: FetchPage, *, max_pages: int) -> ReviewListing:
    """Fetch pages by following nextPageToken and return every review of ``profile``.

    Paging stops after ``max_pages`` pages or when Google repeats a page
    token, and the listing is then marked incomplete.  A reviewId seen more
    than once is kept once, as :func:`deduplicate_reviews` describes, and logged.
    """
    if max_pages < 1:
        # Zero pages would look like a complete, empty listing.
        raise ValueError(f"invalid max_pages {max_pages}: use 1 or more")

    gathered: list[Review] = []
    repeated: set[str] = set()
    seen_tokens: set[str] = set()
    page_token: str | None = None
    pages = 0
    page = None
    while pages < max_pages:
        page = await fetch_page(page_token)
        pages += 1
        gathered.extend(page.reviews)
        repeated.update(page.duplicate_ids)
        page_token = page.next_page_token
        if page_token is None or page_token in seen_tokens:
            break

        seen_tokens.add(page_token)

    reviews, repeated_across_pages = deduplicate_reviews(gathered)
    repeated.update(repeated_across_pages)
    return _listing(profile, reviews, sorted(repeated), page, pages, page_token=page_token)


def _listing(
    profile: str,
    reviews: list[Review],
    repeated: list[str],
    last_page: ReviewPage | None,
    pages: int,
    *,
    page_token: str | None,
) -> ReviewListing:
    """Build the listing result and log what makes it less than a clean full listing."""
    if repeated:
        log.warning(
            "google.duplicate_review_id",
            extra={"profile": profile, "count": len(repeated), "review_ids": repeated[:10]},
        )

    complete = page_token is None
    if not complete:
        log.warning("google.listing_incomplete", extra={"profile": profile, "pages": pages})

    return ReviewListing(
        reviews=reviews,
        average_rating=last_page.average_rating if last_page else None,
        total_review_count=last_page.total_review_count if last_page else None,
        complete=complete,
        pages=pages,
        duplicate_ids=repeated,
    )
