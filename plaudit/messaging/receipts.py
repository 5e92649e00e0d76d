"""Record the provider id from an SMTP reply and link events that arrived before it.

A provider may post an event before the transaction that records the send
commits, because the inbound listener and the notifier run on their own.
Such an event is stored under the provider's id and links to no request.
:func:`record_receipt` stores the alias and moves those events onto the
Message-ID, emitting the request events they imply.
"""

from __future__ import annotations

import logging
from typing import Final

from plaudit.journal.tx import Tx
from plaudit.messaging import request_events
from plaudit.messaging.deliverability.suppression import MessageEvent
from plaudit.messaging.email import SendReceipt
from plaudit.messaging.message_aliases import (
    SENDGRID_ID_SUFFIX,
    alias_candidates,
    bare,
    record_alias,
)

log = logging.getLogger(__name__)

_EARLY_EVENTS: Final = """
SELECT id, address, kind, occurred_at, status, provider FROM message_events
WHERE message_id IN (?, ?) OR (message_id > ? AND message_id < ?)
ORDER BY occurred_at, id
"""


def record_receipt(tx: Tx, message_id: str, receipt: SendReceipt | None) -> int:
    """Store the provider id of an accepted send and link events stored under it.

    Returns how many request events the earlier events emitted; 0 when the
    reply named no id or the alias was stored before.
    """
    if receipt is None or receipt.provider_id is None:
        return 0
    if not record_alias(tx, alias=receipt.provider_id, message_id=message_id):
        return 0
    return link_early_events(tx, alias=receipt.provider_id, message_id=message_id)


def link_early_events(tx: Tx, *, alias: str, message_id: str) -> int:
    """Move message events stored under ``alias`` onto ``message_id`` and emit their events."""
    candidates = alias_candidates(alias)
    if not candidates:
        return 0
    plain = candidates[0]
    suffixed = plain + SENDGRID_ID_SUFFIX
    rows = tx.execute(
        _EARLY_EVENTS, (plain, f"<{plain}>", suffixed, suffixed + "\uffff")
    ).fetchall()
    canonical = f"<{bare(message_id)}>"
    emitted = 0
    for event_id, address, kind, occurred_at, status, provider in rows:
        tx.execute("UPDATE message_events SET message_id = ? WHERE id = ?", (canonical, event_id))
        event = MessageEvent(
            address=address,
            kind=kind,
            at=occurred_at,
            status=status,
            provider=provider,
            message_id=canonical,
        )
        if request_events.emit_for_message_event(tx, event) is not None:
            emitted += 1
    if rows:
        log.info(
            "message_aliases.linked_early_events",
            extra={"events": len(rows), "emitted": emitted},
        )
    return emitted
