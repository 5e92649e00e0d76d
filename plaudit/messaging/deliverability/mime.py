"""Tolerant reading of raw mail: line endings, headers in any charset, bounded part walks.

The stdlib parser with the ``compat32`` policy records most malformations
as defects instead of raising.  The helpers here turn its loose values
(``Header`` objects, undecodable bytes, unknown charsets) into plain text.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.header
import email.message
import email.parser
import email.utils
import quopri
import re
from collections.abc import Iterator
from email import policy

Message = email.message.Message

# Inputs larger than this are rejected unread; real bounces and reports are
# well under 1 MiB.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# Parts deeper than this are not visited (nested message/rfc822 loops).
MAX_DEPTH = 12
# Part bodies are decoded up to this many bytes for text scanning.
MAX_TEXT_BYTES = 1024 * 1024

_ADDRESS = re.compile(
    r"[\w.!#$%&'*+/=?^`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+"
)
_MESSAGE_ID = re.compile(r"<[^<>\s]+@[^<>\s]+>")


def normalize_newlines(data: bytes) -> bytes:
    """Return the data with CRLF and bare CR line endings turned into LF."""
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def load_message(data: bytes) -> Message:
    """Parse raw bytes into a message; the compat32 policy records defects instead of raising."""
    # Blank lines before the first header would make every header part of the body.
    data = normalize_newlines(data).lstrip(b" \t\n")
    return email.message_from_bytes(data, policy=policy.compat32)


def header_text(message: Message, name: str) -> str | None:
    """Return the first header of that name as text, with RFC 2047 words decoded."""
    value = message.get(name)
    if value is None:
        return None

    return decode_header_value(value)


def decode_header_value(value: object) -> str:
    """Decode a header value; undecodable words keep their raw form."""
    raw = _header_to_text(value) if isinstance(value, email.header.Header) else str(value)

    try:
        decoded = str(email.header.make_header(email.header.decode_header(raw)))
    except (UnicodeError, LookupError, ValueError, email.errors.HeaderParseError):
        decoded = raw

    return " ".join(decoded.split())


def _header_to_text(value: email.header.Header) -> str:
    parts: list[str] = []
    # The parser keeps raw 8-bit header bytes as surrogate escapes in the
    # chunks; reading them is the only way to recover the original bytes.
    for chunk, _charset in value._chunks:  # type: ignore[attr-defined]  # private, untyped
        raw = chunk if isinstance(chunk, bytes) else str(chunk).encode("utf-8", "surrogateescape")
        parts.append(decode_bytes(raw, None))
    return "".join(parts)


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode bytes in the declared charset, falling back to UTF-8 and then Latin-1."""
    for candidate in (charset, "utf-8"):
        if not candidate:
            continue
        try:
            return data.decode(candidate)
        except (UnicodeDecodeError, LookupError):
            continue

    return data.decode("latin-1")


def part_text(part: Message) -> str:
    """Return a non-multipart part's body as text, transfer encoding and charset undone."""
    try:
        payload = part.get_payload(decode=True)
    except (ValueError, TypeError, AssertionError, LookupError):
        payload = None

    if isinstance(payload, bytes):
        return decode_bytes(payload[:MAX_TEXT_BYTES], _charset(part))

    raw = part.get_payload()
    if isinstance(raw, str):
        return raw[:MAX_TEXT_BYTES]

    encoded = _encoded_message_body(part)
    if encoded is not None:
        return decode_bytes(encoded[:MAX_TEXT_BYTES], _charset(part))
    return ""


def _encoded_message_body(part: Message) -> bytes | None:
    """Decode a message/* part whose body was base64 or quoted-printable encoded.

    RFC 2046 forbids such encodings on message/* parts, so the parser read
    the encoded lines as a nested message; they are put back and decoded.
    """
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    payload = part.get_payload()
    if encoding not in {"base64", "quoted-printable"} or not isinstance(payload, list):
        return None

    text = "".join(nested.as_string() for nested in payload if isinstance(nested, Message))
    raw = text.encode("ascii", "ignore")
    try:
        return base64.b64decode(raw) if encoding == "base64" else quopri.decodestring(raw)
    except (binascii.Error, ValueError):
        return None


def part_bytes(part: Message) -> bytes:
    """Return a non-multipart part's body as bytes with the transfer encoding undone."""
    try:
        payload = part.get_payload(decode=True)
    except (ValueError, TypeError, AssertionError, LookupError):
        payload = None

    if isinstance(payload, bytes):
        return payload

    raw = part.get_payload()
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")

    return b""


def _charset(part: Message) -> str | None:
    try:
        charset = part.get_content_charset()
    except (ValueError, LookupError):
        return None

    return charset


def walk(message: Message, *, into_attached: bool = False) -> Iterator[tuple[int, Message]]:
    """Yield (depth, part) for every part, depth-first, bounded by :data:`MAX_DEPTH`.

    Parts inside an attached ``message/rfc822`` are skipped unless
    ``into_attached`` is set: they belong to the original message, not the report.
    """
    stack: list[tuple[int, Message]] = [(0, message)]
    while stack:
        depth, part = stack.pop()
        yield depth, part
        if depth >= MAX_DEPTH or not part.is_multipart():
            continue
        if part.get_content_maintype() == "message" and not into_attached:
            continue

        children = part.get_payload()
        if isinstance(children, list):
            nested = [child for child in children if isinstance(child, Message)]
            stack.extend((depth + 1, child) for child in reversed(nested))


def attached_headers(part: Message) -> Message | None:
    """Return the header block of an attached original (message/rfc822 or text/rfc822-headers)."""
    content_type = part.get_content_type()
    if content_type in {"message/rfc822", "message/global"}:
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return payload[0]
        return parse_headers(part_text(part))

    if content_type in {"text/rfc822-headers", "message/rfc822-headers", "text/rfc822-header"}:
        return parse_headers(part_text(part))

    return None


def parse_headers(text: str) -> Message:
    """Parse a block of header lines (the body after them is ignored)."""
    return email.parser.HeaderParser(policy=policy.compat32).parsestr(text.lstrip("\n"))


def find_addresses(text: str) -> list[str]:
    """Return the email addresses in the text, lower-cased, in order, without repeats."""
    seen: list[str] = []
    for match in _ADDRESS.finditer(text):
        address = match.group(0).strip(".").lower()
        if address not in seen:
            seen.append(address)
    return seen


def bare_address(value: str | None) -> str | None:
    """Return the address in a header or DSN field value ("rfc822; a@b", "Name <a@b>")."""
    if not value:
        return None

    if ";" in value.split("@", 1)[0]:
        value = value.split(";", 1)[1]
    if value.strip().startswith("@") and ":" in value:
        # An RFC 821 source route, "@relay1,@relay2:user@host": keep the mailbox.
        value = value.rsplit(":", 1)[1]
    _name, address = email.utils.parseaddr(value.strip())
    if "@" in address:
        return address.strip().lower()

    found = find_addresses(value)
    return found[0] if found else None


def find_message_ids(text: str) -> list[str]:
    """Return the Message-IDs named on ``Message-ID:`` lines of the text."""
    found: list[str] = []
    for line in text.splitlines():
        if line.lower().lstrip("> ").startswith("message-id:"):
            match = _MESSAGE_ID.search(line)
            if match and match.group(0) not in found:
                found.append(match.group(0))
    return found


def message_id_of(headers: Message) -> str | None:
    """Return the bracketed Message-ID of a header block, if it has one."""
    value = header_text(headers, "Message-ID")
    if not value:
        return None

    match = _MESSAGE_ID.search(value)
    return match.group(0) if match else value.strip() or None
