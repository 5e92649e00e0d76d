"""Webhook tables: outbound ``[webhooks]`` deliveries and the ``[inbound]`` listener."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from plaudit.config.base import Port, PositiveInt, Seconds, Strict

# Seconds to wait after each failed attempt: 5 s, 5 min, 30 min, 2 h, 5 h,
# 10 h, 10 h.  The first attempt is at once, so a delivery gets 8 attempts
# spread over about 27.6 hours.
DEFAULT_WEBHOOK_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


class WebhookEndpoint(Strict, kw_only=True, frozen=True):
    """One ``[[webhooks.endpoints]]`` table: a receiver of signed event deliveries."""

    secret_fields: ClassVar[frozenset[str]] = frozenset({"secrets"})

    # Appears in webhook ids, logs, metrics labels and ctl; keep it short and stable.
    name: str
    url: str
    # "whsec_<base64>" keys; every one signs each delivery, so during a
    # rotation list the new secret beside the old one until receivers switch.
    secrets: list[str]
    # Event types delivered, such as "review.created"; "review.*" matches a
    # prefix and "*" every event.
    events: list[str] = msgspec.field(default_factory=lambda: ["*"])
    enabled: bool = True
    retry_schedule: list[Seconds] = msgspec.field(
        default_factory=lambda: list(DEFAULT_WEBHOOK_SCHEDULE)
    )
    timeout: Seconds = 15.0
    # An endpoint whose deliveries fail for this long without one success is disabled.
    disable_after: Seconds = 432000.0
    # Allow private, loopback and link-local targets (tests, the demo, an
    # on-premises receiver).  Cloud metadata addresses stay refused.
    allow_private: bool = False
    # Attempts to this endpoint in flight at once.  With 1, first attempts
    # arrive in the commit order of their events; more trades order for speed.
    max_in_flight: PositiveInt = 1
    # PEM file of the CAs that may sign an https receiver's certificate, in
    # place of the system bundle (certifi); "" uses the bundle.
    ca_file: str = ""
    # Attempts started per second at most, with bursts of up to one second's
    # worth (at least 1); 0 sets no limit.
    max_per_second: Annotated[float, msgspec.Meta(ge=0, le=10_000)] = 0.0


class WebhooksConfig(Strict, kw_only=True, frozen=True):
    """The ``[webhooks]`` table: outbound event deliveries."""

    # Deliveries in flight at once, across all endpoints.
    concurrency: PositiveInt = 16
    endpoints: list[WebhookEndpoint] = msgspec.field(default_factory=list)


class InboundSendgrid(Strict, kw_only=True, frozen=True):
    """``[inbound.sendgrid]``: the signed Event Webhook's ECDSA verification key."""

    # PEM or base64 DER public key, as SendGrid shows it.
    public_key_file: str


class InboundMailgun(Strict, kw_only=True, frozen=True):
    """``[inbound.mailgun]``: the HTTP webhook signing key."""

    signing_key_file: str


class InboundPostmark(Strict, kw_only=True, frozen=True):
    """``[inbound.postmark]``: the Basic auth credentials put in the webhook URL."""

    username: str
    password_file: str


class InboundSes(Strict, kw_only=True, frozen=True):
    """``[inbound.ses]``: SNS signing certificates, kept locally and never downloaded."""

    # PEM files, or directories whose *.pem files are read; matched by file name.
    certificates: list[str]
    # Accepted TopicArn values; empty accepts any topic signed by a trusted certificate.
    topics: list[str] = msgspec.field(default_factory=list)
    # Hosts besides sns.REGION.amazonaws.com that `plaudit ctl inbound --confirm`
    # may follow a SubscribeURL to (a test or a private SNS-compatible service).
    confirm_hosts: list[str] = msgspec.field(default_factory=list)


class InboundTwilio(Strict, kw_only=True, frozen=True):
    """``[inbound.twilio]``: the auth token and the public URL Twilio posts to."""

    auth_token_file: str
    # The listener's URL as Twilio sees it, without the path, for example
    # "https://hooks.example.com"; the signature covers the full URL.
    public_url: str


class InboundResend(Strict, kw_only=True, frozen=True):
    """``[inbound.resend]``: the ``whsec_`` signing secrets, one per line."""

    secret_file: str


class InboundFacebook(Strict, kw_only=True, frozen=True):
    """``[inbound.facebook]``: the app secret and the subscription verify token."""

    app_secret_file: str
    verify_token_file: str = ""


class InboundGoogle(Strict, kw_only=True, frozen=True):
    """``[inbound.google]``: the keys and expected claims of Pub/Sub push tokens."""

    # PEM certificates or public keys of the token signer, kept locally.
    certificates: list[str]
    audience: str
    issuers: list[str] = msgspec.field(
        default_factory=lambda: ["https://accounts.google.com", "accounts.google.com"]
    )
    # The push subscription's service account; empty accepts any signer of a trusted key.
    email: str = ""


class InboundConfig(Strict, kw_only=True, frozen=True):
    """The ``[inbound]`` table: the listener for provider webhooks and platform pushes."""

    host: str = "127.0.0.1"
    port: Port = 8465
    # Larger request bodies get 413 without being read.
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    # Signed timestamps further than this from the clock are refused as replays.
    timestamp_tolerance: Seconds = 300.0
    sendgrid: InboundSendgrid | None = None
    mailgun: InboundMailgun | None = None
    postmark: InboundPostmark | None = None
    ses: InboundSes | None = None
    twilio: InboundTwilio | None = None
    resend: InboundResend | None = None
    facebook: InboundFacebook | None = None
    google: InboundGoogle | None = None
