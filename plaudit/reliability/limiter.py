"""Token buckets that keep requests within a platform's quotas.

A bucket holds up to ``capacity`` tokens and gains ``rate`` tokens a second.
A request takes one token, waiting on Trio's clock until one is there.
Waiters are served in arrival order, so a burst cannot starve an early
caller.

Platforms that report their remaining quota in response headers can drain a
bucket further with :meth:`TokenBucket.observe_remaining`; see
:func:`parse_usage_headers` for the headers read.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import weakref
from collections.abc import Callable, Mapping
from typing import Final, final

import msgspec
import trio

from plaudit import metrics
from plaudit.config.model import ApiLimitsConfig

log = logging.getLogger(__name__)

_DAY_SECONDS: Final = 86_400.0

# Tokens short of a whole cost that still count as there, in tokens.
_TOLERANCE = 1e-9
_PERCENT_FIELDS = frozenset({"call_count", "total_cputime", "total_time"})


@final
class LimiterStatistics(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    rate_per_second: float
    capacity: float
    tokens: float
    waiting: int
    acquired: int
    # Total seconds callers waited for a token.
    waited_seconds: float


@final
class TokenBucket:
    """One token bucket; ``clock`` defaults to Trio's, so tests run on a virtual clock."""

    def __init__(
        self,
        name: str,
        *,
        rate: float,
        capacity: float,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"token bucket {name}: rate must be positive, got {rate!r}")
        if not capacity >= 1:
            raise ValueError(f"token bucket {name}: capacity must be at least 1, got {capacity!r}")

        self.name = name
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity
        self._updated: float | None = None
        self._lock = trio.Lock()
        self._waiting = 0
        self._acquired = 0
        self._waited = 0.0

    @classmethod
    def per_minute(
        cls, name: str, count: int, *, clock: Callable[[], float] = trio.current_time
    ) -> TokenBucket:
        """Return a bucket for ``count`` requests a minute, allowing a burst of all of them."""
        return cls(name, rate=count / 60.0, capacity=float(count), clock=clock)

    def __repr__(self) -> str:
        return (
            f"<TokenBucket {self.name} rate={self.rate:g}/s tokens={self._refill():.2f}"
            f"/{self.capacity:g} waiting={self._waiting}>"
        )

    def statistics(self) -> LimiterStatistics:
        return LimiterStatistics(
            name=self.name,
            rate_per_second=self.rate,
            capacity=self.capacity,
            tokens=self._refill(),
            waiting=self._waiting,
            acquired=self._acquired,
            waited_seconds=self._waited,
        )

    def delay_for(self, cost: float = 1.0) -> float:
        """Return the seconds until ``cost`` tokens are there; 0 when they are there now."""
        missing = cost - self._refill()
        # Float rounding can leave a sliver missing that no sleep could ever add.
        return 0.0 if missing <= _TOLERANCE else missing / self.rate

    def try_acquire(self, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens if they are there and no caller waits; return whether it did."""
        if self._waiting or self.delay_for(cost) > 0:
            return False

        self._tokens -= cost
        self._acquired += 1
        return True

    async def acquire(self, cost: float = 1.0) -> None:
        """Wait until ``cost`` tokens are there, then take them."""
        if cost > self.capacity:
            raise ValueError(
                f"token bucket {self.name}: a cost of {cost:g} can never be met "
                f"with a capacity of {self.capacity:g}"
            )

        self._waiting += 1
        began = self._clock()
        try:
            # The lock serves waiters in arrival order (trio.Lock is fair).
            async with self._lock:
                # Sleeping is the point: tokens arrive with time, not with an event.  The
                # loop re-checks because observe_remaining() may drain the bucket meanwhile.
                while (delay := self.delay_for(cost)) > 0:  # noqa: ASYNC110
                    await trio.sleep(delay)
                self._tokens -= cost
        finally:
            self._waiting -= 1

        waited = self._clock() - began
        self._acquired += 1
        self._waited += waited
        if waited > 0:
            metrics.RATE_LIMIT_WAIT.labels(self.name).inc(waited)

    def observe_remaining(self, remaining: float, reset_seconds: float | None = None) -> None:
        """Drain the bucket to what the platform reports as left of its quota.

        ``remaining`` requests are left until the quota resets in
        ``reset_seconds``.  The bucket never gains tokens this way: our own
        estimate stays the upper bound.
        """
        tokens = self._refill()
        if remaining < tokens:
            self._tokens = max(0.0, remaining)
        if reset_seconds is not None and remaining <= 0 and reset_seconds > 0:
            # Nothing left: wait out the reset rather than the refill rate.
            self._tokens = min(self._tokens, -self.rate * reset_seconds)

    def _refill(self) -> float:
        now = self._clock()
        if self._updated is not None:
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        return self._tokens


@final
class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """A platform's report of its own quota use, from response headers."""

    # Requests left in the current quota window, when the platform reports it.
    remaining: float | None = None
    # Seconds until the window resets, when the platform reports it.
    reset_seconds: float | None = None
    # Highest share of a quota used, 0 to 100, from percentage-style headers.
    percent_used: float | None = None
    # Requests the whole window allows (Yelp's RateLimit-DailyLimit).
    limit: float | None = None

    def used_ratio(self) -> float | None:
        """Return the larger share used, 0 to 1, of the percentage and count headers."""
        shares: list[float] = []
        if self.percent_used is not None:
            shares.append(self.percent_used / 100.0)
        if self.limit and self.remaining is not None:
            shares.append((self.limit - self.remaining) / self.limit)
        return min(1.0, max(0.0, *shares)) if shares else None


def parse_usage_headers(headers: Mapping[str, str], *, now: float | None = None) -> Usage | None:
    """Read quota headers from a response; None when it carries none.

    Read: ``RateLimit-Remaining`` / ``RateLimit-Reset`` (the IETF httpapi
    draft, also Yelp's ``RateLimit-Remaining``) and their common
    ``X-RateLimit-*`` forms; Yelp's ``RateLimit-DailyLimit`` and
    ``RateLimit-ResetTime`` (an ISO 8601 time, read only when ``now``, the
    Unix time, is given); and the Graph API's JSON usage headers
    ``X-App-Usage``, ``X-Page-Usage`` and ``X-Business-Use-Case-Usage``
    (percentages).  Google Business Profile sends no quota headers: its only
    signal is 429 RESOURCE_EXHAUSTED, which the retry policy handles.
    ``headers`` must look names up case-insensitively, as httpx.Headers does.
    """
    remaining = _number(headers.get("RateLimit-Remaining") or headers.get("X-RateLimit-Remaining"))
    reset = _number(headers.get("RateLimit-Reset") or headers.get("X-RateLimit-Reset"))
    if reset is None and now is not None:
        reset = _seconds_until(headers.get("RateLimit-ResetTime"), now)
    limit = _number(headers.get("RateLimit-DailyLimit"))
    percent = None
    for name in ("X-App-Usage", "X-Page-Usage", "X-Business-Use-Case-Usage"):
        value = headers.get(name)
        if value:
            found = _max_percentage(value)
            if found is not None:
                percent = found if percent is None else max(percent, found)

    if remaining is None and reset is None and percent is None and limit is None:
        return None

    return Usage(remaining=remaining, reset_seconds=reset, percent_used=percent, limit=limit)


def _seconds_until(value: str | None, now: float) -> float | None:
    if not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return max(0.0, moment.timestamp() - now)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip().split(",")[0].split(";")[0])
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _max_percentage(value: str) -> float | None:
    """Return the largest usage percentage in a Graph API usage header, at any depth.

    Only ``call_count``, ``total_cputime`` and ``total_time`` are percentages;
    other fields (such as ``estimated_time_to_regain_access``, in minutes) are
    skipped.
    """
    try:
        document = json.loads(value)
    except ValueError:
        return None

    numbers: list[float] = []
    stack: list[object] = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        for key, field in item.items():
            if key in _PERCENT_FIELDS and isinstance(field, int | float):
                numbers.append(float(field))
            elif isinstance(field, dict | list):
                stack.append(field)
    return max(numbers) if numbers else None


