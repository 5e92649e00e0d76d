"""Parsing of Google Business Profile API v4 review responses.

Every function here is pure, so recorded responses can be checked without a
network.  :mod:`plaudit.connectors.google` re-exports the public names.
"""

from __future__ import annotations

import logging
from typing import Any, Final, final

import msgspec

from plaudit.connectors.apiclient import decode_json
from plaudit.errors import PlatformError
from plaudit.metrics import UNKNOWN_ENUM_VALUES
from plaudit.reviews.model import Review, normalize_timestamp

# Logs under the name of the façade module, so log lines keep their logger name.
log = logging.getLogger("plaudit.connectors.google")

PLATFORM: Final = "google"
# The platform name in error messages.
PLATFORM_TITLE: Final = "Google"

_STARS: Final = {"ONE": 1, "TWO": 2, "THREE": 3, "FOUR": 4, "FIVE": 5}


# Structs mirroring the API's JSON.  Unknown fields are ignored (msgspec's
# default), because Google adds fields to responses over time.


class _Reviewer(msgspec.Struct, rename="camel", kw_only=True):
    display_name: str = ""
    profile_photo_url: str = ""
    is_anonymous: bool = False


class _ReviewReply(msgspec.Struct, rename="camel", kw_only=True):
    comment: str = ""
    update_time: str | None = None


class _ApiReview(msgspec.Struct, rename="camel", kw_only=True):
    review_id: str
    reviewer: _Reviewer = msgspec.field(default_factory=_Reviewer)
    # STAR_RATING_UNSPECIFIED or ONE to FIVE.
    star_rating: str = "STAR_RATING_UNSPECIFIED"
    # Missing when the reviewer left a rating only.
    comment: str = ""
    create_time: str
    update_time: str
    review_reply: _ReviewReply | None = None
    name: str = ""


class _ApiReviewList(msgspec.Struct, rename="camel", kw_only=True):
    reviews: list[_ApiReview] = msgspec.field(default_factory=list)
    average_rating: float | None = None
    total_review_count: int | None = None
    next_page_token: str | None = None


@final
class ReviewPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a location's reviews."""

    reviews: list[Review]
    # None on the last page.
    next_page_token: str | None
    average_rating: float | None
    total_review_count: int | None
    # Review ids that appeared more than once on the page; only one copy of
    # each is in ``reviews``.
    duplicate_ids: list[str] = msgspec.field(default_factory=list)


@final
class PostedReply(msgspec.Struct, frozen=True, kw_only=True):
    """The vendor reply as Google stored it."""

    text: str
    updated_at: str | None


def _timestamp(value: str, path: str) -> str:
    try:
        return normalize_timestamp(value)
    except ValueError as error:
        message = f"malformed review from Google at {path}: {error}"
        raise PlatformError(message, retryable=True) from error


def _to_review(api: _ApiReview, *, profile: str, path: str) -> Review:
    reply = api.review_reply
    reply_time = reply.update_time if reply else None
    return Review(
        platform=PLATFORM,
        profile=profile,
        review_id=api.review_id,
        # STAR_RATING_UNSPECIFIED and values newer than this client map to None.
        stars=_stars(api.star_rating, profile=profile, review_id=api.review_id),
        text=api.comment,
        author=api.reviewer.display_name,
        created_at=_timestamp(api.create_time, f"{path}.createTime"),
        updated_at=_timestamp(api.update_time, f"{path}.updateTime"),
        reply_text=reply.comment if reply else None,
        reply_updated_at=_timestamp(reply_time, f"{path}.reviewReply.updateTime")
        if reply_time
        else None,
    )


def _stars(value: str, *, profile: str, review_id: str) -> int | None:
    stars = _STARS.get(value)
    if stars is None and value != "STAR_RATING_UNSPECIFIED":
        # A value newer than this client must not fail the page; it is stored
        # as no rating, logged and counted so an operator can upgrade.
        UNKNOWN_ENUM_VALUES.labels(PLATFORM, "starRating").inc()
        log.warning(
            "google.unknown_star_rating",
            extra={"profile": profile, "review": review_id, "value": value[:40]},
        )
    return stars


def deduplicate_reviews(reviews: list[Review]) -> tuple[list[Review], list[str]]:
    """Keep one review per review_id and return the kept reviews and the repeated ids.

    Google's listing can repeat a reviewId.  The copy with the latest
    ``updated_at`` wins; on a tie the first copy wins.  The kept reviews stay
    in the order their ids first appeared.
    """
    kept: dict[str, Review] = {}
    repeated: list[str] = []
    for review in reviews:
        previous = kept.get(review.review_id)
        if previous is None:
            kept[review.review_id] = review
            continue

        if review.review_id not in repeated:
            repeated.append(review.review_id)

        # The timestamps are normalised, so string order is time order.
        if review.updated_at > previous.updated_at:
            kept[review.review_id] = review

    return list(kept.values()), repeated


def parse_review_list(data: bytes | dict[str, Any], *, profile: str) -> ReviewPage:
    """Parse a ``reviews.list`` response body into a page of reviews.

    Raises PlatformError (retryable) naming the JSON path of the first
    malformed field.
    """
    body = decode_json(data, _ApiReviewList, f"review list for {profile}", PLATFORM_TITLE)
    reviews = [
        _to_review(api, profile=profile, path=f"$.reviews[{index}]")
        for index, api in enumerate(body.reviews)
    ]
    unique, repeated = deduplicate_reviews(reviews)
    return ReviewPage(
        reviews=unique,
        next_page_token=body.next_page_token or None,
        average_rating=body.average_rating,
        total_review_count=body.total_review_count,
        duplicate_ids=repeated,
    )


def parse_review(data: bytes | dict[str, Any], *, profile: str) -> Review:
    """Parse a ``reviews.get`` response body (one Review resource)."""
    body = decode_json(data, _ApiReview, f"review for {profile}", PLATFORM_TITLE)
    return _to_review(body, profile=profile, path="$")


def parse_reply(data: bytes | dict[str, Any]) -> PostedReply:
    """Parse the ReviewReply resource that ``updateReply`` returns."""
    body = decode_json(data, _ReviewReply, "review reply", PLATFORM_TITLE)
    updated_at = _timestamp(body.update_time, "$.updateTime") if body.update_time else None
    return PostedReply(text=body.comment, updated_at=updated_at)
