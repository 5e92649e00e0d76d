"""Google Business Profile API v4: OAuth2 refresh, review listing and replies.

Parsing is pure (:func:`parse_review_list`, :func:`parse_review`) so recorded
responses can be checked without a network.  :class:`GoogleClient` adds the
I/O.  It gets an access token from the refresh-token grant and caches it until
shortly before it expires.  Every request follows the shared retry policy
of :mod:`plaudit.reliability.retry`: a few in-call attempts with exponential
backoff and full jitter.  Longer waits belong to the journal's job retries.

This module contains the client and re-exports the public names of the modules
beside it: ``google_parse`` (response parsing), ``google_auth`` (access
tokens), ``google_reviews`` (listing pages, ids and reply checks) and
``google_errors`` (HTTP failures as PlatformError).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Final, Self, TypeVar, final

import httpx
import msgspec
import trio

from plaudit.config.model import GoogleConfig, RetryConfig
from plaudit.connectors.apiclient import (
    outcome_of,
    outcome_of_error,
    read_limited,
    translate_http_error,
)
from plaudit.connectors.base import Capability, IngestionMode
from plaudit.connectors.google_auth import TOKEN_EXPIRY_MARGIN, AccessToken
from plaudit.connectors.google_errors import raise_for_status
from plaudit.connectors.google_parse import (
    PLATFORM,
    PostedReply,
    ReviewPage,
    deduplicate_reviews,
    parse_reply,
    parse_review,
    parse_review_list,
)
from plaudit.connectors.google_reviews import (
    MAX_REPLY_BYTES,
    ORDER_BY,
    ReviewListing,
    check_reply_text,
    check_review_id,
    collect_listing,
    profile_name,
)
from plaudit.connectors.retry_causes import count_retry
from plaudit.connectors.tls import shared_ssl_context
from plaudit.errors import PlatformError, ReconnectRequiredError
from plaudit.metrics import PLATFORM_REQUEST_DURATION, PLATFORM_REQUESTS
from plaudit.reliability.limiter import TokenBucket, parse_usage_headers
from plaudit.reliability.retry import Verdict, call_with_retry, classify_status
from plaudit.reviews.model import Review

__all__ = [
    "MAX_REPLY_BYTES",
    "ORDER_BY",
    "PLATFORM",
    "TOKEN_EXPIRY_MARGIN",
    "GoogleClient",
    "GoogleClientStatistics",
    "PostedReply",
    "ReviewListing",
    "ReviewPage",
    "deduplicate_reviews",
    "parse_reply",
    "parse_review",
    "parse_review_list",
    "profile_name",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclasses.dataclass(slots=True)
class _Call:
    """One API call across its attempts."""

    method: str
    url: str
    # "METHOD path", for messages and logs.
    what: str
    params: dict[str, str | int] | None
    json: dict[str, str] | None
    # Set once the call has refreshed the token after a 401.
    refreshed: bool = False


@final
class GoogleClientStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of one client since it was created."""

    requests: int
    retries: int
    token_refreshes: int
    # Seconds until the cached access token is refreshed; None without one.
    token_valid_for: float | None
    last_status: int | None


