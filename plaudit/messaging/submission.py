"""E-mail submission outcomes: the at-most-once marker, refused recipients and bounces.

A step is submitted at most once.  Right before the DATA command the
notifier commits ``submitting_at`` for the request in its own transaction.
When the outcome is then lost (the connection dropped after DATA, or the
daemon stopped before the result was committed), the step is never sent
again: it is recorded as sent with ``unconfirmed`` set, and the provider's
delivery or bounce events settle it later.  An explicit reply to DATA is a
known outcome, so the marker is cleared and a 4xx reply is retried.

A 5xx reply ends the step in one of three ways, chosen by
:func:`decide_bounce`:

- every address of the step is now suppressed: the step is ``bounced`` and
  the couple's campaign stops with reason ``hard_bounce`` when the
  campaign's ``stop_on`` lists it;
- a 5.7.x policy block: the step ``failed``, the deliverability store has
  alerted the operator, the address stays unsuppressed and the campaign
  continues with its next step;
- otherwise (a soft failure, or a 5xx without an address-level code): the
  step is ``bounced`` and the campaign continues, so the suppression policy
  decides on repeats.

NOTE: at most once holds while one attempt of a step runs at a time, so the
journal lease (``[journal] lease_seconds``) must outlast an SMTP attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Final, Literal, final

import msgspec

from plaudit.journal.tx import Tx
from plaudit.messaging.campaigns import stop_couple
from plaudit.messaging.deliverability.store import record_event, suppression_of
from plaudit.messaging.deliverability.suppression import (
    EventKind,
    MessageEvent,
    SuppressionPolicy,
    rejection_kind,
)
from plaudit.messaging.email import Refusal, SendError
from plaudit.messaging.request_events import emit_for_message_event, request_by_message_id

log = logging.getLogger(__name__)

PROVIDER: Final = "smtp"


def mark_submitting(tx: Tx, request_id: int) -> None:
    """Record that the request's message is about to be handed over with DATA."""
    tx.execute(
        "UPDATE requests SET submitting_at = ?, updated_at = ? WHERE id = ?",
        (tx.now, tx.now, request_id),
    )


def clear_submitting(tx: Tx, request_id: int) -> None:
    """Forget the marker after the server replied to DATA, so a retry may send."""
    tx.execute("UPDATE requests SET submitting_at = NULL WHERE id = ?", (request_id,))


def submission_pending(tx: Tx, request_id: int) -> bool:
    """Return True when an earlier attempt reached DATA and its outcome was never recorded."""
    row = tx.execute(
        "SELECT 1 FROM requests WHERE id = ? AND state = 'sending' AND submitting_at IS NOT NULL",
        (request_id,),
    ).fetchone()
    return row is not None


def record_unconfirmed(tx: Tx, request_id: int, *, reason: str) -> None:
    """Mark the step sent without a server's confirmation; provider events confirm it later."""
    tx.execute(
        "UPDATE requests SET state = 'sent', unconfirmed = 1, sent_at = ?, submitting_at = NULL,"
        " last_error = ?, updated_at = ? WHERE id = ?",
        (tx.now, f"unconfirmed: {reason}", tx.now, request_id),
    )
    log.warning("notifier.submission_unconfirmed", extra={"request": request_id, "reason": reason})


def confirm_submission(tx: Tx, event: MessageEvent) -> bool:
    """Clear ``unconfirmed`` on the step that sent the event's message; return True if set.

    Any provider event for the message (delivered, deferred, bounced,
    complained, opened, clicked) shows the server took it.
    """
    if event.kind == "accepted":
        # Written by Plaudit itself at submission, not by a provider.
        return False
    facts = request_by_message_id(tx, event.message_id)
    if facts is None:
        return False
    cursor = tx.execute(
        "UPDATE requests SET unconfirmed = 0, last_error = NULL, updated_at = ?"
        " WHERE id = ? AND unconfirmed = 1",
        (tx.now, facts.request_id),
    )
    if cursor.rowcount == 0:
        return False
    log.info(
        "notifier.submission_confirmed",
        extra={"request": facts.request_id, "kind": event.kind, "provider": event.provider},
    )
    return True


def refusal_kind(refusal: Refusal) -> EventKind:
    """Classify a refusal at RCPT: 4xx is a soft bounce, 5.7.x a policy block, other 5xx hard."""
    if not refusal.permanent:
        return "soft_bounce"
    return rejection_kind(refusal.status)


def record_refusals(
    tx: Tx, refusals: Sequence[Refusal], *, message_id: str, policy: SuppressionPolicy
) -> list[EventKind]:
    """Store one bounce event per refused recipient; return their kinds."""
    kinds: list[EventKind] = []
    for refusal in refusals:
        event = MessageEvent(
            address=refusal.address,
            kind=refusal_kind(refusal),
            at=tx.now,
            status=refusal.status,
            provider=PROVIDER,
            message_id=message_id,
        )
        record_event(tx, event, policy=policy)
        emit_for_message_event(tx, event)
        kinds.append(event.kind)
    return kinds


@final
class BounceOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """The end state of a rejected step, and whether the couple's campaign goes on."""

    state: Literal["bounced", "failed"]
    # Stored as the request's last_error; ``ctl request show`` prints it.
    reason: str
    # True when the couple's remaining steps are cancelled.
    stop: bool
    # True when the campaign's next step is scheduled as after a sent step.
    continues: bool


def decide_bounce(
    kinds: Collection[EventKind], *, all_suppressed: bool, stop_on: Collection[str], reply: str
) -> BounceOutcome:
    """Decide how a step whose every recipient was rejected ends; pure."""
    if all_suppressed:
        stop = "hard_bounce" in stop_on
        return BounceOutcome(
            state="bounced",
            reason=f"stopped: hard_bounce; {reply}" if stop else f"hard_bounce; {reply}",
            stop=stop,
            continues=not stop,
        )
    if "policy_block" in kinds:
        return BounceOutcome(
            state="failed",
            reason=f"policy_block; {reply}; the campaign continues with its next step",
            stop=False,
            continues=True,
        )
    return BounceOutcome(state="bounced", reason=f"bounced; {reply}", stop=False, continues=True)


def record_bounce(
    tx: Tx,
    error: SendError,
    *,
    request_id: int,
    couple_id: int,
    recipients: Sequence[str],
    message_id: str,
    policy: SuppressionPolicy,
    stop_on: Collection[str],
) -> BounceOutcome:
    """Store the bounce events of a rejected step and end it as :func:`decide_bounce` decides."""
    kinds = record_refusals(tx, error.refused, message_id=message_id, policy=policy)
    refused = {refusal.address for refusal in error.refused}
    rejected = error.rejected or [address for address in recipients if address not in refused]
    for address in rejected:
        event = MessageEvent(
            address=address,
            kind=rejection_kind(error.status),
            at=tx.now,
            status=error.status,
            provider=PROVIDER,
            message_id=message_id,
        )
        record_event(tx, event, policy=policy)
        emit_for_message_event(tx, event)
        kinds.append(event.kind)

    all_suppressed = all(suppression_of(tx, address) is not None for address in recipients)
    outcome = decide_bounce(kinds, all_suppressed=all_suppressed, stop_on=stop_on, reply=str(error))
    tx.execute(
        "UPDATE requests SET state = ?, last_error = ?, submitting_at = NULL, updated_at = ?"
        " WHERE id = ?",
        (outcome.state, outcome.reason, tx.now, request_id),
    )
    if outcome.stop:
        stop_couple(tx, couple_id, reason="hard_bounce")
    return outcome
