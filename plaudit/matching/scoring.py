"""Scoring a review against a couple, and deciding what to do with the scores.

Both steps are pure: :func:`score` reads a :class:`ReviewFacts` and a
:class:`CoupleFacts`, and :func:`decide` reads every score of one review.
The journal side lives in :mod:`plaudit.matching.store`.

Confidence is the product of three factors, each from 0 to 1:

- the name similarity of the reviewer's display name and the couple's names
  (:func:`plaudit.matching.names.name_similarity`);
- the time factor: a review soon after the couple's first request scores 1,
  a later one less, one before the request but after the wedding 0.8, and
  one before the wedding 0.3;
- the platform factor: 1 when the couple was sent a link to the review's
  platform (or the links are unknown), 0.8 otherwise.

An e-mail address or reference that the platform gives with the review
(Trustpilot private reviews) and that belongs to the couple is an exact
match, with confidence 1 whatever the names are.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from typing import Final, Literal, final

import msgspec

from plaudit.matching.names import name_similarity

Method = Literal["exact", "name"]
DAY_SECONDS: Final = 86400.0
# Scores below this are not stored: most reviews share no name with most couples.
CANDIDATE_THRESHOLD: Final = 0.5
# Name matches at or above this confidence are confirmed without the
# operator.  Given names alone score 0.85 at most and a family initial 0.84,
# so an automatic match needs the whole family name to agree as well.
AUTO_CONFIRM_THRESHOLD: Final = 0.9
# An automatic match also needs the runner-up couple to score this much
# lower, so two couples with the same names stay with the operator.
AMBIGUITY_MARGIN: Final = 0.15
# A platform clock may run this far ahead of or behind ours before its
# review times are distrusted.
CLOCK_SKEW_SECONDS: Final = 2 * DAY_SECONDS
# (days after the first request, factor): the first row whose limit the delay
# does not exceed applies, and later reviews get LATE_FACTOR.
TIME_FACTORS: Final = ((60.0, 1.0), (180.0, 0.9), (400.0, 0.75))
LATE_FACTOR: Final = 0.5
BEFORE_REQUEST_FACTOR: Final = 0.8
BEFORE_WEDDING_FACTOR: Final = 0.3
OTHER_PLATFORM_FACTOR: Final = 0.8


@final
class ReviewFacts(msgspec.Struct, frozen=True, kw_only=True):
    """The facts of one review that matching reads."""

    platform: str
    review_id: str
    author: str
    # The platform's creation time, ISO 8601 UTC.
    created_at: str
    # Unix seconds when Plaudit first stored the review, by Plaudit's clock.
    first_seen_at: float
    # From the platform, when it gives them with the review (Trustpilot).
    email: str | None = None
    reference: str | None = None


@final
class CoupleFacts(msgspec.Struct, frozen=True, kw_only=True):
    """The facts of one couple that matching reads."""

    couple_id: int
    names: list[str]
    # Lower-cased.
    emails: list[str]
    # ISO date.
    wedding_date: str
    # Unix seconds of the couple's first sent request, None before any.
    first_request_at: float | None = None
    # Platforms whose review link the couple was sent; empty when unknown.
    platforms: frozenset[str] = frozenset()
    # Identifiers a platform may echo back: the couple id, Message-IDs, ...
    references: frozenset[str] = frozenset()


@final
class Score(msgspec.Struct, frozen=True, kw_only=True):
    """One review scored against one couple, with the reasons behind the figure."""

    couple_id: int
    confidence: float
    method: Method
    reasons: list[str]


@final
class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome for one review: its candidates, and the couple confirmed automatically."""

    candidates: list[Score]
    confirmed: int | None = None
    # Why nothing was confirmed automatically, for the operator's listing.
    note: str = ""
    # Set when the evidence is strong but fits several couples, so only the
    # operator can choose: the review's follow-ups continue until they do.
    needs_operator: bool = False


def review_time(review: ReviewFacts) -> tuple[float, str]:
    """Return the review's creation time in Unix seconds and a note on the clock used.

    A creation time later than Plaudit's first sight of the review (beyond
    the allowed skew) comes from a platform clock that runs ahead, so the
    first-seen time replaces it.
    """
    try:
        created = datetime.fromisoformat(review.created_at).timestamp()
    except ValueError:
        return review.first_seen_at, "invalid creation time: used the time Plaudit first saw it"
    if created > review.first_seen_at + CLOCK_SKEW_SECONDS:
        return review.first_seen_at, "platform clock ahead: used the time Plaudit first saw it"
    return created, ""


