"""Yelp Fusion review excerpts, for monitoring only.

``GET /v3/businesses/{id}/reviews`` returns at most three review excerpts,
so a listing is never complete: a review that drops out of the three is not
a deletion.  Yelp forbids asking customers for reviews, so this connector
has no request link and Plaudit never sends couples a Yelp link
(:func:`is_yelp_link` lets config validation reject one).

The API key goes in ``Authorization: Bearer``.  Older responses (the 2016
shape) carry neither a review ``id`` nor ``time_created``: the id is then
taken from the ``hrid`` parameter of the review URL, or derived from the
author and text, and the times are left empty.
"""

from __future__ import annotations

import functools
import hashlib
import re
import urllib.parse
from typing import Any, Final, final

import httpx
import msgspec

from plaudit.config.model import YelpConfig
from plaudit.connectors.apiclient import ApiClient, ApiClientStatistics, decode_json, limited_client
from plaudit.connectors.base import Capability, IngestionMode
from plaudit.errors import PlatformError, ReconnectRequiredError
from plaudit.reviews.model import Review, normalize_timestamp

PLATFORM: Final = "yelp"
# Yelp returns this many excerpts at most, whatever the business has.
MAX_EXCERPTS: Final = 3
_BUSINESS = re.compile(r"[A-Za-z0-9_-]{1,120}")
_YELP_HOSTS = re.compile(r"(^|\.)yelp\.[a-z.]{2,10}$|(^|\.)yelp\.to$")


class _User(msgspec.Struct, kw_only=True):
    id: str = ""
    name: str = ""


class _ApiReview(msgspec.Struct, kw_only=True):
    id: str | None = None
    url: str = ""
    text: str = ""
    rating: int
    # "YYYY-MM-DD HH:MM:SS" in the business's local time; absent in the 2016 shape.
    time_created: str | None = None
    user: _User = msgspec.field(default_factory=_User)


class _ReviewList(msgspec.Struct, kw_only=True):
    reviews: list[_ApiReview]
    total: int | None = None


class _ErrorDetail(msgspec.Struct, kw_only=True):
    code: str = ""
    description: str = ""


class _Error(msgspec.Struct, kw_only=True):
    error: _ErrorDetail


@final
class ExcerptListing(msgspec.Struct, frozen=True, kw_only=True):
    """The review excerpts Yelp shows for a business."""

    reviews: list[Review]
    # Reviews the business has on Yelp, of which at most three are listed.
    total: int | None
    # Always False: three excerpts never cover a business, so no deletions are inferred.
    complete: bool = False


def is_yelp_link(url: str) -> bool:
    """Return True when ``url`` points at Yelp, which must never go to couples."""
    host = urllib.parse.urlsplit(url.strip()).hostname or ""
    return bool(_YELP_HOSTS.search(host.lower().rstrip(".")))


def check_business_id(business_id: str) -> None:
    """Raise ValueError unless ``business_id`` is a Yelp business id or alias."""
    if not _BUSINESS.fullmatch(business_id):
        raise ValueError(
            f"invalid Yelp business id {business_id!r}: expected letters, digits, '-' and '_'"
        )


def excerpt_id(business: str, api: _ApiReview) -> str:
    """Return the review id, or a stable one for the 2016 shape that has none."""
    if api.id:
        return api.id

    query = urllib.parse.parse_qs(urllib.parse.urlsplit(api.url).query)
    hrid = query.get("hrid", [""])[0]
    if hrid:
        return hrid

    digest = hashlib.sha256("\x1f".join((business, api.user.name, api.text)).encode()).hexdigest()
    return f"derived-{digest[:32]}"


def _timestamp(value: str | None, path: str) -> str:
    # NOTE: Yelp gives local time without an offset; it is stored as if UTC
    # until the business's time zone is configured.
    if value is None:
        return ""
    try:
        return normalize_timestamp(value.replace(" ", "T"))
    except ValueError as error:
        message = f"malformed review from Yelp at {path}: {error}"
        raise PlatformError(message, retryable=True) from error


def parse_excerpts(data: bytes | dict[str, Any], *, business: str) -> ExcerptListing:
    """Parse a ``/v3/businesses/{id}/reviews`` response body."""
    body = decode_json(data, _ReviewList, f"reviews of business {business}", PLATFORM)
    reviews: dict[str, Review] = {}
    for index, api in enumerate(body.reviews):
        path = f"$.reviews[{index}]"
        if not 1 <= api.rating <= 5:
            raise PlatformError(
                f"malformed review from Yelp at {path}.rating: {api.rating} is not 1 to 5",
                retryable=True,
            )
        created_at = _timestamp(api.time_created, f"{path}.time_created")
        review = Review(
            platform=PLATFORM,
            profile=business,
            review_id=excerpt_id(business, api),
            stars=api.rating,
            text=api.text,
            author=api.user.name,
            created_at=created_at,
            updated_at=created_at,
        )
        reviews[review.review_id] = review
    return ExcerptListing(reviews=list(reviews.values()), total=body.total)


def raise_for_yelp_error(response: httpx.Response, what: str) -> None:
    """Raise ReconnectRequiredError for a rejected API key; return for other responses."""
    if response.status_code not in (400, 401, 403):
        return
    try:
        detail = msgspec.json.decode(response.content, type=_Error).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        return
    if response.status_code == 401 or detail.code in ("TOKEN_INVALID", "UNAUTHORIZED_API_KEY"):
        raise ReconnectRequiredError(
            f"{what}: Yelp rejected the API key ({detail.code}: {detail.description}); "
            "store a valid key in platforms.yelp.api_key_file"
        )


@final
class YelpClient:
    """Async client for Yelp review excerpts, for use under Trio."""

    name: Final = PLATFORM
    # Monitoring only: no reply API, and no request link by Yelp's policy.
    capabilities: Final = frozenset({Capability.LIST})
    ingestion_modes: Final = frozenset({IngestionMode.API_POLL})

    def __init__(self, config: YelpConfig, *, api_key: str, api: ApiClient) -> None:
        self._config = config
        self._api_key = api_key
        self._api = api
        self._api_base = config.api_base.rstrip("/")

    def __repr__(self) -> str:
        return f"<YelpClient api_base={self._api_base!r}>"

    def statistics(self) -> ApiClientStatistics:
        """Return the request counters."""
        return self._api.statistics()

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._api.aclose()

    async def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    async def list_excerpts(self, business_id: str) -> ExcerptListing:
        """Fetch the (at most three) review excerpts of a business."""
        check_business_id(business_id)
        return await self._api.call(
            "GET",
            f"{self._api_base}/businesses/{business_id}/reviews",
            functools.partial(parse_excerpts, business=business_id),
            headers=self._headers,
            inspect=raise_for_yelp_error,
            hint="check the business id in [platforms.yelp]",
        )


def yelp_client(config: YelpConfig, *, api_key: str, **options: Any) -> YelpClient:
    """Build a client; ``options`` go to :class:`ApiClient` (transport, rng, sleep, clocks)."""
    api = limited_client(
        PLATFORM,
        timeout=config.request_timeout,
        retry=config.retry,
        limits=config.limits,
        **options,
    )
    return YelpClient(config, api_key=api_key, api=api)
