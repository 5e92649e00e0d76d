"""Trustpilot: business-unit reviews with the customer's email and reference, and replies.

Plaudit reads the private business-unit reviews endpoint, because only it
carries the email address and the reference id the review invitation was
sent with; :class:`Contact` keeps them beside each review, for exact
matching of a review to a couple.  Requests carry an access token from the
OAuth 2.0 client-credentials grant (HTTP Basic with the API key and secret).
The token is cached until shortly before it expires, and a 401 refreshes it once.

Paging is by page number: a page links the next one with ``rel`` of
``next-page``, and the last page has no such link.
"""

from __future__ import annotations

import functools
import logging
import re
import urllib.parse
from collections.abc import Callable
from typing import Any, Final, TypeVar, final

import httpx
import msgspec
import trio

from plaudit.config.model import TrustpilotConfig
from plaudit.connectors.apiclient import ApiClient, ApiClientStatistics, decode_json, limited_client
from plaudit.connectors.base import Capability, IngestionMode
from plaudit.connectors.paging import ListedPage, PageHook
from plaudit.connectors.retry_causes import count_retry
from plaudit.errors import PlatformError, ReconnectRequiredError
from plaudit.reviews.model import Contact, Review, normalize_timestamp

log = logging.getLogger(__name__)

PLATFORM: Final = "trustpilot"
# Refresh this many seconds before the reported expiry.
TOKEN_EXPIRY_MARGIN: Final = 60.0
MAX_REPLY_CHARS: Final = 4000
_ID = re.compile(r"[0-9a-fA-F]{1,64}")

_T = TypeVar("_T")


class _Consumer(msgspec.Struct, kw_only=True, rename="camel"):
    id: str = ""
    display_name: str = ""


class _CompanyReply(msgspec.Struct, kw_only=True, rename="camel"):
    text: str
    created_at: str | None = None
    updated_at: str | None = None


class _ApiReview(msgspec.Struct, kw_only=True, rename="camel"):
    id: str
    stars: int
    title: str = ""
    text: str = ""
    created_at: str
    updated_at: str | None = None
    consumer: _Consumer = msgspec.field(default_factory=_Consumer)
    company_reply: _CompanyReply | None = None
    reference_id: str | None = None
    referral_email: str | None = None


class _Link(msgspec.Struct, kw_only=True):
    href: str = ""
    rel: str = ""


class _ReviewList(msgspec.Struct, kw_only=True):
    reviews: list[_ApiReview]
    links: list[_Link] = msgspec.field(default_factory=list)


class _Token(msgspec.Struct, kw_only=True):
    access_token: str
    # Trustpilot sends the lifetime as a string of seconds.
    expires_in: str | int | float = 3600


@final
class TrustpilotPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a business unit's reviews."""

    reviews: list[Review]
    contacts: dict[str, Contact]
    # The next page number; None on the last page.
    next_page: int | None


@final
class TrustpilotListing(msgspec.Struct, frozen=True, kw_only=True):
    """All of a business unit's reviews."""

    reviews: list[Review]
    contacts: dict[str, Contact]
    # False when paging stopped early, so missing reviews are not deletions.
    complete: bool
    pages: int


def check_id(value: str, what: str) -> None:
    """Raise ValueError unless ``value`` is a Trustpilot hex id."""
    if not _ID.fullmatch(value):
        raise ValueError(f"invalid Trustpilot {what} {value!r}: expected a hexadecimal id")


def _timestamp(value: str, path: str) -> str:
    try:
        return normalize_timestamp(value)
    except ValueError as error:
        message = f"malformed review from Trustpilot at {path}: {error}"
        raise PlatformError(message, retryable=True) from error


def review_text(title: str, text: str) -> str:
    """Join a review's title and body as Plaudit stores them."""
    return f"{title}\n\n{text}" if title else text


