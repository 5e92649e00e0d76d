"""Deliverability rates per provider and recipient domain over rolling windows.

The default complaint thresholds are the spam-rate limits of Gmail's sender
guidelines: stay under 0.1 % and never reach 0.3 %.  Hard bounces alert at
2 %.  Rates over fewer than ``min_attempts`` messages are reported but
raise no alert, because one complaint in a dozen messages is noise.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal, final

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
    # True when the provider reported no deliveries, so delivery_rate counts
    # every accepted message that did not come back failed as delivered.
    delivery_estimated: bool
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
    by_domain: bool = True,
) -> list[WindowRates]:
    """Group the events of the window ending at ``now`` by provider (and domain) and rate them.

    Events that name a Message-ID count once per message and recipient, and
    an outcome of a message Plaudit sent counts under the provider of that
    send, so the send is the denominator of its own outcome.  With
    ``by_domain`` False, every recipient domain of a provider shares one
    group whose domain is "".
    """
    thresholds = thresholds or RateThresholds()
    materialized = list(events)
    senders = sending_providers(materialized)
    groups: dict[tuple[str, str], _Tally] = {}
    start = now - window_seconds
    for event in materialized:
        if not start < event.at <= now:
            continue
        message = message_key(event)
        provider = senders.get(message) if message else None
        provider = provider or event.provider or "unknown"
        domain = recipient_domain(event.address) if by_domain else ""
        groups.setdefault((provider, domain), _Tally()).add(event.kind, message)

    return [
        _rate(provider, domain, window_seconds, tally, thresholds)
        for (provider, domain), tally in sorted(groups.items())
    ]


def rolling_rates(
    events: Iterable[MessageEvent],
    *,
    now: float,
    windows: tuple[float, ...] = DEFAULT_WINDOWS,
    thresholds: RateThresholds | None = None,
    by_domain: bool = True,
) -> list[WindowRates]:
    """Compute :func:`compute_rates` for every window, shortest first."""
    materialized = list(events)
    return [
        rates
        for window in sorted(windows)
        for rates in compute_rates(
            materialized,
            now=now,
            window_seconds=window,
            thresholds=thresholds,
            by_domain=by_domain,
        )
    ]


MessageKey = tuple[str, str]


def message_key(event: MessageEvent) -> MessageKey | None:
    """Return (Message-ID without angle brackets, recipient), or None without a Message-ID."""
    if not event.message_id:
        return None
    message_id = event.message_id.strip().strip("<>").strip()
    if not message_id:
        return None
    return message_id, event.address.strip().lower()


def sending_providers(events: Iterable[MessageEvent]) -> dict[MessageKey, str]:
    """Map each sent message and recipient to the provider of its earliest ``accepted`` event.

    The earliest wins because a provider may report the acceptance again
    (Mailgun's "accepted") after Plaudit recorded the send itself.
    """
    senders: dict[MessageKey, tuple[float, str]] = {}
    for event in events:
        message = message_key(event)
        if event.kind != "accepted" or message is None or not event.provider:
            continue
        known = senders.get(message)
        if known is None or event.at < known[0]:
            senders[message] = (event.at, event.provider)
    return {message: provider for message, (_, provider) in senders.items()}


# Kinds that end a message's delivery attempt, one way or the other.
_OUTCOMES: Final = frozenset({"delivered", "hard_bounce", "soft_bounce", "policy_block"})


@final
class _Tally:
    """Event counts of one group: distinct messages where a Message-ID links them."""

    def __init__(self) -> None:
        self.messages: dict[str, set[MessageKey]] = {}
        self.unlinked: dict[str, int] = {}

    def add(self, kind: str, message: MessageKey | None) -> None:
        if message is None:
            self.unlinked[kind] = self.unlinked.get(kind, 0) + 1
        else:
            self.messages.setdefault(kind, set()).add(message)

    def count(self, kind: str) -> int:
        return len(self.messages.get(kind, ())) + self.unlinked.get(kind, 0)

    def attempts(self) -> int:
        linked: set[MessageKey] = set()
        for kind in ("accepted", *_OUTCOMES):
            linked |= self.messages.get(kind, set())
        # Without a Message-ID a send and its outcome cannot be matched, and
        # a send may have no outcome yet or an outcome may predate the window.
        unlinked_outcomes = sum(self.unlinked.get(kind, 0) for kind in _OUTCOMES)
        return len(linked) + max(self.unlinked.get("accepted", 0), unlinked_outcomes)


def _rate(
    provider: str,
    domain: str,
    window_seconds: float,
    tally: _Tally,
    thresholds: RateThresholds,
) -> WindowRates:
    delivered = tally.count("delivered")
    hard = tally.count("hard_bounce")
    soft = tally.count("soft_bounce")
    policy = tally.count("policy_block")
    complaints = tally.count("complaint")
    attempts = tally.attempts()

    # Plain SMTP reports no deliveries, so then a message that did not come
    # back failed counts as delivered, and the rate is marked as an estimate.
    estimated = delivered == 0 and tally.count("accepted") > 0
    reached = max(attempts - hard - soft - policy, 0) if estimated else delivered
    hard_rate = hard / attempts if attempts else None
    # Providers measure complaints against delivered mail.
    complaint_rate = complaints / reached if reached else None

    level, alerts = _judge(attempts, hard_rate, complaint_rate, thresholds)
    return WindowRates(
        provider=provider,
        domain=domain,
        window_seconds=window_seconds,
        attempts=attempts,
        delivered=delivered,
        deferred=tally.count("deferred"),
        hard_bounces=hard,
        soft_bounces=soft,
        policy_blocks=policy,
        complaints=complaints,
        opened=tally.count("opened"),
        clicked=tally.count("clicked"),
        delivery_rate=reached / attempts if attempts else None,
        delivery_estimated=estimated,
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
