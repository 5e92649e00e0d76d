"""Typed configuration: one msgspec struct per TOML table.

Every struct forbids unknown fields, so a misspelt key is an error rather than
a silently ignored setting.  Durations are in seconds (floats); paths that are
relative are resolved against the state or runtime directory by the loader.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

# Upper bounds keep values finite and within what SQLite's 64-bit integers and
# Trio's clock handle; a year is far beyond any sensible interval.
YEAR_SECONDS = 365 * 24 * 3600.0
Seconds = Annotated[float, msgspec.Meta(gt=0, le=YEAR_SECONDS)]
NonNegativeSeconds = Annotated[float, msgspec.Meta(ge=0, le=YEAR_SECONDS)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
# A server the daemon connects to: port 0 means "any free port" only when
# listening, so it is no address to connect to.
ServerPort = Annotated[int, msgspec.Meta(ge=1, le=65535)]
PosixId = Annotated[int, msgspec.Meta(ge=0)]


class Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Base for every config table: unknown keys are rejected.

    Subclasses inherit forbid_unknown_fields.  Each subclass repeats kw_only,
    which msgspec applies to a class's own fields only, and frozen, which
    mypy otherwise assumes is off.
    """

    # Fields that repr() shows as '***' when set, so a logged config shows no secret.
    secret_fields: ClassVar[frozenset[str]] = frozenset()

    def __repr__(self) -> str:
        fields = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            text = "'***'" if name in self.secret_fields and value else repr(value)
            fields.append(f"{name}={text}")
        return f"{type(self).__name__}({', '.join(fields)})"


class DaemonConfig(Strict, kw_only=True, frozen=True):
    """The ``[daemon]`` table: where the process keeps its files and how it stops."""

    state_dir: str = "/var/lib/plaudit"
    runtime_dir: str = "/run/plaudit"
    # SIGTERM/SIGINT: stop claiming work, finish or release leases, exit 0
    # within this many seconds.
    shutdown_timeout: Seconds = 20.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"


class JournalConfig(Strict, kw_only=True, frozen=True):
    """The ``[journal]`` table: the SQLite job journal."""

    # Relative paths are resolved against daemon.state_dir.
    path: str = "journal.sqlite3"
    lease_seconds: Seconds = 60.0
    # How often running daemons return expired leases to ready.
    lease_sweep_interval: Seconds = 15.0
    max_attempts: PositiveInt = 8
    retry_initial: Seconds = 5.0
    retry_max: Seconds = 3600.0
    # Group commit: claims and completions arriving within this window share
    # one fsync.  Zero commits each operation on its own.
    # At most one second: every durable write waits up to this long.
    group_commit_window: Annotated[float, msgspec.Meta(ge=0, le=1.0)] = 0.002
    group_commit_max: PositiveInt = 256


class SupervisorConfig(Strict, kw_only=True, frozen=True):
    """The ``[supervisor]`` table: OTP-style restart policy for every actor."""

    # More than max_restarts restarts within within_seconds escalates: the
    # child is marked failed and its siblings keep running.
    max_restarts: PositiveInt = 5
    within_seconds: Seconds = 60.0
    backoff_initial: Seconds = 0.5
    backoff_max: Seconds = 30.0
    # Time a child gets to finish after it is asked to stop.
    shutdown_grace: Seconds = 5.0


class ControlConfig(Strict, kw_only=True, frozen=True):
    """The ``[control]`` table: the newline-delimited JSON control socket."""

    # Relative paths are resolved against daemon.runtime_dir.
    socket: str = "control.sock"
    # Octal file mode of the socket, as a string such as "0660".
    mode: str = "0660"
    # Peers allowed besides root and the daemon's own user: numeric uids,
    # and members of these numeric gids.
    allowed_uids: list[PosixId] = msgspec.field(default_factory=list)
    allowed_gids: list[PosixId] = msgspec.field(default_factory=list)


