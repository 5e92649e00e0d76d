"""Writing platform listings to the journal's ``reviews`` table.

:func:`apply_snapshot` runs inside a journal transaction, so every row change
commits together with the outbox event that announces it, or not at all.

Events, their keys and when they are emitted:

- ``review.created`` (key ``review.created:<platform>:<id>``): a review seen
  for the first time.
- ``review.created`` with ``"change": "restored"`` (key
  ``review.created:<platform>:<id>:restored:<deleted_at>``): a review that
  reappears after it was marked deleted.  Consumers that dropped it on
  ``review.deleted`` get its full current content again; the tombstone's
  time in the key gives each delete-and-restore cycle its own event.
- ``review.updated`` (key ``review.updated:<platform>:<id>:<updated_at>:<hash>``):
  the reviewer changed stars, recommendation, text or display name.
- ``review.replied`` (key ``review.replied:<platform>:<id>:<reply_updated_at>:<hash>``):
  the vendor reply is new or its text changed.  When the reply disappeared,
  the payload has ``"change": "reply_removed"`` and the key ends in
  ``<removed reply's reply_updated_at>:removed``.
- ``review.deleted`` (key ``review.deleted:<platform>:<id>:<deleted_at>``): a
  complete listing no longer contains the review.

Every payload has ``change`` and ``review`` (the review after the change).
``review.created`` payloads of marketplace reviews add ``dashboard_url``, the
vendor dashboard page where the vendor replies, because those sites have no
reply API.
Updates add ``previous`` (the earlier stars, recommendation, text and author)
and reply changes add ``previous_reply``.

The row comparison makes a repeated snapshot emit nothing (it only refreshes
``last_seen_at``), and the keys make a repeated event harmless.  The update
time in the update and reply keys keeps an edit back to earlier content
(A, B, A, B) from being taken for a repeat.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol, final

import msgspec
from prometheus_client import Counter

from plaudit.connectors.marketplace.sites import SITES
from plaudit.metrics import REVIEWS_CHANGED
from plaudit.reviews.model import Review, format_timestamp

if TYPE_CHECKING:
    from plaudit.journal.tx import Tx

_COLUMNS: Final = (
    "platform",
    "profile",
    "review_id",
    "stars",
    "recommendation",
    "text",
    "author",
    "created_at",
    "updated_at",
    "reply_text",
    "reply_updated_at",
    "deleted_at",
)
_SELECT: Final = f"SELECT {', '.join(_COLUMNS)} FROM reviews"
_INSERT: Final = f"""
INSERT INTO reviews ({", ".join(_COLUMNS)}, content_hash, first_seen_at, last_seen_at)
VALUES ({", ".join("?" for _ in _COLUMNS)}, ?, ?, ?)
"""
_UPDATE: Final = """
UPDATE reviews SET profile = ?, stars = ?, recommendation = ?, text = ?, author = ?,
    created_at = ?, updated_at = ?, reply_text = ?, reply_updated_at = ?, deleted_at = NULL,
    content_hash = ?, last_seen_at = ?
