"""The ``request.*`` outbox events that tell vendors' systems how each review request went.

Every function here runs inside the journal transaction that records the
fact, so the event and its webhook deliveries commit with it or not at all.
Each event key is unique per fact, so a retried job, a repeated provider
event or a restart emits nothing twice:

- ``request.sent``: ``request.sent:<request>``, once per request.  A request
  is one step of one campaign on one channel.
- ``request.delivered``, ``request.bounced`` and ``request.clicked``:
  ``<type>:<request>:<recipient hash>``, so once per request and recipient.
  Only the first click of a recipient is announced, and a bounce that
  follows an earlier one for the same recipient emits nothing.
- ``request.converted``: ``request.converted:<request>:<platform>:<review id>``,
  once per review and each sent request of the couple that preceded it.

Payloads name the recipient by domain only (the push service's host for web
push, nothing for SMS), never by address or number.  The vendor can look
the couple up by the ``couple`` id.
"""

from __future__ import annotations

import hashlib
import logging
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal, final

import msgspec

from plaudit.journal.tx import Tx
from plaudit.messaging import message_aliases
from plaudit.messaging.click_links import platform_of
from plaudit.messaging.deliverability.rates import recipient_domain
from plaudit.messaging.deliverability.suppression import MessageEvent, normalize_address

log = logging.getLogger(__name__)

SENT: Final = "request.sent"
DELIVERED: Final = "request.delivered"
BOUNCED: Final = "request.bounced"
CLICKED: Final = "request.clicked"
CONVERTED: Final = "request.converted"
REQUEST_EVENT_TYPES: Final = (SENT, DELIVERED, BOUNCED, CLICKED, CONVERTED)
# The provider name of web push sends, as plaudit.messaging.channels records them.
PUSH_PROVIDER: Final = "webpush"

BounceKind = Literal["hard", "soft", "policy"]
# Deliverability kinds that end a request step as bounced, and their kind in the payload.
BOUNCE_KINDS: Final[dict[str, BounceKind]] = {
    "hard_bounce": "hard",
    "soft_bounce": "soft",
    "policy_block": "policy",
}

_REQUEST_COLUMNS: Final = "id, couple_id, campaign, step, channel, message_id"


@final
class RequestFacts(msgspec.Struct, frozen=True, kw_only=True):
    """The columns of one ``requests`` row that every request event carries."""

    request_id: int
    couple_id: int
    campaign: str
    # 0 for the campaign's first step, as stored.
    step: int
    channel: str
    message_id: str | None


def load_request(tx: Tx, request_id: int) -> RequestFacts | None:
    """Return the request's facts, or None when no request has ``request_id``."""
    row = tx.execute(
        f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE id = ?", (request_id,)
    ).fetchone()
    return None if row is None else _facts(row)


def request_by_message_id(tx: Tx, message_id: str | None) -> RequestFacts | None:
    """Return the e-mail request whose Message-ID is ``message_id``, with or without ``<>``.

    Providers differ: Mailgun reports the Message-ID without angle
    brackets, Brevo and SendGrid's ``smtp-id`` with them.  A provider's own
    id (Amazon SES ``messageId``, SendGrid ``sg_message_id``) links through
    the alias its SMTP reply gave, see plaudit.messaging.message_aliases.
    NOTE: Postmark and Resend ids link only when their SMTP reply named
    them; Postmark events link through the echoed metadata instead.
    """
    bare = message_aliases.bare(message_id)
    if not bare:
        return None
    facts = _request_with_message_id(tx, bare)
    if facts is not None:
        return facts
    original = message_aliases.original_message_id(tx, bare)
    if original is None:
        return None
    return _request_with_message_id(tx, message_aliases.bare(original))


def _request_with_message_id(tx: Tx, bare: str) -> RequestFacts | None:
    row = tx.execute(
        f"SELECT {_REQUEST_COLUMNS} FROM requests"
        " WHERE channel = 'email' AND message_id IN (?, ?) LIMIT 1",
        (f"<{bare}>", bare),
    ).fetchone()
    return None if row is None else _facts(row)


def emit_sent(
    tx: Tx,
    request_id: int,
    *,
    recipients: Iterable[str],
    provider: str,
    message_id: str | None,
) -> bool:
    """Emit ``request.sent`` for an accepted send; return False when it was emitted before.

    ``message_id`` is the Message-ID of an e-mail or Twilio's MessageSid.
    Callers pass None for web push, whose message URL lets its holder
    delete the message.
    """
    facts = load_request(tx, request_id)
    if facts is None:
        return False
    domains = sorted({domain_of(facts.channel, recipient) for recipient in recipients} - {""})
    payload = {
        **_base(facts, message_id=message_id),
        "provider": provider,
        "recipient_domains": domains,
        "occurred_at": tx.now,
    }
    return _emit(tx, SENT, f"{SENT}:{request_id}", facts, payload)


