"""Messaging tables: the sender, SMTP, SMS, web push, deliverability and operator alerts."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from plaudit.config.base import PositiveInt, Seconds, ServerPort, Strict, is_loopback_host
from plaudit.config.reliability_tables import RetryConfig

Fraction = Annotated[float, msgspec.Meta(gt=0, le=1)]


class BounceMailboxConfig(Strict, kw_only=True, frozen=True):
    """The ``[deliverability.mailbox]`` table: where returned messages and complaints arrive."""

    # A Maildir (with new/, cur/ and tmp/); relative paths are taken from
    # [daemon] state_dir.  "" reads no Maildir.
    maildir: str = ""
    # IMAP server of the bounce mailbox; "" reads no IMAP mailbox.
    imap_host: str = ""
    imap_port: ServerPort = 993
    imap_user: str = ""
    imap_password_file: str = ""
    imap_folder: str = "INBOX"
    # "tls" (implicit TLS, port 993), "starttls" (port 143) or "none" (loopback only).
    imap_security: Literal["tls", "starttls", "none"] = "tls"
    poll_interval: Seconds = 60.0

    def __post_init__(self) -> None:
        if self.imap_host and not (self.imap_user and self.imap_password_file):
            raise ValueError("imap_host needs imap_user and imap_password_file; set both")
        loopback = is_loopback_host(self.imap_host)
        if self.imap_security == "none" and self.imap_host and not loopback:
            raise ValueError(
                f"imap_security = 'none' would send the password to {self.imap_host!r} in "
                "clear text: use 'tls' or 'starttls'; 'none' is for loopback hosts only"
            )


class DeliverabilityConfig(Strict, kw_only=True, frozen=True):
    """The ``[deliverability]`` table: suppression, rate thresholds and the bounce mailbox."""

    # Soft bounces (and hard bounces without a 5.1.x code) that suppress an
    # address when they all fall within soft_bounce_window seconds.
    soft_bounce_limit: PositiveInt = 3
    soft_bounce_window: Seconds = 14 * 86400.0
    # Rates as fractions: 0.001 is 0.1 %.  The complaint defaults follow
    # Gmail's sender guidelines (under 0.1 %, never 0.3 %).
    complaint_alert: Fraction = 0.001
    complaint_critical: Fraction = 0.003
    hard_bounce_alert: Fraction = 0.02
    # Rolling windows in seconds; rates are computed over each one.
    windows: list[Seconds] = msgspec.field(
        default_factory=lambda: [86400.0, 7 * 86400.0, 30 * 86400.0]
    )
    # Messages a window needs before its rates may raise an alert.
    min_attempts: PositiveInt = 100
    # Seconds between two rate evaluations in the daemon.
    evaluate_interval: Seconds = 300.0
    # DNS resolver for `plaudit check-sender`, "IP" or "IP:PORT"; "" means
    # the command needs --resolver or --system-resolver.
    resolver: str = ""
    mailbox: BounceMailboxConfig | None = None


class VendorConfig(Strict, kw_only=True, frozen=True):
    """The ``[vendor]`` table: who sends review requests; required for e-mail (CAN-SPAM)."""

    name: str
    # The physical postal address printed in every message.
    postal_address: str
    from_address: str
    reply_to: str = ""
    # IANA zone for couples without one.
    timezone: str = "UTC"
    # Public review pages linked in every request, keyed by platform.  Yelp is
    # rejected by check-config: Yelp forbids asking for reviews.
    review_links: dict[str, str] = msgspec.field(default_factory=dict)
    # Base of the one-click unsubscribe link; the request token is appended.
    unsubscribe_url: str = ""
    unsubscribe_mailto: str = ""


class SmtpConfig(Strict, kw_only=True, frozen=True):
    """The ``[smtp]`` table: the submission server for review requests."""

    secret_fields: ClassVar[frozenset[str]] = frozenset({"password"})

    host: str
    port: ServerPort = 587
    # "starttls" upgrades a plain connection; "tls" connects with TLS (port 465).
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str = ""
    password: str = ""
    timeout: Seconds = 30.0
    # In-call retries of failures before the DATA command only.  attempt_timeout
    # is not applied, because cancelling after DATA would lose the outcome, so
    # the per-command timeout above bounds each attempt instead.
    # NOTE: no rule checks that deadline plus one attempt stays below [journal]
    # lease_seconds (60 s by default), which at-most-once sending needs.
    retry: RetryConfig = msgspec.field(
        default_factory=lambda: RetryConfig(deadline=20.0, backoff_initial=1.0, backoff_max=5.0)
    )


class SmsConfig(Strict, kw_only=True, frozen=True):
    """The ``[sms]`` table: Twilio Programmable Messaging for SMS review requests."""

    # "AC" followed by 32 hexadecimal digits; also the Basic auth user name.
    account_sid: str
    # File with the account's auth token, the Basic auth password.
    auth_token_file: str
    # Exactly one sender: an E.164 number or a Messaging Service SID ("MG...").
    from_number: str = ""
    messaging_service_sid: str = ""
    # Twilio's REST API base, such as "https://api.twilio.com"; the sandbox serves it on loopback.
    base_url: str
    # The inbound listener's Twilio route as Twilio reaches it; empty sends no StatusCallback.
    status_callback_url: str = ""
    # The reply to an inbound HELP: the vendor's name and contact line.
    help_text: str = ""
    # Seconds for one API request; a timed-out send is retried only after a journal check.
    timeout: Seconds = 15.0
    # In-call retries of 429, 5xx and connection failures that sent nothing.
    retry: RetryConfig = msgspec.field(default_factory=RetryConfig)


class PushConfig(Strict, kw_only=True, frozen=True):
    """The ``[push]`` table: Web Push with VAPID (RFC 8292) for push review requests."""

    # PEM file with the VAPID P-256 private key.
    vapid_private_key_file: str
    # The sender contact put in every VAPID token: "mailto:..." or an https URL.
    subject: str
    # Seconds a push service keeps an undelivered message (the TTL header).
    ttl: Annotated[int, msgspec.Meta(ge=0, le=28 * 86400)] = 4 * 86400
    # Seconds for one request to a push service.
    timeout: Seconds = 15.0
    retry: RetryConfig = msgspec.field(default_factory=RetryConfig)
    # Allow subscription endpoints on loopback or private addresses (the sandbox).
    allow_private_endpoints: bool = False


class OperatorConfig(Strict, kw_only=True, frozen=True):
    """The ``[operator]`` table: who receives operator alerts."""

    # Addresses that receive each new alert by e-mail through [smtp]; with
    # none, alerts are only listed by `plaudit ctl alerts`.
    email: list[str] = msgspec.field(default_factory=list)
    # Sender of alert e-mail; empty uses [vendor] from_address.
    from_address: str = ""
    # Phone numbers (E.164) that also receive each new alert as a text
    # through [sms], once the e-mail has gone out or when there is none.
    sms: list[str] = msgspec.field(default_factory=list)
