"""Google Business Profile API v4: OAuth2 refresh, review listing and replies.

Parsing is pure (:func:`parse_review_list`, :func:`parse_review`) so recorded
responses can be checked without a network.  :class:`GoogleClient` adds the
I/O.  It gets an access token from the refresh-token grant and caches it until
shortly before it expires.  Every request follows the shared retry policy
of :mod:`plaudit.reliability.retry`: a few in-call attempts with exponential
backoff and full jitter.  Longer waits belong to the journal's job retries.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Final, Self, TypeVar, final

import httpx
import msgspec
import trio

from plaudit.config.model import GoogleConfig, RetryConfig
from plaudit.connectors.apiclient import read_limited
from plaudit.connectors.base import Capability, IngestionMode
from plaudit.connectors.retry_causes import count_retry
from plaudit.connectors.tls import shared_ssl_context
from plaudit.errors import PlatformError, ReconnectRequiredError
from plaudit.metrics import PLATFORM_REQUEST_DURATION, PLATFORM_REQUESTS, UNKNOWN_ENUM_VALUES
from plaudit.reliability.limiter import TokenBucket, parse_usage_headers
from plaudit.reliability.retry import Verdict, call_with_retry, classify_status, parse_retry_after
from plaudit.reviews.model import Review, normalize_timestamp

log = logging.getLogger(__name__)

PLATFORM: Final = "google"

# The listing order that incremental syncs rely on.
ORDER_BY: Final = "updateTime desc"
_STARS: Final = {"ONE": 1, "TWO": 2, "THREE": 3, "FOUR": 4, "FIVE": 5}
# Maximum reply size in UTF-8 bytes.
# NOTE: taken from third-party Business Profile integration docs; not yet
# checked against Google's own ReviewReply reference.
MAX_REPLY_BYTES: Final = 4096
# A token is refreshed this many seconds before the expiry Google reports, so
# no request leaves with a token that expires in flight.
TOKEN_EXPIRY_MARGIN: Final = 60.0
# Review and resource ids are URL-safe base64 or digits; anything else would
# change the request path.
_ID = r"[A-Za-z0-9_-]+"
_ACCOUNT = re.compile(rf"accounts/{_ID}")
_LOCATION = re.compile(rf"locations/{_ID}")
_REVIEW_ID = re.compile(_ID)

_T = TypeVar("_T")


# Structs mirroring the API's JSON.  Unknown fields are ignored (msgspec's
# default), because Google adds fields to responses over time.


class _Reviewer(msgspec.Struct, rename="camel", kw_only=True):
    display_name: str = ""
    profile_photo_url: str = ""
    is_anonymous: bool = False


class _ReviewReply(msgspec.Struct, rename="camel", kw_only=True):
    comment: str = ""
    update_time: str | None = None


class _ApiReview(msgspec.Struct, rename="camel", kw_only=True):
    review_id: str
    reviewer: _Reviewer = msgspec.field(default_factory=_Reviewer)
    # STAR_RATING_UNSPECIFIED or ONE to FIVE.
    star_rating: str = "STAR_RATING_UNSPECIFIED"
    # Missing when the reviewer left a rating only.
    comment: str = ""
    create_time: str
    update_time: str
    review_reply: _ReviewReply | None = None
    name: str = ""


class _ApiReviewList(msgspec.Struct, rename="camel", kw_only=True):
    reviews: list[_ApiReview] = msgspec.field(default_factory=list)
    average_rating: float | None = None
    total_review_count: int | None = None
    next_page_token: str | None = None


class _TokenResponse(msgspec.Struct, kw_only=True):
    access_token: str
    expires_in: float = 3600.0
    token_type: str = "Bearer"


class _OAuthError(msgspec.Struct, kw_only=True):
    error: str = ""
    error_description: str = ""


class _ApiErrorDetail(msgspec.Struct, kw_only=True):
    code: int = 0
    message: str = ""
    status: str = ""


class _ApiError(msgspec.Struct, kw_only=True):
    error: _ApiErrorDetail


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
class ReviewPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a location's reviews."""

    reviews: list[Review]
    # None on the last page.
    next_page_token: str | None
    average_rating: float | None
    total_review_count: int | None
    # Review ids that appeared more than once on the page; only one copy of
    # each is in ``reviews``.
    duplicate_ids: list[str] = msgspec.field(default_factory=list)


@final
class ReviewListing(msgspec.Struct, frozen=True, kw_only=True):
    """All the reviews of a location, gathered page by page."""

    reviews: list[Review]
    average_rating: float | None
    total_review_count: int | None
    # False when paging stopped early (page limit or a repeated page token),
    # so reviews missing from the listing must not be taken as deleted.
    complete: bool
    pages: int
    duplicate_ids: list[str] = msgspec.field(default_factory=list)