def emit_delivered(
    tx: Tx,
    facts: RequestFacts,
    *,
    recipient: str,
    provider: str,
    occurred_at: float,
    message_id: str | None = None,
) -> bool:
    """Emit ``request.delivered`` for one recipient; return False when emitted before."""
    payload = _outcome(facts, recipient, provider, occurred_at, message_id)
    return _emit(tx, DELIVERED, _recipient_key(DELIVERED, facts, recipient), facts, payload)


def emit_bounced(
    tx: Tx,
    facts: RequestFacts,
    *,
    recipient: str,
    provider: str,
    occurred_at: float,
    kind: BounceKind,
    status: str | None,
    message_id: str | None = None,
) -> bool:
    """Emit ``request.bounced`` for one recipient; return False when emitted before.

    ``status`` is the enhanced SMTP status code for e-mail, Twilio's error
    code for SMS and the HTTP status for web push, or None when unknown.
    """
    payload = {
        **_outcome(facts, recipient, provider, occurred_at, message_id),
        "kind": kind,
        "status": status,
    }
    return _emit(tx, BOUNCED, _recipient_key(BOUNCED, facts, recipient), facts, payload)


def emit_clicked(
    tx: Tx,
    facts: RequestFacts,
    *,
    recipient: str,
    provider: str,
    occurred_at: float,
    message_id: str | None = None,
    platform: str | None = None,
) -> bool:
    """Emit ``request.clicked`` for a recipient's first click; return False for later ones.

    ``platform`` is the review platform of the clicked link, or None when the
    provider reported no URL or the link is no configured review link.
    """
    payload = {
        **_outcome(facts, recipient, provider, occurred_at, message_id),
        "platform": platform,
    }
    return _emit(tx, CLICKED, _recipient_key(CLICKED, facts, recipient), facts, payload)


def emit_for_message_event(
    tx: Tx, event: MessageEvent, *, review_links: Mapping[str, str] | None = None
) -> str | None:
    """Emit the request event that an e-mail message event implies, linked by its Message-ID.

    ``review_links`` (platform -> URL) names the platform of a clicked link.
    Returns the emitted type, or None when the event is of another kind,
    names no known request, or was announced before.
    """
    if event.kind not in ("delivered", "clicked", *BOUNCE_KINDS):
        return None
    facts = request_by_message_id(tx, event.message_id)
    if facts is None:
        return None

    common: dict[str, Any] = {
        "recipient": event.address,
        "provider": event.provider or "unknown",
        "occurred_at": event.at,
        # The request's Message-ID, also when the provider reported its own id.
        "message_id": facts.message_id or event.message_id,
    }
    if event.kind == "delivered":
        emitted = emit_delivered(tx, facts, **common)
        return DELIVERED if emitted else None
    if event.kind == "clicked":
        platform = platform_of(event.url, review_links or {})
        emitted = emit_clicked(tx, facts, platform=platform, **common)
        return CLICKED if emitted else None
    kind = BOUNCE_KINDS[event.kind]
    emitted = emit_bounced(tx, facts, kind=kind, status=event.status, **common)
    return BOUNCED if emitted else None


def emit_send_rejected(
    tx: Tx, request_id: int, *, recipient: str, provider: str, status: str | None
) -> bool:
    """Emit ``request.bounced`` (kind hard) for an SMS the provider rejected at submission."""
    facts = load_request(tx, request_id)
    if facts is None:
        return False
    return emit_bounced(
        tx,
        facts,
        recipient=recipient,
        provider=provider,
        occurred_at=tx.now,
        kind="hard",
        status=status,
    )


def emit_push_outcomes(
    tx: Tx, request_id: int, *, accepted: list[str], gone: dict[str, int | None]
) -> None:
    """Emit the events of one push step: sent and delivered, or bounced, per endpoint.

    A push service reports nothing after its 201 Created, so an accepted
    message counts as delivered at once.  ``gone`` maps each endpoint that
    failed for good to the HTTP status (None for an invalid subscription).
    404, 410 and invalid subscriptions are hard bounces.  Other permanent
    statuses (400, 403, 413) reject the sender or the message, so they are
    policy bounces.
    """
    facts = load_request(tx, request_id)
    if facts is None:
        return
    if accepted:
        emit_sent(tx, request_id, recipients=accepted, provider=PUSH_PROVIDER, message_id=None)
    for endpoint in accepted:
        emit_delivered(tx, facts, recipient=endpoint, provider=PUSH_PROVIDER, occurred_at=tx.now)
    for endpoint, status in gone.items():
        kind: BounceKind = "hard" if status is None or status in (404, 410) else "policy"
        emit_bounced(
            tx,
            facts,
            recipient=endpoint,
            provider=PUSH_PROVIDER,
            occurred_at=tx.now,
            kind=kind,
            status=None if status is None else str(status),
        )


