"""RFC 5965 feedback reports (ARF) and the older non-standard feedback-loop formats.

A mailbox provider sends a feedback report when a recipient presses "this is
spam" (Feedback-Type: abuse) or when a message failed authentication
(auth-failure, the DMARC failure report of RFC 7489 section 7.3).  Microsoft's
JMRP and some older loops send the original message without the report part;
those are read as complaints too.
"""

from __future__ import annotations

import logging
import re

import msgspec

from plaudit.messaging.deliverability.dsn import parse_field_text
from plaudit.messaging.deliverability.mime import (
    MAX_MESSAGE_BYTES,
    Message,
    attached_headers,
    bare_address,
    decode_header_value,
    header_text,
    load_message,
    message_id_of,
    part_text,
    walk,
)
from plaudit.messaging.deliverability.model import FeedbackReport

log = logging.getLogger(__name__)

FEEDBACK_TYPES = frozenset(
    {"abuse", "fraud", "virus", "other", "not-spam", "auth-failure", "dmarc", "opt-out"}
)
_FEEDBACK_PART_TYPES = frozenset({"message/feedback-report", "text/feedback-report"})
_LOOP_SUBJECT = re.compile(
    r"complaint about message from|email feedback report|abuse report|feedback loop",
    re.IGNORECASE,
)
_LOOP_SENDER = re.compile(
    r"staff@hotmail\.com|scomp@aol\.net|feedbackloop|fbl|abuse", re.IGNORECASE
)
_MULTI_FIELDS = ("original-rcpt-to", "reported-domain", "reported-uri")

Fields = dict[str, list[str]]


def parse_arf(data: bytes) -> FeedbackReport:
    """Read one raw feedback report; never raises on malformed input."""
    if len(data) > MAX_MESSAGE_BYTES:
        return _unknown(f"message is {len(data)} bytes, over the {MAX_MESSAGE_BYTES}-byte limit")
    if not data.strip():
        return _unknown("message is empty")

    try:
        return parse_arf_message(load_message(data))
    except RecursionError:
        return _unknown("MIME structure is nested too deeply to read")
    except Exception as error:
        # As for bounces: a parser bug on one hostile report is logged, not raised.
        log.warning("arf.unreadable", extra={"error": repr(error)})
        return _unknown(f"message could not be read: {error.__class__.__name__}: {error}")


def _unknown(reason: str) -> FeedbackReport:
    return FeedbackReport(kind="unknown", reason=reason, source="plain")


def feedback_report_part(message: Message) -> Message | None:
    """Return the machine-readable feedback-report part, if the message has one."""
    for _depth, part in walk(message):
        if part.get_content_type() in _FEEDBACK_PART_TYPES:
            return part
    return None


def parse_arf_message(message: Message) -> FeedbackReport:
    """Read a parsed message as a feedback report or a feedback-loop complaint."""
    part = feedback_report_part(message)
    original = _original_headers(message)
    if part is not None:
        return _from_report(_report_fields(part), original)

    subject = header_text(message, "Subject") or ""
    sender = header_text(message, "From") or ""
    if original is None and message.get("X-HmXmrOriginalRecipient"):
        # Microsoft's JMRP may forward the complained-about message itself,
        # with the complaining recipient in this header.
        return _with_original(
            FeedbackReport(
                kind="complaint",
                reason="forwarded message with a JMRP original-recipient header",
                source="jmrp",
                feedback_type="abuse",
            ),
            message,
        )
    if original is not None and (_LOOP_SUBJECT.search(subject) or _LOOP_SENDER.search(sender)):
        return _with_original(
            FeedbackReport(
                kind="complaint",
                reason="feedback-loop complaint without an ARF report part",
                source="jmrp" if "hotmail" in sender.lower() else "plain",
                feedback_type="abuse",
            ),
            original,
        )

    return FeedbackReport(
        kind="unknown",
        reason="no message/feedback-report part and no feedback-loop signs",
        source="plain",
    )


def _report_fields(part: Message) -> Fields:
    fields: Fields = {}
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        for block in payload:
            if isinstance(block, Message):
                for name, value in block.items():
                    fields.setdefault(name.lower(), []).append(decode_header_value(value))
    if "feedback-type" not in fields:
        for block in parse_field_text(part_text(part)):
            for name, value in block.items():
                fields.setdefault(name, []).append(value)
    return fields


def _from_report(fields: Fields, original: Message | None) -> FeedbackReport:
    def first(name: str) -> str | None:
        values = fields.get(name)
        return values[0] if values else None

    feedback_type = (first("feedback-type") or "").strip().lower() or None
    if feedback_type in {"auth-failure", "dmarc"}:
        kind, reason = "dmarc_failure", f"authentication failure report ({feedback_type})"
    elif feedback_type == "not-spam":
        kind, reason = "not_bounce", "recipient marked the message as not spam"
    elif feedback_type is None:
        kind, reason = "complaint", "feedback report without Feedback-Type, read as abuse"
    else:
        kind, reason = "complaint", f"feedback report: {feedback_type}"
        if feedback_type not in FEEDBACK_TYPES:
            reason = f"feedback report of unregistered type {feedback_type!r}, read as abuse"

    report = FeedbackReport(
        kind=kind,  # type: ignore[arg-type]  # one of the literals assigned above
        reason=reason,
        source="arf",
        feedback_type=feedback_type,
        user_agent=first("user-agent"),
        version=first("version"),
        original_mail_from=bare_address(first("original-mail-from")),
        original_rcpt_to=tuple(
            address
            for value in fields.get("original-rcpt-to", [])
            if (address := bare_address(value)) is not None
        ),
        arrival_date=first("arrival-date") or first("received-date"),
        reported_domain=tuple(value.strip() for value in fields.get("reported-domain", [])),
        source_ip=first("source-ip"),
        reporting_mta=first("reporting-mta"),
        auth_failure=first("auth-failure"),
        authentication_results=first("authentication-results"),
    )
    return _with_original(report, original) if original is not None else report


def _original_headers(message: Message) -> Message | None:
    for _depth, part in walk(message):
        headers = attached_headers(part)
        if headers is not None and len(headers) > 0:
            return headers
    return None


def _with_original(report: FeedbackReport, original: Message) -> FeedbackReport:
    to = header_text(original, "To")
    recipients = report.original_rcpt_to
    hotmail_recipient = bare_address(header_text(original, "X-HmXmrOriginalRecipient"))
    if not recipients and hotmail_recipient:
        recipients = (hotmail_recipient,)
    return msgspec.structs.replace(
        report,
        original_rcpt_to=recipients,
        original_message_id=message_id_of(original),
        original_to=bare_address(to),
        original_from=bare_address(header_text(original, "From")),
        original_subject=header_text(original, "Subject"),
        original_mail_from=report.original_mail_from
        or bare_address(header_text(original, "Return-Path")),
    )
