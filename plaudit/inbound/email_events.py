"""Map e-mail provider webhooks: SendGrid, Mailgun, Postmark, Resend and Brevo."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from plaudit.inbound.mapping import (
    InboundEvent,
    MalformedPayload,
    NotDeliveryEvent,
    decode_json,
    delivery,
    derived_id,
    enhanced_status,
    iso_seconds,
    status_kind,
    text_or_none,
)
from plaudit.inbound.message_ids import (
    mailgun_message_id,
    postmark_message_id,
    resend_message_id,
    sendgrid_message_id,
)
from plaudit.messaging.deliverability.suppression import EventKind

# --- SendGrid ---------------------------------------------------------------

_SENDGRID_KINDS: Final[dict[str, EventKind]] = {
    "processed": "accepted",
    "delivered": "delivered",
    "deferred": "deferred",
    "spamreport": "complaint",
    "unsubscribe": "unsubscribe",
    "group_unsubscribe": "unsubscribe",
    "open": "opened",
    "click": "clicked",
}


def map_sendgrid(body: bytes) -> list[InboundEvent]:
    """Map a SendGrid Event Webhook batch (a JSON array) or a bounce list export."""
    data = decode_json(body, "SendGrid")
    if not isinstance(data, list):
        raise MalformedPayload("SendGrid body must be a JSON array of events")
    events = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise MalformedPayload(f"SendGrid event {index} is not a JSON object")
        event = _sendgrid_event(item, index)
        if event is not None:
            events.append(event)
    if not events:
        raise NotDeliveryEvent(
            "SendGrid batch contains no delivery event that Plaudit records; nothing to do"
        )
    return events


def _sendgrid_event(item: Mapping[str, Any], index: int) -> InboundEvent | None:
    name = item.get("event")
    recipient = item.get("email")
    if not isinstance(recipient, str) or not recipient:
        raise MalformedPayload(f"SendGrid event {index} has no 'email'")
    at = _sendgrid_time(item, index)
    event_id = str(item.get("sg_event_id") or derived_id("sendgrid", dict(item)))
    message_id = sendgrid_message_id(item)
    reason = item.get("reason") or item.get("response")
    status = enhanced_status(item.get("status"), reason) or text_or_none(item.get("status"))

    if name is None or name in ("bounce", "dropped"):
        # Entries without "event" come from SendGrid's bounce list export.
        if item.get("type") == "blocked":
            # SendGrid's "blocked" is a temporary refusal unless its status is a 5.7.x policy code.
            kind: EventKind = (
                status_kind(status) if status and status.startswith("5.7") else "soft_bounce"
            )
        elif name == "bounce" and item.get("type") == "bounce" and not status:
            kind = "hard_bounce"
        else:
            kind = status_kind(status or "5")
        return delivery(
            kind,
            event_id=event_id,
            at=at,
            recipient=recipient,
            message_id=text_or_none(message_id),
            status=status,
        )
    mapped = _SENDGRID_KINDS.get(str(name))
    if mapped is None:
        return None
    return delivery(
        mapped,
        event_id=event_id,
        at=at,
        recipient=recipient,
        message_id=text_or_none(message_id),
        url=item.get("url"),
        status=status if mapped == "deferred" else None,
    )


def _sendgrid_time(item: Mapping[str, Any], index: int) -> float:
    stamp = item.get("timestamp")
    if isinstance(stamp, (int, float)):
        return float(stamp)
    if "created" in item:
        return iso_seconds(item["created"], f"SendGrid event {index} 'created'")
    raise MalformedPayload(f"SendGrid event {index} has no 'timestamp'")


# --- Mailgun ----------------------------------------------------------------

_MAILGUN_KINDS: Final[dict[str, EventKind]] = {
    "accepted": "accepted",
    "delivered": "delivered",
    "opened": "opened",
    "clicked": "clicked",
    "complained": "complaint",
    "unsubscribed": "unsubscribe",
}


def map_mailgun(body: bytes) -> list[InboundEvent]:
    """Map a Mailgun webhook (``signature`` + ``event-data``)."""
    data = decode_json(body, "Mailgun")
    event = data.get("event-data") if isinstance(data, dict) else None
    if not isinstance(event, dict):
        raise MalformedPayload("Mailgun body has no 'event-data' object")
    name = str(event.get("event", ""))
    recipient = event.get("recipient") or (event.get("envelope") or {}).get("targets")
    stamp = event.get("timestamp")
    if not isinstance(stamp, (int, float)):
        raise MalformedPayload("Mailgun event-data has no numeric 'timestamp'")
    event_id = str(event.get("id") or derived_id("mailgun", event))
    message_id = mailgun_message_id(event)

    def make(kind: EventKind, status: str | None = None) -> list[InboundEvent]:
        return [
            delivery(
                kind,
                event_id=event_id,
                at=float(stamp),
                recipient=text_or_none(recipient),
                message_id=message_id,
                status=status,
                url=event.get("url"),
            )
        ]

    if name == "failed":
        status_block = event.get("delivery-status") or {}
        status = enhanced_status(status_block.get("message"), status_block.get("description"))
        if event.get("severity") == "temporary":
            return make("deferred", status)
        # Without an enhanced code, a permanent failure counts as a hard bounce.
        return make(status_kind(status) if status else "hard_bounce", status)
    kind = _MAILGUN_KINDS.get(name)
    if kind is None:
        raise NotDeliveryEvent(f"Mailgun event {name!r} is not a delivery event Plaudit records")
    return make(kind)


# --- Postmark ---------------------------------------------------------------

_POSTMARK_BOUNCES: Final[dict[str, EventKind]] = {
    "HardBounce": "hard_bounce",
    "SoftBounce": "soft_bounce",
    "Transient": "deferred",
    "SpamComplaint": "complaint",
    "SpamNotification": "policy_block",
    "Blocked": "policy_block",
    "BadEmailAddress": "hard_bounce",
    "DnsError": "soft_bounce",
    "Unsubscribe": "unsubscribe",
}
_POSTMARK_RECORDS: Final[dict[str, EventKind]] = {
    "Delivery": "delivered",
    "SpamComplaint": "complaint",
    "Open": "opened",
    "Click": "clicked",
}
_POSTMARK_SUPPRESSIONS: Final[dict[str, EventKind]] = {
    "HardBounce": "hard_bounce",
    "SpamComplaint": "complaint",
    "ManualSuppression": "unsubscribe",
}


def map_postmark(body: bytes) -> list[InboundEvent]:
    """Map one Postmark webhook record (Delivery, Bounce, SpamComplaint, Open, Click, ...)."""
    data = decode_json(body, "Postmark")
    if not isinstance(data, dict) or "RecordType" not in data:
        raise MalformedPayload("Postmark body has no 'RecordType'")
    record = str(data["RecordType"])
    message_id = text_or_none(data.get("MessageID"))
    recipient = text_or_none(data.get("Recipient") or data.get("Email"))

    kind: EventKind | None
    if record == "Bounce":
        kind = _POSTMARK_BOUNCES.get(str(data.get("Type")), "soft_bounce")
    elif record == "SubscriptionChange":
        if not data.get("SuppressSending"):
            raise NotDeliveryEvent(
                "Postmark SubscriptionChange re-activates a recipient; nothing to record"
            )
        kind = _POSTMARK_SUPPRESSIONS.get(str(data.get("SuppressionReason")), "unsubscribe")
    else:
        kind = _POSTMARK_RECORDS.get(record)
    if kind is None:
        raise NotDeliveryEvent(f"Postmark RecordType {record!r} is not a delivery event")

    when = next(
        (
            data[key]
            for key in ("BouncedAt", "DeliveredAt", "ReceivedAt", "ChangedAt")
            if key in data
        ),
        None,
    )
    at = iso_seconds(when, f"Postmark {record} time")
    event_id = (
        f"{record}:{data['ID']}"
        if "ID" in data
        else derived_id(record, message_id, recipient, when, data.get("SuppressionReason"))
    )
    status = enhanced_status(data.get("Details"), data.get("Description"))
    return [
        delivery(
            kind,
            event_id=event_id,
            at=at,
            recipient=recipient,
            message_id=postmark_message_id(data),
            status=status,
            url=data.get("OriginalLink"),
        )
    ]


# --- Resend -----------------------------------------------------------------

_RESEND_KINDS: Final[dict[str, EventKind]] = {
    "email.sent": "accepted",
    "email.delivered": "delivered",
    "email.delivery_delayed": "deferred",
    "email.complained": "complaint",
    "email.opened": "opened",
    "email.clicked": "clicked",
}


def map_resend(body: bytes, *, event_id: str | None = None) -> list[InboundEvent]:
    """Map a Resend event; ``event_id`` is the ``svix-id`` header when known."""
    data = decode_json(body, "Resend")
    if not isinstance(data, dict) or not isinstance(data.get("data"), dict):
        raise MalformedPayload("Resend body needs 'type' and a 'data' object")
    name = str(data.get("type", ""))
    inner = data["data"]
    if name == "email.bounced":
        bounce = inner.get("bounce") or {}
        kind: EventKind | None = (
            "soft_bounce" if bounce.get("type") == "Transient" else "hard_bounce"
        )
    else:
        kind = _RESEND_KINDS.get(name)
    if kind is None:
        raise NotDeliveryEvent(f"Resend event type {name!r} is not a delivery event")
    to = inner.get("to")
    recipient = to[0] if isinstance(to, list) and to else text_or_none(to)
    at = iso_seconds(data.get("created_at"), "Resend created_at")
    email_id = text_or_none(inner.get("email_id"))
    return [
        delivery(
            kind,
            event_id=event_id or f"{email_id}:{name}",
            at=at,
            recipient=recipient,
            message_id=resend_message_id(inner),
            url=_resend_link(inner),
        )
    ]


def _resend_link(inner: Mapping[str, Any]) -> object:
    click = inner.get("click")
    return click.get("link") if isinstance(click, dict) else None


# --- Brevo ------------------------------------------------------------------

_BREVO_KINDS: Final[dict[str, EventKind]] = {
    "request": "accepted",
    "delivered": "delivered",
    "deferred": "deferred",
    "hard_bounce": "hard_bounce",
    "invalid_email": "hard_bounce",
    "soft_bounce": "soft_bounce",
    "blocked": "policy_block",
    "spam": "complaint",
    "unsubscribed": "unsubscribe",
    "opened": "opened",
    "unique_opened": "opened",
    "click": "clicked",
}


def map_brevo(body: bytes) -> list[InboundEvent]:
    """Map a Brevo (formerly Sendinblue) transactional webhook event."""
    data = decode_json(body, "Brevo")
    if not isinstance(data, dict) or "event" not in data:
        raise MalformedPayload("Brevo body has no 'event'")
    name = str(data["event"])
    kind = _BREVO_KINDS.get(name)
    if kind is None:
        raise NotDeliveryEvent(f"Brevo event {name!r} is not a delivery event")
    stamp = data.get("ts_epoch")
    # ts_epoch is in milliseconds; "date" is a local time with no zone and may be a placeholder.
    at = float(stamp) / 1000 if isinstance(stamp, (int, float)) else _brevo_date(data.get("date"))
    message_id = text_or_none(data.get("message-id"))
    return [
        delivery(
            kind,
            event_id=derived_id("brevo", name, message_id, data.get("email"), at),
            at=at,
            recipient=text_or_none(data.get("email")),
            message_id=message_id,
            status=enhanced_status(data.get("reason")),
            url=data.get("link"),
        )
    ]


def _brevo_date(value: object) -> float:
    try:
        return iso_seconds(value, "Brevo date")
    except MalformedPayload:
        raise MalformedPayload(
            f"Brevo event has no ts_epoch and its date {value!r} is not a time"
        ) from None
