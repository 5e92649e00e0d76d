"""The ``channel_sends`` rows that keep an SMS or push send from going out twice.

Each attempt is recorded in its own transaction before the provider is
called.  The provider's id (Twilio's MessageSid, the push message URL) is
stored once the send is accepted, from the send's response or from a status
callback that arrived first.
"""

from __future__ import annotations

import logging
from typing import Final, Literal, final

import msgspec

from plaudit.journal import Tx

log = logging.getLogger(__name__)

# Seconds a send without an outcome waits for Twilio's status callback before
# Twilio's message list is checked for it.  An estimate: callbacks normally
# arrive within seconds.
UNKNOWN_OUTCOME_WAIT: Final = 120.0


def reply_event_id(sid: str) -> str:
    """Return the provider event id under which a HELP reply's send is recorded."""
    return f"reply:{sid}"


@final
class SendCheck(msgspec.Struct, frozen=True, kw_only=True):
    """The next step of an attempt: send, skip (accepted before), wait, or look the text up.

    "lookup" means an earlier attempt has no outcome after UNKNOWN_OUTCOME_WAIT,
    so the provider's own records must show whether it went out.
    """

    action: Literal["send", "skip", "wait", "lookup"]
    provider_id: str = ""
    # Seconds left to wait, for "wait".
    wait: float = 0.0
    # Unix time the earlier attempt was last updated, for "lookup".
    since: float = 0.0


def begin_send(tx: Tx, request_id: int, channel: str, recipient: str) -> SendCheck:
    """Check earlier attempts of a send and, when it may go out, record this attempt.

    An earlier attempt without an outcome (its response was lost, or the
    process stopped while sending) is waited for until UNKNOWN_OUTCOME_WAIT
    has passed since it, because its status callback may still name it.
    After that the caller looks it up and calls :func:`record_attempt`
    when the provider has no trace of it.
    """
    row = tx.execute(
        "SELECT provider_id, state, updated_at FROM channel_sends"
        " WHERE request_id = ? AND recipient = ?",
        (request_id, recipient),
    ).fetchone()
    if row is not None and row[0] is not None and row[1] in ("accepted", "delivered"):
        return SendCheck(action="skip", provider_id=str(row[0]))
    if row is not None and row[1] in ("sending", "unknown"):
        waited = tx.now - float(row[2])
        if waited < UNKNOWN_OUTCOME_WAIT:
            return SendCheck(action="wait", wait=UNKNOWN_OUTCOME_WAIT - waited)
        return SendCheck(action="lookup", since=float(row[2]))
    record_attempt(tx, request_id, channel, recipient)
    return SendCheck(action="send")


def accepted_send(tx: Tx, request_id: int, recipient: str) -> str | None:
    """Return the provider id of an accepted or delivered send, else None."""
    row = tx.execute(
        "SELECT provider_id FROM channel_sends WHERE request_id = ? AND recipient = ?"
        " AND provider_id IS NOT NULL AND state IN ('accepted', 'delivered')",
        (request_id, recipient),
    ).fetchone()
    return None if row is None else str(row[0])


def known_provider_ids(tx: Tx, channel: str, recipient: str) -> frozenset[str]:
    """Return the provider ids already bound to sends to ``recipient``."""
    rows = tx.execute(
        "SELECT provider_id FROM channel_sends"
        " WHERE channel = ? AND recipient = ? AND provider_id IS NOT NULL",
        (channel, recipient),
    ).fetchall()
    return frozenset(str(row[0]) for row in rows)


def record_attempt(tx: Tx, request_id: int, channel: str, recipient: str) -> None:
    """Record that an attempt to send is about to call the provider."""
    tx.execute(
        "INSERT INTO channel_sends (request_id, channel, recipient, state, attempts, updated_at)"
        " VALUES (?, ?, ?, 'sending', 1, ?)"
        " ON CONFLICT (request_id, recipient) DO UPDATE SET state = 'sending',"
        " attempts = attempts + 1, updated_at = excluded.updated_at",
        (request_id, channel, recipient, tx.now),
    )


def mark_accepted(
    tx: Tx, request_id: int, recipient: str, provider_id: str, *, channel: str = "sms"
) -> None:
    """Store the provider's id for a send; a later status callback may have stored it first."""
    tx.execute(
        "INSERT INTO channel_sends"
        " (request_id, channel, recipient, provider_id, state, attempts, updated_at)"
        " VALUES (?, ?, ?, ?, 'accepted', 1, ?)"
        " ON CONFLICT (request_id, recipient) DO UPDATE SET provider_id = excluded.provider_id,"
        " state = CASE WHEN state IN ('delivered', 'failed') THEN state ELSE 'accepted' END,"
        " error = NULL, updated_at = excluded.updated_at",
        (request_id, channel, recipient, provider_id, tx.now),
    )


def set_send_state(tx: Tx, request_id: int, recipient: str, state: str, error: str) -> None:
    tx.execute(
        "UPDATE channel_sends SET state = ?, error = ?, updated_at = ?"
        " WHERE request_id = ? AND recipient = ?",
        (state, error, tx.now, request_id, recipient),
    )


def record_request_sent(tx: Tx, request_id: int, provider: str) -> None:
    tx.execute(
        "UPDATE requests SET state = 'sent', sent_at = ?, provider = ?, last_error = NULL,"
        " updated_at = ? WHERE id = ? AND state NOT IN ('bounced')",
        (tx.now, provider, tx.now, request_id),
    )


def set_request_state(tx: Tx, request_id: int, state: str, error: str) -> None:
    tx.execute(
        "UPDATE requests SET state = ?, last_error = ?, updated_at = ? WHERE id = ?",
        (state, error, tx.now, request_id),
    )
