"""Facebook Page ratings through the Graph API, replies, and Page webhook checks.

Ratings come from ``GET /{page-id}/ratings`` with cursor paging
(``paging.cursors.after``; the last page has no ``paging.next``).  A rating
carries ``recommendation_type`` (positive or negative) since Facebook moved
Pages from stars to recommendations in 2018; older ratings carry a 1 to 5
``rating`` instead, and both are kept.  The review id is the id of the
rating's ``open_graph_story``, the object the vendor replies to by posting a
comment on it.

Graph returns error code 12 when the API version no longer offers an edge;
the ratings edge is deprecated from Graph v22.  That error raises
:class:`ApiVersionUnsupportedError`, which is not retryable: the actor turns
it into an "unsupported by this API version" health state.

The webhook checks are pure functions: :func:`verify_subscription` for the
``hub.challenge`` handshake, :func:`verify_signature` for
``X-Hub-Signature-256`` and :func:`parse_page_webhook` for the changes.

NOTE: no inbound HTTP listener serves these yet, so ratings arrive by polling
only.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Mapping
from typing import Any, Final, Literal, final

import httpx
import msgspec

from plaudit.config.model import FacebookConfig
from plaudit.connectors.apiclient import (
    ApiClient,
    ApiClientStatistics,
    Headers,
    decode_json,
    limited_client,
)
from plaudit.connectors.base import Capability, IngestionMode
from plaudit.connectors.paging import ListedPage, PageHook
from plaudit.errors import PlatformError, ReconnectRequiredError
from plaudit.metrics import UNKNOWN_ENUM_VALUES
from plaudit.reliability.retry import parse_retry_after
from plaudit.reviews.model import Review, normalize_timestamp

log = logging.getLogger(__name__)

PLATFORM: Final = "facebook"
# Graph error codes (Graph API "Handling Errors" reference).
DEPRECATED_CODE: Final = 12
TOKEN_INVALID_CODE: Final = 190
# 1 unknown and 2 service errors are temporary; 4, 17, 32 and 613 are rate limits.
_RATE_LIMIT_CODES: Final = frozenset({4, 17, 32, 613})
_TEMPORARY_CODES: Final = frozenset({1, 2}) | _RATE_LIMIT_CODES
_PAGE_ID = re.compile(r"[0-9]{1,30}")
# Story ids look like "<page id>_<post id>"; anything else would change the request path.
_STORY_ID = re.compile(r"[0-9A-Za-z_]{1,80}")
MAX_REPLY_CHARS: Final = 8000
# The fields requested for each rating, the reply comments of the story included.
RATING_FIELDS: Final = (
    "created_time,recommendation_type,rating,review_text,reviewer{id,name},"
    "open_graph_story{id,updated_time,comments{id,from,message,created_time}}"
)


class ApiVersionUnsupportedError(PlatformError):
    """The configured Graph API version no longer offers the ratings edge (error code 12)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class WebhookVerificationError(PlatformError):
    """A Page webhook handshake or signature failed its check."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class _Named(msgspec.Struct, kw_only=True):
    id: str = ""
    name: str = ""


class _Comment(msgspec.Struct, kw_only=True):
    id: str = ""
    message: str = ""
    created_time: str | None = None
    from_: _Named | None = msgspec.field(default=None, name="from")


class _Comments(msgspec.Struct, kw_only=True):
    data: list[_Comment] = msgspec.field(default_factory=list)


class _Story(msgspec.Struct, kw_only=True):
    id: str
    updated_time: str | None = None
    comments: _Comments | None = None


class _Rating(msgspec.Struct, kw_only=True):
    created_time: str
    recommendation_type: str | None = None
    rating: int | None = None
    review_text: str = ""
    reviewer: _Named | None = None
    open_graph_story: _Story | None = None


class _Cursors(msgspec.Struct, kw_only=True):
    before: str | None = None
    after: str | None = None


class _Paging(msgspec.Struct, kw_only=True):
    cursors: _Cursors | None = None
    next: str | None = None


class _RatingList(msgspec.Struct, kw_only=True):
    data: list[_Rating]
    paging: _Paging | None = None


class _GraphErrorDetail(msgspec.Struct, kw_only=True):
    message: str = ""
    type: str = ""
    code: int = 0
    error_subcode: int | None = None


class _GraphError(msgspec.Struct, kw_only=True):
    error: _GraphErrorDetail


class _CommentCreated(msgspec.Struct, kw_only=True):
    id: str


@final
class RatingPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a Page's ratings."""

    reviews: list[Review]
    # The cursor of the next page; None on the last page.
    after: str | None


