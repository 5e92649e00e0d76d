"""Signals in non-standard returned mail: failure notices, auto-replies, challenge/response.

Most mail servers still send failure notices as free text (Exim, qmail,
Exchange, Domino, GroupWise, webmail providers).  These helpers read the
human-readable part of such a notice, up to where the copy of the original
message starts, and look for the signs that tell the kinds of notice apart.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from plaudit.messaging.deliverability.mime import (
    Message,
    find_addresses,
    header_text,
    part_text,
    walk,
)

# Human-readable text beyond this many characters is not scanned.
MAX_SCAN_CHARS = 32 * 1024

_ORIGINAL_STARTS = re.compile(
    r"^\s*(-{2,}|\*{2,}|={2,})?\s*(original message|this is a copy of the message"
    r"|below this line is a copy|a copy of the original message|the original message"
    r"|original message follows|returned message|unsent message|message header follows"
    r"|headers? of (the )?(original|returned|your) message|forwarded message"
    r"|your message reads|copy of message)"
    r"|^(Return-Path|Received): ",
    re.IGNORECASE | re.MULTILINE,
)
_BOUNCE_SENDER = re.compile(
    r"mailer[-_ ]?daemon|post_?master|mail delivery (subsystem|system|service)|mmdf|"
    r"\bsmtp\b|mail ?administrator|delivery[-_ ]?(status|notification)|bounce",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (status|failure|failed|has failed|problem|notification"
    r"|report|error)|returned mail|mail delivery failed|failure notice|non[- ]?delivery"
    r"|could not be delivered|mail system error|returning message|mail error|not delivered"
    r"|delivery failure|delayed mail|message delayed|warning: message|returned to sender"
    r"|nicht zustellbar|unzustellbar|no se (pudo|ha podido) entregar|non remis|non distribu"
    r"|недоставлен|не доставлен|mail could not|message delivery has failed|mail failed",
    re.IGNORECASE,
)
_FAILURE_TEXT = re.compile(
    r"could not be delivered|couldn't be delivered|permanent (error|failure)|delivery has failed"
    r"|undeliverable|following (address(es)?|recipients?) (failed|could not)|failed to deliver"
    r"|this is the mail system at|wasn't able to deliver|not able to deliver|unable to deliver"
    r"|no mailbox here|delivery to the following recipient|did not reach|was not delivered"
    r"|message delivery failed|delivery failure|returned to the sender|could not deliver"
    r"|not yet been delivered|will (continue to )?(retry|try)|user unknown|does not exist"
    r"|no such user|invalid user address",
    re.IGNORECASE,
)
_AUTOREPLY_SUBJECT = re.compile(
    r"auto(matic|matisch)?[ _-]?(reply|response|antwort|respuesta|r[ée]ponse|risposta)"
    r"|automatische antwort|respuesta autom[aá]tica|r[ée]ponse automatique"
    r"|risposta automatica|automatyczna odpowied|out of (the )?office|abwesenheit"
    r"|\bvacation\b|away from (the )?office|\bauto:|autosvar|fuera de la oficina"
    r"|absence du bureau|automatyczna|odpowied[zź] automatyczna"
    r"|thank you for your (e-?mail|message)",
    re.IGNORECASE,
)
_CHALLENGE = re.compile(
    r"boxbe|bluebottle|spam ?arrest|\btmda\b|choicemail|sender verification|verify (that )?you"
    r"|(verify|confirm) (that )?you are (a )?(human|real|person)"
    r"|approve (your|the) (e-?mail|message)|click (the|this) link .{0,40}(deliver|approved)"
    r"|challenge[- ]response|added to (my|the) (approved|allowed) senders",
    re.IGNORECASE,
)


_NOT_READABLE = frozenset({"text/html", "text/rfc822-headers", "text/delivery-status"})


class _TextOfHtml(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)


def html_to_text(html: str) -> str:
    """Return the text content of an HTML body."""
    parser = _TextOfHtml()
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError):
        # NOTE: html.parser raises on a few broken constructs; the text read so far is kept.
        pass
    return "\n".join(chunk.strip() for chunk in parser.chunks if chunk.strip())


def readable_text(message: Message) -> str:
    """Return the notice's human-readable text, cut where the copy of the original starts."""
    chunks: list[str] = []
    for _depth, part in walk(message):
        if part.is_multipart():
            continue
        content_type = part.get_content_type()
        readable = part.get_content_maintype() == "text" and content_type not in _NOT_READABLE
        if readable or is_unsplit_multipart(part):
            chunks.append(part_text(part))
        elif content_type == "text/html" and not chunks:
            chunks.append(html_to_text(part_text(part)))
        if sum(len(chunk) for chunk in chunks) > MAX_SCAN_CHARS:
            break

    return cut_original(("\n".join(chunks))[:MAX_SCAN_CHARS])