@final
class QuotaStatistics(msgspec.Struct, frozen=True, kw_only=True):
    platform: str
    # Share of the quota, 0 to 1, that the platform last reported as used;
    # None until a response carries usage headers.
    used_ratio: float | None
    # Seconds until requests resume after a usage pause; 0 when not paused.
    paused_seconds: float
    pauses: int
    requests: LimiterStatistics
    daily: LimiterStatistics | None


# The live limiter of each platform, for `ctl health`; a reload replaces it.
_LIMITERS: weakref.WeakValueDictionary[str, QuotaLimiter] = weakref.WeakValueDictionary()


def quota_statistics(platform: str) -> QuotaStatistics | None:
    """Return the statistics of the platform's live limiter; None when it has none."""
    limiter = _LIMITERS.get(platform)
    return None if limiter is None else limiter.statistics()


@final
class QuotaLimiter:
    """Keeps one API platform's requests within its configured and reported quotas.

    A request waits for a token of the per-minute bucket, of the daily bucket
    when ``requests_per_day`` is set, and out any usage pause.  A response's
    usage headers (:func:`parse_usage_headers`) drain the buckets to what the
    platform reports as left.  Once they report ``usage_pause_share`` or more
    of a quota used, requests pause: a count-style quota (remaining and reset
    time) spreads what is left evenly until the reset, and a percentage-style
    quota (Graph API) pauses for ``usage_pause_seconds``.
    """

    def __init__(
        self,
        platform: str,
        config: ApiLimitsConfig,
        *,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.platform = platform
        self.config = config
        self._clock = clock
        self._requests = TokenBucket(
            platform,
            rate=config.requests_per_minute / 60.0,
            capacity=float(config.burst),
            clock=clock,
        )
        self._daily: TokenBucket | None = None
        if config.requests_per_day:
            # A rolling day approximates a quota that resets at a fixed hour; the
            # RateLimit-Remaining header corrects the estimate downwards.
            self._daily = TokenBucket(
                f"{platform}.daily",
                rate=config.requests_per_day / _DAY_SECONDS,
                capacity=float(config.requests_per_day),
                clock=clock,
            )
        self._paused_until = -math.inf
        self._pauses = 0
        self._used_ratio: float | None = None
        _LIMITERS[platform] = self

    def __repr__(self) -> str:
        used = "-" if self._used_ratio is None else f"{self._used_ratio:.2f}"
        return (
            f"<QuotaLimiter {self.platform} used={used} "
            f"paused={self._pause_remaining():.1f}s pauses={self._pauses}>"
        )

    def statistics(self) -> QuotaStatistics:
        return QuotaStatistics(
            platform=self.platform,
            used_ratio=self._used_ratio,
            paused_seconds=self._pause_remaining(),
            pauses=self._pauses,
            requests=self._requests.statistics(),
            daily=None if self._daily is None else self._daily.statistics(),
        )

    async def acquire(self) -> None:
        """Wait until one more request keeps within every quota, then count it."""
        # Sleeping is the point: a pause ends with time.  The loop re-checks
        # because a response that arrives meanwhile may extend the pause.
        while (delay := self._pause_remaining()) > 0:  # noqa: ASYNC110
            await trio.sleep(delay)
        if self._daily is not None:
            await self._daily.acquire()
        await self._requests.acquire()

    def observe(self, usage: Usage | None) -> None:
        """Apply one response's usage headers: drain the buckets, pause when near a quota."""
        if usage is None:
            return

        if usage.remaining is not None:
            bucket = self._daily if self._daily is not None else self._requests
            bucket.observe_remaining(usage.remaining, usage.reset_seconds)

        ratio = usage.used_ratio()
        if ratio is None:
            return
        self._used_ratio = ratio
        metrics.PLATFORM_QUOTA_USED.labels(self.platform).set(ratio)
        if ratio >= self.config.usage_pause_share:
            self._pause(self._pause_seconds(usage), ratio)

    def _pause_seconds(self, usage: Usage) -> float:
        if usage.remaining is not None and usage.reset_seconds is not None:
            return usage.reset_seconds / max(usage.remaining, 1.0)
        return self.config.usage_pause_seconds

    def _pause(self, seconds: float, ratio: float) -> None:
        until = self._clock() + seconds
        if until <= self._paused_until:
            return

        if self._pause_remaining() <= 0:
            # Logged when a pause begins, not on each response that extends it.
            self._pauses += 1
            log.warning(
                "platform.quota_pause",
                extra={"platform": self.platform, "used_ratio": ratio, "seconds": seconds},
            )
        self._paused_until = until

    def _pause_remaining(self) -> float:
        return max(0.0, self._paused_until - self._clock())
