"""Polite storefront fetching: one request per profile per interval, robots.txt, conditional GET.

The marketplaces have no API and strong bot protection, so Plaudit requests
pages rarely and openly.  It sends an honest User-Agent naming Plaudit, at
most one request per profile per ``min_interval`` seconds (an hour by
default), nothing that robots.txt disallows, and ``If-None-Match`` /
``If-Modified-Since``, so an unchanged page costs the site a 304.

:class:`FetchPlan` is the pure part (what to send, and when);
:class:`StorefrontFetcher` performs the requests with httpx.
"""

from __future__ import annotations

import random
import time
import urllib.robotparser
from collections.abc import Awaitable, Callable
from typing import Final, Literal, final
from urllib.parse import urlsplit

import httpx
import msgspec
import trio

from plaudit import __version__
from plaudit.config.model import RetryConfig
from plaudit.connectors.marketplace.errors import BlockedPageError
from plaudit.connectors.marketplace.page import check_not_blocked, parse_html
from plaudit.connectors.marketplace.sites import Site
from plaudit.errors import PlatformError
from plaudit.reliability.retry import (
    Failure,
    Verdict,
    classify_status,
    parse_retry_after,
    platform_failure,
    retry_call,
)

DEFAULT_MIN_INTERVAL: Final = 3600.0
# robots.txt is read again after a day, as crawlers commonly do.
ROBOTS_MAX_AGE: Final = 86_400.0
ROBOTS_MAX_BYTES: Final = 512 * 1024
PAGE_MAX_BYTES: Final = 20 * 1024 * 1024
# The product token that robots.txt groups are matched against.
ROBOTS_AGENT: Final = "Plaudit"

FetchOutcome = Literal["fetched", "not_modified", "too_soon", "disallowed"]


def user_agent(contact: str) -> str:
    """Return the User-Agent: Plaudit, its version, and who runs it."""
    return f"{ROBOTS_AGENT}/{__version__} (wedding vendor review monitor; contact {contact})"


