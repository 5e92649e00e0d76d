"""Send-time optimisation: when in a step's window a couple is most likely to act.

The model counts engagement (clicks and detected reviews, never opens: Apple
Mail Privacy Protection fetches every image, so an open does not show that
a person read the message) in 168 hour-of-week buckets of the recipient's local time.  Each
level is the posterior mean of a Dirichlet distribution whose prior is the
level above it (hierarchical shrinkage):

* vendor level: all of the vendor's couples, shrunk towards a uniform prior
  with ``vendor_weight`` pseudo-counts;
* recipient level: the couple's own events, shrunk towards the vendor level
  with ``recipient_weight`` pseudo-counts.

So a couple with no history gets the vendor's pattern, and a new vendor gets
the uniform prior, which keeps every send at its due time.  Sends avoid the
quiet hours of :mod:`plaudit.messaging.quiet_hours` (21:00-08:00 local).
Every function here is pure: the journal queries live in
:mod:`plaudit.personalisation.store`.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Final, final

import msgspec

from plaudit.messaging.quiet_hours import is_quiet, next_allowed

BUCKETS: Final = 168
HOUR: Final = 3600.0
_DAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# The spread of one event over buckets: its own hour, the hours beside it, and
# the same hours on the other six days.  With a handful of events per couple
# a weekday-specific estimate is mostly noise, so each event also counts half
# on the other days.  With many events a weekly pattern still shows.  In
# bench/personalisation.py (habits the same every day) an other-day weight of
# 0.25 captured 0.79 of the oracle's send-time gain and 0.5 captured 0.81.
# The weights sum to 8 and are divided by it, so each event adds one
# pseudo-count in total.
_SAME_HOUR: Final = 1.0
_NEXT_HOUR: Final = 0.5
_OTHER_DAY: Final = 0.5
_OTHER_DAY_NEXT_HOUR: Final = 0.25
_EVENT_WEIGHT: Final = _SAME_HOUR + 2 * _NEXT_HOUR + 6 * _OTHER_DAY + 12 * _OTHER_DAY_NEXT_HOUR


@final
class EngagementModel(msgspec.Struct, frozen=True, kw_only=True):
    """Per hour-of-week bucket, the posterior share of a couple's engagement."""

    propensity: list[float]
    recipient_events: int
    vendor_events: int
    # How much of the estimate rests on each level; the three sum to 1.
    recipient_share: float
    vendor_share: float
    prior_share: float


@final
class VendorLevel(msgspec.Struct, frozen=True, kw_only=True):
    """The vendor's pooled engagement per bucket, shared by all of its couples' models."""

    probabilities: list[float]
    events: int
    # Pseudo-counts of the uniform prior behind it.
    weight: float


@final
class SendTimeChoice(msgspec.Struct, frozen=True, kw_only=True):
    """The chosen send time and the facts behind it, as shown by ``plaudit ctl``."""

    send_at: float
    due_at: float
    window_end: float
    timezone: str
    local_time: str
    score: float
    due_score: float
    recipient_events: int
    vendor_events: int
    recipient_share: float
    vendor_share: float
    prior_share: float
    reason: str


def resolve_zone(couple_zone: str | None, vendor_zone: str) -> tuple[zoneinfo.ZoneInfo, str]:
    """Return the recipient's zone and, when a fallback was used, why; UTC as a last resort."""
    problems: list[str] = []
    for label, name in (("couple", couple_zone), ("vendor", vendor_zone)):
        if not name:
            continue
        try:
            return zoneinfo.ZoneInfo(name), "; ".join(problems)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            problems.append(f"unknown {label} time zone {name!r}")
    problems.append("using UTC")
    return zoneinfo.ZoneInfo("UTC"), "; ".join(problems)


def hour_of_week(moment: float, zone: zoneinfo.ZoneInfo) -> int:
    """Return the local hour-of-week bucket (0 is Monday 00:00-00:59) of a Unix time."""
    local = datetime.fromtimestamp(moment, zone)
    return local.weekday() * 24 + local.hour


def is_allowed(moment: float, zone: zoneinfo.ZoneInfo) -> bool:
    """Return True when the local time is outside quiet hours (within 08:00-21:00)."""
    return not is_quiet(moment, zone)


def spread_events(buckets: Iterable[int]) -> list[float]:
    """Return pseudo-counts per bucket, each event spread as described at the top."""
    counts = [0.0] * BUCKETS
    for bucket in buckets:
        day, hour = divmod(bucket % BUCKETS, 24)
        for other_day in range(7):
            same_day = other_day == day
            centre = _SAME_HOUR if same_day else _OTHER_DAY
            beside = _NEXT_HOUR if same_day else _OTHER_DAY_NEXT_HOUR
            base = other_day * 24
            counts[base + hour] += centre / _EVENT_WEIGHT
            # Neighbouring hours wrap within the day, so 23:00 and 00:00 count as neighbours.
            counts[base + (hour - 1) % 24] += beside / _EVENT_WEIGHT
            counts[base + (hour + 1) % 24] += beside / _EVENT_WEIGHT
    return counts


def fit_vendor(vendor_buckets: Sequence[int], *, vendor_weight: float) -> VendorLevel:
    """Return the vendor level: all couples' events shrunk towards the uniform prior."""
    if vendor_weight <= 0:
        raise ValueError(f"vendor_prior_weight must be above 0, got {vendor_weight}")
    events = len(vendor_buckets)
    probabilities = [
        (count + vendor_weight / BUCKETS) / (events + vendor_weight)
        for count in spread_events(vendor_buckets)
    ]
    return VendorLevel(probabilities=probabilities, events=events, weight=vendor_weight)


