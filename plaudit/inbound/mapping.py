"""Plaudit's inbound event type and the helpers that provider mappers share.

The mappers live in ``email_events``, ``ses_events`` and ``sms_push_events``,
and ``events.map_events`` picks one by provider name.  Each provider's body
becomes a list of :class:`InboundEvent`.  Delivery events carry a
deliverability kind (``delivered``, ``hard_bounce``, ...) and are typed
``message.<kind>``.  Platform pushes are typed ``platform.push``, and an SNS
subscription handshake is ``subscription.confirmation``.  A body that is
valid but contains no delivery event (inbound mail, an unknown event name)
raises :class:`NotDeliveryEvent` naming why, and a body that cannot be read
raises :class:`MalformedPayload`.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from typing import Any, Final, final

import msgspec

from plaudit.errors import PlauditError
from plaudit.messaging.deliverability.suppression import EventKind

PROVIDERS: Final = (
    "sendgrid",
    "mailgun",
    "postmark",
    "ses",
    "twilio",
    "resend",
    "facebook",
    "google",
)
# Mapped by ``plaudit inspect webhook`` only: the listener has no route for them.
INSPECT_ONLY_PROVIDERS: Final = ("brevo",)


class MappingError(PlauditError):
    """A webhook body could not be mapped to Plaudit events."""


@final
class MalformedPayload(MappingError):
    """The body is not the provider's format (invalid JSON, missing fields)."""


@final
class NotDeliveryEvent(MappingError):
    """The body is well formed but contains nothing Plaudit records."""


@final
class InboundEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One event from a provider webhook, in Plaudit's terms."""

    type: str
    provider_event_id: str
    # Unix seconds.
    occurred_at: float
    kind: EventKind | None = None
    message_id: str | None = None
    recipient: str | None = None
    # The SMTP enhanced status code of a bounce, such as "5.1.1".
    status: str | None = None
    # For platform pushes: the platform and the profile to sync.
    platform: str | None = None
    profile: str | None = None


def derived_id(*parts: object) -> str:
    """Return a stable id for an event whose provider sends none: a hash of its content."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    return "sha256:" + digest[:32]


def decode_json(body: bytes, provider: str) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MalformedPayload(f"{provider} body is not valid JSON: {error}") from error


def iso_seconds(text: object, what: str) -> float:
    """Parse an ISO 8601 time (UTC when no offset is given) into Unix seconds."""
    if not isinstance(text, str):
        raise MalformedPayload(f"{what} is {text!r}; expected an ISO 8601 time")
    cleaned = text.strip().replace("Z", "+00:00").replace(" ", "T", 1)
    # Providers send up to 7 fractional digits; Python reads at most 6.
    head, dot, rest = cleaned.partition(".")
    if dot:
        digits = "".join(c for c in rest if c.isdigit())
        cleaned = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    try:
        moment = datetime.datetime.fromisoformat(cleaned)
    except ValueError:
        raise MalformedPayload(f"{what} {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def status_kind(status: str) -> EventKind:
    """Classify a failed delivery by its SMTP status: 4xx soft, 5.7.x policy, other 5xx hard."""
    code = status.strip()
    if code.startswith("4"):
        return "soft_bounce"
    if code.startswith("5.7") or code.startswith("57"):
        return "policy_block"
    return "hard_bounce"


def enhanced_status(*texts: object) -> str | None:
    """Return the first RFC 3463 code (like ``5.1.1``) found in ``texts``."""
    for text in texts:
        if not isinstance(text, str):
            continue
        for word in text.replace(";", " ").replace("-", " ").split():
            parts = word.split(".")
            if len(parts) == 3 and parts[0] in ("2", "4", "5") and all(p.isdigit() for p in parts):
                return word
    return None


def delivery(
    kind: EventKind,
    *,
    event_id: str,
    at: float,
    recipient: str | None,
    message_id: str | None = None,
    status: str | None = None,
) -> InboundEvent:
    return InboundEvent(
        type=f"message.{kind}",
        kind=kind,
        provider_event_id=event_id,
        occurred_at=at,
        recipient=recipient,
        message_id=message_id,
        status=status,
    )


def text_or_none(value: object) -> str | None:
    """Return ``value`` when it is a non-empty string, else None."""
    return value if isinstance(value, str) and value else None