def _to_review(api: _ApiReview, *, unit: str, path: str) -> Review:
    if not 1 <= api.stars <= 5:
        raise PlatformError(
            f"malformed review from Trustpilot at {path}.stars: {api.stars} is not 1 to 5",
            retryable=True,
        )
    created_at = _timestamp(api.created_at, f"{path}.createdAt")
    reply = api.company_reply
    reply_time = (reply.updated_at or reply.created_at) if reply else None
    return Review(
        platform=PLATFORM,
        profile=unit,
        review_id=api.id,
        stars=api.stars,
        text=review_text(api.title, api.text),
        author=api.consumer.display_name,
        created_at=created_at,
        updated_at=_timestamp(api.updated_at, f"{path}.updatedAt")
        if api.updated_at
        else created_at,
        reply_text=reply.text if reply else None,
        reply_updated_at=_timestamp(reply_time, f"{path}.companyReply") if reply_time else None,
    )


def _next_page(links: list[_Link]) -> int | None:
    for link in links:
        if link.rel == "next-page":
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(link.href).query)
            try:
                return int(query.get("page", [""])[0])
            except ValueError as error:
                raise PlatformError(
                    f"malformed next-page link from Trustpilot: {link.href!r}", retryable=True
                ) from error
    return None


def parse_reviews(data: bytes | dict[str, Any], *, unit: str) -> TrustpilotPage:
    """Parse a business-unit reviews response (public or private) into a page."""
    body = decode_json(data, _ReviewList, f"reviews of business unit {unit}", PLATFORM)
    reviews: dict[str, Review] = {}
    contacts: dict[str, Contact] = {}
    for index, api in enumerate(body.reviews):
        review = _to_review(api, unit=unit, path=f"$.reviews[{index}]")
        reviews[review.review_id] = review
        contacts[review.review_id] = Contact(email=api.referral_email, reference=api.reference_id)
    return TrustpilotPage(
        reviews=list(reviews.values()), contacts=contacts, next_page=_next_page(body.links)
    )


