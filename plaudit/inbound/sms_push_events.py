"""Map SMS status callbacks (Twilio) and platform pushes (Facebook, Google Pub/Sub)."""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from typing import Final

from plaudit.inbound.mapping import (
    InboundEvent,
    MalformedPayload,
    NotDeliveryEvent,
    decode_json,
    delivery,
    derived_id,
    iso_seconds,
)
from plaudit.messaging.deliverability.suppression import EventKind
from plaudit.messaging.sms import Keyword, classify_keyword

# A Business Profile review id: URL-safe characters only, as the API returns them.
_REVIEW_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,200}")
_TWILIO_KINDS: Final[dict[str, EventKind]] = {
    "sent": "accepted",
    "delivered": "delivered",
    "undelivered": "hard_bounce",
    "failed": "hard_bounce",
    "read": "opened",
}
# Twilio error 21610: the recipient has opted out of messages from this sender.
TWILIO_UNSUBSCRIBED: Final = "21610"
# OptOutType values that Twilio's Advanced Opt-Out adds to keyword messages it recognised.
_OPT_OUT_TYPE_KEYWORDS: Final[dict[str, Keyword]] = {
    "STOP": "opt_out",
    "START": "opt_in",
    "HELP": "help",
}


def map_twilio(body: bytes, *, received_at: float) -> list[InboundEvent]:
    """Map a Twilio status callback or an incoming STOP message (form encoded)."""
    try:
        params = dict(urllib.parse.parse_qsl(body.decode("ascii"), strict_parsing=True))
    except (UnicodeDecodeError, ValueError) as error:
        raise MalformedPayload(f"Twilio body is not a form: {error}") from error
    sid = params.get("MessageSid") or params.get("SmsSid")
    if not sid:
        raise MalformedPayload("Twilio body has no MessageSid")
    status = params.get("MessageStatus") or params.get("SmsStatus") or ""
    if status == "received":
        return [_incoming(params, sid, received_at=received_at)]
    kind = _TWILIO_KINDS.get(status)
    if kind is None:
        raise NotDeliveryEvent(f"Twilio MessageStatus {status!r} is not recorded")
    if kind == "hard_bounce" and params.get("ErrorCode") == TWILIO_UNSUBSCRIBED:
        # The recipient replied STOP earlier; Twilio refuses to send until they opt in again.
        kind = "unsubscribe"
    # Twilio sends no event time; each status reaches a message once, so sid:status is unique.
    return [
        delivery(
            kind,
            event_id=f"{sid}:{status}",
            at=received_at,
            recipient=params.get("To"),
            message_id=sid,
            status=params.get("ErrorCode"),
        )
    ]


def _incoming(params: dict[str, str], sid: str, *, received_at: float) -> InboundEvent:
    """Map an inbound text: an opt-out, an opt-in or a HELP request; other texts raise."""
    keyword = classify_keyword(params.get("Body", "")) or _OPT_OUT_TYPE_KEYWORDS.get(
        params.get("OptOutType", "").upper()
    )
    sender = params.get("From")
    if keyword == "opt_out":
        return delivery(
            "unsubscribe", event_id=f"{sid}:stop", at=received_at, recipient=sender, message_id=sid
        )
    if keyword is None:
        raise NotDeliveryEvent("Twilio incoming message is not a keyword (STOP, HELP, START)")
    return InboundEvent(
        type=f"sms.{keyword}",
        provider_event_id=f"{sid}:{keyword}",
        occurred_at=received_at,
        recipient=sender,
        message_id=sid,
    )


def map_facebook(body: bytes, *, received_at: float) -> list[InboundEvent]:
    """Map a Page webhook to one ``platform.push`` per page whose ratings changed."""
    data = decode_json(body, "Facebook")
    if (
        not isinstance(data, dict)
        or data.get("object") != "page"
        or not isinstance(data.get("entry"), list)
    ):
        raise MalformedPayload("Facebook body must be a Page notification with an 'entry' list")
    events = []
    for entry in data["entry"]:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list) or not any(
            isinstance(c, dict) and c.get("field") == "ratings" for c in changes
        ):
            continue
        page_id = str(entry.get("id", ""))
        at = float(entry["time"]) if isinstance(entry.get("time"), (int, float)) else received_at
        events.append(
            InboundEvent(
                type="platform.push",
                platform="facebook",
                profile=page_id,
                provider_event_id=derived_id("facebook", page_id, changes, at),
                occurred_at=at,
            )
        )
    if not events:
        raise NotDeliveryEvent("Facebook notification contains no ratings change; nothing to sync")
    return events


def map_google(body: bytes) -> list[InboundEvent]:
    """Map a Pub/Sub push of a Business Profile NEW_REVIEW or UPDATED_REVIEW notification."""
    data = decode_json(body, "Pub/Sub")
    message = data.get("message") if isinstance(data, dict) else None
    if not isinstance(message, dict) or "messageId" not in message:
        raise MalformedPayload("Pub/Sub push body needs a 'message' with 'messageId'")
    try:
        decoded = base64.b64decode(str(message.get("data", "")), validate=True)
        inner = decode_json(decoded, "Pub/Sub message data")
    except binascii.Error as error:
        raise MalformedPayload(f"Pub/Sub message data is not base64 JSON: {error}") from error
    kind = inner.get("type") or inner.get("notificationType") if isinstance(inner, dict) else None
    if kind not in ("NEW_REVIEW", "UPDATED_REVIEW"):
        raise NotDeliveryEvent(f"Business Profile notification {kind!r} is not a review change")
    location = inner.get("location") or inner.get("locationName") or ""
    if not location and isinstance(inner.get("review"), str):
        location = inner["review"].split("/reviews/")[0]
    if not str(location).startswith("accounts/") or "/locations/" not in str(location):
        raise MalformedPayload(
            f"notification names no location 'accounts/*/locations/*': {location!r}"
        )
    published = message.get("publishTime") or message.get("publish_time")
    review_name = inner.get("review") if isinstance(inner.get("review"), str) else ""
    prefix = f"{location}/reviews/"
    review = review_name[len(prefix) :] if review_name.startswith(prefix) else ""
    return [
        InboundEvent(
            type="platform.push",
            platform="google",
            profile=str(location),
            # Only a well-formed review name leads to a targeted fetch.
            review=review if _REVIEW_ID.fullmatch(review) else None,
            provider_event_id=str(message["messageId"]),
            occurred_at=iso_seconds(published, "Pub/Sub publishTime"),
        )
    ]
