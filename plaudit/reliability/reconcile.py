"""Confirming the deletions that a paged listing implies, before they are recorded.

A complete listing that lacks a stored review marks it deleted and emits
``review.deleted``.  Paging can lack a review that still exists.  With offset
or page-number paging (Trustpilot's ``page``), a review deleted between two
page requests shifts the later pages, so one review is never served.  With
paging ordered by update time (Google), a review edited during the listing
moves to a page already read.  The next sync would restore the review, but
consumers would have seen a deletion and a restoration that never happened.

So when a complete listing lacks stored reviews, the profile is listed a
second time.  A review counts as deleted only when both listings lack it, and
a review in either listing keeps the content of the later one.  A review that
really disappeared between the two listings is marked deleted by the next
sync.  A retryable failure of the second listing keeps the first one as a
partial listing: its reviews are recorded, and no deletion is.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Final, final

import msgspec

from plaudit.errors import PlatformError
from plaudit.journal import AsyncJournal, Journal
from plaudit.reviews.model import Review

log = logging.getLogger(__name__)

_LIVE_IDS: Final = (
    "SELECT review_id FROM reviews WHERE platform = ? AND profile = ? AND deleted_at IS NULL"
)


@final
class ProfileListing(msgspec.Struct, frozen=True, kw_only=True):
    """The reviews of one profile as a sync listed them."""

    reviews: list[Review]
    # False when the listing may lack reviews, so none may be taken as deleted.
    complete: bool


Lister = Callable[[], Awaitable[ProfileListing]]
"""Lists one profile once and raises PlatformError when the platform fails."""


def absent_ids(stored_live: Iterable[str], reviews: Iterable[Review]) -> set[str]:
    """Return the ids of stored live reviews that the listing lacks."""
    listed = {review.review_id for review in reviews}
    return set(stored_live) - listed


def merge_listings(first: ProfileListing, second: ProfileListing) -> ProfileListing:
    """Combine two listings of one profile: every review of either, as the later one has it."""
    merged = {review.review_id: review for review in first.reviews}
    merged.update((review.review_id, review) for review in second.reviews)
    return ProfileListing(
        reviews=list(merged.values()), complete=first.complete and second.complete
    )


async def live_review_ids(journal: AsyncJournal, platform: str, profile: str) -> set[str]:
    """Return the ids of the profile's reviews that the journal stores as not deleted."""

    def read(store: Journal) -> set[str]:
        return {str(row[0]) for row in store.query(_LIVE_IDS, (platform, profile))}

    return await journal.read(read)


async def confirmed_listing(
    journal: AsyncJournal, *, platform: str, profile: str, list_profile: Lister
) -> ProfileListing:
    """List a profile, and list it again when the listing implies deletions.

    Raises what ``list_profile`` raises for the first listing.  A retryable
    PlatformError of the second listing is logged and the first listing is
    returned as partial; other errors propagate.
    """
    first = await list_profile()
    if not first.complete:
        return first

    absent = absent_ids(await live_review_ids(journal, platform, profile), first.reviews)
    if not absent:
        return first

    try:
        second = await list_profile()
    except PlatformError as error:
        if not error.retryable:
            raise
        log.warning(
            "listing.confirmation_failed",
            extra={"platform": platform, "profile": profile, "error": str(error)},
        )
        return ProfileListing(reviews=first.reviews, complete=False)

    merged = merge_listings(first, second)
    still_listed = len(absent) - len(absent_ids(absent, merged.reviews))
    if still_listed:
        # The first listing lacked reviews that still exist, so its pages shifted.
        log.info(
            "listing.deletions_not_confirmed",
            extra={"platform": platform, "profile": profile, "reviews": still_listed},
        )
    return merged
