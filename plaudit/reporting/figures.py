"""Computing the report's figures from the journal.

:func:`build_report` reads the reviews, couples, requests, message events
and confirmed matches through any ``execute`` source (a read-only sqlite3
connection or a journal transaction) and writes nothing.

Figures use each review's current version, so a review edited from 5 to 1
star counts as 1 star; ``edited`` counts the reviews that changed.  A review
whose platform dates it later than Plaudit first saw it (a clock running
ahead) is dated by Plaudit's first sight instead, and counted in
``clock_adjusted``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, final

import msgspec

from plaudit.matching.links import review_groups
from plaudit.matching.scoring import ReviewFacts, review_time
from plaudit.reporting.channels import (
    campaign_lifts,
    channel_funnels,
    couples_reached,
)
from plaudit.reporting.clicks import click_notes, clicks_per_platform
from plaudit.reporting.comparison import recommend, trend
from plaudit.reporting.model import (
    Deliverability,
    Funnel,
    LinkSummary,
    PlatformFigures,
    RecommendationFigures,
    ReplyFigures,
    Report,
    StarFigures,
    VendorReport,
)
from plaudit.reviews.store import SupportsExecute

DAY_SECONDS: Final = 86400.0
# Platforms where Plaudit must not ask for reviews, so never recommended.
NEVER_REQUESTED: Final = frozenset({"yelp"})


@final
class ReportContext(msgspec.Struct, frozen=True, kw_only=True):
    """Facts from the configuration that the journal lacks; every field is optional."""

    vendor: str = ""
    # Platforms with a review link in [vendor] review_links.
    review_links: frozenset[str] = frozenset()
    # [vendor] review_links itself: platform -> URL, to tell which link a click followed.
    review_link_urls: Mapping[str, str] = msgspec.field(default_factory=dict)
    # Campaign name -> platforms whose links its steps send.
    campaign_links: Mapping[str, frozenset[str]] = msgspec.field(default_factory=dict)
    # Campaign name -> days after a send in which a review counts as its conversion.
    conversion_days: Mapping[str, int] = msgspec.field(default_factory=dict)


@final
class _Row(msgspec.Struct, frozen=True, kw_only=True):
    platform: str
    profile: str
    review_id: str
    stars: int | None
    recommendation: str | None
    created_at: str
    reply_updated_at: str | None
    reply_text: str | None
    deleted_at: str | None
    first_seen_at: float
    # Unix seconds: the creation time, or the first sight when the platform clock ran ahead.
    moment: float
    clock_adjusted: bool


def build_report(
    source: SupportsExecute, *, journal: str, now: float, context: ReportContext
) -> Report:
    """Compute the report of the journal behind ``source`` at Unix time ``now``.

    NOTE: reviews carry no vendor, so every profile counts for the one vendor
    of the configuration (or of the couples).  A journal shared by several
    vendors gets one combined report.
    """
    rows = _load_rows(source)
    edited = _edited(source)

    matches = _confirmed(source)
    first_sent, sent_platforms = _requests(source, context)
    vendor = context.vendor or _vendor_from_couples(source)
    platforms = [
        _platform_figures(
            platform,
            [row for row in rows if row.platform == platform],
            edited=edited,
            matches=matches,
            first_sent=first_sent,
            sent_platforms=sent_platforms,
            now=now,
        )
        for platform in sorted({row.platform for row in rows} | context.review_links)
    ]

    funnel = _funnel(source, rows, matches, first_sent, review_links=context.review_link_urls)
    groups = review_groups(source) if _has_table(source, "review_matches") else []
    links = LinkSummary(
        couples_with_reviews=len(groups),
        couples_on_several_platforms=sum(1 for group in groups if len(group.platforms) > 1),
    )

    linkable = (context.review_links or {figures.platform for figures in platforms}) - set(
        NEVER_REQUESTED
    )
    notes = []
    if not rows:
        notes.append("no reviews yet: counts are 0 and averages are empty until the first sync")
    if not _has_table(source, "review_matches"):
        notes.append("this journal predates review matching: no review is linked to a couple")

    vendor_report = VendorReport(
        vendor=vendor,
        platforms=platforms,
        funnel=funnel,
        deliverability=_deliverability(source),
        recommendation=recommend(platforms, linkable=linkable),
        links=links,
        lift=campaign_lifts(source, now=now, conversion_days=context.conversion_days),
        notes=notes,
    )
    generated = datetime.fromtimestamp(now, tz=UTC).isoformat(timespec="seconds")
    return Report(generated_at=generated, journal=journal, vendors=[vendor_report])


def ratio(part: int, whole: int) -> float | None:
    """Return ``part / whole`` rounded to four places, or None when ``whole`` is 0."""
    return round(part / whole, 4) if whole else None


def median(values: Sequence[float]) -> float | None:
    """Return the median rounded to two places, or None for no values."""
    # Computed here rather than with the statistics module, which loads
    # fractions and decimal into the daemon for this one function.
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return round(ordered[middle], 2)
    return round((ordered[middle - 1] + ordered[middle]) / 2, 2)


def _has_table(source: SupportsExecute, name: str) -> bool:
    row = source.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


def _load_rows(source: SupportsExecute) -> list[_Row]:
    rows = source.execute(
        "SELECT platform, profile, review_id, stars, recommendation, created_at,"
        " reply_updated_at, reply_text, deleted_at, first_seen_at, author FROM reviews"
        " ORDER BY platform, created_at, review_id",
        (),
    ).fetchall()
    loaded = []
    for row in rows:
        facts = ReviewFacts(
            platform=row[0],
            review_id=row[2],
            author=row[10],
            created_at=row[5],
            first_seen_at=float(row[9]),
        )
        moment, note = review_time(facts)
        loaded.append(
            _Row(
                platform=row[0],
                profile=row[1],
                review_id=row[2],
                stars=row[3],
                recommendation=row[4],
                created_at=row[5],
                reply_updated_at=row[6],
                reply_text=row[7],
                deleted_at=row[8],
                first_seen_at=float(row[9]),
                moment=moment,
                clock_adjusted=bool(note),
            )
        )
    return loaded


def _edited(source: SupportsExecute) -> set[tuple[str, str]]:
    rows = source.execute(
        "SELECT DISTINCT platform, subject FROM events WHERE type = 'review.updated'", ()
    ).fetchall()
    return {(str(row[0]), str(row[1])) for row in rows}


def _confirmed(source: SupportsExecute) -> dict[tuple[str, str], int]:
    """Return (platform, review id) -> couple id of every confirmed match."""
    if not _has_table(source, "review_matches"):
        return {}
    rows = source.execute(
        "SELECT platform, review_id, couple_id FROM review_matches WHERE state = 'confirmed'", ()
    ).fetchall()
    return {(str(row[0]), str(row[1])): int(row[2]) for row in rows}


def _requests(
    source: SupportsExecute, context: ReportContext
) -> tuple[dict[int, float], dict[int, frozenset[str]]]:
    """Return couple -> first sent request time, and couple -> platforms whose link was sent."""
    rows = source.execute(
        "SELECT couple_id, campaign, sent_at FROM requests WHERE sent_at IS NOT NULL", ()
    ).fetchall()
    first: dict[int, float] = {}
    platforms: dict[int, frozenset[str]] = {}
    for couple_id, campaign, sent_at in rows:
        couple = int(couple_id)
        first[couple] = min(first.get(couple, float(sent_at)), float(sent_at))
        sent = context.campaign_links.get(campaign, context.review_links)
        platforms[couple] = platforms.get(couple, frozenset()) | sent
    return first, platforms


def _vendor_from_couples(source: SupportsExecute) -> str:
    rows = source.execute("SELECT DISTINCT vendor FROM couples ORDER BY vendor", ()).fetchall()
    names = [str(row[0]) for row in rows]
    return names[0] if len(names) == 1 else "all vendors"


def _platform_figures(
    platform: str,
    rows: Sequence[_Row],
    *,
    edited: set[tuple[str, str]],
    matches: Mapping[tuple[str, str], int],
    first_sent: Mapping[int, float],
    sent_platforms: Mapping[int, frozenset[str]],
    now: float,
) -> PlatformFigures:
    live = [row for row in rows if row.deleted_at is None]
    profiles: dict[str, int] = {}
    for row in live:
        profiles[row.profile] = profiles.get(row.profile, 0) + 1
    figures = PlatformFigures(platform=platform, profiles=profiles, reviews=len(live))
    figures.deleted = len(rows) - len(live)
    figures.edited = sum(1 for row in live if (row.platform, row.review_id) in edited)
    figures.stars = _stars(live)
    figures.recommendations = _recommendations(live)
    figures.reviews_per_month = _per_month(live)
    figures.replies = _replies(live)
    figures.clock_adjusted = sum(1 for row in live if row.clock_adjusted)
    figures.trend = trend(((row.moment, row.stars) for row in live), now=now)
    _conversion(figures, live, matches, first_sent, sent_platforms)
    figures.notes = _platform_notes(figures)
    return figures


def _stars(live: Iterable[_Row]) -> StarFigures:
    figures = StarFigures()
    values = [row.stars for row in live if row.stars is not None]
    for stars in values:
        key = str(stars)
        figures.distribution[key] = figures.distribution.get(key, 0) + 1
    figures.rated = len(values)
    figures.average = round(sum(values) / len(values), 2) if values else None
    return figures


def _recommendations(live: Iterable[_Row]) -> RecommendationFigures:
    values = [row.recommendation for row in live if row.recommendation is not None]
    positive = sum(1 for value in values if value == "positive")
    return RecommendationFigures(
        positive=positive,
        negative=len(values) - positive,
        positive_share=ratio(positive, len(values)),
    )


def _per_month(live: Iterable[_Row]) -> dict[str, int]:
    months: dict[str, int] = {}
    for row in live:
        month = datetime.fromtimestamp(row.moment, tz=UTC).strftime("%Y-%m")
        months[month] = months.get(month, 0) + 1
    return dict(sorted(months.items()))


def _replies(live: Sequence[_Row]) -> ReplyFigures:
    replied = [row for row in live if row.reply_text is not None]
    hours = []
    for row in replied:
        if row.reply_updated_at is None:
            continue
        try:
            reply_at = datetime.fromisoformat(row.reply_updated_at).timestamp()
        except ValueError:
            continue
        # A reply dated before its review comes from a skewed clock: count it as immediate.
        hours.append(max(reply_at - row.moment, 0.0) / 3600.0)
    return ReplyFigures(
        replied=len(replied),
        reply_rate=ratio(len(replied), len(live)),
        median_reply_hours=median(hours),
    )


def _conversion(
    figures: PlatformFigures,
    live: Sequence[_Row],
    matches: Mapping[tuple[str, str], int],
    first_sent: Mapping[int, float],
    sent_platforms: Mapping[int, frozenset[str]],
) -> None:
    matched = [
        (row, matches[row.platform, row.review_id])
        for row in live
        if (row.platform, row.review_id) in matches
    ]
    figures.matched = len(matched)
    sent_here = {couple for couple, sent in sent_platforms.items() if figures.platform in sent}
    reviewed_here = {couple for _row, couple in matched}
    figures.couples_sent_link = len(sent_here)
    figures.couples_reviewed = len(sent_here & reviewed_here)
    figures.conversion_rate = ratio(figures.couples_reviewed, figures.couples_sent_link)
    days = [
        max(row.moment - first_sent[couple], 0.0) / DAY_SECONDS
        for row, couple in matched
        if couple in first_sent
    ]
    figures.median_days_to_review = median(days)


def _platform_notes(figures: PlatformFigures) -> list[str]:
    notes = []
    if figures.reviews == 0:
        notes.append("no reviews yet")
    if figures.edited:
        notes.append(f"edited reviews: {figures.edited}; figures use their current version")
    if figures.clock_adjusted:
        notes.append(
            f"reviews dated in the future by the platform's clock: {figures.clock_adjusted}; "
            "they are dated by when Plaudit first saw them"
        )
    if figures.stars.rated and figures.recommendations.positive + figures.recommendations.negative:
        notes.append("star ratings and recommendations are counted apart")
    if figures.couples_sent_link == 0:
        notes.append("no couple was sent this platform's link: conversion is empty")
    return notes


def _funnel(
    source: SupportsExecute,
    rows: Sequence[_Row],
    matches: Mapping[tuple[str, str], int],
    first_sent: Mapping[int, float],
    *,
    review_links: Mapping[str, str],
) -> Funnel:
    funnel = Funnel()
    funnel.couples = int(source.execute("SELECT count(*) FROM couples", ()).fetchone()[0])
    funnel.sent = len(first_sent)
    funnel.delivered = couples_reached(source, "request.delivered", "delivered")
    funnel.clicked = couples_reached(source, "request.clicked", "clicked")
    clicked = clicks_per_platform(source, review_links)
    funnel.clicked_per_platform = {platform: 0 for platform in sorted(review_links)} | clicked
    funnel.channels = channel_funnels(source)
    moments = {(row.platform, row.review_id): row.moment for row in rows if row.deleted_at is None}
    reviewed: dict[int, float] = {}
    for key, couple in matches.items():
        if key in moments:
            reviewed[couple] = min(reviewed.get(couple, moments[key]), moments[key])
    funnel.reviewed = sum(1 for couple in reviewed if couple in first_sent)
    funnel.reviewed_without_request = len(reviewed) - funnel.reviewed
    funnel.conversion_rate = ratio(funnel.reviewed, funnel.sent)
    days = [
        max(moment - first_sent[couple], 0.0) / DAY_SECONDS
        for couple, moment in reviewed.items()
        if couple in first_sent
    ]
    funnel.median_days_to_review = median(days)

    if funnel.sent == 0:
        funnel.notes.append("no request sent yet: conversion is empty")
    if funnel.sent and not funnel.delivered:
        funnel.notes.append(
            "no delivery events: delivered and clicked need the e-mail provider's webhooks "
            "or SMS status callbacks"
        )
    funnel.notes += click_notes(funnel.clicked, clicked, links=bool(review_links))
    estimated = [item.channel for item in funnel.channels.values() if item.delivery_estimated]
    if estimated:
        funnel.notes.append(
            f"no delivery reports for {', '.join(estimated)}: its delivery rate is estimated "
            "as sent minus bounced"
        )
    return funnel


def _deliverability(source: SupportsExecute) -> Deliverability:
    rows = source.execute(
        "SELECT e.kind, count(*) FROM message_events e"
        " WHERE e.message_id IN (SELECT message_id FROM requests WHERE message_id IS NOT NULL)"
        " GROUP BY e.kind",
        (),
    ).fetchall()
    counts: dict[str, Any] = {str(kind): int(count) for kind, count in rows}
    figures = Deliverability(
        sent=counts.get("accepted", 0),
        delivered=counts.get("delivered", 0),
        hard_bounces=counts.get("hard_bounce", 0),
        soft_bounces=counts.get("soft_bounce", 0),
        complaints=counts.get("complaint", 0),
        opened=counts.get("opened", 0),
        clicked=counts.get("clicked", 0),
    )

    # The rule of `plaudit ctl deliverability`: without any delivery report
    # (plain SMTP), mail accepted and not bounced counts as delivered.
    reached = figures.delivered
    if figures.sent and not figures.delivered:
        figures.delivery_estimated = True
        bounced = figures.hard_bounces + figures.soft_bounces + counts.get("policy_block", 0)
        reached = max(figures.sent - bounced, 0)
        figures.notes.append(
            "no delivery reports (plain SMTP): the delivery rate is estimated as accepted "
            "minus bounced"
        )
    figures.delivery_rate = ratio(reached, figures.sent)
    figures.hard_bounce_rate = ratio(figures.hard_bounces, figures.sent)
    figures.complaint_rate = ratio(figures.complaints, reached)
    if figures.sent == 0:
        figures.notes.append("no message sent yet: rates are empty")
    return figures
