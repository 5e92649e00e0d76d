"""Vendor replies: validation, the durable ``review.reply`` job and its result.

``plaudit ctl review reply`` validates a reply with :func:`plan_reply` and
enqueues :func:`reply_job` for the platform's actor.  The job's key names the
review and the SHA-256 of the text, so the same reply to the same review is
queued once however often it is sent.  The actor posts the reply through the
connector in :func:`post_reply`, and the returned effects store the reply on
the review with :func:`apply_snapshot`, in the transaction that completes the
job.  That path emits ``review.replied``, and the next sync, which lists the
same text, emits nothing.

Platforms without a reply API get no job: for a marketplace review the
command returns the dashboard page where the vendor replies, and a Yelp
review is rejected with a link to Yelp's dashboard.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, final

import msgspec

from plaudit.connectors import facebook, google, trustpilot
from plaudit.connectors.marketplace.sites import SITES
from plaudit.errors import PlatformError
from plaudit.reviews.model import Review, format_timestamp
from plaudit.reviews.store import apply_snapshot, load_reviews

if TYPE_CHECKING:
    from plaudit.journal import AsyncJournal, Job, Tx

log = logging.getLogger(__name__)

REPLY_KIND: Final = "review.reply"
# Platform -> (maximum length, unit).  Google counts UTF-8 bytes, the
# others count characters, as their connectors check before sending.
REPLY_LIMITS: Final[dict[str, tuple[int, str]]] = {
    "google": (google.MAX_REPLY_BYTES, "bytes"),
    "facebook": (facebook.MAX_REPLY_CHARS, "characters"),
    "trustpilot": (trustpilot.MAX_REPLY_CHARS, "characters"),
}
YELP_DASHBOARD: Final = "https://biz.yelp.com"
# Post a reply: (profile, review id, text) -> the platform's reply time
# (format_timestamp form) or None when the platform returns none.
PostReply = Callable[[str, str, str], Awaitable[str | None]]


class ReplyRejectedError(ValueError):
    """A reply that cannot be queued.  The message states why and what to do instead."""


@final
class DashboardReply(msgspec.Struct, frozen=True, kw_only=True):
    """A review whose platform has no reply API: the page where the vendor replies."""

    platform: str
    review_id: str
    dashboard_url: str
    message: str


@final
class ReplyRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The payload of a ``review.reply`` job."""

    platform: str
    profile: str
    review_id: str
    text: str


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalize_text(text: str) -> str:
    """Strip surrounding whitespace, so the stored reply matches the text a later sync lists.

    NOTE: a platform that rewrites the text further (line endings, markup)
    makes that sync emit a second ``review.replied`` with its own text.
    """
    return text.strip()


def dashboard_of(platform: str) -> str | None:
    """Return the page where a vendor replies on ``platform``, or None when it has a reply API."""
    if platform in REPLY_LIMITS:
        return None

    site = SITES.get(platform)
    if site is not None and site.dashboard_url:
        return site.dashboard_url

    return None


def plan_reply(review: Review, text: str) -> ReplyRequest | DashboardReply:
    """Validate a reply to a stored review.

    Returns the job payload, or the dashboard link for a marketplace, which
    has no reply API.  Raises ReplyRejectedError for an empty or too long
    text, a deleted review, a Yelp review (the message links Yelp's dashboard)
    or a platform that takes no replies at all.
    """
    if review.platform == "yelp":
        raise ReplyRejectedError(
            f"Yelp has no reply API; reply to review {review.review_id} in the Yelp for "
            f"Business dashboard at {YELP_DASHBOARD}"
        )

    dashboard = dashboard_of(review.platform)
    if dashboard is not None:
        message = (
            f"{review.platform} has no reply API; reply to review {review.review_id} "
            f"in the vendor dashboard at {dashboard}"
        )
        return DashboardReply(
            platform=review.platform,
            review_id=review.review_id,
            dashboard_url=dashboard,
            message=message,
        )

    limit = REPLY_LIMITS.get(review.platform)
    if limit is None:
        raise ReplyRejectedError(
            f"platform {review.platform!r} takes no replies from Plaudit; "
            "reply on the platform's own site"
        )

    if review.deleted_at is not None:
        raise ReplyRejectedError(
            f"review {review.platform}:{review.review_id} was deleted on the platform "
            f"at {review.deleted_at}; there is nothing to reply to"
        )

    if review.platform == "facebook" and review.review_id.startswith("derived-"):
        raise ReplyRejectedError(
            f"Facebook rating {review.review_id} has no story id, so the Graph API takes "
            "no comment on it; reply on the Page itself"
        )

    _check_text(review.platform, text, limit)
    return ReplyRequest(
        platform=review.platform, profile=review.profile, review_id=review.review_id, text=text
    )


def _check_text(platform: str, text: str, limit: tuple[int, str]) -> None:
    if not text:
        raise ReplyRejectedError("invalid reply: the text is empty; write the reply first")

    maximum, unit = limit
    size = len(text.encode("utf-8")) if unit == "bytes" else len(text)
    if size > maximum:
        raise ReplyRejectedError(
            f"invalid reply: {size} {unit}, {platform} accepts at most {maximum}; shorten the reply"
        )


def reply_key(platform: str, review_id: str, text: str | None = None) -> str:
    """Return the job key, or without ``text`` the prefix every reply to the review shares."""
    prefix = f"{REPLY_KIND}:{platform}:{review_id}:"
    return prefix if text is None else prefix + text_hash(text)