WHERE platform = ? AND review_id = ?
"""
_LIVE_IDS: Final = """
SELECT review_id FROM reviews WHERE platform = ? AND profile = ? AND deleted_at IS NULL
"""
# Ids per ``IN (...)`` lookup; SQLite before 3.32 allows at most 999 parameters.
_IDS_PER_QUERY: Final = 500
_TOMBSTONE: Final = """
UPDATE reviews SET deleted_at = ? WHERE platform = ? AND review_id = ? AND deleted_at IS NULL
"""


class SupportsExecute(Protocol):
    """A sqlite3 connection or a journal transaction: anything that runs one statement."""

    def execute(self, sql: str, params: Sequence[Any], /) -> sqlite3.Cursor: ...


@final
class SyncOutcome(msgspec.Struct, kw_only=True):
    """Counts of what one snapshot changed, one count per review."""

    created: int = 0
    updated: int = 0
    replied: int = 0
    deleted: int = 0
    # Reviews that came back after being marked deleted.
    restored: int = 0
    unchanged: int = 0

    def add(self, other: SyncOutcome) -> None:
        """Add the counts of ``other``, a later snapshot of the same sync."""
        for name in self.__struct_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def load_reviews(
    source: SupportsExecute,
    platform: str | None = None,
    profile: str | None = None,
    *,
    include_deleted: bool = False,
) -> list[Review]:
    """Read stored reviews, optionally of one platform and profile, ordered by id."""
    conditions: list[str] = []
    params: list[Any] = []
    if platform is not None:
        conditions.append("platform = ?")
        params.append(platform)
    if profile is not None:
        conditions.append("profile = ?")
        params.append(profile)
    if not include_deleted:
        conditions.append("deleted_at IS NULL")

    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    cursor = source.execute(f"{_SELECT}{where} ORDER BY platform, profile, review_id", params)
    return [_row_to_review(row) for row in cursor.fetchall()]


def apply_snapshot(
    tx: Tx,
    *,
    platform: str,
    profile: str,
    reviews: Sequence[Review],
    complete: bool,
) -> SyncOutcome:
    """Upsert a listing of one profile's reviews and emit one event per change.

    ``complete`` means that the listing covered the whole profile, so stored
    reviews of the profile that it lacks are marked deleted.  A partial
    listing never deletes.  Raises ValueError when a review belongs to another
    platform or profile or when a review id appears twice.
    """
    _check_snapshot(platform, profile, reviews)
    # Earlier rows by id, whichever profile they are under: the platform may
    # have moved a review, and the upsert moves it too.
    previous_rows = _load_by_ids(tx, platform, [review.review_id for review in reviews])
    outcome = SyncOutcome()
    for review in reviews:
        _apply_one(tx, review, previous_rows.get(review.review_id), outcome)

    if complete:
        present = {review.review_id for review in reviews}
        outcome.deleted += delete_absent(tx, platform=platform, profile=profile, present=present)

    return outcome


def delete_absent(tx: Tx, *, platform: str, profile: str, present: Collection[str]) -> int:
    """Mark deleted the profile's stored live reviews whose ids ``present`` lacks.

    This is the deletion step of a complete snapshot whose reviews were
    already applied, page by page.  Returns how many reviews it marked.
    """
    live = tx.execute(_LIVE_IDS, (platform, profile)).fetchall()
    missing = sorted(row[0] for row in live if row[0] not in present)
    deleted_rows = _load_by_ids(tx, platform, missing)
    for review_id in missing:
        _mark_deleted(tx, deleted_rows[review_id])
    return len(missing)


def _check_snapshot(platform: str, profile: str, reviews: Sequence[Review]) -> None:
    seen: set[str] = set()
    for review in reviews:
        if review.platform != platform or review.profile != profile:
            raise ValueError(
                f"review {review.review_id!r} belongs to {review.platform} {review.profile!r}, "
                f"not to the snapshot's {platform} {profile!r}; apply each profile separately"
            )

        if review.review_id in seen:
            raise ValueError(
                f"review id {review.review_id!r} appears twice in the snapshot of {profile!r}; "
                "deduplicate the listing first"
            )

        seen.add(review.review_id)


def _load_by_ids(tx: Tx, platform: str, review_ids: Sequence[str]) -> dict[str, Review]:
    """Return the stored reviews of ``platform`` with these ids, deleted ones included."""
    found: dict[str, Review] = {}
    for start in range(0, len(review_ids), _IDS_PER_QUERY):
        chunk = review_ids[start : start + _IDS_PER_QUERY]
        marks = ", ".join("?" for _ in chunk)
        rows = tx.execute(
            f"{_SELECT} WHERE platform = ? AND review_id IN ({marks})", (platform, *chunk)
        ).fetchall()
        for row in rows:
            review = _row_to_review(row)
            found[review.review_id] = review
    return found


def _apply_one(tx: Tx, review: Review, previous: Review | None, outcome: SyncOutcome) -> None:
    if previous is None:
        _insert(tx, review)
        change = {"change": "created", **_reply_link(review)}
        _emit(tx, "review.created", _key(review, "created"), review, change)
        outcome.created += 1
        return

    _update(tx, review)
    if previous.deleted_at is not None:
        key = _key(review, "created", "restored", previous.deleted_at)
        _emit(tx, "review.created", key, review, {"change": "restored", **_reply_link(review)})
        outcome.restored += 1
        return

    content_changed = _record_edit(tx, review, previous)
    reply_changed = _record_reply(tx, review, previous)
    outcome.updated += content_changed
    outcome.replied += reply_changed
    if not (content_changed or reply_changed):
        outcome.unchanged += 1


def _reply_link(review: Review) -> dict[str, str]:
    site = SITES.get(review.platform)
    if site is None or not site.dashboard_url:
        return {}

    return {"dashboard_url": site.dashboard_url}


def _record_edit(tx: Tx, review: Review, previous: Review) -> bool:
    if review.content_hash == previous.content_hash:
        return False

    key = _key(review, "updated", review.updated_at, review.content_hash)
    change = {"change": "updated", "previous": _content_of(previous)}
    _emit(tx, "review.updated", key, review, change)
    return True


def _record_reply(tx: Tx, review: Review, previous: Review) -> bool:
    if review.reply_text == previous.reply_text:
        return False

    if review.reply_text is None:
        # Nothing identifies a removal but the reply it removed.
        key = _key(review, "replied", previous.reply_updated_at or "", "removed")
        change = {"change": "reply_removed", "previous_reply": previous.reply_text}
    else:
        key = _key(review, "replied", review.reply_updated_at or "", review.reply_hash or "")
        change = {"change": "replied", "previous_reply": previous.reply_text}

    _emit(tx, "review.replied", key, review, change)
    return True


def _mark_deleted(tx: Tx, review: Review) -> None:
    deleted_at = format_timestamp(tx.now)
    tx.execute(_TOMBSTONE, (deleted_at, review.platform, review.review_id))
    tombstone = msgspec.structs.replace(review, deleted_at=deleted_at)
    key = _key(review, "deleted", deleted_at)
    _emit(tx, "review.deleted", key, tombstone, {"change": "deleted"})


def _insert(tx: Tx, review: Review) -> None:
    values = [getattr(review, column) for column in _COLUMNS]
    # A new review is live, even if the caller's record has deleted_at set.
    values[_COLUMNS.index("deleted_at")] = None
    tx.execute(_INSERT, (*values, review.content_hash, tx.now, tx.now))


def _update(tx: Tx, review: Review) -> None:
    tx.execute(
        _UPDATE,
        (
            review.profile,
            review.stars,
            review.recommendation,
            review.text,
            review.author,
            review.created_at,
            review.updated_at,
            review.reply_text,
            review.reply_updated_at,
            review.content_hash,
            tx.now,
            review.platform,
            review.review_id,
        ),
    )


def _emit(tx: Tx, event_type: str, key: str, review: Review, change: dict[str, Any]) -> None:
    """Write one outbox event and count it, unless its key was emitted before."""
    payload = {**change, "review": review.to_dict()}
    emitted = tx.emit(
        type=event_type,
        key=key,
        platform=review.platform,
        subject=review.review_id,
        payload=payload,
    )
    if emitted:
        _changed_counter(review.platform, event_type).inc()


@functools.cache
def _changed_counter(platform: str, event_type: str) -> Counter:
    # Cached because labels() takes a lock and builds a tuple on every call;
    # platforms and event types are few.
    return REVIEWS_CHANGED.labels(platform=platform, change=event_type.removeprefix("review."))


def _key(review: Review, change: str, *parts: str) -> str:
    return ":".join(("review." + change, review.platform, review.review_id, *parts))


def _content_of(review: Review) -> dict[str, Any]:
    return {
        "stars": review.stars,
        "recommendation": review.recommendation,
        "text": review.text,
        "author": review.author,
    }


def _row_to_review(row: Sequence[Any]) -> Review:
    return Review(**dict(zip(_COLUMNS, row, strict=True)))
