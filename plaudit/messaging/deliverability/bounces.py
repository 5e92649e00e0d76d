"""Classify a returned message: hard, soft or policy bounce, complaint, or not a bounce.

The parser reads, in order: an ARF feedback report (a complaint), an RFC 3464
delivery-status part, the signs of an auto-reply or challenge/response, and
finally the free text of a non-standard failure notice.  It never raises on
bad input: a message it cannot read is ``unknown`` with the reason.
"""

from __future__ import annotations

import email.errors
import logging

from plaudit.messaging.deliverability import dsn, heuristics
from plaudit.messaging.deliverability.arf import feedback_report_part, parse_arf_message
from plaudit.messaging.deliverability.mime import (
    MAX_MESSAGE_BYTES,
    Message,
    attached_headers,
    find_message_ids,
    header_text,
    load_message,
    message_id_of,
    walk,
)
from plaudit.messaging.deliverability.model import BounceKind, BounceResult, RecipientStatus
from plaudit.messaging.deliverability.status import (
    classify,
    effective_status,
    find_reply_code,
    find_status_codes,
    is_delay_text,
)

log = logging.getLogger(__name__)

_TRUNCATION_DEFECTS = (
    email.errors.StartBoundaryNotFoundDefect,
    email.errors.CloseBoundaryNotFoundDefect,
    email.errors.MultipartInvariantViolationDefect,
)


def parse_bounce(data: bytes) -> BounceResult:
    """Classify one raw returned message; never raises on malformed input."""
    if len(data) > MAX_MESSAGE_BYTES:
        return _unknown(f"message is {len(data)} bytes, over the {MAX_MESSAGE_BYTES}-byte limit")
    if not data.strip():
        return _unknown("message is empty")

    try:
        message = load_message(data)
        return _classify_message(message)
    except RecursionError:
        return _unknown("MIME structure is nested too deeply to read")
    except Exception as error:
        # Input comes from any mail server on the internet.  A parser bug on one
        # message must not stop the caller, so it is logged and reported.
        log.warning("bounce.unreadable", extra={"error": repr(error)})
        return _unknown(f"message could not be read: {error.__class__.__name__}: {error}")


def _unknown(reason: str, *, subject: str | None = None) -> BounceResult:
    return BounceResult(
        kind="unknown",
        final=None,
        status=None,
        recipient=None,
        reason=reason,
        source="empty",
        subject=subject,
    )


def _classify_message(message: Message) -> BounceResult:
    subject = header_text(message, "Subject") or ""
    if feedback_report_part(message) is not None:
        report = parse_arf_message(message)
        kind: BounceKind = "complaint" if report.kind == "complaint" else "not_bounce"
        return BounceResult(
            kind=kind,
            final=True if kind == "complaint" else None,
            status=None,
            recipient=report.recipient,
            reason=report.reason,
            source="arf",
            original_message_id=report.original_message_id,
            subject=subject,
        )

    text = heuristics.readable_text(message)
    challenge = heuristics.challenge_signal(message, subject, text)
    if challenge and not _is_failure_dsn(message):
        return _not_bounce(challenge, subject)

    parts = dsn.delivery_status_parts(message)
    if not parts and heuristics.bounce_signals(message, subject, text):
        # Some gateways wrap the whole DSN in a message/rfc822 of their own.
        parts = dsn.delivery_status_parts(message, into_attached=True)
    if parts:
        result = _from_dsn(message, parts, subject, text)
        if result is not None:
            return result

    statuses = dsn.recipient_statuses(_fields_in_text(message), text)
    if statuses:
        return _result_from_statuses(message, statuses, subject, source="dsn_text")

    signals = heuristics.bounce_signals(message, subject, text)
    autoreply = heuristics.autoreply_signal(message, subject)
    if autoreply and (autoreply != "Auto-Submitted: auto-replied" or not signals):
        return _not_bounce(autoreply, subject)
    if challenge:
        return _not_bounce(challenge, subject)
    if not signals:
        if _truncation_note(message):
            return _unknown("truncated MIME and no delivery-failure signs", subject=subject)
        return _not_bounce("no delivery-failure signs", subject, source="plain_text")

    return _from_text(message, subject, text, signals)


def _truncation_note(message: Message) -> str:
    """Return "truncated MIME: " when a multipart lost its boundaries, else ""."""
    for _depth, part in walk(message):
        if any(isinstance(defect, _TRUNCATION_DEFECTS) for defect in part.defects):
            return "truncated MIME: "
    return ""


def _is_failure_dsn(message: Message) -> bool:
    """Return True when a DSN reports a permanent failure (a challenge wording is then quoted)."""
    for part in dsn.delivery_status_parts(message):
        for block in dsn.field_blocks(part):
            if block.get("action", "").lower().startswith("failed") and block.get(
                "status", ""
            ).startswith("5"):
                return True
    return False