def _wedding_start(wedding_date: str) -> float:
    return datetime.combine(date.fromisoformat(wedding_date), time(0, 0), tzinfo=UTC).timestamp()


def time_factor(review: ReviewFacts, couple: CoupleFacts) -> tuple[float, str]:
    """Score when the review appeared relative to the couple's request and wedding."""
    moment, clock_note = review_time(review)
    wedding = _wedding_start(couple.wedding_date)
    anchor = couple.first_request_at if couple.first_request_at is not None else wedding
    anchor_name = "request" if couple.first_request_at is not None else "wedding"
    delay = moment - anchor
    prefix = f"{clock_note}; " if clock_note else ""
    if delay >= -CLOCK_SKEW_SECONDS:
        days = max(delay, 0.0) / DAY_SECONDS
        factor = next((value for limit, value in TIME_FACTORS if days <= limit), LATE_FACTOR)
        return factor, f"{prefix}{days:.0f} days after the {anchor_name}"
    if moment >= wedding - CLOCK_SKEW_SECONDS:
        return BEFORE_REQUEST_FACTOR, f"{prefix}before the request, after the wedding"
    return BEFORE_WEDDING_FACTOR, f"{prefix}before the wedding"


def platform_factor(review: ReviewFacts, couple: CoupleFacts) -> tuple[float, str]:
    """Score whether the couple was sent a link to the review's platform."""
    if not couple.platforms:
        return 1.0, "links sent unknown"
    if review.platform in couple.platforms:
        return 1.0, f"was sent the {review.platform} link"
    return OTHER_PLATFORM_FACTOR, f"was not sent the {review.platform} link"


def exact_reason(review: ReviewFacts, couple: CoupleFacts) -> str | None:
    """Return why the review's e-mail or reference identifies the couple, or None."""
    if review.email and review.email.strip().lower() in couple.emails:
        return f"the platform gives the couple's address {review.email.strip().lower()}"
    if review.reference and review.reference.strip() in couple.references:
        return f"the platform gives the couple's reference {review.reference.strip()!r}"
    return None


def score(review: ReviewFacts, couple: CoupleFacts) -> Score:
    """Score one review against one couple."""
    exact = exact_reason(review, couple)
    if exact is not None:
        return Score(couple_id=couple.couple_id, confidence=1.0, method="exact", reasons=[exact])

    names = name_similarity(review.author, couple.names)
    timing, timing_reason = time_factor(review, couple)
    platform, platform_reason = platform_factor(review, couple)
    reasons = [
        f"name {names:.2f}: {review.author!r} against {' & '.join(couple.names)!r}",
        f"time {timing:.2f}: {timing_reason}",
        f"platform {platform:.2f}: {platform_reason}",
    ]
    confidence = round(names * timing * platform, 3)
    return Score(couple_id=couple.couple_id, confidence=confidence, method="name", reasons=reasons)


def decide(scores: Sequence[Score]) -> Decision:
    """Keep the scores worth showing and confirm one couple when the evidence is clear."""
    kept = [
        item for item in scores if item.method == "exact" or item.confidence >= CANDIDATE_THRESHOLD
    ]
    candidates = sorted(
        kept,
        key=lambda item: (-item.confidence, item.couple_id),
    )
    if not candidates:
        return Decision(candidates=[])

    exact = [item for item in candidates if item.method == "exact"]
    if len(exact) == 1:
        return Decision(candidates=candidates, confirmed=exact[0].couple_id)
    if len(exact) > 1:
        return Decision(
            candidates=candidates,
            note=f"{len(exact)} couples share the address or reference; confirm one",
            needs_operator=True,
        )

    best = candidates[0]
    if best.confidence < AUTO_CONFIRM_THRESHOLD:
        return Decision(
            candidates=candidates,
            note=f"best confidence {best.confidence:.2f} is below {AUTO_CONFIRM_THRESHOLD}",
        )
    runner_up = candidates[1].confidence if len(candidates) > 1 else 0.0
    if best.confidence - runner_up < AMBIGUITY_MARGIN:
        return Decision(
            candidates=candidates,
            note=f"ambiguous: couples {best.couple_id} and {candidates[1].couple_id} score "
            f"{best.confidence:.2f} and {runner_up:.2f}",
            needs_operator=True,
        )
    return Decision(candidates=candidates, confirmed=best.couple_id)
