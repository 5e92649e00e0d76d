"""Result records of the bounce and feedback-report parsers."""

from __future__ import annotations

from typing import Literal, final

import msgspec

BounceKind = Literal[
    "hard_bounce", "soft_bounce", "policy_block", "complaint", "not_bounce", "unknown"
]
FeedbackKind = Literal["complaint", "dmarc_failure", "not_bounce", "unknown"]


@final
class RecipientStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome for one recipient of a returned message."""

    recipient: str | None
    kind: BounceKind
    # False for a delay warning (the sending server keeps trying), None when unknown.
    final: bool | None
    # The effective RFC 3463 code, made more specific from the diagnostic text
    # where the reported one is generic (5.0.0 plus "550 5.1.1 user unknown").
    status: str | None
    reported_status: str | None = None
    action: str | None = None
    original_recipient: str | None = None
    diagnostic: str | None = None
    remote_mta: str | None = None


@final
class BounceResult(msgspec.Struct, frozen=True, kw_only=True):
    """The classification of one returned message."""

    kind: BounceKind
    final: bool | None
    status: str | None
    recipient: str | None
    reason: str
    # Parsing path: "dsn" (a delivery-status part), "dsn_text" (DSN fields in
    # plain text), "plain_text", "autoreply", "arf" or "empty".
    source: str
    recipients: tuple[RecipientStatus, ...] = ()
    # Message-ID of the message that bounced; it links the bounce to its request.
    original_message_id: str | None = None
    reporting_mta: str | None = None
    subject: str | None = None


@final
class FeedbackReport(msgspec.Struct, frozen=True, kw_only=True):
    """A complaint or authentication-failure report (RFC 5965 or a feedback loop)."""

    kind: FeedbackKind
    reason: str
    # "arf" for an RFC 5965 report, "jmrp" for Microsoft's format, "plain" otherwise.
    source: str
    feedback_type: str | None = None
    user_agent: str | None = None
    version: str | None = None
    original_mail_from: str | None = None
    original_rcpt_to: tuple[str, ...] = ()
    arrival_date: str | None = None
    reported_domain: tuple[str, ...] = ()
    source_ip: str | None = None
    reporting_mta: str | None = None
    auth_failure: str | None = None
    authentication_results: str | None = None
    original_message_id: str | None = None
    original_to: str | None = None
    original_from: str | None = None
    original_subject: str | None = None

    @property
    def recipient(self) -> str | None:
        """The complaining recipient: the first Original-Rcpt-To, else the original To."""
        if self.original_rcpt_to:
            return self.original_rcpt_to[0]

        return self.original_to