@final
class GoogleClient:
    """Async client for the Business Profile API v4, for use under Trio.

    One client serves one Google account connection; it caches one access
    token and shares it between concurrent calls.
    """

    name: Final = PLATFORM
    # PUSH: the inbound listener verifies Pub/Sub pushes and turns NEW_REVIEW
    # and UPDATED_REVIEW into a sync of that location (plaudit.inbound.inbox).
    # NOTE: profile verification is not implemented yet; add VERIFY_PROFILE
    # here when it is.
    capabilities: Final = frozenset({Capability.LIST, Capability.PUSH, Capability.REPLY})
    ingestion_modes: Final = frozenset({IngestionMode.API_POLL, IngestionMode.PUSH})

    def __init__(
        self,
        config: GoogleConfig,
        *,
        client_secret: str,
        refresh_token: str,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryConfig | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = trio.sleep,
        clock: Callable[[], float] = trio.current_time,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._retry = retry or config.retry
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._clock = clock
        self._wall_clock = wall_clock
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(config.request_timeout),
            follow_redirects=False,
            verify=shared_ssl_context(),
        )
        self._api_base = config.api_base.rstrip("/")
        self._token = AccessToken(
            config,
            client_secret=client_secret,
            refresh_token=refresh_token,
            post_form=lambda url, form: self._send("POST", url, data=form),
            clock=clock,
            wall_clock=wall_clock,
        )
        # Google's quotas: requests a minute per Cloud project, and edits a
        # minute per location.
        self._request_bucket = TokenBucket.per_minute(
            PLATFORM, config.limits.requests_per_minute, clock=clock
        )
        self._edit_buckets: dict[str, TokenBucket] = {}
        self._requests = 0
        self._retries = 0
        self._last_status: int | None = None

    def __repr__(self) -> str:
        return (
            f"<GoogleClient api_base={self._api_base!r} token={self._token.state} "
            f"requests={self._requests} retries={self._retries}>"
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    def statistics(self) -> GoogleClientStatistics:
        """Return the client's counters and token state."""
        token = self._token.statistics()
        return GoogleClientStatistics(
            requests=self._requests,
            retries=self._retries,
            token_refreshes=token.refreshes,
            token_valid_for=token.valid_for,
            last_status=self._last_status,
        )

    # Reviews.

    async def list_reviews_page(
        self,
        account: str,
        location: str,
        page_token: str | None = None,
        page_size: int | None = None,
    ) -> ReviewPage:
        """Fetch one page of a location's reviews, most recently updated first."""
        profile = profile_name(account, location)
        params: dict[str, str | int] = {
            "pageSize": page_size or self._config.page_size,
            # Incremental syncs stop at the first page older than what is stored.
            "orderBy": ORDER_BY,
        }
        if page_token:
            params["pageToken"] = page_token

        parse = functools.partial(parse_review_list, profile=profile)
        return await self._call_api("GET", f"{profile}/reviews", parse, params=params)

    async def list_all_reviews(
        self,
        account: str,
        location: str,
        *,
        page_size: int | None = None,
        max_pages: int = 200,
    ) -> ReviewListing:
        """Fetch every review of a location by following nextPageToken.

        Paging stops after ``max_pages`` pages (the default covers 10,000
        reviews at 50 a page) or when Google repeats a page token.  The listing
        is then marked incomplete.  A reviewId seen more than once is kept
        once, as :func:`deduplicate_reviews` describes, and logged.
        """
        profile = profile_name(account, location)

        async def fetch_page(page_token: str | None) -> ReviewPage:
            return await self.list_reviews_page(account, location, page_token, page_size)

        return await collect_listing(profile, fetch_page, max_pages=max_pages)

    async def get_review(self, account: str, location: str, review_id: str) -> Review:
        """Fetch one review; a deleted or unknown review raises PlatformError with status 404."""
        profile = profile_name(account, location)
        check_review_id(review_id)
        parse = functools.partial(parse_review, profile=profile)
        return await self._call_api("GET", f"{profile}/reviews/{review_id}", parse)

    async def reply(self, account: str, location: str, review_id: str, text: str) -> PostedReply:
        """Create or replace the vendor's public reply to a review.

        PUT replaces the reply, so repeating the call after a lost response
        is harmless.
        """
        profile = profile_name(account, location)
        check_review_id(review_id)
        check_reply_text(text)
        path = f"{profile}/reviews/{review_id}/reply"
        await self._edit_bucket(profile).acquire()
        return await self._call_api("PUT", path, parse_reply, json={"comment": text})

    # Requests, retries and tokens.

    async def _call_api(
        self,
        method: str,
        path: str,
        parse: Callable[[bytes], _T],
        *,
        params: dict[str, str | int] | None = None,
        json: dict[str, str] | None = None,
    ) -> _T:
        """Send an authorised API request with in-call retries and return the parsed body.

        A retryable failure, a malformed body included, is retried up to the
        policy's attempts.
        """
        call = _Call(method, f"{self._api_base}/{path}", f"{method} {path}", params, json)

        async def attempt() -> _T:
            response = await self._send_refreshing(call)
            raise_for_status(response, call.what, now=self._wall_clock())
            return parse(response.content)

        return await call_with_retry(
            attempt,
            policy=self._retry,
            what=call.what,
            rng=self._rng,
            sleep=self._sleep,
            clock=self._clock,
            on_retry=self._count_retry,
        )

    async def _send_refreshing(self, call: _Call) -> httpx.Response:
        """Send the call once; on its first 401, refresh the token and send it again."""
        response = await self._send_authorized(call)
        if classify_status(response.status_code) is Verdict.REFRESH and not call.refreshed:
            # An access token can be revoked before it expires: refresh once
            # per call and repeat the request.
            call.refreshed = True
            log.info("google.token_rejected", extra={"request": call.what})
            count_retry(PLATFORM, PlatformError(call.what, retryable=True, status=401))
            self._token.forget()
            response = await self._send_authorized(call)

        if response.status_code == 401:
            raise ReconnectRequiredError(
                f"{call.what}: Google rejected a freshly refreshed access token (HTTP 401); "
                "reconnect the Google account and check the business.manage scope"
            )

        return response

    def _edit_bucket(self, profile: str) -> TokenBucket:
        bucket = self._edit_buckets.get(profile)
        if bucket is None:
            # Named by platform, not profile, to keep the metric's labels few.
            bucket = TokenBucket.per_minute(
                f"{PLATFORM}.edits", self._config.limits.edits_per_minute, clock=self._clock
            )
            self._edit_buckets[profile] = bucket
        return bucket

    def _count_retry(self, error: PlatformError, attempt: int, delay: float) -> None:
        self._retries += 1
        count_retry(PLATFORM, error)

    async def _send_authorized(self, call: _Call) -> httpx.Response:
        token = await self._token.get()
        headers = {"Authorization": f"Bearer {token}"}
        await self._request_bucket.acquire()
        response = await self._send(
            call.method, call.url, headers=headers, params=call.params, json=call.json
        )
        usage = parse_usage_headers(response.headers)
        if usage is not None and usage.remaining is not None:
            self._request_bucket.observe_remaining(usage.remaining, usage.reset_seconds)
        return response

    async def _send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str | int] | None = None,
        json: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send one HTTP request, translating httpx errors and recording metrics."""
        started = self._clock()
        self._requests += 1
        try:
            async with self._http.stream(
                method, url, headers=headers, params=params, json=json, data=data
            ) as streamed:
                response = await read_limited(streamed, f"{method} {url}", platform=PLATFORM)
        except httpx.HTTPError as error:
            PLATFORM_REQUESTS.labels(platform=PLATFORM, outcome=outcome_of_error(error)).inc()
            raise translate_http_error(
                error,
                method,
                url,
                platform=PLATFORM,
                timeout=self._config.request_timeout,
                url_keys=("api_base", "token_url"),
            ) from error
        finally:
            PLATFORM_REQUEST_DURATION.labels(platform=PLATFORM).observe(self._clock() - started)

        self._last_status = response.status_code
        PLATFORM_REQUESTS.labels(platform=PLATFORM, outcome=outcome_of(response.status_code)).inc()
        return response