@final
class PostedReply(msgspec.Struct, frozen=True, kw_only=True):
    """The vendor reply as Google stored it."""

    text: str
    updated_at: str | None


@final
class GoogleClientStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of one client since it was created."""

    requests: int
    retries: int
    token_refreshes: int
    # Seconds until the cached access token is refreshed; None without one.
    token_valid_for: float | None
    last_status: int | None


def profile_name(account: str, location: str) -> str:
    """Return the profile id ``accounts/A/locations/L``, or raise ValueError naming the bad part."""
    if not _ACCOUNT.fullmatch(account):
        raise ValueError(f"invalid Google account {account!r}: expected the form accounts/123")

    if not _LOCATION.fullmatch(location):
        raise ValueError(f"invalid Google location {location!r}: expected the form locations/456")

    return f"{account}/{location}"


def _decode(data: bytes | dict[str, Any], kind: type[_T], what: str) -> _T:
    """Decode JSON bytes or an already decoded dict into ``kind``."""
    try:
        if isinstance(data, dict):
            return msgspec.convert(data, kind)

        return msgspec.json.decode(data, type=kind)
    except msgspec.DecodeError as error:
        # A proxy or an overloaded upstream can cut or garble a body, so a
        # malformed body is worth another try.
        raise PlatformError(f"malformed {what} from Google: {error}", retryable=True) from error


def _timestamp(value: str, path: str) -> str:
    try:
        return normalize_timestamp(value)
    except ValueError as error:
        message = f"malformed review from Google at {path}: {error}"
        raise PlatformError(message, retryable=True) from error


def _to_review(api: _ApiReview, *, profile: str, path: str) -> Review:
    reply = api.review_reply
    reply_time = reply.update_time if reply else None
    return Review(
        platform=PLATFORM,
        profile=profile,
        review_id=api.review_id,
        # STAR_RATING_UNSPECIFIED and values newer than this client map to None.
        stars=_stars(api.star_rating, profile=profile, review_id=api.review_id),
        text=api.comment,
        author=api.reviewer.display_name,
        created_at=_timestamp(api.create_time, f"{path}.createTime"),
        updated_at=_timestamp(api.update_time, f"{path}.updateTime"),
        reply_text=reply.comment if reply else None,
        reply_updated_at=_timestamp(reply_time, f"{path}.reviewReply.updateTime")
        if reply_time
        else None,
    )


def _stars(value: str, *, profile: str, review_id: str) -> int | None:
    stars = _STARS.get(value)
    if stars is None and value != "STAR_RATING_UNSPECIFIED":
        # A value newer than this client must not fail the page; it is stored
        # as no rating, logged and counted so an operator can upgrade.
        UNKNOWN_ENUM_VALUES.labels(PLATFORM, "starRating").inc()
        log.warning(
            "google.unknown_star_rating",
            extra={"profile": profile, "review": review_id, "value": value[:40]},
        )
    return stars


def deduplicate_reviews(reviews: list[Review]) -> tuple[list[Review], list[str]]:
    """Keep one review per review_id and return the kept reviews and the repeated ids.

    Google's listing can repeat a reviewId.  The copy with the latest
    ``updated_at`` wins; on a tie the first copy wins.  The kept reviews stay
    in the order their ids first appeared.
    """
    kept: dict[str, Review] = {}
    repeated: list[str] = []
    for review in reviews:
        previous = kept.get(review.review_id)
        if previous is None:
            kept[review.review_id] = review
            continue

        if review.review_id not in repeated:
            repeated.append(review.review_id)

        # The timestamps are normalised, so string order is time order.
        if review.updated_at > previous.updated_at:
            kept[review.review_id] = review

    return list(kept.values()), repeated


def parse_review_list(data: bytes | dict[str, Any], *, profile: str) -> ReviewPage:
    """Parse a ``reviews.list`` response body into a page of reviews.

    Raises PlatformError (retryable) naming the JSON path of the first
    malformed field.
    """
    body = _decode(data, _ApiReviewList, f"review list for {profile}")
    reviews = [
        _to_review(api, profile=profile, path=f"$.reviews[{index}]")
        for index, api in enumerate(body.reviews)
    ]
    unique, repeated = deduplicate_reviews(reviews)
    return ReviewPage(
        reviews=unique,
        next_page_token=body.next_page_token or None,
        average_rating=body.average_rating,
        total_review_count=body.total_review_count,
        duplicate_ids=repeated,
    )


def parse_review(data: bytes | dict[str, Any], *, profile: str) -> Review:
    """Parse a ``reviews.get`` response body (one Review resource)."""
    body = _decode(data, _ApiReview, f"review for {profile}")
    return _to_review(body, profile=profile, path="$")


def parse_reply(data: bytes | dict[str, Any]) -> PostedReply:
    """Parse the ReviewReply resource that ``updateReply`` returns."""
    body = _decode(data, _ReviewReply, "review reply")
    updated_at = _timestamp(body.update_time, "$.updateTime") if body.update_time else None
    return PostedReply(text=body.comment, updated_at=updated_at)


def _error_message(response: httpx.Response) -> str:
    """Return the API's own error message, or the start of the body without one."""
    try:
        return msgspec.json.decode(response.content, type=_ApiError).error.message
    except msgspec.DecodeError:
        return response.text[:200].strip() or "(empty body)"