class MetricsConfig(Strict, kw_only=True, frozen=True):
    """The ``[metrics]`` table: the Prometheus endpoint."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: Port = 9464


class HealthConfig(Strict, kw_only=True, frozen=True):
    """The ``[health]`` table: when a platform or profile counts as degraded or down."""

    # Seconds of job outcomes that the error rate covers.
    window_seconds: Seconds = 60.0
    # Share of failed jobs within the window that makes the state degraded,
    # once the window contains at least minimum_jobs jobs.
    degraded_ratio: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.2
    minimum_jobs: PositiveInt = 5
    # Consecutive failed jobs that make the state degraded, and down.  An open
    # circuit breaker also makes it down.
    degraded_after_failures: PositiveInt = 1
    down_after_failures: PositiveInt = 5


class GoogleLocation(Strict, kw_only=True, frozen=True):
    """One Google Business Profile location whose reviews are synced."""

    # The API resource names, such as "accounts/123" and "locations/456".
    account: str
    location: str
    # The vendor's business name as shown on the profile.
    name: str = ""


class RetryConfig(Strict, kw_only=True, frozen=True):
    """In-call retries of one platform request; the journal's job retries come after these."""

    # Attempts of one call, the first included.
    max_attempts: PositiveInt = 3
    # Seconds one attempt may take in all, a token refresh included.
    attempt_timeout: Seconds = 60.0
    # Seconds all attempts and the waits between them may take together.
    deadline: Seconds = 90.0
    # Full jitter: the wait before attempt n+1 is uniform(0, min(backoff_max,
    # backoff_initial * 2**(n-1))) seconds.
    backoff_initial: Seconds = 0.5
    backoff_max: Seconds = 8.0
    # A Retry-After longer than this ends the call at once, and the job-level
    # retry waits for it instead.
    retry_after_max: NonNegativeSeconds = 30.0


class BreakerConfig(Strict, kw_only=True, frozen=True):
    """A circuit breaker: when to stop calling a failing platform, and for how long."""

    # Consecutive failed calls that open the breaker.
    failure_threshold: PositiveInt = 5
    # Share of failed calls within window_seconds that opens the breaker, once
    # the window contains at least minimum_calls calls.
    failure_ratio: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.5
    window_seconds: Seconds = 60.0
    minimum_calls: PositiveInt = 10
    # Seconds the breaker stays open before one probe call; doubles after each
    # failed probe, up to open_max.
    open_initial: Seconds = 30.0
    open_max: Seconds = 600.0


class RateLimitConfig(Strict, kw_only=True, frozen=True):
    """Token-bucket limits that keep requests within a platform's published quotas."""

    # Requests a minute for the whole platform account (Google: 300 a minute
    # per Cloud project).
    requests_per_minute: PositiveInt = 300
    # Edits (replies) a minute per profile (Google: 10 a minute per location).
    edits_per_minute: PositiveInt = 10


class ApiLimitsConfig(Strict, kw_only=True, frozen=True):
    """Request limits for one API platform, and how to react to its usage headers.

    Each platform has a subclass whose defaults follow its published limits,
    so a table that sets one key keeps that platform's other defaults.
    """

    # Sustained requests a minute for the whole platform account.
    requests_per_minute: PositiveInt = 100
    # Requests that may go out at once before the per-minute rate applies.
    burst: PositiveInt = 100
    # Requests a rolling day; 0 sets no daily limit.
    requests_per_day: Annotated[int, msgspec.Meta(ge=0, le=100_000_000)] = 0
    # Share of a quota, 0 to 1, that the platform's usage headers may report
    # before requests pause for usage_pause_seconds.
    usage_pause_share: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.8
    usage_pause_seconds: Seconds = 300.0


class FacebookLimits(ApiLimitsConfig, kw_only=True, frozen=True):
    """Facebook's ``limits`` table.

    Graph API sets no fixed request count: Page-token calls get a rolling
    24-hour budget of 4,800 times the Page's engaged users, and the
    X-App-Usage, X-Page-Usage and X-Business-Use-Case-Usage headers report
    the share used (developers.facebook.com/docs/graph-api/overview/rate-limiting).
    So the bucket's 100 a minute is an estimate and the headers decide the rest.
    """


class TrustpilotLimits(ApiLimitsConfig, kw_only=True, frozen=True):
    """Trustpilot's ``limits`` table.

    Trustpilot recommends staying under 833 calls per 5 minutes and 10,000
    an hour, both about 166 a minute, and documents no usage headers
    (developers.trustpilot.com/rate-limiting).
    """

    requests_per_minute: PositiveInt = 166
    burst: PositiveInt = 50