def emit_converted(
    tx: Tx, *, couple_id: int, platform: str, review_id: str, match_id: int, decided_by: str
) -> int:
    """Emit ``request.converted`` for each request that led to a confirmed review.

    Those are the couple's requests in state ``sent`` (a bounced one never
    reached the couple) sent no later than Plaudit first saw the review.
    Returns how many events were new.
    """
    seen = tx.execute(
        "SELECT first_seen_at FROM reviews WHERE platform = ? AND review_id = ?",
        (platform, review_id),
    ).fetchone()
    # A review row always exists for a match; the fallback keeps a hand-made match harmless.
    first_seen = float(seen[0]) if seen is not None else tx.now
    rows = tx.execute(
        f"SELECT {_REQUEST_COLUMNS}, sent_at FROM requests"
        " WHERE couple_id = ? AND state = 'sent' AND sent_at <= ? ORDER BY sent_at, id",
        (couple_id, first_seen),
    ).fetchall()
    emitted = 0
    for row in rows:
        facts = _facts(row)
        payload = {
            **_base(facts, message_id=_public_message_id(facts)),
            "platform": platform,
            "review_id": review_id,
            "match": match_id,
            "decided_by": decided_by,
            "sent_at": float(row[6]),
        }
        key = f"{CONVERTED}:{facts.request_id}:{platform}:{review_id}"
        if _emit(tx, CONVERTED, key, facts, payload):
            emitted += 1
    return emitted


def domain_of(channel: str, recipient: str) -> str:
    """Return the part of a recipient that payloads contain: the e-mail domain or push host.

    An SMS number gives "", because a number's prefix would narrow down the person.
    """
    if channel == "email":
        return recipient_domain(recipient)
    if channel == "push":
        return (urllib.parse.urlsplit(recipient).hostname or "").lower()
    return ""


def recipient_hash(recipient: str) -> str:
    """Return the short, stable digest of a recipient that event keys use in its place.

    Keys appear in ``plaudit ctl deliveries`` and in job payloads, so they
    carry no address.
    """
    return hashlib.sha256(normalize_address(recipient).encode()).hexdigest()[:16]


def _facts(row: Any) -> RequestFacts:
    return RequestFacts(
        request_id=int(row[0]),
        couple_id=int(row[1]),
        campaign=str(row[2]),
        step=int(row[3]),
        channel=str(row[4]),
        message_id=None if row[5] is None else str(row[5]),
    )


def _base(facts: RequestFacts, *, message_id: str | None) -> dict[str, Any]:
    return {
        "request": facts.request_id,
        "couple": facts.couple_id,
        "campaign": facts.campaign,
        # 1 for the campaign's first step, as `plaudit ctl request show` numbers them.
        "step": facts.step + 1,
        "channel": facts.channel,
        "message_id": message_id,
    }


def _public_message_id(facts: RequestFacts) -> str | None:
    # SMS and push requests also store an e-mail style Message-ID, but no message carries it.
    return facts.message_id if facts.channel == "email" else None


def _outcome(
    facts: RequestFacts,
    recipient: str,
    provider: str,
    occurred_at: float,
    message_id: str | None,
) -> dict[str, Any]:
    if facts.channel == "push":
        message_id = None
    return {
        **_base(facts, message_id=message_id or _public_message_id(facts)),
        "provider": provider,
        "recipient_domain": domain_of(facts.channel, recipient),
        "occurred_at": occurred_at,
    }


def _recipient_key(event_type: str, facts: RequestFacts, recipient: str) -> str:
    return f"{event_type}:{facts.request_id}:{recipient_hash(recipient)}"


def _emit(tx: Tx, event_type: str, key: str, facts: RequestFacts, payload: dict[str, Any]) -> bool:
    emitted = tx.emit(
        type=event_type,
        key=key,
        platform=facts.channel,
        subject=f"requests/{facts.request_id}",
        payload=payload,
    )
    if emitted:
        log.info(
            "request_events.emitted",
            extra={"type": event_type, "request": facts.request_id, "channel": facts.channel},
        )
    return emitted
