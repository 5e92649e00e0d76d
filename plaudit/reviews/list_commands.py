"""``plaudit ctl review list``: the daemon's side of the control command.

``review`` requests with ``"subcommand": "list"`` come here; the others go on
to the reply and matching commands.  The listing shows each review's
``PLATFORM:ID``, the reference that ``review reply`` takes.  Reviews marked
deleted are left out, because they take no reply.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, final

import msgspec

from plaudit.daemon.control_wire import InvalidArgument
from plaudit.errors import ControlError

if TYPE_CHECKING:
    from plaudit.daemon.app import Daemon
    from plaudit.journal import Journal

Command = Callable[[dict[str, Any]], Awaitable[Any]]

DEFAULT_LIMIT: Final = 20
MAX_LIMIT: Final = 1000
_COLUMNS: Final = (
    "platform",
    "review_id",
    "profile",
    "stars",
    "recommendation",
    "author",
    "text",
    "created_at",
    "updated_at",
    "reply_updated_at",
)


@final
class ReviewQuery(msgspec.Struct, frozen=True, kw_only=True):
    """The filters of one listing."""

    # Lower case, because stored platform names are compared case-insensitively.
    platform: str | None = None
    profile: str | None = None
    limit: int = DEFAULT_LIMIT
    # Only reviews without a stored vendor reply.
    unreplied: bool = False


def with_review_list(daemon: Daemon, review_other: Command) -> Command:
    """Return a ``review`` command that serves ``list`` and passes the other subcommands on."""

    async def review(args: dict[str, Any]) -> Any:
        if args.get("subcommand") != "list":
            return await review_other(args)

        journal = daemon.journal
        if journal is None:
            raise ControlError("the journal is not open yet; try again in a moment")
        query = parse_query(args)
        return await journal.read(lambda opened: list_reviews(opened, query))

    return review


def parse_query(args: dict[str, Any]) -> ReviewQuery:
    """Parse the request's filters.  Raises InvalidArgument naming the invalid one."""
    platform = _optional_text(args, "platform")
    profile = _optional_text(args, "profile")

    limit = args.get("limit", DEFAULT_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgument(
            f"argument 'limit' must be an integer from 1 to {MAX_LIMIT}, got {limit!r}"
        )

    unreplied = args.get("unreplied", False)
    if not isinstance(unreplied, bool):
        raise InvalidArgument(f"argument 'unreplied' must be true or false, got {unreplied!r}")

    return ReviewQuery(
        platform=None if platform is None else platform.lower(),
        profile=profile,
        limit=limit,
        unreplied=unreplied,
    )


def _optional_text(args: dict[str, Any], name: str) -> str | None:
    value = args.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(f"argument {name!r} must be a non-empty string, got {value!r}")
    return value.strip()


def list_reviews(journal: Journal, query: ReviewQuery) -> dict[str, Any]:
    """Return the reviews that match ``query``, most recently updated first, and their total."""
    conditions = ["deleted_at IS NULL"]
    params: list[Any] = []
    if query.platform is not None:
        conditions.append("lower(platform) = ?")
        params.append(query.platform)
    if query.profile is not None:
        conditions.append("profile = ?")
        params.append(query.profile)
    if query.unreplied:
        conditions.append("reply_text IS NULL")

    # The window count gives the total of all matches in the same statement.
    sql = (
        f"SELECT {', '.join(_COLUMNS)}, reply_text IS NOT NULL, count(*) OVER () FROM reviews "
        f"WHERE {' AND '.join(conditions)} "
        "ORDER BY updated_at DESC, created_at DESC, platform, review_id LIMIT ?"
    )
    rows = journal.query(sql, [*params, query.limit])

    reviews = []
    for row in rows:
        review = dict(zip(_COLUMNS, row[: len(_COLUMNS)], strict=True))
        review["replied"] = bool(row[len(_COLUMNS)])
        reviews.append(review)

    total = int(rows[0][-1]) if rows else 0
    return {
        "subcommand": "list",
        "filters": msgspec.to_builtins(query),
        "total": total,
        "reviews": reviews,
    }
