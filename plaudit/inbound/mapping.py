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
import math
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
# Bounds of an event time, in Unix seconds: the Unix epoch and 2100-01-01 UTC.
EARLIEST_TIME: Final = 0.0
LATEST_TIME: Final = 4_102_444_800.0
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
    # For pushes that name one review: its id on the platform, for a targeted fetch.
    review: str | None = None
    # For clicks: the link the recipient clicked, when the provider reports it.
    url: str | None = None


def derived_id(*parts: object) -> str:
    """Return a stable id for an event whose provider sends none: a hash of its content."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    return "sha256:" + digest[:32]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def decode_json(body: bytes, provider: str) -> Any:
    """Parse untrusted JSON; raise MalformedPayload for invalid, non-standard or deep input.

    NaN and Infinity are rejected because RFC 8259 has no such numbers.  Nesting
    deeper than the interpreter's recursion limit (1000 by default) raises
    RecursionError inside the parser, which becomes MalformedPayload here.
    """
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as error:
        raise MalformedPayload(f"{provider} body is not valid JSON: {error}") from error
    except RecursionError:
        raise MalformedPayload(
            f"{provider} body is not valid JSON: it is nested too deeply"
        ) from None


def check_time(event: InboundEvent) -> None:
    """Raise MalformedPayload unless the event's time is finite and plausible.

    A time before the Unix epoch or after 2099 is a provider bug or a forgery,
    and a NaN or infinite one cannot be stored at all.
    """
    at = event.occurred_at
    if not math.isfinite(at) or not EARLIEST_TIME <= at < LATEST_TIME:
        raise MalformedPayload(
            f"event {event.provider_event_id} has the time {at!r}; expected Unix seconds "
            f"from {EARLIEST_TIME:.0f} (1970-01-01) to {LATEST_TIME:.0f} (2100-01-01)"
        )


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
    url: object = None,
) -> InboundEvent:
    """Build a ``message.<kind>`` event; ``url`` is kept for clicks when it is a string."""
    return InboundEvent(
        type=f"message.{kind}",
        kind=kind,
        provider_event_id=event_id,
        occurred_at=at,
        recipient=recipient,
        message_id=message_id,
        status=status,
        url=text_or_none(url) if kind == "clicked" else None,
    )


def text_or_none(value: object) -> str | None:
    """Return ``value`` when it is a non-empty string, else None."""
    return value if isinstance(value, str) and value else None
