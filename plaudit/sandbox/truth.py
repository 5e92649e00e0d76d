"""Turning the sandbox's ``/_sandbox/truth`` document into Review records.

The conversion reads the truth's fields directly instead of going through
the Google connector's parser, so a parser bug cannot hide in a comparison.
"""

from __future__ import annotations

from typing import Any

from plaudit.reviews.model import Review
from plaudit.sandbox.world import STAR_NAMES


def truth_reviews(truth: dict[str, Any]) -> list[Review]:
    """Return every review of the truth document, deleted ones with ``deleted_at`` set.

    ``deleted_at`` is the time the sandbox deleted the review.  A journal
    records the time it noticed the deletion instead, so compare whether
    ``deleted_at`` is set rather than its value.
    """
    return [
        _review(location["name"], review)
        for location in truth["locations"]
        for review in location["reviews"]
    ]


def _review(profile: str, review: dict[str, Any]) -> Review:
    reply = review.get("reviewReply")
    return Review(
        platform="google",
        profile=profile,
        review_id=review["reviewId"],
        stars=STAR_NAMES.index(review["starRating"]) + 1,
        text=review.get("comment", ""),
        author=review["reviewer"]["displayName"],
        created_at=review["createTime"],
        updated_at=review["updateTime"],
        reply_text=reply["comment"] if reply else None,
        reply_updated_at=reply["updateTime"] if reply else None,
        deleted_at=review["deleteTime"],
    )