def is_unsplit_multipart(part: Message) -> bool:
    """Return True for a multipart whose boundary never occurs: its body is one raw string."""
    return part.get_content_maintype() == "multipart" and isinstance(part.get_payload(), str)


def full_text(message: Message) -> str:
    """Return all text leaves, unsplit multiparts included, up to the scan limit."""
    chunks = [
        part_text(part)
        for _depth, part in walk(message)
        if not part.is_multipart()
        and (part.get_content_maintype() == "text" or is_unsplit_multipart(part))
    ]
    return "\n".join(chunks)[: MAX_SCAN_CHARS * 4]


def cut_original(text: str) -> str:
    """Return the text before the quoted original message, skipping a marker on the first lines."""
    for match in _ORIGINAL_STARTS.finditer(text):
        if match.start() > 40:
            return text[: match.start()]
    return text


def original_text(message: Message) -> str:
    """Return the part of the plain text after the marker where the original message starts."""
    text = full_text(message)
    for match in _ORIGINAL_STARTS.finditer(text):
        if match.start() > 40:
            return text[match.start() :]
    return ""


def bounce_signals(message: Message, subject: str, text: str) -> list[str]:
    """Return the reasons to believe the message is a delivery-failure notice."""
    signals: list[str] = []
    sender = " ".join(filter(None, (header_text(message, "From"), header_text(message, "Sender"))))
    if _BOUNCE_SENDER.search(sender):
        signals.append("sender is a mail system")
    if message.get("X-Failed-Recipients"):
        signals.append("X-Failed-Recipients header")
    if _BOUNCE_SUBJECT.search(subject):
        signals.append("failure-notice subject")
    if _FAILURE_TEXT.search(text):
        signals.append("failure wording")
    return signals


def autoreply_signal(message: Message, subject: str) -> str | None:
    """Return why the message is an auto-reply (RFC 3834 headers, common markers, subject)."""
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Vacation"):
        if message.get(name):
            return f"{name} header"

    precedence = (header_text(message, "Precedence") or "").lower()
    if precedence == "auto_reply":
        return "Precedence: auto_reply"
    if (header_text(message, "X-Autogenerated") or "").lower() == "reply":
        return "X-Autogenerated: Reply"
    if _AUTOREPLY_SUBJECT.search(subject):
        return "auto-reply subject"

    auto_submitted = (header_text(message, "Auto-Submitted") or "").lower()
    if auto_submitted.startswith("auto-replied"):
        return "Auto-Submitted: auto-replied"
    return None


def challenge_signal(message: Message, subject: str, text: str) -> str | None:
    """Return why the message is a challenge/response request, if it is one."""
    sender = header_text(message, "From") or ""
    for where, value in (("sender", sender), ("subject", subject), ("text", text[:4000])):
        if _CHALLENGE.search(value):
            return f"challenge/response wording in the {where}"
    return None


def failed_recipients(message: Message, text: str) -> list[str]:
    """Return the failed addresses: X-Failed-Recipients, else addresses in the notice text."""
    header = ",".join(str(value) for value in message.get_all("X-Failed-Recipients", []))
    listed = find_addresses(header)
    if listed:
        return listed

    own = set(
        find_addresses(
            " ".join(
                filter(
                    None,
                    (header_text(message, name) for name in ("From", "To", "Reply-To", "Sender")),
                )
            )
        )
    )
    return [
        address
        for address in find_addresses(text)
        if address not in own and not _BOUNCE_SENDER.search(address.split("@")[0])
    ]