def reply_job(request: ReplyRequest) -> dict[str, Any]:
    """Return the enqueue arguments of the job that posts ``request``."""
    payload: dict[str, Any] = msgspec.to_builtins(request)
    if request.platform == "google":
        # The Google actor reads a job's location from these keys.
        account, _, location = request.profile.partition("/locations/")
        payload["account"] = account
        payload["location"] = f"locations/{location}"
    return {
        "kind": REPLY_KIND,
        "owner": request.platform,
        "key": reply_key(request.platform, request.review_id, request.text),
        "payload": payload,
    }


def find_review(source: Tx, reference: str) -> Review:
    """Return the stored review that ``reference`` names: ``platform:id`` or a bare id.

    Raises ReplyRejectedError when no stored review or more than one matches.
    """
    platform, _, review_id = reference.partition(":")
    candidates: list[Review] = []
    if review_id:
        candidates = _reviews_with_id(source, review_id, platform)
    if not candidates:
        candidates = _reviews_with_id(source, reference, None)

    if not candidates:
        raise ReplyRejectedError(
            f"review {reference!r} not found; use PLATFORM:ID as plaudit ctl review list shows it"
        )

    if len(candidates) > 1:
        names = ", ".join(f"{review.platform}:{review.review_id}" for review in candidates)
        raise ReplyRejectedError(
            f"review id {reference!r} exists on several platforms ({names}); "
            "name one as PLATFORM:ID"
        )

    return candidates[0]


def _reviews_with_id(source: Tx, review_id: str, platform: str | None) -> list[Review]:
    sql = "SELECT DISTINCT platform FROM reviews WHERE review_id = ?"
    params: list[Any] = [review_id]
    if platform is not None:
        sql += " AND platform = ?"
        params.append(platform)
    platforms = [row[0] for row in _rows(source, sql, params)]
    found: list[Review] = []
    for name in platforms:
        stored = load_reviews(source, name, include_deleted=True)
        found.extend(review for review in stored if review.review_id == review_id)
    return found


def reply_jobs(source: Tx, platform: str, review_id: str) -> list[dict[str, Any]]:
    """Return the reply jobs of one review, oldest first, as JSON-ready rows."""
    prefix = reply_key(platform, review_id)
    rows = _rows(
        source,
        "SELECT id, state, attempts, last_error, created_at, finished_at FROM jobs "
        "WHERE kind = ? AND substr(key, 1, ?) = ? ORDER BY id",
        [REPLY_KIND, len(prefix), prefix],
    )
    columns = ("job", "state", "attempts", "last_error", "created_at", "finished_at")
    return [dict(zip(columns, row, strict=True)) for row in rows]


async def post_reply(journal: AsyncJournal, job: Job, post: PostReply) -> Callable[[Tx], None]:
    """Post the reply of a ``review.reply`` job and return the journal writes of its result.

    Raises PlatformError, permanent for a deleted review or a reply the
    platform rejects, retryable for what the connector calls retryable.
    """
    request = msgspec.convert(job.payload, ReplyRequest)
    # Read through a transaction because load_reviews() takes a Tx, not a Journal.
    stored = await journal.transaction(
        lambda tx: _stored_review(tx, request.platform, request.review_id)
    )
    if stored is None or stored.deleted_at is not None:
        raise PlatformError(
            f"review {request.platform}:{request.review_id} was deleted on the platform; "
            "the reply was not posted",
            retryable=False,
            status=404,
        )

    if stored.reply_text == request.text:
        # Already on the platform, as a sync saw it.  A reply posted just
        # before a crash is not stored yet; the Facebook connector then finds
        # the comment on the story before it posts another.
        log.info("reply.already_posted", extra={"job": job.id, "review": request.review_id})
        replied_at = stored.reply_updated_at
    else:
        replied_at = await _post(request, post)

    at = replied_at or format_timestamp(time.time())
    log.info(
        "reply.posted",
        extra={"job": job.id, "platform": request.platform, "review": request.review_id},
    )

    def record(tx: Tx) -> None:
        store_reply(tx, request, replied_at=at)

    return record


async def _post(request: ReplyRequest, post: PostReply) -> str | None:
    try:
        return await post(request.profile, request.review_id, request.text)
    except ValueError as error:
        raise PlatformError(
            f"reply to {request.platform}:{request.review_id} rejected before sending: {error}",
            retryable=False,
        ) from error
    except PlatformError as error:
        if error.status == 404:
            raise PlatformError(
                f"review {request.platform}:{request.review_id} not found on the platform "
                f"(deleted?); the reply was not posted: {error}",
                retryable=False,
                status=404,
            ) from error
        raise


def store_reply(tx: Tx, request: ReplyRequest, *, replied_at: str) -> bool:
    """Set the posted reply on the stored review, emitting ``review.replied`` once.

    Returns False, storing nothing, when the review was deleted meanwhile.
    """
    review = _stored_review(tx, request.platform, request.review_id)
    if review is None or review.deleted_at is not None:
        log.warning(
            "reply.review_gone", extra={"platform": request.platform, "review": request.review_id}
        )
        return False

    replied = msgspec.structs.replace(review, reply_text=request.text, reply_updated_at=replied_at)
    apply_snapshot(
        tx, platform=review.platform, profile=review.profile, reviews=[replied], complete=False
    )
    return True


def _stored_review(source: Tx, platform: str, review_id: str) -> Review | None:
    found = _reviews_with_id(source, review_id, platform)
    return found[0] if found else None


def _rows(tx: Tx, sql: str, params: list[Any]) -> list[Any]:
    return list(tx.execute(sql, params).fetchall())