@final
class RatingListing(msgspec.Struct, frozen=True, kw_only=True):
    """All of a Page's ratings, gathered page by page."""

    reviews: list[Review]
    # False when paging stopped early (page limit or a repeated cursor), so
    # ratings missing from the listing must not be taken as deleted.
    complete: bool
    pages: int


def check_page_id(page_id: str) -> None:
    """Raise ValueError unless ``page_id`` is a numeric Facebook Page id."""
    if not _PAGE_ID.fullmatch(page_id):
        raise ValueError(f"invalid Facebook Page id {page_id!r}: expected digits only")


def _timestamp(value: str, path: str) -> str:
    try:
        return normalize_timestamp(value)
    except ValueError as error:
        message = f"malformed rating from Facebook at {path}: {error}"
        raise PlatformError(message, retryable=True) from error


def _recommendation(value: str | None) -> Literal["positive", "negative"] | None:
    # Values newer than this client map to None instead of failing the page;
    # they are logged and counted so an operator can upgrade.
    if value == "positive":
        return "positive"
    if value == "negative":
        return "negative"
    if value is not None:
        UNKNOWN_ENUM_VALUES.labels(PLATFORM, "recommendation_type").inc()
        log.warning("facebook.unknown_recommendation", extra={"value": value[:40]})
    return None


def same_comment_text(posted: str, sent: str) -> bool:
    """Return whether a listed comment's ``posted`` text is the reply ``sent``.

    Runs of whitespace compare equal, so a comment whose line endings or
    spacing the platform changed on storing it still counts as the reply.
    """
    return posted.split() == sent.split()


