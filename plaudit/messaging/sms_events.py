"""Effects of Twilio's webhooks on review requests: status callbacks and keywords.

Called by the inbox inside the transaction that records the webhook's
message events, so a callback, the request it settles and the outbox event
it emits commit together.

- A status callback is matched to its send by MessageSid.  When the send's
  response was lost, the SID is not known yet, so the callback is matched to
  the one send to that number still waiting (``sending`` or ``unknown``).
  ``delivered`` settles the request and emits ``request.delivered``;
  ``undelivered`` and ``failed`` mark it bounced and emit ``request.bounced``.
- STOP and the other opt-out words arrive as ``unsubscribe`` message
  events, which suppress the number through the deliverability store.
- HELP enqueues a reply with the vendor's contact line, at most one per
  number and clock hour.  START, UNSTOP and
  YES lift an opt-out suppression of the number, never a bounce.
"""

from __future__ import annotations

import logging
from typing import Final

from plaudit.inbound.mapping import InboundEvent
from plaudit.journal.tx import Tx
from plaudit.messaging.channel_sends import reply_event_id
from plaudit.messaging.channels import SMS_REPLY_JOB
from plaudit.messaging.deliverability.store import lift_suppression, suppression_of
from plaudit.messaging.request_events import (
    BOUNCE_KINDS,
    emit_bounced,
    emit_delivered,
    load_request,
)
from plaudit.metrics import CHANNEL_MESSAGES

log = logging.getLogger(__name__)

HELP_EVENT: Final = "sms.help"
OPT_IN_EVENT: Final = "sms.opt_in"
_SETTLED_KINDS: Final = frozenset({"delivered", "hard_bounce", "unsubscribe"})


def apply_keyword(tx: Tx, event: InboundEvent) -> bool:
    """Act on an inbound HELP or opt-in text; return True when it changed something."""
    number = event.recipient or ""
    if not number:
        return False
    if event.type == HELP_EVENT:
        # One reply per number and clock hour, so repeated HELP texts cannot run up SMS costs.
        hour = int(event.occurred_at // 3600)
        job = tx.enqueue(
            kind=SMS_REPLY_JOB,
            owner="notifier",
            key=f"{SMS_REPLY_JOB}:{number}:{hour}",
            payload={"to": number},
        )
        return job is not None
    if event.type == OPT_IN_EVENT:
        suppression = suppression_of(tx, number)
        if suppression is None or suppression.reason != "unsubscribe":
            return False
        lift_suppression(tx, number)
        log.info("sms.opt_in", extra={"number_suffix": number[-4:]})
        return True
    return False


def track_status(tx: Tx, event: InboundEvent) -> bool:
    """Settle the send and request a status callback names; return True when one matched."""
    sid = event.message_id or ""
    number = event.recipient or ""
    if not sid or event.kind is None:
        return False
    if event.kind == "unsubscribe":
        CHANNEL_MESSAGES.labels(channel="sms", outcome="opted_out").inc()
    row = _send_for(tx, sid, number)
    if row is None:
        return False
    request_id, state = row
    tx.execute(
        "UPDATE channel_sends SET provider_id = ?, updated_at = ?,"
        " state = CASE WHEN state IN ('sending', 'unknown') THEN 'accepted' ELSE state END"
        " WHERE request_id = ? AND recipient = ?",
        (sid, tx.now, request_id, number),
    )
    if event.kind not in _SETTLED_KINDS or state in ("delivered", "failed"):
        return True

    delivered = event.kind == "delivered"
    if event.kind != "unsubscribe":
        CHANNEL_MESSAGES.labels(channel="sms", outcome="delivered" if delivered else "failed").inc()
    tx.execute(
        "UPDATE channel_sends SET state = ?, error = ?, updated_at = ?"
        " WHERE request_id = ? AND recipient = ?",
        ("delivered" if delivered else "failed", event.status, tx.now, request_id, number),
    )
    if not delivered:
        tx.execute(
            "UPDATE requests SET state = 'bounced', last_error = ?, updated_at = ? WHERE id = ?",
            (f"Twilio {event.kind}, error {event.status}", tx.now, request_id),
        )
    facts = load_request(tx, request_id)
    if facts is None:
        return True
    if delivered:
        emit_delivered(
            tx,
            facts,
            recipient=number,
            provider="twilio",
            occurred_at=event.occurred_at,
            message_id=sid,
        )
        return True
    emit_bounced(
        tx,
        facts,
        recipient=number,
        provider="twilio",
        occurred_at=event.occurred_at,
        message_id=sid,
        kind=BOUNCE_KINDS.get(event.kind, "hard"),
        status=event.status,
    )
    return True


def _send_for(tx: Tx, sid: str, number: str) -> tuple[int, str] | None:
    row = tx.execute(
        "SELECT request_id, state FROM channel_sends WHERE channel = 'sms' AND provider_id = ?",
        (sid,),
    ).fetchone()
    if row is not None:
        return int(row[0]), str(row[1])
    # The send's response was lost, so the only send to this number still waiting is this
    # one, unless the SID is a HELP reply's.
    reply = tx.execute(
        "SELECT 1 FROM message_events WHERE provider = 'twilio' AND provider_event_id = ?",
        (reply_event_id(sid),),
    ).fetchone()
    if reply is not None:
        return None
    rows = tx.execute(
        "SELECT request_id, state FROM channel_sends WHERE channel = 'sms' AND recipient = ?"
        " AND provider_id IS NULL AND state IN ('sending', 'unknown') LIMIT 2",
        (number,),
    ).fetchall()
    if len(rows) != 1:
        return None
    return int(rows[0][0]), str(rows[0][1])