def _not_bounce(reason: str, subject: str, *, source: str = "autoreply") -> BounceResult:
    return BounceResult(
        kind="not_bounce",
        final=None,
        status=None,
        recipient=None,
        reason=reason,
        source=source,
        subject=subject,
    )


def _from_dsn(
    message: Message, parts: list[Message], subject: str, text: str
) -> BounceResult | None:
    blocks = [block for part in parts for block in dsn.field_blocks(part)]
    statuses = dsn.recipient_statuses(blocks, text)
    if not statuses:
        return None

    return _result_from_statuses(
        message, statuses, subject, source="dsn", reporting=dsn.reporting_mta(blocks)
    )


def _fields_in_text(message: Message) -> list[dsn.Fields]:
    """Return DSN field groups pasted into plain text (a report that lost its MIME structure)."""
    return [
        block
        for block in dsn.parse_field_text(heuristics.full_text(message))
        if "final-recipient" in block and ("action" in block or "status" in block)
    ]


def _result_from_statuses(
    message: Message,
    statuses: list[RecipientStatus],
    subject: str,
    *,
    source: str,
    reporting: str | None = None,
) -> BounceResult:
    primary = _primary(statuses)
    return BounceResult(
        kind=primary.kind,
        final=primary.final,
        status=primary.status,
        recipient=primary.recipient,
        reason=_reason(primary),
        source=source,
        recipients=tuple(statuses),
        original_message_id=original_message_id(message),
        reporting_mta=reporting,
        subject=subject,
    )


def _primary(statuses: list[RecipientStatus]) -> RecipientStatus:
    """Pick the recipient that decides the message's kind: a final failure first."""
    for status in statuses:
        if status.final and status.kind not in {"not_bounce", "unknown"}:
            return status
    for status in statuses:
        if status.kind != "not_bounce":
            return status
    return statuses[0]


def _reason(status: RecipientStatus) -> str:
    classification = classify(status.status, status.diagnostic or "", action=status.action)
    detail = f": {status.diagnostic[:160]}" if status.diagnostic else ""
    return f"{classification.reason}{detail}"


def _from_text(message: Message, subject: str, text: str, signals: list[str]) -> BounceResult:
    evidence = f"{subject}\n{text}"
    addresses = heuristics.failed_recipients(message, text)
    recipient = addresses[0] if addresses else None
    codes = find_status_codes(text)
    status = codes[0] if codes else None
    if status is None and find_reply_code(text) is None and not _has_cause(evidence):
        delayed = is_delay_text(evidence)
        if not delayed:
            return BounceResult(
                kind="unknown",
                final=None,
                status=None,
                recipient=recipient,
                reason=_truncation_note(message)
                + f"failure notice without a status code or cause ({', '.join(signals)})",
                source="plain_text",
                original_message_id=original_message_id(message),
                subject=subject,
            )

    status = effective_status(status, text)
    action = "delayed" if _is_delay_warning(subject, text, status) else None
    result = classify(status, evidence, action=action)
    detail = RecipientStatus(
        recipient=recipient,
        kind=result.kind,
        final=result.final,
        status=result.status,
        reported_status=codes[0] if codes else None,
        action=action,
        diagnostic=_diagnostic_line(text, result.status),
    )
    return BounceResult(
        kind=result.kind,
        final=result.final,
        status=result.status,
        recipient=recipient,
        reason=result.reason + (f": {detail.diagnostic}" if detail.diagnostic else ""),
        source="plain_text",
        recipients=(detail,),
        original_message_id=original_message_id(message),
        subject=subject,
    )


def _has_cause(text: str) -> bool:
    result = classify("5.0.0", text)
    return result.reason != "permanent failure, cause not stated"


def _is_delay_warning(subject: str, text: str, status: str | None) -> bool:
    if status is not None and status.startswith("5."):
        return False
    if is_delay_text(subject):
        return True
    return is_delay_text(text)


def _diagnostic_line(text: str, status: str | None) -> str | None:
    """Return the first line of the notice that names the status or an SMTP reply."""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if (status and status in stripped) or find_reply_code(stripped):
            return stripped[:200]
    return None


def original_message_id(message: Message) -> str | None:
    """Return the Message-ID of the original message the notice returns or quotes."""
    own = message_id_of(message)
    for _depth, part in walk(message):
        headers = attached_headers(part)
        if headers is not None:
            found = message_id_of(headers)
            if found and found != own:
                return found

    for found in find_message_ids(heuristics.original_text(message)):
        if found != own:
            return found
    return None
