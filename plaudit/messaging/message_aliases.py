"""Provider message ids as aliases of the Message-ID that Plaudit set.

Several e-mail providers report events under their own id for a message
instead of the Message-ID header that Plaudit wrote.  Two mechanisms link
those events back to the request:

- Tracking headers ask the provider to echo Plaudit's Message-ID in every
  event: Postmark's ``X-PM-Metadata-*`` (returned in ``Metadata``),
  SendGrid's ``X-SMTPAPI`` ``unique_args`` (returned as top-level event
  fields) and Mailgun's ``X-Mailgun-Variables`` (returned in
  ``user-variables``).  Other servers pass these headers on to the
  recipient, and they carry only the Message-ID that the message shows
  anyway.
- The SMTP reply to DATA names the provider's id where the provider puts
  it there: Amazon SES replies ``250 Ok <id>``, SendGrid and Postfix-style
  relays ``250 Ok: queued as <id>``.  :func:`record_alias` stores it in
  ``message_aliases`` in the transaction that records the accepted send.

NOTE: Postmark and Resend do not document the reply their SMTP servers
give, so an id of theirs is kept only when the reply uses one of these forms.
"""

from __future__ import annotations

import json
import re
from typing import Final

from plaudit.journal.tx import Tx

# The key each provider echoes back with Plaudit's Message-ID as its value.
TRACKING_KEY: Final = "plaudit-message"
SMTP_REPLY_SOURCE: Final = "smtp_reply"

# "queued as ID" (SendGrid, Postfix and most relays) or "Ok ID" (Amazon SES).
_QUEUED_AS: Final = re.compile(r"\bqueued as\s+<?([A-Za-z0-9][\w.@+=-]{5,})>?", re.IGNORECASE)
_SES_OK: Final = re.compile(r"^Ok\s+<?([0-9a-f]{16}-[0-9a-f-]{20,}-\d{6})>?\s*$", re.IGNORECASE)
# SendGrid's event sg_message_id is the queue id from its SMTP reply plus a
# ".filterNNNN..." suffix (seen in its published example events).
SENDGRID_ID_SUFFIX: Final = ".filter"


def tracking_headers(message_id: str) -> dict[str, str]:
    """Return the headers that make Postmark, SendGrid and Mailgun echo ``message_id``."""
    return {
        f"X-PM-Metadata-{TRACKING_KEY}": message_id,
        "X-SMTPAPI": json.dumps({"unique_args": {TRACKING_KEY: message_id}}),
        "X-Mailgun-Variables": json.dumps({TRACKING_KEY: message_id}),
    }


def provider_id_from_reply(reply: str) -> str | None:
    """Return the provider's message id from the text of an SMTP 250 reply to DATA.

    ``reply`` is the text after the code, with or without an enhanced
    status code in front.  Returns None when the reply names no id, because
    plain servers reply with "OK" or "accepted".
    """
    text = reply.strip()
    words = text.split(" ", 1)
    if len(words) == 2 and words[0].count(".") == 2 and words[0][0] in "245":
        text = words[1].strip()
    queued = _QUEUED_AS.search(text)
    if queued is not None:
        return queued.group(1)
    ses = _SES_OK.match(text)
    return None if ses is None else ses.group(1)


def bare(message_id: str | None) -> str:
    """Return ``message_id`` without surrounding whitespace and angle brackets."""
    return (message_id or "").strip().strip("<>").strip()


def alias_candidates(provider_id: str) -> list[str]:
    """Return the forms under which ``provider_id`` may be stored as an alias."""
    plain = bare(provider_id)
    if not plain:
        return []
    candidates = [plain]
    head, found, _ = plain.partition(SENDGRID_ID_SUFFIX)
    if found and head:
        candidates.append(head)
    return candidates


def record_alias(tx: Tx, *, alias: str, message_id: str, source: str = SMTP_REPLY_SOURCE) -> bool:
    """Store ``alias`` as another id of ``message_id``, or return False when it was stored before.

    The first Message-ID stored for an alias stays, because a provider gives
    each accepted message a new id, so a second one means a replayed reply.
    """
    plain = bare(alias)
    if not plain or not bare(message_id):
        return False
    cursor = tx.execute(
        "INSERT INTO message_aliases (alias, message_id, source, created_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (alias) DO NOTHING",
        (plain, f"<{bare(message_id)}>", source, tx.now),
    )
    return cursor.rowcount > 0


def original_message_id(tx: Tx, provider_id: str | None) -> str | None:
    """Return the Message-ID that ``provider_id`` is an alias of, or None when no alias matches."""
    for candidate in alias_candidates(provider_id or ""):
        row = tx.execute(
            "SELECT message_id FROM message_aliases WHERE alias = ?", (candidate,)
        ).fetchone()
        if row is not None:
            return str(row[0])
    return None


def aliases_of(tx: Tx, message_id: str) -> list[str]:
    """Return the stored aliases of ``message_id``, oldest first."""
    rows = tx.execute(
        "SELECT alias FROM message_aliases WHERE message_id = ? ORDER BY created_at, alias",
        (f"<{bare(message_id)}>",),
    ).fetchall()
    return [str(row[0]) for row in rows]
