"""Message events and the suppression list in the journal.

Called inside a journal transaction, so an event, the suppression it causes
and any work enqueued with them commit together.  Provider event ids make a
repeated webhook or a re-read bounce harmless.
"""

from __future__ import annotations

import logging
from typing import final

import msgspec

from plaudit.journal.tx import Tx
from plaudit.messaging.deliverability.alerting import raise_policy_alert
from plaudit.messaging.deliverability.rates import recipient_domain
from plaudit.messaging.deliverability.suppression import (
    Decision,
    MessageEvent,
    SuppressionPolicy,
    decide,
    normalize_address,
)
from plaudit.messaging.message_aliases import original_message_id
from plaudit.metrics import MESSAGE_EVENTS, SUPPRESSIONS

log = logging.getLogger(__name__)

_INSERT_EVENT = """
INSERT INTO message_events (address, domain, kind, status, provider, provider_event_id,
                            message_id, occurred_at, recorded_at, url)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING
RETURNING id
"""
_HISTORY = """
SELECT address, kind, occurred_at, status, provider, message_id FROM message_events
WHERE address = ? AND occurred_at >= ? AND id != ?
ORDER BY occurred_at, id
"""
_INSERT_SUPPRESSION = """
INSERT INTO suppressions (address, reason, status, message_id, event_id, created_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (address) DO NOTHING
"""


@final
class Suppression(msgspec.Struct, frozen=True, kw_only=True):
    """One address on the suppression list and why it is there."""

    address: str
    reason: str
    status: str | None
    message_id: str | None
    created_at: float


def record_event(
    tx: Tx,
    event: MessageEvent,
    *,
    policy: SuppressionPolicy,
    provider_event_id: str | None = None,
) -> Decision | None:
    """Store the event, then suppress its address when :func:`decide` decides so.

    Returns the decision, or None when the provider event id was stored
    before, so a repeated delivery of the same event changes nothing.
    """
    address = normalize_address(event.address)
    # A provider's own id is stored as the Message-ID it is an alias of, so
    # rates, reports and `ctl request show` see one message, not two.
    message_id = original_message_id(tx, event.message_id) or event.message_id
    row = tx.execute(
        _INSERT_EVENT,
        (
            address,
            recipient_domain(address),
            event.kind,
            event.status,
            event.provider or "unknown",
            provider_event_id,
            message_id,
            event.at,
            tx.now,
            event.url,
        ),
    ).fetchone()
    if row is None:
        return None

    event_id = int(row[0])
    # NOTE: counted when written, so a transaction that rolls back later is
    # still counted; the journal tables are the exact record.
    MESSAGE_EVENTS.labels(provider=event.provider or "unknown", kind=event.kind).inc()
    history = load_history(
        tx, address, since=event.at - policy.soft_bounce_window_seconds, exclude_id=event_id
    )
    decision = decide(history, event, policy)
    if decision.suppress and decision.reason is not None:
        tx.execute(
            _INSERT_SUPPRESSION,
            (address, decision.reason, event.status, message_id, event_id, tx.now),
        )
        SUPPRESSIONS.labels(reason=decision.reason).inc()
        log.info(
            "deliverability.suppressed",
            extra={"domain": recipient_domain(address), "reason": decision.reason},
        )
    if decision.alert is not None:
        alert_id = raise_policy_alert(tx, decision.alert)
        log.warning(
            "deliverability.policy_block",
            extra={"provider": event.provider, "status": event.status, "alert": alert_id},
        )
    return decision


def load_history(tx: Tx, address: str, *, since: float, exclude_id: int = 0) -> list[MessageEvent]:
    """Return the address's stored events from ``since`` on, oldest first."""
    rows = tx.execute(_HISTORY, (normalize_address(address), since, exclude_id)).fetchall()
    return [
        MessageEvent(
            address=row[0],
            kind=row[1],
            at=row[2],
            status=row[3],
            provider=row[4],
            message_id=row[5],
        )
        for row in rows
    ]


def suppression_of(tx: Tx, address: str) -> Suppression | None:
    """Return the address's suppression, or None when mail to it may be sent."""
    row = tx.execute(
        "SELECT address, reason, status, message_id, created_at FROM suppressions"
        " WHERE address = ?",
        (normalize_address(address),),
    ).fetchone()
    if row is None:
        return None
    return Suppression(
        address=row[0], reason=row[1], status=row[2], message_id=row[3], created_at=row[4]
    )


def lift_suppression(tx: Tx, address: str) -> bool:
    """Remove the address from the suppression list; returns False when it was not on it."""
    cursor = tx.execute("DELETE FROM suppressions WHERE address = ?", (normalize_address(address),))
    return cursor.rowcount > 0
