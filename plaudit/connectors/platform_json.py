"""``plaudit inspect platform-json``: parse a saved platform API response offline.

Each platform's own parser reads the file, so the output shows exactly what
a sync would store, with repeated review ids kept once.  One JSON object per
review goes to standard output, one a line.  Its keys are ``platform``,
``platform_review_id``, ``rating``, ``text``, ``author``, ``created_at``,
``updated_at`` and ``reply``.  ``rating`` is 1 to 5 stars, or "positive" or
"negative" for a Facebook recommendation.  The times are null when the file
has none, and ``reply`` is null or an object with ``text`` and ``updated_at``.
Trustpilot records add ``email`` and ``reference``: the invitation's address
and reference id that private reviews carry, or null.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TextIO

import msgspec

from plaudit.connectors import facebook, google, trustpilot, yelp
from plaudit.errors import PlatformError, PlauditError
from plaudit.reviews.model import Review

PLATFORMS: Final = ("google", "facebook", "trustpilot", "yelp")
# Saved API responses are small; this bound keeps a wrong file from filling memory.
MAX_FILE_BYTES: Final = 32 << 20


def _google(data: dict[str, Any]) -> list[Review]:
    if "reviewId" in data:
        return [google.parse_review(data, profile=_google_profile(data))]

    reviews = data.get("reviews") or []
    profile = _google_profile(reviews[0]) if reviews and isinstance(reviews[0], dict) else ""
    return google.parse_review_list(data, profile=profile).reviews


def _google_profile(review: dict[str, Any]) -> str:
    name = review.get("name")
    if isinstance(name, str) and "/reviews/" in name:
        return name.partition("/reviews/")[0]
    return ""


PARSERS: Final[dict[str, Callable[[dict[str, Any]], list[Review]]]] = {
    "google": _google,
    "facebook": lambda data: facebook.parse_ratings(data, page_id="").reviews,
    "trustpilot": lambda data: trustpilot.parse_reviews(data, unit="").reviews,
    "yelp": lambda data: yelp.parse_excerpts(data, business="").reviews,
}


def review_record(review: Review) -> dict[str, Any]:
    """Return the inspect output object of one review."""
    reply = None
    if review.reply_text is not None:
        reply = {"text": review.reply_text, "updated_at": review.reply_updated_at}
    rating: int | str | None = review.stars if review.stars is not None else review.recommendation
    return {
        "platform": review.platform,
        "platform_review_id": review.review_id,
        "rating": rating,
        "text": review.text,
        "author": review.author,
        "created_at": review.created_at or None,
        "updated_at": review.updated_at or None,
        "reply": reply,
    }


def _trustpilot_records(data: dict[str, Any]) -> list[dict[str, Any]]:
    page = trustpilot.parse_reviews(data, unit="")
    records = []
    for review in page.reviews:
        contact = page.contacts.get(review.review_id)
        record = review_record(review)
        record["email"] = contact.email if contact else None
        record["reference"] = contact.reference if contact else None
        records.append(record)
    return records


def parse_platform_json(platform: str, data: bytes) -> list[dict[str, Any]]:
    """Parse one saved response body; raise PlauditError naming the problem."""
    parser = PARSERS.get(platform)
    if parser is None:
        raise PlauditError(
            f"unknown platform {platform!r}: use one of {', '.join(PLATFORMS)} with --platform"
        )

    try:
        body = msgspec.json.decode(data)
    except msgspec.DecodeError as error:
        raise PlauditError(f"invalid JSON: {error}") from error
    if not isinstance(body, dict):
        raise PlauditError(f"invalid {platform} response: expected a JSON object at the top level")

    try:
        if platform == "trustpilot":
            return _trustpilot_records(body)
        return [review_record(review) for review in parser(body)]
    except PlatformError as error:
        raise PlauditError(str(error)) from error


def inspect_platform_json(platform: str | None, path: str, *, out: TextIO = sys.stdout) -> int:
    """Print one JSON object per review of the file; return the exit status."""
    if platform is None:
        raise PlauditError(f"missing --platform: use one of {', '.join(PLATFORMS)}")

    try:
        with Path(path).open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise PlauditError(
            f"cannot read {path}: {error.strerror or type(error).__name__}"
        ) from error
    if len(data) > MAX_FILE_BYTES:
        raise PlauditError(
            f"{path} is over {MAX_FILE_BYTES} bytes; a saved API response is smaller"
        )

    try:
        records = parse_platform_json(platform, data)
    except PlauditError as error:
        raise PlauditError(f"{path}: {error}") from error
    for record in records:
        out.write(msgspec.json.encode(record).decode() + "\n")
    return 0
