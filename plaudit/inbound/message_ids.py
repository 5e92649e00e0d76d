"""Find the Message-ID that Plaudit set in each e-mail provider's event payload.

Each function returns the original Message-ID where the payload carries it
(an echoed header, or the value of a tracking header that
plaudit.messaging.message_aliases sets), else the provider's own id, which
links to the request through its stored alias.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plaudit.messaging.message_aliases import TRACKING_KEY


def ses_message_id(mail: Mapping[str, Any]) -> str | None:
    """Return the Message-ID header from an SES ``mail`` object, else SES's ``messageId``.

    SES replaces the Message-ID of the message it sends, and its
    ``commonHeaders.messageId`` then repeats SES's id, so the header list
    (present when the notification includes original headers) is read first.
    """
    own = _text(mail.get("messageId"))
    header = _message_id_header(mail.get("headers"))
    if header is not None:
        return header
    common = mail.get("commonHeaders")
    declared = _text(common.get("messageId")) if isinstance(common, dict) else None
    if declared is not None and declared != own and "@" in declared:
        return declared
    return own


def sendgrid_message_id(item: Mapping[str, Any]) -> str | None:
    """Return the echoed unique argument, else ``smtp-id``, else ``sg_message_id``.

    SendGrid adds ``unique_args`` to every event as top-level fields, while
    ``smtp-id`` is missing from open and click events.
    """
    for key in (TRACKING_KEY, "smtp-id", "sg_message_id"):
        found = _text(item.get(key))
        if found is not None:
            return found
    return None


def mailgun_message_id(event: Mapping[str, Any]) -> str | None:
    """Return ``message.headers.message-id``, else the echoed ``user-variables`` value."""
    message = event.get("message")
    headers = message.get("headers") if isinstance(message, dict) else None
    found = _text(headers.get("message-id")) if isinstance(headers, dict) else None
    if found is not None:
        return found
    variables = event.get("user-variables")
    return _text(variables.get(TRACKING_KEY)) if isinstance(variables, dict) else None


def postmark_message_id(record: Mapping[str, Any]) -> str | None:
    """Return the ``Metadata`` value of the tracking header, else Postmark's ``MessageID``."""
    metadata = record.get("Metadata")
    echoed = _text(metadata.get(TRACKING_KEY)) if isinstance(metadata, dict) else None
    return echoed or _text(record.get("MessageID"))


def resend_message_id(data: Mapping[str, Any]) -> str | None:
    """Return a Message-ID header in a Resend event's ``data``, else Resend's ``email_id``.

    NOTE: Resend's event reference lists no ``headers`` field, so events
    link through ``email_id`` and its alias unless a payload carries one.
    """
    return _message_id_header(data.get("headers")) or _text(data.get("email_id"))


def _message_id_header(headers: object) -> str | None:
    """Return the Message-ID in ``{"name", "value"}`` objects or a name-to-value object."""
    if isinstance(headers, dict):
        headers = [{"name": name, "value": value} for name, value in headers.items()]
    if not isinstance(headers, list):
        return None
    for header in headers:
        if isinstance(header, dict) and str(header.get("name", "")).lower() == "message-id":
            found = _text(header.get("value"))
            if found is not None:
                return found
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None
