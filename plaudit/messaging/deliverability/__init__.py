"""Deliverability: parsers for bounces, complaints and DMARC reports, and the policy on top.

- :func:`parse_bounce` classifies a returned message (RFC 3464 delivery status
  notifications and the common non-standard formats) as a hard, soft or
  policy bounce, a complaint, or not a bounce.
- :func:`parse_arf` reads an RFC 5965 feedback report or a non-standard
  feedback-loop message.
- :func:`parse_dmarc` reads DMARC aggregate reports (XML, gzip, zip or an
  email carrying one), DMARC failure reports and SMTP TLS reports.
- :mod:`.suppression` and :mod:`.rates` are pure functions over message events.

Every parser takes raw bytes, never raises on bad input and reports what it
could not read in the result's ``reason``.
"""

from plaudit.messaging.deliverability.arf import parse_arf
from plaudit.messaging.deliverability.bounces import parse_bounce
from plaudit.messaging.deliverability.dmarc import parse_dmarc
from plaudit.messaging.deliverability.model import (
    BounceKind,
    BounceResult,
    FeedbackReport,
    RecipientStatus,
)

__all__ = [
    "BounceKind",
    "BounceResult",
    "FeedbackReport",
    "RecipientStatus",
    "parse_arf",
    "parse_bounce",
    "parse_dmarc",
]
