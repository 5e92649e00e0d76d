"""The ``[platforms]`` tables: one per review platform, with the profiles it syncs."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from plaudit.config.base import NonNegativeSeconds, Seconds, ServerPort, Strict
from plaudit.config.reliability_tables import (
    BreakerConfig,
    FacebookLimits,
    RateLimitConfig,
    RetryConfig,
    TrustpilotLimits,
    YelpLimits,
)


class GoogleLocation(Strict, kw_only=True, frozen=True):
    """One Google Business Profile location whose reviews are synced."""

    # The API resource names, such as "accounts/123" and "locations/456".
    account: str
    location: str
    # The vendor's business name as shown on the profile.
    name: str = ""


class GoogleConfig(Strict, kw_only=True, frozen=True):
    """The ``[platforms.google]`` table: Google Business Profile API v4."""

    secret_fields: ClassVar[frozenset[str]] = frozenset({"client_secret", "refresh_token"})

    enabled: bool = True
    # No default on purpose: production uses Google's endpoints, the demo and
    # the tests use the sandbox on loopback.
    api_base: str
    token_url: str
    client_id: str
    # Exactly one of each pair: the secret itself, or a file that contains it.
    client_secret: str = ""
    client_secret_file: str = ""
    refresh_token: str = ""
    refresh_token_file: str = ""
    sync_interval: Seconds = 300.0
    # Seconds between full listings of a location.  Only full listings find
    # deletions and replies made in Google's dashboard, because the syncs
    # between them stop at reviews older than those stored.
    full_sync_interval: Seconds = 3600.0
    # Seconds before the newest stored update time at which an incremental
    # sync stops, so updates that Google lists late are still read.
    incremental_overlap: NonNegativeSeconds = 3600.0
    # Google serves at most 50 reviews a page.
    page_size: Annotated[int, msgspec.Meta(ge=1, le=50)] = 50
    request_timeout: Seconds = 30.0
    locations: list[GoogleLocation] = msgspec.field(default_factory=list)
    retry: RetryConfig = msgspec.field(default_factory=RetryConfig)
    breaker: BreakerConfig = msgspec.field(default_factory=BreakerConfig)
    limits: RateLimitConfig = msgspec.field(default_factory=RateLimitConfig)


class FacebookPage(Strict, kw_only=True, frozen=True):
    """One Facebook Page whose ratings are synced."""

    # The numeric Page id.
    page_id: str
    name: str = ""
    # Exactly one of: the Page access token itself, or a file that contains it.
    access_token: str = ""
    access_token_file: str = ""

    secret_fields: ClassVar[frozenset[str]] = frozenset({"access_token"})


class FacebookConfig(Strict, kw_only=True, frozen=True):
    """The ``[platforms.facebook]`` table: the Graph API ``/{page-id}/ratings`` edge."""

    secret_fields: ClassVar[frozenset[str]] = frozenset({"app_secret", "verify_token"})

    enabled: bool = True
    # Graph API base URL including the version, such as ".../v19.0".
    api_base: str
    # Checks X-Hub-Signature-256 on Page webhooks; one of the pair, or neither
    # when webhooks are not used.
    app_secret: str = ""
    app_secret_file: str = ""
    # The token the webhook subscription handshake must echo.
    verify_token: str = ""
    sync_interval: Seconds = 300.0
    page_size: Annotated[int, msgspec.Meta(ge=1, le=100)] = 25
    request_timeout: Seconds = 30.0
    pages: list[FacebookPage] = msgspec.field(default_factory=list)
    retry: RetryConfig = msgspec.field(default_factory=RetryConfig)
    breaker: BreakerConfig = msgspec.field(default_factory=BreakerConfig)
    limits: FacebookLimits = msgspec.field(default_factory=FacebookLimits)


class TrustpilotBusinessUnit(Strict, kw_only=True, frozen=True):
    """One Trustpilot business unit whose service reviews are synced."""

    business_unit_id: str
    name: str = ""


class TrustpilotConfig(Strict, kw_only=True, frozen=True):
    """The ``[platforms.trustpilot]`` table: service and private reviews, and replies."""

    secret_fields: ClassVar[frozenset[str]] = frozenset({"api_secret"})

    enabled: bool = True
    api_base: str
    # OAuth 2.0 client-credentials token endpoint.
    token_url: str
    api_key: str
    # Exactly one of the pair.
    api_secret: str = ""
    api_secret_file: str = ""
    sync_interval: Seconds = 300.0
    page_size: Annotated[int, msgspec.Meta(ge=1, le=100)] = 100
    request_timeout: Seconds = 30.0
    business_units: list[TrustpilotBusinessUnit] = msgspec.field(default_factory=list)
    retry: RetryConfig = msgspec.field(default_factory=RetryConfig)
    breaker: BreakerConfig = msgspec.field(default_factory=BreakerConfig)
    limits: TrustpilotLimits = msgspec.field(default_factory=TrustpilotLimits)


class YelpBusiness(Strict, kw_only=True, frozen=True):
    """One Yelp business whose review excerpts are monitored."""

    # The Yelp business id or alias.
    business_id: str
    name: str = ""


class YelpConfig(Strict, kw_only=True, frozen=True):
    """The ``[platforms.yelp]`` table: monitoring only, because Yelp forbids asking for reviews."""

    secret_fields: ClassVar[frozenset[str]] = frozenset({"api_key"})

    enabled: bool = True
    api_base: str
    # Exactly one of the pair: the Fusion API key, sent as a Bearer token.
    api_key: str = ""
    api_key_file: str = ""
    sync_interval: Seconds = 3600.0
    request_timeout: Seconds = 30.0
    businesses: list[YelpBusiness] = msgspec.field(default_factory=list)
    retry: RetryConfig = msgspec.field(default_factory=RetryConfig)
    breaker: BreakerConfig = msgspec.field(default_factory=BreakerConfig)
    limits: YelpLimits = msgspec.field(default_factory=YelpLimits)


MarketplaceMode = Literal["mailbox", "storefront", "import"]


class MarketplaceProfile(Strict, kw_only=True, frozen=True):
    """One ``[[platforms.marketplace.profiles]]`` table: a vendor on one marketplace site."""

    # A name of plaudit.connectors.marketplace.sites.SITES, such as "hitched".
    site: str
    # The vendor's id on the site; it keys the stored reviews.
    profile_id: str
    # The business name the storefront must show (fuzzy match) for verification.
    vendor_name: str
    storefront_url: str = ""
    # The link couples follow to write a review; empty means the site's default
    # derived from storefront_url.
    review_link: str = ""
    modes: list[MarketplaceMode] = msgspec.field(default_factory=lambda: ["mailbox"])
    # mode "mailbox": a Maildir (new/ and cur/) that receives this profile's
    # notifications; relative paths are taken from [daemon] state_dir.
    maildir: str = ""
    # mode "mailbox": an IMAP folder read as well as or instead of the
    # Maildir; "" reads none.  The keys mean what they mean in
    # [deliverability.mailbox]; imap_password_file is an absolute path.
    imap_host: str = ""
    imap_port: ServerPort = 993
    imap_user: str = ""
    imap_password_file: str = ""
    imap_folder: str = "INBOX"
    imap_security: Literal["tls", "starttls", "none"] = "tls"
    # mode "import": a folder watched for dropped CSV or JSON review files;
    # relative paths are taken from [daemon] state_dir.
    import_folder: str = ""
    # mode "storefront": seconds between page requests, at least 900 unless
    # allow_short_poll_interval is set on the marketplace table.
    poll_interval: Seconds = 3600.0
    # mode "storefront": review pages read per poll, the first included,
    # following the pages' next-page links; 1 reads only the first page.
    # One page request per poll_interval by default.  Raise it to read a
    # backlog spread over several pages.
    max_pages: Annotated[int, msgspec.Meta(ge=1, le=50)] = 1
    # Accept a storefront_url on any host (the sandbox on loopback).
    allow_any_host: bool = False


class MarketplaceConfig(Strict, kw_only=True, frozen=True):
    """The ``[platforms.marketplace]`` table: sites without a review API."""

    enabled: bool = True
    # Named in the User-Agent of storefront requests, so a site can reach the operator.
    contact: str = ""
    request_timeout: Seconds = 30.0
    # Seconds between passes over each Maildir and each import folder.
    mailbox_interval: Seconds = 60.0
    import_interval: Seconds = 60.0
    # Lets poll_interval go below 900 seconds; for the sandbox and tests only.
    allow_short_poll_interval: bool = False
    # Seconds between the review pages of one storefront poll.
    page_delay: Seconds = 5.0
    profiles: list[MarketplaceProfile] = msgspec.field(default_factory=list)
    breaker: BreakerConfig = msgspec.field(default_factory=BreakerConfig)
    # In-call retries of one storefront request: connection failures, timeouts,
    # 408, 429 and 5xx, never a bot challenge page.  One retry by default,
    # because the sites are polled rarely and politely.
    retry: RetryConfig = msgspec.field(
        default_factory=lambda: RetryConfig(max_attempts=2, backoff_initial=2.0)
    )


class PlatformsConfig(Strict, kw_only=True, frozen=True):
    """The ``[platforms]`` table: one sub-table per review platform."""

    google: GoogleConfig | None = None
    facebook: FacebookConfig | None = None
    trustpilot: TrustpilotConfig | None = None
    yelp: YelpConfig | None = None
    marketplace: MarketplaceConfig | None = None
