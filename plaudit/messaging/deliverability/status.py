"""RFC 3463 enhanced status codes: finding them in text and turning them into a bounce kind.

Classification, most specific evidence first:

- 2.x.x: delivered, not a bounce.
- 4.x.x: soft bounce; final only when the server gave up (Action: failed).
- 5.1.x: hard bounce (bad mailbox, address or domain).
- 5.7.x: policy block (spam, reputation, authentication), except 5.7.0
  whose wording reports the mailbox is full or the message too large.
- 5.2.2 (mailbox full), 5.2.3 and 5.3.4 (message too large): soft bounce.
- other 5.x.x: the wording decides; a permanent failure with no known
  cause is a hard bounce.

A generic code (detail 0, or only a bare SMTP reply such as "550") is made
more specific from the wording: "550 User unknown" becomes 5.1.1.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

from plaudit.messaging.deliverability.model import BounceKind

# Class 2, 4 or 5, then subject and detail; not part of an IP address or version.
_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)")
# A bare SMTP reply code at the start of a reply ("550 ", "550-", "550:").
_REPLY = re.compile(r"(?<![\d.:/=#-])([45][0-5]\d)(?:[ :-]|$)", re.MULTILINE)

_UNKNOWN_MAILBOX = re.compile(
    r"user(name)? (is )?unknown|unknown (user|recipient|local[- ]?part|address|mailbox)"
    r"|no such (user|mailbox|recipient|address|account|person)|mailbox (not found|unavailable"
    r"|does ?n[o']t exist|not available|is disabled|disabled|inactive|has been disabled)"
    r"|(address|account|user|mailbox|recipient)( \S+)? (does not|doesn't) exist"
    r"|invalid (recipient|mailbox|address|user)|recipient (address )?rejected"
    r"|not listed in|no mailbox here|mailbox name not allowed|user not found"
    r"|recipient not found|addressee unknown|unrouteable address|bad destination"
    r"|(account|user|mailbox) (has been )?(disabled|deactivated|closed|suspended|expired)"
    r"|no longer (valid|active|exists|available)|not a valid (user|mailbox|recipient)"
    r"|host (or domain name )?(not found|unknown)|domain (not found|does not exist)"
    r"|no such domain|host unknown|name or service not known|unknown host"
    r"|nie istnieje|unbekannt|existiert nicht|no existe|inexistant|n'existe pas"
    r"|не существует|нет такого|name is not recognized|unknown\s+recipient"
    r"|doesn't have an? .{1,60} account|no valid recipients",
    re.IGNORECASE,
)
_MAILBOX_FULL = re.compile(
    r"(mailbox|mail ?folder|inbox|mail ?box) (is |was )?full|over ?quota|quota (exceeded|full)"
    r"|mailbox (size )?exceeds|quota usage exceeded|box space not enough"
    r"|exceed(s|ed)? (the |its |his |her )?(storage|quota|mailbox)"
    r"|insufficient (storage|disk|system storage)|disk quota"
    r"|out of (storage|space)|mailbox size limit|storage (allocation|space)"
    r"|przepe[lł]n|postfach (ist )?voll|buz[oó]n lleno",
    re.IGNORECASE,
)
_TOO_LARGE = re.compile(
    r"too (large|big)|size (limit|exceed)|exceeds? (the )?(maximum|size|message size)"
    r"|message size",
    re.IGNORECASE,
)
_EXPIRED = re.compile(
    r"all hosts have been failing|not reachable|queue period|timed? ?out|retry time"
    r"|too many (attempts|retries)|failed \d+ attempts|could not connect|connection refused",
    re.IGNORECASE,
)
_POLICY = re.compile(
    r"spam|black ?list|block ?list|\brbl\b|dnsbl|uribl|surbl|reputation|unsolicited"
    r"|bulk e?-?mail|content (rejected|filter)|virus|malware|\bdmarc\b|\bspf\b|\bdkim\b"
    r"|policy|not accepting mail (from|with)|not permitted to relay"
    r"|relay(ing)? (access )?(denied|not permitted|prohibited)"
    r"|access denied|\bblocked\b|rejected for|not authori[sz]ed|banned|denied",
    re.IGNORECASE,
)
_DELAY = re.compile(
    r"delayed|will (continue to )?(retry|try)|still being retried|not yet been delivered"
    r"|no action is required|deferred|(temporary|transient) (failure|problem|error)",
    re.IGNORECASE,
)


class Classification(NamedTuple):
    """A bounce kind with the effective status and a short reason."""

    kind: BounceKind
    final: bool | None
    status: str | None
    reason: str


class _Rule(NamedTuple):
    pattern: re.Pattern[str]
    status: str
    kind: BounceKind
    reason: str


# Wording rules in order of precedence: a statement about the mailbox is more
# specific than policy words that appear in many help texts.
_RULES: Final = (
    _Rule(_UNKNOWN_MAILBOX, "5.1.1", "hard_bounce", "mailbox or domain does not exist"),
    _Rule(_MAILBOX_FULL, "5.2.2", "soft_bounce", "mailbox full"),
    _Rule(_TOO_LARGE, "5.3.4", "soft_bounce", "message too large"),
    _Rule(_EXPIRED, "4.4.7", "soft_bounce", "delivery attempts expired"),
    _Rule(_POLICY, "5.7.1", "policy_block", "rejected by policy or spam filter"),
)
_SOFT_CODES: Final = {
    "5.2.2": "mailbox full",
    "5.2.3": "message too large",
    "5.3.4": "message too large",
}


def find_status_codes(text: str) -> list[str]:
    """Return the enhanced status codes of class 4 and 5 in the text, in order, without repeats."""
    found: list[str] = []
    for match in _ENHANCED.finditer(text):
        code = ".".join(match.groups())
        if code[0] != "2" and code not in found:
            found.append(code)
    return found


def find_reply_code(text: str) -> str | None:
    """Return the first bare SMTP reply code (4xx or 5xx) in the text."""
    match = _REPLY.search(text)
    return match.group(1) if match else None


def normalize_status(value: str | None) -> str | None:
    """Return the x.y.z code of a DSN Status field ("5.1.1 (user unknown)" -> "5.1.1")."""
    if not value:
        return None

    match = _ENHANCED.search(value)
    if match:
        return ".".join(match.groups())

    reply = find_reply_code(value)
    return f"{reply[0]}.0.0" if reply else None


def effective_status(reported: str | None, diagnostic: str) -> str | None:
    """Pick the most specific code: a generic reported one gives way to one in the diagnostic."""
    codes = find_status_codes(diagnostic)
    if reported is None:
        if codes:
            return codes[0]
        reply = find_reply_code(diagnostic)
        return f"{reply[0]}.0.0" if reply else None

    if reported.endswith(".0.0") or reported.split(".")[1] == "0":
        for code in codes:
            if code[0] == reported[0] and code != reported:
                return code
    return reported


def is_delay_text(text: str) -> bool:
    """Return True when the text reads like a delay warning rather than a final failure."""
    return _DELAY.search(text) is not None


def classify(status: str | None, text: str, *, action: str | None = None) -> Classification:
    """Classify one recipient's failure from its status code, its wording and the DSN Action."""
    action = (action or "").lower() or None
    if action in {"delivered", "relayed", "expanded", "deliverable"} or (
        status is not None and status.startswith("2.")
    ):
        return Classification("not_bounce", True, status, "delivery succeeded")

    if action == "expired":
        return Classification("soft_bounce", True, status, "delivery attempts expired")

    if action == "delayed" or (action is None and status is None and is_delay_text(text)):
        return Classification("soft_bounce", False, status or "4.0.0", "delivery delayed")

    if status is None:
        result = _classify_by_wording("5.0.0", text, generic=True)
        if action is None and result.reason == _NO_CAUSE:
            # No Action, no Status and no wording: most likely a truncated
            # report, so it is not evidence of a permanent failure.
            return Classification(
                "unknown", None, None, "the report names no action, status or cause"
            )
        return result

    if status.startswith("4."):
        final = action in {"failed", "expired"}
        return Classification("soft_bounce", final, status, "temporary failure")

    return _classify_permanent(status, text)


def _classify_permanent(status: str, text: str) -> Classification:
    subject = status.split(".")[1]
    if subject == "1":
        return Classification("hard_bounce", True, status, "bad mailbox, address or domain")

    if status in _SOFT_CODES:
        return Classification("soft_bounce", True, status, _SOFT_CODES[status])

    if subject == "7":
        if status == "5.7.0":
            for rule in _RULES[1:3]:
                if rule.pattern.search(text):
                    return Classification(rule.kind, True, status, rule.reason)
        return Classification("policy_block", True, status, "rejected by policy")

    generic = status.endswith(".0")
    return _classify_by_wording(status, text, generic=generic)


def _classify_by_wording(status: str, text: str, *, generic: bool) -> Classification:
    for rule in _RULES:
        if rule.pattern.search(text):
            effective = rule.status if generic else status
            return Classification(rule.kind, True, effective, rule.reason)

    return Classification("hard_bounce", True, status, _NO_CAUSE)


_NO_CAUSE: Final = "permanent failure, cause not stated"
