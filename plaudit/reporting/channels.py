"""Report figures that hold for every channel, and the personalisation lift.

Each channel links its provider's reports to a request differently: e-mail
by Message-ID, SMS by Twilio's MessageSid, and push not at all, because a
push service reports nothing after accepting a message.  The ``request.*``
events in the journal's outbox already carry the request, couple and
channel of every send, delivery, bounce and click, whatever the channel, so
the funnel is counted from them.  Message events are only used for
journals whose sends predate those events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from plaudit.personalisation.lift import read_lift
from plaudit.reporting.model import CampaignLift, ChannelFunnel
from plaudit.reviews.store import SupportsExecute

CHANNELS: Final = ("email", "sms", "push")
# request.* event type -> the ChannelFunnel field it counts.
_STAGES: Final = {
    "request.sent": "requests",
    "request.delivered": "delivered",
    "request.clicked": "clicked",
    "request.bounced": "bounced",
}


def channel_funnels(source: SupportsExecute) -> dict[str, ChannelFunnel]:
    """Return the funnel of every channel with a sent request, keyed by channel."""
    rows = source.execute(
        "SELECT platform, type, count(DISTINCT subject),"
        " count(DISTINCT json_extract(payload, '$.couple'))"
        " FROM events WHERE type IN (?, ?, ?, ?) GROUP BY platform, type",
        tuple(_STAGES),
    ).fetchall()
    funnels: dict[str, ChannelFunnel] = {}
    for channel, event_type, requests, couples in rows:
        funnel = funnels.setdefault(str(channel), ChannelFunnel(channel=str(channel)))
        setattr(funnel, _STAGES[str(event_type)], int(requests))
        if event_type == "request.sent":
            funnel.couples = int(couples)

    for funnel in funnels.values():
        estimate_delivery(funnel)
    order = {channel: index for index, channel in enumerate(CHANNELS)}
    return dict(sorted(funnels.items(), key=lambda item: (order.get(item[0], 99), item[0])))


def estimate_delivery(funnel: ChannelFunnel) -> None:
    """Set the delivery rate, estimated as ``ctl deliverability`` does without delivery reports.

    With no delivery report at all, every sent request that did not bounce
    counts as delivered and the rate is marked estimated.
    """
    if funnel.requests == 0:
        return
    if funnel.delivered == 0:
        funnel.delivery_estimated = True
        reached = max(funnel.requests - funnel.bounced, 0)
    else:
        reached = funnel.delivered
    funnel.delivery_rate = round(reached / funnel.requests, 4)


def couples_reached(source: SupportsExecute, event_type: str, message_kind: str) -> int:
    """Return couples with an ``event_type`` request event or an e-mail ``message_kind`` event.

    The message events cover e-mail sent before request events existed.
    """
    row = source.execute(
        "SELECT count(*) FROM ("
        " SELECT json_extract(payload, '$.couple') AS couple FROM events WHERE type = ?"
        " UNION"
        " SELECT r.couple_id FROM requests r JOIN message_events e ON e.message_id = r.message_id"
        " WHERE e.kind = ? AND r.channel = 'email' AND r.message_id IS NOT NULL)",
        (event_type, message_kind),
    ).fetchone()
    return int(row[0])


def campaign_lifts(
    source: SupportsExecute, *, now: float, conversion_days: Mapping[str, int]
) -> list[CampaignLift]:
    """Return the measured lift of every campaign with sent personalised requests.

    Reads only: outcomes still pending in the journal are settled in memory.
    """
    if not _has_table(source, "personalisation_assignments"):
        return []
    rows = source.execute(
        "SELECT DISTINCT campaign FROM personalisation_assignments"
        " WHERE sent_at IS NOT NULL ORDER BY campaign",
        (),
    ).fetchall()
    lifts = []
    for (campaign,) in rows:
        report = read_lift(source, now=now, campaign=str(campaign), conversion_days=conversion_days)
        lift = CampaignLift(
            campaign=str(campaign),
            holdout_couples=report.holdout.couples,
            holdout_conversions=report.holdout.conversions,
            holdout_rate=_round(report.holdout.rate),
            treatment_couples=report.treatment.couples,
            treatment_conversions=report.treatment.conversions,
            treatment_rate=_round(report.treatment.rate),
            pending_couples=report.pending_couples,
            note=report.note,
        )
        if report.relative_lift is not None:
            lift.relative_lift = _round(report.relative_lift.estimate)
            lift.relative_low = _round(report.relative_lift.low)
            lift.relative_high = _round(report.relative_lift.high)
        if report.absolute_lift is not None:
            lift.absolute_lift = _round(report.absolute_lift.estimate)
            lift.absolute_low = _round(report.absolute_lift.low)
            lift.absolute_high = _round(report.absolute_lift.high)
        lifts.append(lift)
    return lifts


def _has_table(source: SupportsExecute, name: str) -> bool:
    row = source.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
