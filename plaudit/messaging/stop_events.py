"""Stopping campaigns when a complaint or a late hard bounce is recorded.

The notifier checks a campaign's ``stop_on`` when a step comes due.  A
complaint (an ARF report or a provider webhook) and a hard bounce reported
after the send (a DSN that arrives later) are recorded outside the notifier.
So :func:`stop_for_message_event` stops the couple's scheduled steps in the
transaction that records the event, and ``plaudit ctl request show`` shows
them as stopped at once.
"""

from __future__ import annotations

import logging
from typing import Final

import msgspec

from plaudit.journal.tx import Tx
from plaudit.messaging.campaigns import stop_couple
from plaudit.messaging.deliverability.store import suppression_of
from plaudit.messaging.deliverability.suppression import MessageEvent, normalize_address
from plaudit.messaging.event_rules import CampaignRules
from plaudit.messaging.request_events import request_by_message_id

log = logging.getLogger(__name__)

# Couples rarely share an address.  The bound keeps an address shared by
# mistake from turning one event into an unbounded update.
MAX_COUPLES_PER_ADDRESS: Final = 50

_COUPLES_WITH_ADDRESS = f"""
SELECT DISTINCT couples.id FROM couples, json_each(couples.emails) AS address
WHERE lower(trim(address.value)) = ? ORDER BY couples.id LIMIT {MAX_COUPLES_PER_ADDRESS}
"""


def stop_for_message_event(tx: Tx, event: MessageEvent, rules: CampaignRules) -> int:
    """Stop the scheduled steps that a newly recorded complaint or hard bounce ends.

    The couples are those whose e-mail addresses include ``event.address``,
    plus the couple of the request that the event's Message-ID names.  A
    complaint stops the campaigns in ``rules.stop_on_complaint``.  A hard
    bounce stops those in ``rules.stop_on_hard_bounce``, but only for a couple
    whose every e-mail address is now suppressed, as a bounce at sending time does.
    Returns how many requests were stopped.
    """
    if event.kind == "complaint":
        campaigns = rules.stop_on_complaint
    elif event.kind == "hard_bounce":
        campaigns = rules.stop_on_hard_bounce
    else:
        return 0
    if not campaigns:
        return 0

    stopped = 0
    for couple_id in _couples_of(tx, event):
        if event.kind == "hard_bounce" and not _all_suppressed(tx, couple_id):
            continue
        count = stop_couple(tx, couple_id, reason=event.kind, campaigns=campaigns)
        if count:
            log.info(
                "campaigns.stopped",
                extra={"couple": couple_id, "reason": event.kind, "requests": count},
            )
        stopped += count
    return stopped


def _couples_of(tx: Tx, event: MessageEvent) -> list[int]:
    rows = tx.execute(_COUPLES_WITH_ADDRESS, (normalize_address(event.address),)).fetchall()
    couples = [int(row[0]) for row in rows]
    facts = request_by_message_id(tx, event.message_id)
    if facts is not None and facts.couple_id not in couples:
        couples.append(facts.couple_id)
    return couples


def _all_suppressed(tx: Tx, couple_id: int) -> bool:
    row = tx.execute("SELECT emails FROM couples WHERE id = ?", (couple_id,)).fetchone()
    if row is None:
        return False
    addresses = msgspec.json.decode(row[0], type=list[str])
    return bool(addresses) and all(suppression_of(tx, address) is not None for address in addresses)
