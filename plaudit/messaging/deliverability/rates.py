"""Deliverability rates per provider and recipient domain over rolling windows.

The default complaint thresholds are the spam-rate limits of Gmail's sender
guidelines: stay under 0.1 % and never reach 0.3 %.  Hard bounces alert at
2 %.  Rates over fewer than ``min_attempts`` messages are reported but
raise no alert, because one complaint in a dozen messages is noise.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, final

import msgspec

from plaudit.messaging.deliverability.suppression import MessageEvent

Level = Literal["ok", "alert", "critical"]
DAY_SECONDS = 86400.0
DEFAULT_WINDOWS = (DAY_SECONDS, 7 * DAY_SECONDS, 30 * DAY_SECONDS)


@final
class RateThresholds(msgspec.Struct, frozen=True, kw_only=True):
    """Rates (fractions, 0.001 is 0.1 %) at which a window raises an alert."""

    complaint_alert: float = 0.001
    complaint_critical: float = 0.003
    hard_bounce_alert: float = 0.02
    min_attempts: int = 100


@final
class WindowRates(msgspec.Struct, frozen=True, kw_only=True):
    """Counts and rates for one provider and recipient domain over one window."""

    provider: str
    domain: str
    window_seconds: float
    attempts: int
    delivered: int
    deferred: int
    hard_bounces: int
    soft_bounces: int
    policy_blocks: int
    complaints: int
    opened: int
    clicked: int
    delivery_rate: float | None
    hard_bounce_rate: float | None
    complaint_rate: float | None
    level: Level
    alerts: tuple[str, ...]


def recipient_domain(address: str) -> str:
    """Return the lower-cased domain of an address, or "" when it has none."""
    return address.rpartition("@")[2].strip().lower() if "@" in address else ""


def compute_rates(
    events: Iterable[MessageEvent],
    *,
    now: float,
    window_seconds: float,
    thresholds: RateThresholds | None = None,
) -> list[WindowRates]:
    """Group the events of the window ending at ``now`` by (provider, domain) and rate them."""
    thresholds = thresholds or RateThresholds()
    groups: dict[tuple[str, str], dict[str, int]] = {}
    start = now - window_seconds
    for event in events:
        if not start < event.at <= now:
            continue
        key = (event.provider or "unknown", recipient_domain(event.address))
        counts = groups.setdefault(key, {})
        counts[event.kind] = counts.get(event.kind, 0) + 1

    return [
        _rate(provider, domain, window_seconds, counts, thresholds)
        for (provider, domain), counts in sorted(groups.items())
    ]


def rolling_rates(
    events: Iterable[MessageEvent],
    *,
    now: float,
    windows: tuple[float, ...] = DEFAULT_WINDOWS,
    thresholds: RateThresholds | None = None,
) -> list[WindowRates]:
    """Compute :func:`compute_rates` for every window, shortest first."""
    materialized = list(events)
    return [
        rates
        for window in sorted(windows)
        for rates in compute_rates(
            materialized, now=now, window_seconds=window, thresholds=thresholds
        )
    ]


def _rate(
    provider: str,
    domain: str,
    window_seconds: float,
    counts: dict[str, int],
    thresholds: RateThresholds,
) -> WindowRates:
    delivered = counts.get("delivered", 0)
    hard = counts.get("hard_bounce", 0)
    soft = counts.get("soft_bounce", 0)
    policy = counts.get("policy_block", 0)
    complaints = counts.get("complaint", 0)

    # A send may have no outcome yet, and an outcome may predate the window's sends.
    attempts = max(counts.get("sent", 0), delivered + hard + soft + policy)
    hard_rate = hard / attempts if attempts else None
    # Providers measure complaints against delivered mail.
    complaint_rate = complaints / delivered if delivered else None

    level, alerts = _judge(attempts, hard_rate, complaint_rate, thresholds)
    return WindowRates(
        provider=provider,
        domain=domain,
        window_seconds=window_seconds,
        attempts=attempts,
        delivered=delivered,
        deferred=counts.get("deferred", 0),
        hard_bounces=hard,
        soft_bounces=soft,
        policy_blocks=policy,
        complaints=complaints,
        opened=counts.get("opened", 0),
        clicked=counts.get("clicked", 0),
        delivery_rate=delivered / attempts if attempts else None,
        hard_bounce_rate=hard_rate,
        complaint_rate=complaint_rate,
        level=level,
        alerts=alerts,
    )


def _judge(
    attempts: int,
    hard_rate: float | None,
    complaint_rate: float | None,
    thresholds: RateThresholds,
) -> tuple[Level, tuple[str, ...]]:
    if attempts < thresholds.min_attempts:
        return "ok", ()

    level: Level = "ok"
    alerts: list[str] = []
    if complaint_rate is not None and complaint_rate >= thresholds.complaint_critical:
        level = "critical"
        alerts.append(
            f"complaint rate {complaint_rate:.2%} at or above {thresholds.complaint_critical:.2%}"
        )
    elif complaint_rate is not None and complaint_rate >= thresholds.complaint_alert:
        level = "alert"
        alerts.append(
            f"complaint rate {complaint_rate:.2%} at or above {thresholds.complaint_alert:.2%}"
        )
    if hard_rate is not None and hard_rate >= thresholds.hard_bounce_alert:
        level = "critical" if level == "critical" else "alert"
        alerts.append(
            f"hard-bounce rate {hard_rate:.2%} at or above {thresholds.hard_bounce_alert:.2%}"
        )
    return level, tuple(alerts)
