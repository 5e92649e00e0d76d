"""Tables that keep platform calls healthy: retries, circuit breakers, rate limits, health."""

from __future__ import annotations

from typing import Annotated

import msgspec

from plaudit.config.base import NonNegativeSeconds, PositiveInt, Seconds, Strict


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
