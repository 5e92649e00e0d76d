"""Prometheus metrics, all in one registry that ``/metrics`` exposes.

Labels stay low-cardinality: actor, platform, kind, state and outcome names,
never ids or URLs.  Histogram buckets are sized for slow platform APIs and
durable commits rather than the client library's web-request defaults.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

# Jobs run from a few milliseconds (journal-only work) to a minute (a full
# platform sync with retries).
JOB_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
# A durable SQLite commit is one or two fsyncs: tenths of a millisecond on
# fast disks, tens of milliseconds on slow ones.
COMMIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
REQUEST_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)

ACTOR_RESTARTS = Counter(
    "plaudit_actor_restarts_total",
    "Restarts of a supervised actor or service task.",
    ["actor"],
    registry=REGISTRY,
)
ACTOR_STATE = Gauge(
    "plaudit_actor_state",
    "1 for the state each supervised actor is in, 0 for the others.",
    ["actor", "state"],
    registry=REGISTRY,
)
JOBS = Gauge(
    "plaudit_jobs",
    "Jobs in the journal by kind and state, refreshed on each scrape.",
    ["kind", "state"],
    registry=REGISTRY,
)
JOB_DURATION = Histogram(
    "plaudit_job_duration_seconds",
    "Time from claiming a job to recording its outcome.",
    ["kind", "outcome"],
    buckets=JOB_BUCKETS,
    registry=REGISTRY,
)
JOURNAL_COMMIT = Histogram(
    "plaudit_journal_commit_seconds",
    "Latency of one durable journal commit (a group of operations).",
    buckets=COMMIT_BUCKETS,
    registry=REGISTRY,
)
JOURNAL_GROUP_SIZE = Histogram(
    "plaudit_journal_commit_operations",
    "Operations that shared one journal commit.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
    registry=REGISTRY,
)
READY = Gauge(
    "plaudit_ready",
    "1 once the daemon has opened the journal and started its actors, 0 while draining.",
    registry=REGISTRY,
)
CONFIG_RELOAD_OK = Gauge(
    "plaudit_config_last_reload_successful",
    "1 when the last configuration load or reload succeeded, 0 when it was rejected.",
    registry=REGISTRY,
)
CONFIG_RELOAD_TIME = Gauge(
    "plaudit_config_last_reload_success_timestamp_seconds",
    "Unix time of the last successful configuration load or reload.",
    registry=REGISTRY,
)
PLATFORM_REQUESTS = Counter(
    "plaudit_platform_requests_total",
    "HTTP requests to review platforms by outcome (ok, retryable, error).",
    ["platform", "outcome"],
    registry=REGISTRY,
)
UNKNOWN_ENUM_VALUES = Counter(
    "plaudit_platform_unknown_values_total",
    "Review fields whose value this Plaudit does not know (stored as no rating), by platform "
    "and field.",
    ["platform", "field"],
    registry=REGISTRY,
)
PLATFORM_RETRIES = Counter(
    "plaudit_platform_retries_total",
    "Failed platform call attempts that were repeated, by platform and cause (server_error, "
    "rate_limited, unauthorized, timeout, connection, malformed_body, missing_field, other).",
    ["platform", "cause"],
    registry=REGISTRY,
)
PLATFORM_REQUEST_DURATION = Histogram(
    "plaudit_platform_request_duration_seconds",
    "Latency of HTTP requests to review platforms.",
    ["platform"],
    buckets=REQUEST_BUCKETS,
    registry=REGISTRY,
)
REVIEWS_CHANGED = Counter(
    "plaudit_reviews_changed_total",
    "Review changes written to the journal, by platform and change "
    "(created, updated, deleted, replied).",
    ["platform", "change"],
    registry=REGISTRY,
)
# The report's headline figures, refreshed by the matching task about once a minute.
REPORT_REVIEWS = Gauge(
    "plaudit_report_reviews",
    "Live reviews in the journal, by platform.",
    ["platform"],
    registry=REGISTRY,
)
REPORT_AVERAGE_STARS = Gauge(
    "plaudit_report_average_stars",
    "Mean star rating (1 to 5) of live reviews, by platform; absent without star ratings.",
    ["platform"],
    registry=REGISTRY,
)
REPORT_POSITIVE_RATIO = Gauge(
    "plaudit_report_positive_recommendation_ratio",
    "Share (0 to 1) of recommendations that are positive, by platform; absent without any.",
    ["platform"],
    registry=REGISTRY,
)
REPORT_REPLY_RATIO = Gauge(
    "plaudit_report_reply_ratio",
    "Share (0 to 1) of live reviews with a vendor reply, by platform; absent without reviews.",
    ["platform"],
    registry=REGISTRY,
)
REPORT_FUNNEL = Gauge(
    "plaudit_report_funnel_couples",
    "Couples at each stage of the review request (couples, sent, delivered, clicked, reviewed).",
    ["stage"],
    registry=REGISTRY,
)
REPORT_CONVERSION = Gauge(
    "plaudit_report_conversion_ratio",
    "Share (0 to 1) of couples sent a request who left a confirmed review; absent before a send.",
    registry=REGISTRY,
)
REPORT_MATCHES = Gauge(
    "plaudit_report_review_matches",
    "Review-to-couple matches by state (candidate, confirmed, rejected).",
    ["state"],
    registry=REGISTRY,
)
REPORT_LEAD_PLATFORM = Gauge(
    "plaudit_report_lead_platform",
    "1 for the platform whose review link the report recommends leading with, 0 for the others.",
    ["platform"],
    registry=REGISTRY,
)
REPORT_REFRESHED = Gauge(
    "plaudit_report_last_refresh_timestamp_seconds",
    "Unix time of the last refresh of matches and report figures.",
    registry=REGISTRY,
)
BREAKER_STATE = Gauge(
    "plaudit_circuit_breaker_state",
    "1 for the state each circuit breaker is in (closed, open, half-open), 0 for the others.",
    ["breaker", "state"],
    registry=REGISTRY,
)
RATE_LIMIT_WAIT = Counter(
    "plaudit_rate_limit_wait_seconds_total",
    "Seconds requests waited for a rate-limit token, by limiter.",
    ["limiter"],
    registry=REGISTRY,
)
PLATFORM_QUOTA_USED = Gauge(
    "plaudit_platform_quota_used_ratio",
    "Share of its quota, 0 to 1, that a platform last reported as used in its usage headers.",
    ["platform"],
    registry=REGISTRY,
)
PLATFORM_STATE = Gauge(
    "plaudit_platform_state",
    "1 for the health state each platform is in "
    "(healthy, degraded, down, paused, reconnect-required), 0 for the others.",
    ["platform", "state"],
    registry=REGISTRY,
)
PLATFORM_UPTIME = Gauge(
    "plaudit_platform_uptime_ratio",
    "Time-weighted share of observed time a platform was up, over a window (1h, 24h, 30d).",
    ["platform", "window"],
    registry=REGISTRY,
)
PLATFORM_INCIDENTS = Counter(
    "plaudit_platform_incidents_total",
    "Platform incidents opened, by the state that opened them.",
    ["platform", "state"],
    registry=REGISTRY,
)
WEBHOOK_DELIVERIES = Counter(
    "plaudit_webhook_deliveries_total",
    "Webhook delivery outcomes (delivered, retry, dead, disabled, skipped).",
    ["outcome"],
    registry=REGISTRY,
)
WEBHOOK_ATTEMPT = Histogram(
    "plaudit_webhook_attempt_seconds",
    "Duration of one webhook delivery attempt, up to its timeout.",
    buckets=REQUEST_BUCKETS,
    registry=REGISTRY,
)
WEBHOOK_ENDPOINTS_DISABLED = Gauge(
    "plaudit_webhook_endpoints_disabled",
    "Webhook endpoints disabled after 410 Gone or continuous failure.",
    registry=REGISTRY,
)
WEBHOOK_ENDPOINT_DISABLES = Counter(
    "plaudit_webhook_endpoint_disables_total",
    "Times a webhook endpoint was disabled, by reason (gone, failing).",
    ["reason"],
    registry=REGISTRY,
)
MESSAGE_EVENTS = Counter(
    "plaudit_message_events_total",
    "Deliverability events recorded (delivered, bounces by kind, complaints, ...).",
    ["provider", "kind"],
    registry=REGISTRY,
)
SUPPRESSIONS = Counter(
    "plaudit_suppressions_total",
    "Addresses added to the suppression list, by reason.",
    ["reason"],
    registry=REGISTRY,
)
REVIEW_REQUESTS = Counter(
    "plaudit_review_requests_total",
    "Review request steps by channel and outcome (sent, unconfirmed, bounced, suppressed,"
    " stopped, retried).",
    ["channel", "outcome"],
    registry=REGISTRY,
)
CHANNEL_MESSAGES = Counter(
    "plaudit_channel_messages_total",
    "SMS and push messages by channel (sms, push) and outcome: sent (accepted by Twilio or "
    "the push service), delivered (Twilio status callback), failed (rejected or undelivered), "
    "opted_out (STOP or Twilio error 21610; a push subscription gone with 404 or 410).",
    ["channel", "outcome"],
    registry=REGISTRY,
)

DELIVERABILITY_RATE = Gauge(
    "plaudit_deliverability_rate",
    "Deliverability rate (0 to 1) per provider over the shortest rolling window; "
    "kind is delivery, hard_bounce or complaint.",
    ["provider", "kind"],
    registry=REGISTRY,
)
MARKETPLACE_FETCHES = Counter(
    "plaudit_marketplace_storefront_fetches_total",
    "Storefront fetch attempts per marketplace site, by outcome (fetched, not_modified, "
    "too_soon, disallowed, blocked, markup_drift, not_a_storefront, unavailable, failed).",
    ["site", "outcome"],
    registry=REGISTRY,
)
BOUNCE_MESSAGES = Counter(
    "plaudit_bounce_messages_total",
    "Messages read from the bounce mailbox, by outcome (recorded, ignored, rejected).",
    ["outcome"],
    registry=REGISTRY,
)

INBOUND_REQUESTS = Counter(
    "plaudit_inbound_requests_total",
    "Requests to the inbound webhook listener, by provider and outcome "
    "(accepted, duplicate, forged, stale, malformed, oversized, not_found, ...).",
    ["provider", "outcome"],
    registry=REGISTRY,
)
INBOUND_PROCESSED = Counter(
    "plaudit_inbound_events_processed_total",
    "Stored inbound events processed, by provider and outcome (processed, ignored).",
    ["provider", "outcome"],
    registry=REGISTRY,
)
INBOUND_POISON_EVENTS = Counter(
    "plaudit_inbound_events_failed_total",
    "Stored inbound events whose processing raised; each is marked failed and skipped.",
    ["provider"],
    registry=REGISTRY,
)
UNSUBSCRIBE_REQUESTS = Counter(
    "plaudit_unsubscribe_requests_total",
    "Requests to the one-click unsubscribe pages, by outcome "
    "(confirm, unsubscribed, not_found, malformed, method_not_allowed, unavailable).",
    ["outcome"],
    registry=REGISTRY,
)
OPERATOR_ALERTS_SENT = Counter(
    "plaudit_operator_alerts_sent_total",
    "Operator alerts handled by the notifier, by outcome (sent, listed, retried, failed).",
    ["outcome"],
    registry=REGISTRY,
)
PERSONALISATION_PLANS = Counter(
    "plaudit_personalisation_plans_total",
    "Review requests planned by personalisation, by group (holdout, treatment) and timing "
    "(due: sent at the due time or later, deferred: moved to a later chosen hour).",
    ["arm", "timing"],
    registry=REGISTRY,
)
PERSONALISATION_CHANNELS = Counter(
    "plaudit_personalisation_channels_total",
    "Channels chosen for steps with channel auto, by group (holdout, treatment) and channel "
    "(email, sms, push).",
    ["arm", "channel"],
    registry=REGISTRY,
)
PERSONALISATION_DRAFTS = Counter(
    "plaudit_personalisation_drafts_total",
    "AI drafts of opening lines, by state (accepted, rejected, failed, timed_out, off).",
    ["state"],
    registry=REGISTRY,
)
