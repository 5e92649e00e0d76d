"""The figures of ``plaudit report``, as msgspec structs that encode to its JSON.

Every rate and average is None, never a division by zero, when there is
nothing to divide by, and the ``notes`` beside it explain why.
"""

from __future__ import annotations

from typing import final

import msgspec


@final
class StarFigures(msgspec.Struct, kw_only=True):
    """Ratings given in stars (1 to 5); recommendations are counted apart."""

    rated: int = 0
    average: float | None = None
    # "1" to "5" -> number of live reviews with that many stars.
    distribution: dict[str, int] = msgspec.field(
        default_factory=lambda: {str(stars): 0 for stars in range(1, 6)}
    )


@final
class RecommendationFigures(msgspec.Struct, kw_only=True):
    """Ratings given as recommendations (Facebook): positive or negative."""

    positive: int = 0
    negative: int = 0
    positive_share: float | None = None


@final
class ReplyFigures(msgspec.Struct, kw_only=True):
    """Vendor replies to live reviews."""

    replied: int = 0
    reply_rate: float | None = None
    # From the review's creation to the reply's last update.
    median_reply_hours: float | None = None


@final
class Trend(msgspec.Struct, kw_only=True):
    """Reviews of the last window against the window before it."""

    window_days: int
    recent_reviews: int = 0
    previous_reviews: int = 0
    # Mean stars of the window's star ratings; None without any.
    recent_average: float | None = None
    previous_average: float | None = None
    # up, down, flat or no data: the direction of the review count.
    direction: str = "no data"


@final
class PlatformFigures(msgspec.Struct, kw_only=True):
    """One platform's figures for one vendor."""

    platform: str
    # Profile id -> live reviews.
    profiles: dict[str, int]
    reviews: int = 0
    deleted: int = 0
    # Live reviews whose reviewer changed them at least once; figures use the current version.
    edited: int = 0
    stars: StarFigures = msgspec.field(default_factory=StarFigures)
    recommendations: RecommendationFigures = msgspec.field(default_factory=RecommendationFigures)
    # "YYYY-MM" -> live reviews created that month, oldest first.
    reviews_per_month: dict[str, int] = msgspec.field(default_factory=dict)
    replies: ReplyFigures = msgspec.field(default_factory=ReplyFigures)
    # Live reviews confirmed as written by one of the vendor's couples.
    matched: int = 0
    # Couples whose review link for this platform was sent, and those who then reviewed here.
    couples_sent_link: int = 0
    couples_reviewed: int = 0
    conversion_rate: float | None = None
    median_days_to_review: float | None = None
    # Reviews whose creation time was later than Plaudit's first sight of them.
    clock_adjusted: int = 0
    trend: Trend = msgspec.field(default_factory=lambda: Trend(window_days=90))
    notes: list[str] = msgspec.field(default_factory=list)


@final
class ChannelFunnel(msgspec.Struct, kw_only=True):
    """One channel's review requests (e-mail, SMS or push), from the ``request.*`` events.

    Each request counts once per stage, whatever its number of recipients.
    """

    channel: str
    couples: int = 0
    requests: int = 0
    delivered: int = 0
    clicked: int = 0
    bounced: int = 0
    delivery_rate: float | None = None
    # True without any delivery report: the rate is then sent minus bounced, over sent.
    delivery_estimated: bool = False


@final
class CampaignLift(msgspec.Struct, kw_only=True):
    """Review conversion of a campaign's personalised couples against its holdout group.

    Rates and intervals are None when a group has no settled couple yet.
    """

    campaign: str
    holdout_couples: int = 0
    holdout_conversions: int = 0
    holdout_rate: float | None = None
    treatment_couples: int = 0
    treatment_conversions: int = 0
    treatment_rate: float | None = None
    # Couples still inside their conversion window, in neither group's rate.
    pending_couples: int = 0
    # rate(treatment) / rate(holdout) - 1 with its 95 % interval.
    relative_lift: float | None = None
    relative_low: float | None = None
    relative_high: float | None = None
    # rate(treatment) - rate(holdout) with its 95 % interval.
    absolute_lift: float | None = None
    absolute_low: float | None = None
    absolute_high: float | None = None
    note: str = ""


@final
class Funnel(msgspec.Struct, kw_only=True):
    """Couples at each stage of the review request: sent, delivered, clicked, reviewed."""

    couples: int = 0
    sent: int = 0
    delivered: int = 0
    clicked: int = 0
    # Platform -> couples who clicked its [vendor] review_links link.  A
    # configured platform without clicks has 0.
    clicked_per_platform: dict[str, int] = msgspec.field(default_factory=dict)
    reviewed: int = 0
    # Reviewed couples among those sent a request.
    conversion_rate: float | None = None
    median_days_to_review: float | None = None
    # Couples with a confirmed review but no request sent.
    reviewed_without_request: int = 0
    # "email", "sms" and "push" -> that channel's requests, when any was sent.
    channels: dict[str, ChannelFunnel] = msgspec.field(default_factory=dict)
    notes: list[str] = msgspec.field(default_factory=list)


@final
class Deliverability(msgspec.Struct, kw_only=True):
    """Message events of the vendor's review requests, and the rates mailbox providers watch."""

    sent: int = 0
    delivered: int = 0
    hard_bounces: int = 0
    soft_bounces: int = 0
    complaints: int = 0
    opened: int = 0
    clicked: int = 0
    delivery_rate: float | None = None
    hard_bounce_rate: float | None = None
    complaint_rate: float | None = None
    # True without delivery reports (plain SMTP): delivery_rate is sent minus bounces, over sent.
    delivery_estimated: bool = False
    notes: list[str] = msgspec.field(default_factory=list)


@final
class Recommendation(msgspec.Struct, kw_only=True):
    """The review link to lead with for the next couples, and why."""

    platform: str | None
    reason: str
    # The basis of the choice: conversion, fewest_recent, only_link or none.
    basis: str


@final
class LinkSummary(msgspec.Struct, kw_only=True):
    """Couples whose reviews are linked across platforms."""

    couples_with_reviews: int = 0
    couples_on_several_platforms: int = 0


@final
class VendorReport(msgspec.Struct, kw_only=True):
    """One vendor's figures: per platform, the request funnel and the comparison."""

    vendor: str
    platforms: list[PlatformFigures]
    funnel: Funnel
    deliverability: Deliverability
    recommendation: Recommendation
    links: LinkSummary
    # Personalisation lift per campaign with a holdout group.
    lift: list[CampaignLift] = msgspec.field(default_factory=list)
    notes: list[str] = msgspec.field(default_factory=list)


@final
class Report(msgspec.Struct, kw_only=True):
    """Everything ``plaudit report`` prints, for one journal at one moment."""

    generated_at: str
    journal: str
    vendors: list[VendorReport]
