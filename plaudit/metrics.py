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
