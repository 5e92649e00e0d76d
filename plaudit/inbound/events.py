"""One entry point that maps any supported provider's webhook body."""

from __future__ import annotations

from collections.abc import Callable

from plaudit.inbound import email_events, sms_push_events
from plaudit.inbound.mapping import (
    INSPECT_ONLY_PROVIDERS,
    PROVIDERS,
    InboundEvent,
    MappingError,
    check_time,
)
from plaudit.inbound.ses_events import map_ses


def map_events(
    provider: str,
    body: bytes,
    *,
    received_at: float,
    delivery_id: str | None = None,
) -> list[InboundEvent]:
    """Map ``body`` from ``provider``; raise MappingError naming why it cannot be.

    A body with any event whose time is not finite or not plausible is
    rejected as a whole (see ``check_time``).
    """
    mappers: dict[str, Callable[[], list[InboundEvent]]] = {
        "sendgrid": lambda: email_events.map_sendgrid(body),
        "mailgun": lambda: email_events.map_mailgun(body),
        "postmark": lambda: email_events.map_postmark(body),
        "ses": lambda: map_ses(body),
        "twilio": lambda: sms_push_events.map_twilio(body, received_at=received_at),
        "resend": lambda: email_events.map_resend(body, event_id=delivery_id),
        "facebook": lambda: sms_push_events.map_facebook(body, received_at=received_at),
        "google": lambda: sms_push_events.map_google(body),
        "brevo": lambda: email_events.map_brevo(body),
    }
    mapper = mappers.get(provider)
    if mapper is None:
        known = ", ".join(PROVIDERS + INSPECT_ONLY_PROVIDERS)
        raise MappingError(f"unknown provider {provider!r}; use one of {known}")
    events = mapper()
    for event in events:
        check_time(event)
    return events
