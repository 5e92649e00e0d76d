"""RFC 3464 delivery status notifications: the machine-readable per-recipient fields."""

from __future__ import annotations

import re

from plaudit.messaging.deliverability.mime import (
    Message,
    bare_address,
    decode_header_value,
    part_text,
    walk,
)
from plaudit.messaging.deliverability.model import RecipientStatus
from plaudit.messaging.deliverability.status import classify, effective_status, normalize_status

DSN_TYPES = frozenset(
    {"message/delivery-status", "message/global-delivery-status", "text/delivery-status"}
)
_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$")
# The address or diagnostic type before ";": "rfc822", "smtp", "dns", "X-Postfix".
_TYPE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,20}$")
_RECIPIENT_FIELDS = ("final-recipient", "original-recipient", "action", "status")

Fields = dict[str, str]


def delivery_status_parts(message: Message, *, into_attached: bool = False) -> list[Message]:
    """Return the delivery-status parts of the report, outside any attached original by default."""
    return [
        part
        for _depth, part in walk(message, into_attached=into_attached)
        if part.get_content_type() in DSN_TYPES
    ]


def field_blocks(part: Message) -> list[Fields]:
    """Return the field groups of a delivery-status part, names lower-cased, first value kept."""
    payload = part.get_payload()
    blocks: list[Fields] = []
    if isinstance(payload, list):
        for block in payload:
            if isinstance(block, Message):
                fields: Fields = {}
                for name, value in block.items():
                    fields.setdefault(name.lower(), decode_header_value(value))
                blocks.append(fields)

    if any(_has_recipient_fields(block) for block in blocks):
        return blocks

    return parse_field_text(part_text(part))


def parse_field_text(text: str) -> list[Fields]:
    """Split "Name: value" lines into groups at blank lines; indented lines continue a value."""
    blocks: list[Fields] = []
    current: Fields = {}
    last: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
            current, last = {}, None
            continue

        if line[0] in " \t" and last is not None:
            current[last] = f"{current[last]} {line.strip()}"
            continue

        match = _FIELD.match(line)
        if match:
            last = match.group(1).lower()
            current.setdefault(last, match.group(2).strip())

    if current:
        blocks.append(current)
    return blocks


def _has_recipient_fields(block: Fields) -> bool:
    return any(name in block for name in _RECIPIENT_FIELDS)


def recipient_statuses(blocks: list[Fields], context: str) -> list[RecipientStatus]:
    """Build one status per recipient group; ``context`` is the human-readable report text."""
    statuses: list[RecipientStatus] = []
    for block in blocks:
        if not ("final-recipient" in block or "original-recipient" in block):
            continue
        statuses.append(_recipient_status(block, context))
    return statuses


def _recipient_status(block: Fields, context: str) -> RecipientStatus:
    diagnostic = _strip_type(block.get("diagnostic-code"))
    reported = normalize_status(block.get("status"))
    evidence = diagnostic or context
    status = effective_status(reported, evidence)
    action = block.get("action", "").split("(")[0].strip().lower() or None
    result = classify(status, evidence, action=action)
    return RecipientStatus(
        recipient=_best_recipient(block),
        kind=result.kind,
        final=result.final,
        status=result.status,
        reported_status=reported,
        action=action,
        original_recipient=bare_address(block.get("original-recipient")),
        diagnostic=diagnostic[:500] or None,
        remote_mta=_strip_type(block.get("remote-mta")) or None,
    )


def _best_recipient(block: Fields) -> str | None:
    """Prefer a routable address: some servers put "@relay:user@host" in Final-Recipient."""
    candidates = [
        bare_address(block.get(name))
        for name in ("final-recipient", "original-recipient", "x-actual-recipient")
    ]
    found = [address for address in candidates if address]
    for address in found:
        if "." in address.rpartition("@")[2]:
            return address
    return found[0] if found else None


def _strip_type(value: str | None) -> str:
    """Drop the type prefix of a DSN value ("smtp; 550 ..." -> "550 ...")."""
    if not value:
        return ""

    head, sep, rest = value.partition(";")
    if sep and _TYPE_NAME.match(head.strip()):
        return rest.strip()
    return value.strip()


def reporting_mta(blocks: list[Fields]) -> str | None:
    """Return the Reporting-MTA name from the per-message fields, if present."""
    for block in blocks:
        if "reporting-mta" in block:
            return _strip_type(block["reporting-mta"]) or None
    return None
