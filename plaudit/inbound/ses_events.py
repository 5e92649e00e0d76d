"""Map Amazon SES notifications, bare or inside an SNS envelope, to inbound events."""

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
)
from plaudit.inbound.message_ids import ses_message_id
from plaudit.messaging.deliverability.suppression import EventKind

SUBSCRIPTION_TYPES: Final = ("SubscriptionConfirmation", "UnsubscribeConfirmation")
_SIMPLE_KINDS: Final[dict[str, EventKind]] = {
    "Send": "accepted",
    "Delivery": "delivered",
    "DeliveryDelay": "deferred",
    "Reject": "policy_block",
    "Open": "opened",
    "Click": "clicked",
}
_SIMPLE_BLOCKS: Final = {
    "Send": "send",
    "Delivery": "delivery",
    "DeliveryDelay": "deliveryDelay",
    "Reject": "reject",
    "Open": "open",
    "Click": "click",
}


def map_ses(body: bytes) -> list[InboundEvent]:
    """Map an SNS message carrying an SES notification, or a bare SES notification."""
    data = decode_json(body, "SES")
    if not isinstance(data, dict):
        raise MalformedPayload("SES body must be a JSON object")
    kind = data.get("Type")
    if kind in SUBSCRIPTION_TYPES:
        return [
            InboundEvent(
                type="subscription.confirmation",
                provider_event_id=str(data.get("MessageId", "")),
                occurred_at=iso_seconds(data.get("Timestamp"), "SNS Timestamp"),
            )
        ]
    if kind == "Notification":
        message = decode_json(str(data.get("Message", "")).encode(), "SNS Message")
        if not isinstance(message, dict):
            raise MalformedPayload("SNS Message is not a JSON object")
        return map_notification(message, envelope_id=str(data.get("MessageId", "")))
    if kind is not None:
        raise MalformedPayload(f"SNS Type {kind!r} is not a message type SES sends")
    return map_notification(data, envelope_id="")


def map_notification(message: Mapping[str, Any], *, envelope_id: str) -> list[InboundEvent]:
    """Map one SES notification (``notificationType``) or event (``eventType``)."""
    name = str(message.get("notificationType") or message.get("eventType") or "")
    mail: dict[str, Any] = message["mail"] if isinstance(message.get("mail"), dict) else {}
    message_id = _text(mail.get("messageId"))
    # Event ids keep SES's own id, while the events carry the original Message-ID where known.
    linked_id = ses_message_id(mail)
    if name == "Received":
        raise NotDeliveryEvent(
            "SES Received notification is incoming mail, not an event about a sent message"
        )
    if name == "Bounce":
        return _bounces(message.get("bounce"), linked_id, envelope_id)
    if name == "Complaint":
        return _complaints(message.get("complaint"), linked_id, envelope_id)
    kind = _SIMPLE_KINDS.get(name)
    if kind is None:
        raise NotDeliveryEvent(f"SES notification type {name!r} is not a delivery event")
    found = message.get(_SIMPLE_BLOCKS[name])
    block: dict[str, Any] = found if isinstance(found, dict) else {}
    at = iso_seconds(block.get("timestamp") or mail.get("timestamp"), f"SES {name} timestamp")
    recipients = block.get("recipients") or mail.get("destination") or [None]
    return [
        delivery(
            kind,
            event_id=f"{message_id}:{name}:{recipient}",
            at=at,
            recipient=recipient,
            message_id=linked_id,
            status=enhanced_status(block.get("smtpResponse")) if kind == "deferred" else None,
            # A Click event's "click" block holds the link.
            url=block.get("link"),
        )
        for recipient in recipients
    ]


def _bounces(bounce: object, message_id: str | None, envelope_id: str) -> list[InboundEvent]:
    if not isinstance(bounce, dict) or not isinstance(bounce.get("bouncedRecipients"), list):
        raise MalformedPayload("SES Bounce notification has no 'bounce.bouncedRecipients' list")
    # Undetermined bounces count as soft: only a Permanent one may suppress an address.
    kind: EventKind = "hard_bounce" if bounce.get("bounceType") == "Permanent" else "soft_bounce"
    at = iso_seconds(bounce.get("timestamp"), "SES bounce timestamp")
    feedback = str(bounce.get("feedbackId") or envelope_id or derived_id(bounce))
    events = []
    for recipient in bounce["bouncedRecipients"]:
        address = recipient.get("emailAddress")
        status = enhanced_status(recipient.get("status"), recipient.get("diagnosticCode"))
        # SES files content and policy rejections under Permanent too; 5.7.x is policy.
        recipient_kind: EventKind = (
            "policy_block" if status is not None and status.startswith("5.7") else kind
        )
        events.append(
            delivery(
                recipient_kind,
                event_id=f"{feedback}:{address}",
                at=at,
                recipient=address,
                message_id=message_id,
                status=status,
            )
        )
    return events


def _complaints(complaint: object, message_id: str | None, envelope_id: str) -> list[InboundEvent]:
    if not isinstance(complaint, dict) or not isinstance(
        complaint.get("complainedRecipients"), list
    ):
        raise MalformedPayload("SES Complaint has no 'complaint.complainedRecipients' list")
    at = iso_seconds(complaint.get("timestamp"), "SES complaint timestamp")
    feedback = str(complaint.get("feedbackId") or envelope_id or derived_id(complaint))
    return [
        delivery(
            "complaint",
            event_id=f"{feedback}:{recipient.get('emailAddress')}",
            at=at,
            recipient=recipient.get("emailAddress"),
            message_id=message_id,
        )
        for recipient in complaint["complainedRecipients"]
    ]


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
