"""Publishing the report's headline figures as Prometheus gauges.

Labels are platform names and fixed stage or state names, so their number
stays bounded by the platforms configured.  A figure that is empty (an
average without ratings) is removed rather than exported as 0, so a
dashboard shows a gap instead of a false zero.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from prometheus_client import Gauge

from plaudit.matching.store import MATCH_STATES
from plaudit.metrics import (
    REPORT_AVERAGE_STARS,
    REPORT_CONVERSION,
    REPORT_FUNNEL,
    REPORT_LEAD_PLATFORM,
    REPORT_MATCHES,
    REPORT_POSITIVE_RATIO,
    REPORT_REFRESHED,
    REPORT_REPLY_RATIO,
    REPORT_REVIEWS,
)
from plaudit.reporting.model import Report


def publish_report(report: Report, *, matches: Mapping[str, int] | None = None) -> None:
    """Set the report gauges from ``report`` and the match counts by state."""
    for gauge in (
        REPORT_REVIEWS,
        REPORT_AVERAGE_STARS,
        REPORT_POSITIVE_RATIO,
        REPORT_REPLY_RATIO,
        REPORT_LEAD_PLATFORM,
    ):
        gauge.clear()
    for vendor in report.vendors:
        for figures in vendor.platforms:
            REPORT_REVIEWS.labels(platform=figures.platform).set(figures.reviews)
            _set_or_skip(REPORT_AVERAGE_STARS, figures.platform, figures.stars.average)
            _set_or_skip(
                REPORT_POSITIVE_RATIO, figures.platform, figures.recommendations.positive_share
            )
            _set_or_skip(REPORT_REPLY_RATIO, figures.platform, figures.replies.reply_rate)
            lead = int(figures.platform == vendor.recommendation.platform)
            REPORT_LEAD_PLATFORM.labels(platform=figures.platform).set(lead)
        funnel = vendor.funnel
        stages = {
            "couples": funnel.couples,
            "sent": funnel.sent,
            "delivered": funnel.delivered,
            "clicked": funnel.clicked,
            "reviewed": funnel.reviewed,
        }
        for stage, value in stages.items():
            REPORT_FUNNEL.labels(stage=stage).set(value)
        if funnel.conversion_rate is not None:
            REPORT_CONVERSION.set(funnel.conversion_rate)
    for state in MATCH_STATES:
        REPORT_MATCHES.labels(state=state).set((matches or {}).get(state, 0))
    REPORT_REFRESHED.set(time.time())


def _set_or_skip(gauge: Gauge, platform: str, value: float | None) -> None:
    if value is not None:
        gauge.labels(platform=platform).set(value)