@final
class FetchResult(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of one fetch attempt."""

    outcome: FetchOutcome
    url: str
    # The URL after redirects, or the requested URL when no request was sent.
    final_url: str
    status: int | None = None
    html: str | None = None
    # Monotonic seconds when the next request for the profile is allowed.
    next_allowed_at: float


@final
class _ProfileState(msgspec.Struct, kw_only=True):
    last_request_at: float | None = None
    etag: str | None = None
    last_modified: str | None = None


@final
class FetchPlan:
    """The pure scheduling state: last request per profile and its validators."""

    def __init__(self, *, min_interval: float = DEFAULT_MIN_INTERVAL) -> None:
        if min_interval <= 0:
            raise ValueError(f"invalid min_interval {min_interval!r}: expected seconds above 0")
        self.min_interval = min_interval
        self._profiles: dict[str, _ProfileState] = {}

    def __repr__(self) -> str:
        return f"<FetchPlan profiles={len(self._profiles)} min_interval={self.min_interval}>"

    def statistics(self) -> dict[str, int]:
        """Return the number of profiles tracked and how many have validators."""
        validated = sum(1 for state in self._profiles.values() if state.etag or state.last_modified)
        return {"profiles": len(self._profiles), "with_validators": validated}

    def next_allowed_at(self, profile: str) -> float:
        """Return the monotonic time from which the profile may be fetched again."""
        last = self._state(profile).last_request_at
        return float("-inf") if last is None else last + self.min_interval

    def request_headers(self, profile: str) -> dict[str, str]:
        """Return the conditional-request headers from the profile's last 200 response."""
        state = self._state(profile)
        headers = {}
        if state.etag:
            headers["If-None-Match"] = state.etag
        if state.last_modified:
            headers["If-Modified-Since"] = state.last_modified
        return headers

    def record(self, profile: str, *, now: float, status: int, headers: httpx.Headers) -> None:
        """Record a response: the request time always, the validators only from a 200."""
        state = self._state(profile)
        state.last_request_at = now
        if status == 200:
            state.etag = headers.get("etag")
            state.last_modified = headers.get("last-modified")

    def touch(self, profile: str, *, now: float) -> None:
        """Record a request for the profile without changing its validators."""
        self._state(profile).last_request_at = now

    def _state(self, profile: str) -> _ProfileState:
        return self._profiles.setdefault(profile, _ProfileState())


@final
class StorefrontFetcher:
    """Fetches storefront pages through one httpx client, following :class:`FetchPlan`."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        contact: str,
        min_interval: float = DEFAULT_MIN_INTERVAL,
        clock: Callable[[], float] = trio.current_time,
        retry: RetryConfig | None = None,
        sleep: Callable[[float], Awaitable[None]] = trio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._agent = user_agent(contact)
        self._clock = clock
        # None makes one attempt per request, as a RetryConfig with max_attempts = 1 would.
        self.retry = retry or RetryConfig(max_attempts=1)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._retries = 0
        self.plan = FetchPlan(min_interval=min_interval)
        self._robots: dict[str, tuple[float, urllib.robotparser.RobotFileParser]] = {}
        self._requests = 0
        self._not_modified = 0
        self._skipped = 0
        self._disallowed = 0
        self._robots_failures = 0

    def __repr__(self) -> str:
        return f"<StorefrontFetcher requests={self._requests} robots_hosts={len(self._robots)}>"

    def statistics(self) -> dict[str, int]:
        """Return counts of page requests, 304 responses, waits and robots.txt outcomes."""
        return {
            "requests": self._requests,
            "not_modified": self._not_modified,
            "too_soon": self._skipped,
            "disallowed": self._disallowed,
            "robots_failures": self._robots_failures,
            "retries": self._retries,
        }

    async def robots_allow(self, url: str) -> bool:
        """Return whether the host's robots.txt lets Plaudit fetch ``url``.

        Raises RobotsUnavailableError when the robots.txt cannot be read.
        """
        return await self._robots_allow(url, self._clock())

    async def fetch(self, url: str, *, site: Site, profile: str) -> FetchResult:
        """Fetch one storefront page unless it is too soon or robots.txt disallows it.

        Raises BlockedPageError for a challenge or block page,
        RobotsUnavailableError when the host's robots.txt cannot be read, and
        PlatformError for other failures (retryable for timeouts,
        connection errors, 429 and 5xx).
        """
        now = self._clock()
        allowed_at = self.plan.next_allowed_at(profile)
        if now < allowed_at:
            self._skipped += 1
            return FetchResult(
                outcome="too_soon", url=url, final_url=url, next_allowed_at=allowed_at
            )

        if not await self._robots_allow(url, now):
            self._disallowed += 1
            self.plan.record(profile, now=now, status=0, headers=httpx.Headers())
            return FetchResult(
                outcome="disallowed",
                url=url,
                final_url=url,
                next_allowed_at=self.plan.next_allowed_at(profile),
            )

        headers = {"User-Agent": self._agent, **self.plan.request_headers(profile)}
        # Recorded before sending, so a failed request also waits out the interval.
        self.plan.record(profile, now=now, status=0, headers=httpx.Headers())
        response = await self._get(url, headers, site=site, profile=profile)
        self._requests += 1
        self.plan.record(profile, now=now, status=response.status_code, headers=response.headers)
        return self._result(url, response, site=site, profile=profile)

    async def fetch_page(self, url: str, *, site: Site, profile: str) -> FetchResult:
        """Fetch a further review page of the storefront just fetched, unless robots.txt forbids it.

        The caller paces these requests and caps their number; each one
        restarts the profile's interval.  No validators are sent, because
        only the first page's are kept.  Raises as :meth:`fetch` does.
        """
        now = self._clock()
        if not await self._robots_allow(url, now):
            self._disallowed += 1
            return FetchResult(
                outcome="disallowed",
                url=url,
                final_url=url,
                next_allowed_at=self.plan.next_allowed_at(profile),
            )

        self.plan.touch(profile, now=now)
        response = await self._get(url, {"User-Agent": self._agent}, site=site, profile=profile)
        self._requests += 1
        return self._result(url, response, site=site, profile=profile)

    def _result(
        self, url: str, response: httpx.Response, *, site: Site, profile: str
    ) -> FetchResult:
        final_url = str(response.url)
        next_allowed = self.plan.next_allowed_at(profile)
        if response.status_code == 304:
            self._not_modified += 1
            return FetchResult(
                outcome="not_modified",
                url=url,
                final_url=final_url,
                status=304,
                next_allowed_at=next_allowed,
            )

        text = response.content[:PAGE_MAX_BYTES].decode(response.encoding or "utf-8", "replace")
        if response.status_code in (403, 429, 503):
            # Bot protection responds with these statuses, and the body shows whether it did.
            check_not_blocked(parse_html(text), text, site=site, profile=profile)
        if response.status_code != 200:
            raise _status_error(response, site=site, profile=profile)

        return FetchResult(
            outcome="fetched",
            url=url,
            final_url=final_url,
            status=200,
            html=text,
            next_allowed_at=next_allowed,
        )

    async def _get(
        self, url: str, headers: dict[str, str], *, site: Site, profile: str
    ) -> httpx.Response:
        """Request ``url`` with the in-call retries of ``self.retry``; return the last response.

        A retryable status (408, 425, 429, 5xx) is retried unless its body is
        a bot challenge, which only a later, slower poll may pass.  When the
        retries run out, the last response is returned for :meth:`_result`.
        """
        last: list[httpx.Response] = []

        async def attempt() -> httpx.Response:
            response = await self._get_once(url, headers, site=site)
            last[:] = [response]
            if classify_status(response.status_code) is Verdict.RETRY:
                self._raise_unless_blocked(response, site=site, profile=profile)
            return response

        def classify(error: Exception) -> Failure | None:
            return None if isinstance(error, BlockedPageError) else platform_failure(error)

        def count(_error: Exception, _attempt: int, _delay: float) -> None:
            self._retries += 1

        try:
            return await retry_call(
                attempt,
                policy=self.retry,
                what=f"{site.display_name} storefront request to {url}",
                classify=classify,
                rng=self._rng,
                sleep=self._sleep,
                clock=self._clock,
                on_retry=count,
            )
        except _RetryableStatus:
            # The retries ran out on a status; _result turns it into the usual error.
            return last[0]

    def _raise_unless_blocked(self, response: httpx.Response, *, site: Site, profile: str) -> None:
        text = response.content[:PAGE_MAX_BYTES].decode(response.encoding or "utf-8", "replace")
        if response.status_code in (403, 429, 503):
            check_not_blocked(parse_html(text), text, site=site, profile=profile)
        raise _RetryableStatus(
            response.status_code,
            retry_after=parse_retry_after(response.headers.get("retry-after"), now=time.time()),
        )

    async def _get_once(self, url: str, headers: dict[str, str], *, site: Site) -> httpx.Response:
        try:
            return await self._client.get(url, headers=headers, follow_redirects=True)
        except httpx.HTTPError as error:
            retryable = isinstance(error, httpx.TransportError) and not isinstance(
                error, httpx.UnsupportedProtocol
            )
            raise PlatformError(
                f"{site.display_name} storefront request to {url} failed: "
                f"{error.__class__.__name__}: {error}; check the URL and the network",
                retryable=retryable,
            ) from error

    async def _robots_allow(self, url: str, now: float) -> bool:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        cached = self._robots.get(origin)
        if cached is None or now - cached[0] > ROBOTS_MAX_AGE:
            try:
                cached = (now, await self._read_robots(origin))
            except RobotsUnavailableError:
                # RFC 9309 lets a crawler keep using a robots.txt it read before
                # while the file is unreachable.
                if cached is None:
                    raise
            else:
                self._robots[origin] = cached
        return cached[1].can_fetch(ROBOTS_AGENT, url)

    async def _read_robots(self, origin: str) -> urllib.robotparser.RobotFileParser:
        """Read the rules of ``origin``, or raise RobotsUnavailableError when they cannot be read.

        RFC 9309: a 4xx robots.txt means no rules apply.  A 5xx or no response
        at all means the site may be crawled later, but not now.
        """
        url = f"{origin}/robots.txt"
        try:
            response = await self._client.get(
                url, headers={"User-Agent": self._agent}, follow_redirects=True
            )
        except httpx.HTTPError as error:
            self._robots_failures += 1
            raise RobotsUnavailableError(url, f"{error.__class__.__name__}: {error}") from error

        rules = urllib.robotparser.RobotFileParser()
        if 400 <= response.status_code < 500:
            rules.parse([])
        elif response.status_code != 200:
            self._robots_failures += 1
            raise RobotsUnavailableError(url, f"HTTP {response.status_code}")
        else:
            text = response.content[:ROBOTS_MAX_BYTES].decode("utf-8", "replace")
            rules.parse(text.splitlines())
        return rules


@final
class RobotsUnavailableError(PlatformError):
    """A site's robots.txt could not be read, so none of its pages are requested now.

    Retryable: the rules are read again at the next attempt.
    """

    def __init__(self, url: str, cause: str) -> None:
        self.url = url
        super().__init__(
            f"failed to read {url} ({cause}); no storefront page of the host is requested "
            "until its robots.txt can be read, and the request will be retried later",
            retryable=True,
        )


@final
class _RetryableStatus(PlatformError):
    """A retryable HTTP status inside the retry loop; never leaves :class:`StorefrontFetcher`."""

    def __init__(self, status: int, *, retry_after: float | None) -> None:
        super().__init__(
            f"HTTP {status}; retried in the call",
            retryable=True,
            retry_after=retry_after,
            status=status,
        )


def _status_error(response: httpx.Response, *, site: Site, profile: str) -> PlatformError:
    status = response.status_code
    if status in {404, 410}:
        return PlatformError(
            f"{site.display_name} storefront of profile {profile!r} was not found "
            f"(HTTP {status} at {response.url}); check the storefront URL in the config",
            retryable=False,
            status=status,
        )

    retryable = status in (408, 429) or status >= 500
    return PlatformError(
        f"{site.display_name} storefront of profile {profile!r} returned HTTP {status} "
        f"at {response.url}; " + ("it will be retried later" if retryable else "check the URL"),
        retryable=retryable,
        status=status,
    )
