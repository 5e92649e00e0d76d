"""Platform comparison: trends, and the review link to lead with.

The recommendation prefers measured conversion: once enough couples were
sent a platform's link, the platform whose link turned the largest share of
them into reviews leads.  Before that, the platform with the fewest reviews
in the recent window leads, because a new review adds most where there are
few.  Platforms where asking for reviews is forbidden (Yelp) never lead.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Final

from plaudit.reporting.model import PlatformFigures, Recommendation, Trend
from plaudit.reporting.names import platform_name

DAY_SECONDS: Final = 86400.0
TREND_WINDOW_DAYS: Final = 90
# Couples sent a platform's link before its conversion rate counts; fewer
# is noise (one review in three requests is not a 33 % rate).
MIN_COUPLES_FOR_CONVERSION: Final = 10
# Review counts within this share of each other are "flat".
FLAT_SHARE: Final = 0.1


def trend(
    reviews: Iterable[tuple[float, int | None]], *, now: float, window_days: int = TREND_WINDOW_DAYS
) -> Trend:
    """Compare the last ``window_days`` with the window before, from (time, stars) pairs."""
    window = window_days * DAY_SECONDS
    recent: list[int | None] = []
    previous: list[int | None] = []
    for moment, stars in reviews:
        if now - window <= moment <= now + window:
            recent.append(stars)
        elif now - 2 * window <= moment < now - window:
            previous.append(stars)
    result = Trend(window_days=window_days)
    result.recent_reviews = len(recent)
    result.previous_reviews = len(previous)
    result.recent_average = _mean(recent)
    result.previous_average = _mean(previous)
    result.direction = _direction(len(recent), len(previous))
    return result


def _mean(values: Sequence[int | None]) -> float | None:
    stars = [value for value in values if value is not None]
    return round(sum(stars) / len(stars), 2) if stars else None


def _direction(recent: int, previous: int) -> str:
    if recent == 0 and previous == 0:
        return "no data"
    if abs(recent - previous) <= FLAT_SHARE * max(recent, previous):
        return "flat"
    return "up" if recent > previous else "down"


def recommend(platforms: Sequence[PlatformFigures], *, linkable: Collection[str]) -> Recommendation:
    """Choose the review link to lead with among ``linkable`` platforms, with its reason."""
    candidates = [figures for figures in platforms if figures.platform in linkable]
    if not candidates:
        return Recommendation(
            platform=None,
            basis="none",
            reason="no platform takes review requests; add a link to [vendor] review_links",
        )
    if len(candidates) == 1:
        only = candidates[0]
        return Recommendation(
            platform=only.platform,
            basis="only_link",
            reason=f"{platform_name(only.platform)} is the only platform with a review link",
        )

    measured = [
        figures
        for figures in candidates
        if figures.couples_sent_link >= MIN_COUPLES_FOR_CONVERSION
        and figures.conversion_rate is not None
    ]
    if len(measured) >= 2:
        best = max(measured, key=lambda figures: (figures.conversion_rate or 0.0, figures.platform))
        return Recommendation(
            platform=best.platform,
            basis="conversion",
            reason=f"{platform_name(best.platform)} turned {best.couples_reviewed} of "
            f"{best.couples_sent_link} couples sent its link into reviews "
            f"({(best.conversion_rate or 0.0) * 100:.0f} %), the highest of the platforms "
            f"with at least {MIN_COUPLES_FOR_CONVERSION} couples sent",
        )

    fewest = min(candidates, key=lambda figures: (figures.trend.recent_reviews, figures.platform))
    tied = [f for f in candidates if f.trend.recent_reviews == fewest.trend.recent_reviews]
    # A tie goes to the first platform id in alphabetical order, and the reason states it.
    tie = ""
    if len(tied) > 1:
        others = ", ".join(platform_name(f.platform) for f in tied if f is not fewest)
        tie = f", as do {others}, and it comes first by name"
    return Recommendation(
        platform=fewest.platform,
        basis="fewest_recent",
        reason=f"{platform_name(fewest.platform)} has the fewest reviews in the last "
        f"{fewest.trend.window_days} days ({fewest.trend.recent_reviews}){tie}, so a new review "
        f"adds most there; conversion needs {MIN_COUPLES_FOR_CONVERSION} couples sent per "
        "platform before it decides",
    )