@final
class TrustpilotClient:
    """Async client for Trustpilot's business-unit reviews, for use under Trio."""

    name: Final = PLATFORM
    capabilities: Final = frozenset({Capability.LIST, Capability.REPLY})
    ingestion_modes: Final = frozenset({IngestionMode.API_POLL})

    def __init__(self, config: TrustpilotConfig, *, api_secret: str, api: ApiClient) -> None:
        self._config = config
        self._secret = api_secret
        self._api = api
        self._api_base = config.api_base.rstrip("/")
        self._token: str | None = None
        self._token_refresh_at = 0.0
        self._token_lock = trio.Lock()
        self.token_refreshes = 0

    def __repr__(self) -> str:
        token = "cached" if self._token else "none"
        return f"<TrustpilotClient api_base={self._api_base!r} token={token}>"

    def statistics(self) -> ApiClientStatistics:
        """Return the request counters."""
        return self._api.statistics()

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._api.aclose()

    async def list_reviews_page(self, unit: str, page: int = 1) -> TrustpilotPage:
        """Fetch one page of a business unit's reviews, with contacts."""
        check_id(unit, "business unit id")
        params: dict[str, str | int] = {"page": page, "perPage": self._config.page_size}
        url = f"{self._api_base}/private/business-units/{unit}/reviews"
        parse = functools.partial(parse_reviews, unit=unit)
        return await self._authorized("GET", url, parse, params=params)

    async def list_all_reviews(
        self,
        unit: str,
        *,
        max_pages: int = 200,
        start_page: int = 1,
        on_page: PageHook | None = None,
    ) -> TrustpilotListing:
        """Fetch every review from ``start_page`` on.

        A repeated or backwards page link ends the listing as incomplete.
        ``on_page`` receives each page with the number of the next one, or
        None when paging stops there.
        """
        if max_pages < 1:
            raise ValueError(f"invalid max_pages {max_pages}: use 1 or more")
        if start_page < 1:
            raise ValueError(f"invalid start_page {start_page}: use 1 or more")

        reviews: dict[str, Review] = {}
        contacts: dict[str, Contact] = {}
        number: int | None = start_page
        pages = 0
        while number is not None and pages < max_pages:
            page = await self.list_reviews_page(unit, number)
            pages += 1
            reviews.update((review.review_id, review) for review in page.reviews)
            contacts.update(page.contacts)
            looped = page.next_page is not None and page.next_page <= number
            if on_page is not None:
                following = None if looped or pages >= max_pages else page.next_page
                await on_page(
                    ListedPage(
                        reviews=page.reviews,
                        contacts=page.contacts,
                        next_cursor=None if following is None else str(following),
                    )
                )
            if looped:
                log.warning(
                    "trustpilot.page_loop",
                    extra={"unit": unit, "page": number, "next": page.next_page},
                )
                break
            number = page.next_page

        complete = number is None
        return TrustpilotListing(
            reviews=list(reviews.values()), contacts=contacts, complete=complete, pages=pages
        )

    async def reply(self, review_id: str, text: str) -> None:
        """Create or replace the business's public reply; repeating it is harmless."""
        check_id(review_id, "review id")
        if not text.strip() or len(text) > MAX_REPLY_CHARS:
            raise ValueError(
                f"invalid reply of {len(text)} characters: write 1 to {MAX_REPLY_CHARS}"
            )

        url = f"{self._api_base}/private/reviews/{review_id}/reply"
        await self._authorized("POST", url, lambda data: None, json={"message": text})

    async def _authorized(
        self,
        method: str,
        url: str,
        parse: Callable[[bytes], _T],
        *,
        params: dict[str, str | int] | None = None,
        json: dict[str, Any] | None = None,
    ) -> _T:
        """Send an authorised call; a 401 refreshes the token once and repeats it."""
        call = functools.partial(
            self._api.call,
            method,
            url,
            parse,
            headers=self._headers,
            hint="check the business unit and review ids in [platforms.trustpilot]",
            params=params,
            json=json,
        )
        try:
            return await call()
        except PlatformError as error:
            if error.status != 401:
                raise
            count_retry(PLATFORM, error)

        # The token may have been revoked before it expired: fetch a new one.
        self._token = None
        try:
            return await call()
        except PlatformError as error:
            if error.status != 401:
                raise
            self._token = None
            raise ReconnectRequiredError(
                f"{method} {url}: Trustpilot rejected a fresh access token (HTTP 401); "
                "check that the API key has access to this business unit"
            ) from error

    async def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self._access_token()}"}

    async def _access_token(self) -> str:
        if self._token is not None and self._api.clock() < self._token_refresh_at:
            return self._token

        async with self._token_lock:
            if self._token is not None and self._api.clock() < self._token_refresh_at:
                return self._token
            return await self._fetch_token()

    async def _fetch_token(self) -> str:
        """Run the client-credentials grant (RFC 6749 section 4.4)."""
        auth = httpx.BasicAuth(self._config.api_key, self._secret)
        request = httpx.Request("POST", self._config.token_url)
        header = next(auth.auth_flow(request)).headers["Authorization"]
        response = await self._api.send(
            "POST",
            self._config.token_url,
            headers={"Authorization": header},
            data={"grant_type": "client_credentials"},
        )
        if response.status_code in (400, 401):
            raise ReconnectRequiredError(
                f"POST {self._config.token_url}: Trustpilot rejected the API key and secret "
                f"(HTTP {response.status_code}); check platforms.trustpilot.api_key and api_secret"
            )
        if response.status_code != 200:
            raise PlatformError(
                f"POST {self._config.token_url} failed with HTTP {response.status_code}; "
                "the token request will be retried",
                retryable=response.status_code >= 500 or response.status_code == 429,
                status=response.status_code,
            )

        body = decode_json(response.content, _Token, "token response", PLATFORM)
        try:
            lifetime = float(body.expires_in)
        except ValueError as error:
            raise PlatformError(
                f"malformed token response from Trustpilot: expires_in {body.expires_in!r}",
                retryable=True,
            ) from error
        self._token = body.access_token
        margin = min(TOKEN_EXPIRY_MARGIN, lifetime / 2)
        self._token_refresh_at = self._api.clock() + lifetime - margin
        self.token_refreshes += 1
        log.info("trustpilot.token_refreshed", extra={"expires_in": lifetime})
        return body.access_token


def trustpilot_client(
    config: TrustpilotConfig, *, api_secret: str, **options: Any
) -> TrustpilotClient:
    """Build a client; ``options`` go to :class:`ApiClient` (transport, rng, sleep, clocks)."""
    api = limited_client(
        PLATFORM,
        timeout=config.request_timeout,
        retry=config.retry,
        limits=config.limits,
        **options,
    )
    return TrustpilotClient(config, api_secret=api_secret, api=api)