def fit_couple(
    recipient_buckets: Sequence[int], vendor: VendorLevel, *, recipient_weight: float
) -> EngagementModel:
    """Return one couple's propensity: its own events shrunk towards the vendor level."""
    if recipient_weight <= 0:
        raise ValueError(f"recipient_prior_weight must be above 0, got {recipient_weight}")
    events = len(recipient_buckets)
    propensity = [
        (count + recipient_weight * pooled) / (events + recipient_weight)
        for count, pooled in zip(
            spread_events(recipient_buckets), vendor.probabilities, strict=True
        )
    ]
    recipient_share = events / (events + recipient_weight)
    vendor_share = (1 - recipient_share) * vendor.events / (vendor.events + vendor.weight)
    return EngagementModel(
        propensity=propensity,
        recipient_events=events,
        vendor_events=vendor.events,
        recipient_share=recipient_share,
        vendor_share=vendor_share,
        prior_share=max(0.0, 1 - recipient_share - vendor_share),
    )


def fit_model(
    recipient_buckets: Sequence[int],
    vendor_buckets: Sequence[int],
    *,
    recipient_weight: float,
    vendor_weight: float,
) -> EngagementModel:
    """Return the shrunk per-bucket propensity of one couple from both levels' events."""
    vendor = fit_vendor(vendor_buckets, vendor_weight=vendor_weight)
    return fit_couple(recipient_buckets, vendor, recipient_weight=recipient_weight)


def choose_send_time(
    model: EngagementModel,
    *,
    due_at: float,
    window_hours: float,
    now: float,
    zone: zoneinfo.ZoneInfo,
) -> SendTimeChoice:
    """Pick the allowed whole-hour offset from the due time with the highest propensity.

    Candidates run from the due time (or ``now``, when planning happens late)
    to ``window_hours`` after the due time; quiet hours are skipped.  Ties go
    to the earliest candidate, so without data the send stays at its due
    time.  When the window has already passed (the daemon was down), the
    send goes at once, like any late job.  When the window has no allowed
    hour, the send goes at the next allowed minute, even past the window,
    so a request is never dropped.
    """
    window_end = due_at + window_hours * HOUR
    start = max(due_at, now)
    due_score = model.propensity[hour_of_week(due_at, zone)]
    if start > window_end:
        return _choice(
            model,
            send_at=start,
            due_at=due_at,
            window_end=window_end,
            zone=zone,
            due_score=due_score,
            reason="the step's send window had passed when it ran, so it is sent at once",
        )
    candidates = [
        moment
        for offset in range(int(window_hours) + 1)
        if start <= (moment := due_at + offset * HOUR) <= window_end and is_allowed(moment, zone)
    ]
    if start > due_at and is_allowed(start, zone) and start <= window_end:
        candidates.insert(0, start)

    if not candidates:
        send_at = next_allowed(start, zone)
        reason = "no allowed hour (08:00-21:00 local) left in the window; sent at the next one"
        return _choice(
            model,
            send_at=send_at,
            due_at=due_at,
            window_end=window_end,
            zone=zone,
            due_score=due_score,
            reason=reason,
        )

    best = max(
        candidates, key=lambda moment: (model.propensity[hour_of_week(moment, zone)], -moment)
    )
    return _choice(
        model,
        send_at=best,
        due_at=due_at,
        window_end=window_end,
        zone=zone,
        due_score=due_score,
        reason=_reason(model, best, due_at),
    )


def _reason(model: EngagementModel, send_at: float, due_at: float) -> str:
    if model.recipient_events == 0 and model.vendor_events == 0:
        return "no clicks or reviews recorded yet, so the step keeps its due time"
    hours = (send_at - due_at) / HOUR
    sources = (
        f"{model.recipient_events} events of this couple, "
        f"{model.vendor_events} of the vendor's couples"
    )
    if send_at == due_at:
        return f"the due time is already the best allowed hour ({sources})"
    return f"moved {hours:.0f} h after the due time to the most active allowed hour ({sources})"


def _choice(
    model: EngagementModel,
    *,
    send_at: float,
    due_at: float,
    window_end: float,
    zone: zoneinfo.ZoneInfo,
    due_score: float,
    reason: str,
) -> SendTimeChoice:
    local = datetime.fromtimestamp(send_at, zone)
    return SendTimeChoice(
        send_at=send_at,
        due_at=due_at,
        window_end=window_end,
        timezone=zone.key,
        local_time=f"{_DAYS[local.weekday()]} {local:%Y-%m-%d %H:%M}",
        score=model.propensity[hour_of_week(send_at, zone)],
        due_score=due_score,
        recipient_events=model.recipient_events,
        vendor_events=model.vendor_events,
        recipient_share=model.recipient_share,
        vendor_share=model.vendor_share,
        prior_share=model.prior_share,
        reason=reason,
    )


def fixed_time(
    *, due_at: float, now: float, zone: zoneinfo.ZoneInfo, reason: str
) -> SendTimeChoice:
    """Return the baseline choice: the due time, or now when the job runs late."""
    send_at = max(due_at, now)
    local = datetime.fromtimestamp(send_at, zone)
    return SendTimeChoice(
        send_at=send_at,
        due_at=due_at,
        window_end=due_at,
        timezone=zone.key,
        local_time=f"{_DAYS[local.weekday()]} {local:%Y-%m-%d %H:%M}",
        score=0.0,
        due_score=0.0,
        recipient_events=0,
        vendor_events=0,
        recipient_share=0.0,
        vendor_share=0.0,
        prior_share=1.0,
        reason=reason,
    )


def utc_text(moment: float) -> str:
    """Return a Unix time as ISO 8601 UTC text to the second."""
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")
