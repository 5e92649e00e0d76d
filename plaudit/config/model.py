"""Typed configuration: one msgspec struct per TOML table.

Every struct forbids unknown fields, so a misspelt key is an error rather than
a silently ignored setting.  Durations are in seconds (floats); paths that are
relative are resolved against the state or runtime directory by the loader.

This module defines the root `Config` and re-exports every table struct, so
callers import them all from here.  The tables live in modules by subject:
``base`` (the `Strict` base and value types), ``daemon_tables``,
``reliability_tables``, ``platform_tables``, ``webhook_tables``,
``messaging_tables`` and ``campaign_tables``.
"""

from __future__ import annotations

import msgspec

from plaudit.config.base import (
    YEAR_SECONDS,
    NonNegativeSeconds,
    Port,
    PositiveInt,
    PosixId,
    Seconds,
    ServerPort,
    Strict,
)
from plaudit.config.campaign_tables import (
    CampaignConfig,
    CampaignPersonalisation,
    CampaignStep,
    DraftingConfig,
    PersonalisationConfig,
    TemplateVariant,
)
from plaudit.config.daemon_tables import (
    ControlConfig,
    DaemonConfig,
    JournalConfig,
    MetricsConfig,
    SupervisorConfig,
)
from plaudit.config.messaging_tables import (
    BounceMailboxConfig,
    DeliverabilityConfig,
    Fraction,
    OperatorConfig,
    PushConfig,
    SmsConfig,
    SmtpConfig,
    VendorConfig,
)
from plaudit.config.platform_tables import (
    FacebookConfig,
    FacebookPage,
    GoogleConfig,
    GoogleLocation,
    MarketplaceConfig,
    MarketplaceMode,
    MarketplaceProfile,
    PlatformsConfig,
    TrustpilotBusinessUnit,
    TrustpilotConfig,
    YelpBusiness,
    YelpConfig,
)
from plaudit.config.reliability_tables import (
    ApiLimitsConfig,
    BreakerConfig,
    FacebookLimits,
    HealthConfig,
    RateLimitConfig,
    RetryConfig,
    TrustpilotLimits,
    YelpLimits,
)
from plaudit.config.webhook_tables import (
    DEFAULT_WEBHOOK_SCHEDULE,
    InboundConfig,
    InboundFacebook,
    InboundGoogle,
    InboundMailgun,
    InboundPostmark,
    InboundResend,
    InboundSendgrid,
    InboundSes,
    InboundTwilio,
    WebhookEndpoint,
    WebhooksConfig,
)

__all__ = [
    "DEFAULT_WEBHOOK_SCHEDULE",
    "YEAR_SECONDS",
    "ApiLimitsConfig",
    "BounceMailboxConfig",
    "BreakerConfig",
    "CampaignConfig",
    "CampaignPersonalisation",
    "CampaignStep",
    "Config",
    "ControlConfig",
    "DaemonConfig",
    "DeliverabilityConfig",
    "DraftingConfig",
    "FacebookConfig",
    "FacebookLimits",
    "FacebookPage",
    "Fraction",
    "GoogleConfig",
    "GoogleLocation",
    "HealthConfig",
    "InboundConfig",
    "InboundFacebook",
    "InboundGoogle",
    "InboundMailgun",
    "InboundPostmark",
    "InboundResend",
    "InboundSendgrid",
    "InboundSes",
    "InboundTwilio",
    "JournalConfig",
    "MarketplaceConfig",
    "MarketplaceMode",
    "MarketplaceProfile",
    "MetricsConfig",
    "NonNegativeSeconds",
    "OperatorConfig",
    "PersonalisationConfig",
    "PlatformsConfig",
    "Port",
    "PositiveInt",
    "PosixId",
    "PushConfig",
    "RateLimitConfig",
    "RetryConfig",
    "Seconds",
    "ServerPort",
    "SmsConfig",
    "SmtpConfig",
    "Strict",
    "SupervisorConfig",
    "TemplateVariant",
    "TrustpilotBusinessUnit",
    "TrustpilotConfig",
    "TrustpilotLimits",
    "VendorConfig",
    "WebhookEndpoint",
    "WebhooksConfig",
    "YelpBusiness",
    "YelpConfig",
    "YelpLimits",
]


class Config(Strict, kw_only=True, frozen=True):
    """The whole configuration file."""

    daemon: DaemonConfig = msgspec.field(default_factory=DaemonConfig)
    journal: JournalConfig = msgspec.field(default_factory=JournalConfig)
    supervisor: SupervisorConfig = msgspec.field(default_factory=SupervisorConfig)
    control: ControlConfig = msgspec.field(default_factory=ControlConfig)
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    health: HealthConfig = msgspec.field(default_factory=HealthConfig)
    platforms: PlatformsConfig = msgspec.field(default_factory=PlatformsConfig)
    webhooks: WebhooksConfig = msgspec.field(default_factory=WebhooksConfig)
    deliverability: DeliverabilityConfig = msgspec.field(default_factory=DeliverabilityConfig)
    vendor: VendorConfig | None = None
    smtp: SmtpConfig | None = None
    campaigns: list[CampaignConfig] = msgspec.field(default_factory=list)
    operator: OperatorConfig = msgspec.field(default_factory=OperatorConfig)
    personalisation: PersonalisationConfig = msgspec.field(default_factory=PersonalisationConfig)
    # No listener runs without this table.
    inbound: InboundConfig | None = None
    # SMS steps need [sms]; push steps need [push].
    sms: SmsConfig | None = None
    push: PushConfig | None = None