class YelpLimits(ApiLimitsConfig, kw_only=True, frozen=True):
    """Yelp's ``limits`` table.

    Yelp Fusion's free tier allowed 5,000 calls a day, reset at midnight UTC,
    and each response carries RateLimit-DailyLimit, RateLimit-Remaining and
    RateLimit-ResetTime.  The newer Starter plan allows 300 a day, so set
    requests_per_day to your plan's figure
    (docs.developer.yelp.com/docs/places-rate-limiting).  Yelp also limits
    queries a second without publishing the number: 5 a second is an estimate.
    """

    requests_per_minute: PositiveInt = 300
    burst: PositiveInt = 5
    requests_per_day: Annotated[int, msgspec.Meta(ge=0, le=100_000_000)] = 5000


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
        loopback = self.imap_host in ("localhost", "::1") or self.imap_host.startswith("127.")
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


class CampaignStep(Strict, kw_only=True, frozen=True):
    """One message of a campaign."""

    # "auto" picks one of ``channels`` per couple when the step is planned.
    channel: Literal["email", "sms", "push", "auto"] = "email"
    # The channels an "auto" step may use; the holdout group gets the first.
    channels: list[Literal["email", "sms", "push"]] = msgspec.field(default_factory=list)
    # Days after the wedding for the first step, after the previous step otherwise.
    delay_days: Annotated[float, msgspec.Meta(ge=0, le=365)]
    # Liquid template sources; check-config renders each with sample values.
    subject: str
    text: str
    html: str = ""
    # Platforms from [vendor] review_links to include; empty means all.
    platforms: list[str] = msgspec.field(default_factory=list)
    # Other wordings tried against this template by Thompson sampling on reviews.
    variants: list[TemplateVariant] = msgspec.field(default_factory=list)
    # Hours after the due time within which send-time optimisation may place the send.
    send_window_hours: Annotated[float, msgspec.Meta(ge=0, le=168)] = 24.0


class TemplateVariant(Strict, kw_only=True, frozen=True):
    """One ``[[campaigns.steps.variants]]`` entry: another wording of its step."""

    # Stored with every assignment; "base" names the step's own template.
    name: str
    subject: str
    text: str
    html: str = ""


class CampaignPersonalisation(Strict, kw_only=True, frozen=True):
    """``[campaigns.personalisation]``: send-time optimisation and the holdout group."""

    send_time: bool = True
    # Share of couples that always get the step's own template at its due time.
    holdout: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.1
    # Days after a send within which a detected review counts as a conversion.
    conversion_days: Annotated[int, msgspec.Meta(ge=1, le=365)] = 14


class CampaignConfig(Strict, kw_only=True, frozen=True):
    """One ``[[campaigns]]`` entry: the steps sent to each imported couple."""

    name: str
    steps: list[CampaignStep]
    # Events that cancel a couple's remaining steps.  A suppressed address
    # (unsubscribe, hard bounce, complaint) never receives mail whatever this
    # lists, because the suppression list is checked before every send.
    stop_on: list[Literal["review", "unsubscribe", "hard_bounce", "complaint"]] = msgspec.field(
        default_factory=lambda: ["review", "unsubscribe", "hard_bounce", "complaint"]
    )
    personalisation: CampaignPersonalisation = msgspec.field(
        default_factory=CampaignPersonalisation
    )


class DraftingConfig(Strict, kw_only=True, frozen=True):
    """``[personalisation.drafting]``: an OpenAI-compatible chat-completions endpoint."""

    # The full endpoint URL, e.g. http://127.0.0.1:8080/v1/chat/completions.
    url: str
    model: str
    # File containing the bearer token; empty sends no Authorization header.
    api_key_file: str = ""
    # Seconds for one draft request, never more than the time left before the send.
    timeout: Seconds = 10.0
    max_chars: Annotated[int, msgspec.Meta(ge=20, le=1000)] = 300
    # Seconds a due send waits for a draft that is not ready; 0 sends the template at once.
    send_wait: Annotated[float, msgspec.Meta(ge=0, le=5)] = 0.5


class PersonalisationConfig(Strict, kw_only=True, frozen=True):
    """``[personalisation]``: how strongly thin send-time data leans on pooled data."""

    # Pseudo-counts: how many observations of the vendor's pattern back each couple's model.
    recipient_prior_weight: Annotated[float, msgspec.Meta(gt=0, le=1000)] = 4.0
    # Pseudo-counts of the uniform prior behind the vendor's pattern.
    vendor_prior_weight: Annotated[float, msgspec.Meta(gt=0, le=10000)] = 24.0
    drafting: DraftingConfig | None = None


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
