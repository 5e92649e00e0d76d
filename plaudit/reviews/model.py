"""The platform-neutral review record and the timestamp format it uses.

Every connector turns its platform's shape into :class:`Review`, and the
journal stores reviews in this shape.  The journal compares the review's own
content and the vendor reply by separate hashes, so edits and replies are
detected separately.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any, Final, Literal, final

import msgspec

Recommendation = Literal["positive", "negative"]

# The stored form: UTC with milliseconds, as format_timestamp() writes it.
_CANONICAL: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", re.ASCII)


def format_timestamp(moment: datetime | float) -> str:
    """Format a datetime or Unix time as ``YYYY-MM-DDTHH:MM:SS.fffZ`` in UTC.

    A naive datetime is taken to be UTC already.
    """
    if isinstance(moment, datetime):
        value = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    else:
        value = datetime.fromtimestamp(moment, tz=UTC)

    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def normalize_timestamp(text: str) -> str:
    """Rewrite an ISO 8601 / RFC 3339 timestamp in the form of :func:`format_timestamp`.

    Offsets are converted to UTC and fractions cut to milliseconds, so equal
    instants compare equal as strings.  Raises ValueError naming the text when
    it is not a timestamp.
    """
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as error:
        raise ValueError(
            f"invalid timestamp {text!r}: expected ISO 8601 such as 2024-05-01T12:00:00Z"
        ) from error

    if _CANONICAL.fullmatch(text):
        # Already in the stored form, as most platform timestamps are, so
        # formatting it again would return the same text.
        return text

    return format_timestamp(parsed)


def _sha256_of(values: list[Any]) -> str:
    return hashlib.sha256(msgspec.json.encode(values)).hexdigest()


@final
class Review(msgspec.Struct, frozen=True, kw_only=True):
    """One review as Plaudit stores it, whatever platform it came from."""

    platform: str
    # The platform's own profile id, for Google "accounts/A/locations/L".
    profile: str
    review_id: str
    # 1 to 5, or None on platforms that use recommendations instead.
    stars: int | None = None
    recommendation: Recommendation | None = None
    # Empty for a rating without a comment.
    text: str = ""
    # The reviewer's display name: platforms give no more than that.
    author: str = ""
    # UTC timestamps in the form of format_timestamp().
    created_at: str
    updated_at: str
    reply_text: str | None = None
    reply_updated_at: str | None = None
    # Set when a complete listing no longer contained the review.
    deleted_at: str | None = None

    @property
    def content_hash(self) -> str:
        """SHA-256 hex digest of the reviewer's content: stars, recommendation, text, author.

        Timestamps are left out, so a platform that bumps ``updated_at``
        without a change does not count as an edit.
        """
        return _sha256_of([self.stars, self.recommendation, self.text, self.author])

    @property
    def reply_hash(self) -> str | None:
        """SHA-256 hex digest of the vendor's reply text, or None without a reply."""
        if self.reply_text is None:
            return None

        return _sha256_of([self.reply_text])

    def to_dict(self) -> dict[str, Any]:
        """Return the review as a JSON-ready dict, as event payloads carry it."""
        return msgspec.structs.asdict(self)


@final
class Contact(msgspec.Struct, frozen=True, kw_only=True):
    """The e-mail address and reference a platform gives with a review, for exact matching.

    Trustpilot's private reviews carry them: the address the invitation went
    to and the reference id the vendor set on it.
    """

    email: str | None
    reference: str | None