def _status_hint(status: int) -> str:
    if status == 403:
        return (
            "check that Business Profile API access is approved "
            "and that the account manages this location"
        )

    if status == 404:
        return "check the account, location and review ids in [platforms.google]"

    return "the request was rejected; check the request and the configuration"


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
        self._client_secret = client_secret
        self._refresh_token = refresh_token
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
        self._token: str | None = None
        self._token_refresh_at = 0.0
        self._token_lock = trio.Lock()
        # Google's quotas: requests a minute per Cloud project, and edits a
        # minute per location.
        self._request_bucket = TokenBucket.per_minute(
            PLATFORM, config.limits.requests_per_minute, clock=clock
        )
        self._edit_buckets: dict[str, TokenBucket] = {}
        self._requests = 0
        self._retries = 0
        self._token_refreshes = 0
        self._last_status: int | None = None

    def __repr__(self) -> str:
        token = "cached" if self._token else "none"
        return (
            f"<GoogleClient api_base={self._api_base!r} token={token} "
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
        valid_for = self._token_refresh_at - self._clock() if self._token else None
        return GoogleClientStatistics(
            requests=self._requests,
            retries=self._retries,
            token_refreshes=self._token_refreshes,
            token_valid_for=valid_for,
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
        if max_pages < 1:
            # Zero pages would look like a complete, empty listing.
            raise ValueError(f"invalid max_pages {max_pages}: use 1 or more")

        gathered: list[Review] = []
        repeated: set[str] = set()
        seen_tokens: set[str] = set()
        page_token: str | None = None
        pages = 0
        page = None
        while pages < max_pages:
            page = await self.list_reviews_page(account, location, page_token, page_size)
            pages += 1
            gathered.extend(page.reviews)
            repeated.update(page.duplicate_ids)
            page_token = page.next_page_token
            if page_token is None or page_token in seen_tokens:
                break

            seen_tokens.add(page_token)

        reviews, repeated_across_pages = deduplicate_reviews(gathered)
        repeated.update(repeated_across_pages)
        return _listing(profile, reviews, sorted(repeated), page, pages, page_token=page_token)

    async def get_review(self, account: str, location: str, review_id: str) -> Review:
        """Fetch one review; a deleted or unknown review raises PlatformError with status 404."""
        profile = profile_name(account, location)
        _check_review_id(review_id)
        parse = functools.partial(parse_review, profile=profile)
        return await self._call_api("GET", f"{profile}/reviews/{review_id}", parse)

    async def reply(self, account: str, location: str, review_id: str, text: str) -> PostedReply:
        """Create or replace the vendor's public reply to a review.

        PUT replaces the reply, so repeating the call after a lost response
        is harmless.
        """
        profile = profile_name(account, location)
        _check_review_id(review_id)
        _check_reply_text(text)
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
            _raise_for_status(response, call.what, now=self._wall_clock())
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
            self._token = None
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
        token = await self._access_token()
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
            PLATFORM_REQUESTS.labels(platform=PLATFORM, outcome=_outcome_of_error(error)).inc()
            raise _translate_http_error(error, method, url, self._config.request_timeout) from error
        finally:
            PLATFORM_REQUEST_DURATION.labels(platform=PLATFORM).observe(self._clock() - started)

        self._last_status = response.status_code
        PLATFORM_REQUESTS.labels(platform=PLATFORM, outcome=_outcome_of(response.status_code)).inc()
        return response

    async def _access_token(self) -> str:
        """Return a valid access token, refreshing it when missing or close to expiry."""
        if self._token is not None and self._clock() < self._token_refresh_at:
            return self._token

        # One refresh at a time; callers that waited use the new token.
        async with self._token_lock:
            if self._token is not None and self._clock() < self._token_refresh_at:
                return self._token

            return await self._refresh_access_token()

    async def _refresh_access_token(self) -> str:
        """Exchange the refresh token for an access token (OAuth 2.0 refresh_token grant)."""
        form = {
            "grant_type": "refresh_token",
            "client_id": self._config.client_id,
            "client_secret": self._client_secret,
            "refresh_token": self._refresh_token,
        }
        response = await self._send("POST", self._config.token_url, data=form)
        if response.status_code in (400, 401):
            _raise_oauth_error(response, self._config.token_url)

        _raise_for_status(response, f"POST {self._config.token_url}", now=self._wall_clock())
        body = _decode(response.content, _TokenResponse, "token response")
        self._token = body.access_token
        # Refresh well before expiry, but never sooner than half the lifetime.
        margin = min(TOKEN_EXPIRY_MARGIN, body.expires_in / 2)
        self._token_refresh_at = self._clock() + body.expires_in - margin
        self._token_refreshes += 1
        log.info("google.token_refreshed", extra={"expires_in": body.expires_in})
        return body.access_token


def _listing(
    profile: str,
    reviews: list[Review],
    repeated: list[str],
    last_page: ReviewPage | None,
    pages: int,
    *,
    page_token: str | None,
) -> ReviewListing:
    """Build the listing result and log what makes it less than a clean full listing."""
    if repeated:
        log.warning(
            "google.duplicate_review_id",
            extra={"profile": profile, "count": len(repeated), "review_ids": repeated[:10]},
        )

    complete = page_token is None
    if not complete:
        log.warning("google.listing_incomplete", extra={"profile": profile, "pages": pages})

    return ReviewListing(
        reviews=reviews,
        average_rating=last_page.average_rating if last_page else None,
        total_review_count=last_page.total_review_count if last_page else None,
        complete=complete,
        pages=pages,
        duplicate_ids=repeated,
    )


def _check_review_id(review_id: str) -> None:
    if not _REVIEW_ID.fullmatch(review_id):
        raise ValueError(
            f"invalid Google review id {review_id!r}: expected letters, digits, '-' and '_' only"
        )


def _check_reply_text(text: str) -> None:
    if not text.strip():
        raise ValueError("invalid reply: the text is empty; write the reply before posting it")

    size = len(text.encode("utf-8"))
    if size > MAX_REPLY_BYTES:
        raise ValueError(
            f"invalid reply: {size} bytes of UTF-8, Google accepts at most {MAX_REPLY_BYTES}; "
            "shorten the reply"
        )


def _outcome_of(status: int) -> str:
    verdict = classify_status(status)
    if verdict is Verdict.SUCCESS:
        return "ok"

    return "retryable" if verdict is Verdict.RETRY else "error"


def _outcome_of_error(error: httpx.HTTPError) -> str:
    if isinstance(error, httpx.UnsupportedProtocol):
        return "error"

    return "retryable" if isinstance(error, httpx.TransportError) else "error"


def _translate_http_error(
    error: httpx.HTTPError, method: str, url: str, timeout: float
) -> PlatformError:
    if isinstance(error, httpx.UnsupportedProtocol):
        return PlatformError(
            f"{method} {url}: unsupported URL scheme; api_base and token_url must be http(s) URLs",
            retryable=False,
        )

    if isinstance(error, httpx.TimeoutException):
        return PlatformError(
            f"{method} {url} timed out after {timeout} s ({type(error).__name__}); "
            "the call will be retried, raise platforms.google.request_timeout if this persists",
            retryable=True,
        )

    if isinstance(error, httpx.TransportError):
        return PlatformError(
            f"{method} {url} failed: {type(error).__name__}: {error}; the call will be retried",
            retryable=True,
        )

    return PlatformError(f"{method} {url} failed: {type(error).__name__}: {error}", retryable=False)


def _raise_for_status(response: httpx.Response, what: str, *, now: float) -> None:
    """Raise PlatformError unless the response is 2xx."""
    status = response.status_code
    verdict = classify_status(status)
    if verdict is Verdict.SUCCESS:
        return

    message = _error_message(response)
    if verdict is Verdict.RETRY:
        raise PlatformError(
            f"{what} failed with HTTP {status}: {message}; the call will be retried",
            retryable=True,
            status=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After"), now=now),
        )

    raise PlatformError(
        f"{what} failed with HTTP {status}: {message}; {_status_hint(status)}",
        retryable=False,
        status=status,
    )


def _raise_oauth_error(response: httpx.Response, token_url: str) -> None:
    """Raise for an OAuth error response (RFC 6749 section 5.2) from the token endpoint."""
    try:
        body = msgspec.json.decode(response.content, type=_OAuthError)
    except msgspec.DecodeError:
        body = _OAuthError()

    if body.error == "invalid_grant":
        raise ReconnectRequiredError(
            f"POST {token_url}: Google rejected the refresh token (invalid_grant: "
            f"{body.error_description or 'revoked or expired'}); reconnect the Google account "
            "and store the new refresh token in platforms.google.refresh_token_file"
        )

    if body.error in ("invalid_client", "unauthorized_client"):
        raise PlatformError(
            f"POST {token_url}: Google rejected the OAuth client ({body.error}); "
            "check platforms.google.client_id and client_secret",
            retryable=False,
            status=response.status_code,
        )