def derived_id(*parts: str) -> str:
    """Return a stable review id from fields that identify a rating without its own id."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return f"derived-{digest[:32]}"


def _reply_of(story: _Story | None, page_id: str) -> _Comment | None:
    """Return the Page's own latest comment on the story, which is the vendor's reply."""
    if story is None or story.comments is None:
        return None

    replies = [c for c in story.comments.data if c.from_ is not None and c.from_.id == page_id]
    return replies[-1] if replies else None


def _to_review(rating: _Rating, *, page_id: str, path: str) -> Review:
    created_at = _timestamp(rating.created_time, f"{path}.created_time")
    story = rating.open_graph_story
    author = rating.reviewer.name if rating.reviewer else ""
    review_id = story.id if story else derived_id(page_id, author, created_at)
    updated = story.updated_time if story and story.updated_time else None
    reply = _reply_of(story, page_id)
    reply_time = reply.created_time if reply else None
    stars = rating.rating if rating.rating is not None and 1 <= rating.rating <= 5 else None
    return Review(
        platform=PLATFORM,
        profile=page_id,
        review_id=review_id,
        stars=stars,
        recommendation=_recommendation(rating.recommendation_type),
        text=rating.review_text,
        author=author,
        created_at=created_at,
        updated_at=_timestamp(updated, f"{path}.open_graph_story.updated_time")
        if updated
        else created_at,
        reply_text=reply.message if reply else None,
        reply_updated_at=_timestamp(reply_time, f"{path}.comments.created_time")
        if reply_time
        else None,
    )


def parse_ratings(data: bytes | dict[str, Any], *, page_id: str) -> RatingPage:
    """Parse a ``/{page-id}/ratings`` response body into a page of reviews.

    A rating repeated on the page is kept once (the last copy).  Raises
    PlatformError (retryable) naming the JSON path of a malformed field.
    """
    body = decode_json(data, _RatingList, f"ratings of Page {page_id}", PLATFORM)
    reviews: dict[str, Review] = {}
    for index, rating in enumerate(body.data):
        review = _to_review(rating, page_id=page_id, path=f"$.data[{index}]")
        reviews[review.review_id] = review

    paging = body.paging
    after = paging.cursors.after if paging and paging.cursors and paging.next else None
    return RatingPage(reviews=list(reviews.values()), after=after or None)


def raise_for_graph_error(response: httpx.Response, what: str) -> None:
    """Raise the error a Graph error body names; return for other responses.

    Code 12 raises ApiVersionUnsupportedError and code 190 (invalid or
    expired token) ReconnectRequiredError.  Temporary and rate-limit codes
    are retryable whatever the HTTP status.
    """
    if response.status_code < 400:
        return

    try:
        detail = msgspec.json.decode(response.content, type=_GraphError).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        return

    if detail.code == DEPRECATED_CODE:
        raise ApiVersionUnsupportedError(
            f"{what}: the ratings edge is unsupported by this Graph API version "
            f"(error code 12: {detail.message}); reviews of this Page cannot be listed, "
            "set platforms.facebook.api_base to an older supported version or disable the platform"
        )

    if detail.code == TOKEN_INVALID_CODE:
        raise ReconnectRequiredError(
            f"{what}: Facebook rejected the Page access token (code 190: {detail.message}); "
            "generate a new Page access token and store it in platforms.facebook.pages"
        )

    if detail.code in _TEMPORARY_CODES:
        # Graph states throttling in usage headers; a Retry-After from a proxy
        # or the sandbox is honoured when a rate limit carries one.
        retry_after = None
        if detail.code in _RATE_LIMIT_CODES:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), now=time.time())
        raise PlatformError(
            f"{what}: Facebook error code {detail.code} ({detail.message}); "
            "the call will be retried",
            retryable=True,
            status=response.status_code,
            retry_after=retry_after,
        )


def verify_subscription(query: Mapping[str, str], verify_token: str) -> str:
    """Return ``hub.challenge`` when a webhook subscription request is genuine.

    Facebook sends ``hub.mode=subscribe``, the configured ``hub.verify_token``
    and a challenge to echo.  Raises WebhookVerificationError otherwise.
    """
    if query.get("hub.mode") != "subscribe":
        raise WebhookVerificationError(
            f"invalid hub.mode {query.get('hub.mode')!r}: expected 'subscribe'"
        )

    offered = query.get("hub.verify_token", "")
    if not verify_token or not hmac.compare_digest(offered.encode(), verify_token.encode()):
        raise WebhookVerificationError(
            "hub.verify_token does not match platforms.facebook.verify_token; "
            "use the same token in the app's webhook settings"
        )

    challenge = query.get("hub.challenge", "")
    if not challenge:
        raise WebhookVerificationError("missing hub.challenge in the subscription request")

    return challenge


def signature_of(body: bytes, app_secret: str) -> str:
    """Return the ``X-Hub-Signature-256`` value Facebook sends for ``body``."""
    digest = hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(body: bytes, header: str | None, app_secret: str) -> None:
    """Check ``X-Hub-Signature-256`` over the raw body; raise WebhookVerificationError if wrong.

    The comparison is timing-safe.
    """
    if not app_secret:
        raise WebhookVerificationError(
            "platforms.facebook.app_secret is not set, so webhook signatures cannot be checked"
        )

    if not header or not header.startswith("sha256="):
        raise WebhookVerificationError(
            "missing or malformed X-Hub-Signature-256 header: expected 'sha256=<hex>'"
        )

    if not hmac.compare_digest(header.encode(), signature_of(body, app_secret).encode()):
        raise WebhookVerificationError(
            "X-Hub-Signature-256 does not match the body; check platforms.facebook.app_secret"
        )


class _RatingValue(msgspec.Struct, kw_only=True):
    item: str = ""
    verb: str = ""
    open_graph_story_id: str | None = None
    reviewer_id: str | None = None


class _Change(msgspec.Struct, kw_only=True):
    field: str
    value: _RatingValue = msgspec.field(default_factory=_RatingValue)


class _Entry(msgspec.Struct, kw_only=True):
    id: str
    changes: list[_Change] = msgspec.field(default_factory=list)


class _Notification(msgspec.Struct, kw_only=True):
    object: str
    entry: list[_Entry]


@final
class RatingChange(msgspec.Struct, frozen=True, kw_only=True):
    """One rating change announced by a Page webhook."""

    page_id: str
    # "add", "edit" or "remove"; values newer than this client pass through.
    verb: str
    # The review id; None when the notification names no story.
    story_id: str | None


def parse_page_webhook(body: bytes) -> list[RatingChange]:
    """Parse a Page webhook body into its ``ratings`` changes; other fields are skipped.

    Check the signature with :func:`verify_signature` first.  Raises
    WebhookVerificationError naming the problem for a body that is not a
    Page notification.
    """
    try:
        notification = msgspec.json.decode(body, type=_Notification)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise WebhookVerificationError(f"invalid Page webhook body: {error}") from error

    if notification.object != "page":
        raise WebhookVerificationError(
            f"invalid Page webhook: object is {notification.object!r}, expected 'page'"
        )

    return [
        RatingChange(
            page_id=entry.id, verb=change.value.verb, story_id=change.value.open_graph_story_id
        )
        for entry in notification.entry
        for change in entry.changes
        if change.field == "ratings"
    ]


@final
class FacebookClient:
    """Async Graph API client for the ratings of configured Pages, for use under Trio."""

    name: Final = PLATFORM
    # PUSH: the inbound listener verifies the Page webhook and turns a
    # ``ratings`` change into a sync of that Page (plaudit.inbound.inbox).
    capabilities: Final = frozenset({Capability.LIST, Capability.PUSH, Capability.REPLY})
    ingestion_modes: Final = frozenset({IngestionMode.API_POLL, IngestionMode.PUSH})

    def __init__(
        self, config: FacebookConfig, *, page_tokens: Mapping[str, str], api: ApiClient
    ) -> None:
        self._config = config
        self._page_tokens = dict(page_tokens)
        self._api = api
        self._api_base = config.api_base.rstrip("/")

    def __repr__(self) -> str:
        return f"<FacebookClient api_base={self._api_base!r} pages={len(self._page_tokens)}>"

    def statistics(self) -> ApiClientStatistics:
        """Return the request counters."""
        return self._api.statistics()

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._api.aclose()

    def _headers_for(self, page_id: str) -> Headers:
        token = self._page_tokens.get(page_id)
        if token is None:
            raise ValueError(
                f"no access token for Facebook Page {page_id}; add it to platforms.facebook.pages"
            )

        async def headers() -> dict[str, str]:
            return {"Authorization": f"Bearer {token}"}

        return headers

    async def list_ratings_page(self, page_id: str, after: str | None = None) -> RatingPage:
        """Fetch one page of a Page's ratings."""
        check_page_id(page_id)
        params: dict[str, str | int] = {"fields": RATING_FIELDS, "limit": self._config.page_size}
        if after:
            params["after"] = after

        return await self._api.call(
            "GET",
            f"{self._api_base}/{page_id}/ratings",
            functools.partial(parse_ratings, page_id=page_id),
            headers=self._headers_for(page_id),
            inspect=raise_for_graph_error,
            hint="check the Page id and that the token has pages_read_user_content",
            params=params,
        )

    async def list_all_ratings(
        self,
        page_id: str,
        *,
        max_pages: int = 200,
        start_after: str | None = None,
        on_page: PageHook | None = None,
    ) -> RatingListing:
        """Fetch every rating by following the ``after`` cursor, from ``start_after`` if given.

        Paging stops after ``max_pages`` pages or when Graph repeats a cursor;
        the listing is then marked incomplete.  ``on_page`` receives each page
        with the cursor of the next one, or None when paging stops there.
        """
        if max_pages < 1:
            raise ValueError(f"invalid max_pages {max_pages}: use 1 or more")

        reviews: dict[str, Review] = {}
        seen: set[str] = set()
        after = start_after
        pages = 0
        while pages < max_pages:
            page = await self.list_ratings_page(page_id, after)
            pages += 1
            reviews.update((review.review_id, review) for review in page.reviews)
            after = page.after
            looped = after is not None and after in seen
            if on_page is not None:
                following = None if looped or pages >= max_pages else after
                await on_page(ListedPage(reviews=page.reviews, next_cursor=following))
            if after is None or looped:
                break
            seen.add(after)

        complete = after is None
        if not complete:
            log.warning("facebook.listing_incomplete", extra={"page_id": page_id, "pages": pages})
        return RatingListing(reviews=list(reviews.values()), complete=complete, pages=pages)

    async def reply(self, page_id: str, story_id: str, text: str) -> str:
        """Post the vendor's reply as a comment on the rating's story; return the comment id.

        A comment POST is not idempotent: a POST whose response was lost, or
        one sent just before a crash, may have created the comment.  So the
        story's comments are read first, and a comment of the Page with the
        same text is taken as the reply.  The POST itself is sent once, and
        a failed one is retried by the job, which reads the comments again.
        """
        check_page_id(page_id)
        if not _STORY_ID.fullmatch(story_id) or story_id.startswith("derived-"):
            raise ValueError(
                f"invalid Facebook story id {story_id!r}: only ratings with an "
                "open_graph_story id can be replied to"
            )
        if not text.strip() or len(text) > MAX_REPLY_CHARS:
            raise ValueError(
                f"invalid reply of {len(text)} characters: write 1 to {MAX_REPLY_CHARS}"
            )

        existing = await self.page_comment(page_id, story_id, text)
        if existing is not None:
            log.info("facebook.reply_exists", extra={"page_id": page_id, "comment": existing})
            return existing

        def parse(data: bytes) -> str:
            return decode_json(data, _CommentCreated, "comment", PLATFORM).id

        return await self._api.call(
            "POST",
            f"{self._api_base}/{story_id}/comments",
            parse,
            headers=self._headers_for(page_id),
            inspect=raise_for_graph_error,
            hint="check that the token has pages_manage_engagement",
            data={"message": text},
            retries=False,
        )

    async def page_comment(self, page_id: str, story_id: str, text: str) -> str | None:
        """Return the id of the Page's newest comment on the story with exactly ``text``, or None.

        Reads the newest 100 comments, which include any reply posted moments ago.
        """
        check_page_id(page_id)

        def parse(data: bytes) -> _Comments:
            return decode_json(data, _Comments, "comments", PLATFORM)

        params: dict[str, str | int] = {
            "fields": "id,from,message,created_time",
            "order": "reverse_chronological",
            "limit": 100,
        }
        comments = await self._api.call(
            "GET",
            f"{self._api_base}/{story_id}/comments",
            parse,
            headers=self._headers_for(page_id),
            inspect=raise_for_graph_error,
            hint="check that the token has pages_read_engagement",
            params=params,
        )
        for comment in comments.data:
            if (
                comment.from_ is not None
                and comment.from_.id == page_id
                and same_comment_text(comment.message, text)
            ):
                return comment.id
        return None


def facebook_client(
    config: FacebookConfig, *, page_tokens: Mapping[str, str], **options: Any
) -> FacebookClient:
    """Build a client; ``options`` go to :class:`ApiClient` (transport, rng, sleep, clocks)."""
    api = limited_client(
        PLATFORM,
        timeout=config.request_timeout,
        retry=config.retry,
        limits=config.limits,
        **options,
    )
    return FacebookClient(config, page_tokens=page_tokens, api=api)
