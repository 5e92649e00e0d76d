"""``plaudit ctl review reply``: the daemon's side of the control command.

``review`` requests with ``"subcommand": "reply"`` come here; the others go
on to the matching commands.  A reply is validated and its job enqueued in
one transaction, so two operators sending the same reply queue one job.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

from plaudit.daemon.control_wire import InvalidArgument
from plaudit.errors import ControlError
from plaudit.journal import Tx
from plaudit.reviews.replies import (
    DashboardReply,
    ReplyRejectedError,
    find_review,
    normalize_text,
    plan_reply,
    reply_job,
    reply_jobs,
)

if TYPE_CHECKING:
    from plaudit.daemon.app import Daemon

log = logging.getLogger(__name__)

Command = Callable[[dict[str, Any]], Awaitable[Any]]


def with_review_replies(daemon: Daemon, review_other: Command) -> Command:
    """Return a ``review`` command that serves ``reply`` and passes the other subcommands on."""

    async def review(args: dict[str, Any]) -> Any:
        if args.get("subcommand") != "reply":
            return await review_other(args)
        return await reply_command(daemon, args)

    return review


async def reply_command(daemon: Daemon, args: dict[str, Any]) -> dict[str, Any]:
    """Queue a reply (``text``) or show a review's reply state (no ``text``)."""
    journal = daemon.journal
    if journal is None:
        raise ControlError("the journal is not open yet; try again in a moment")

    reference = args.get("review")
    if not isinstance(reference, str) or not reference:
        raise InvalidArgument(f"argument 'review' must be PLATFORM:ID or an id, got {reference!r}")

    text = args.get("text")
    if text is not None and not isinstance(text, str):
        raise InvalidArgument(f"argument 'text' must be a string, got {type(text).__name__}")

    try:
        if text is None:
            return await journal.transaction(lambda tx: reply_status(tx, reference))
        result = await journal.transaction(lambda tx: queue_reply(tx, reference, text))
    except ReplyRejectedError as error:
        raise InvalidArgument(str(error)) from error

    actor = daemon.actors.get(str(result.get("platform")))
    if actor is not None:
        actor.wake()
    return result


def queue_reply(tx: Tx, reference: str, text: str) -> dict[str, Any]:
    """Validate the reply and enqueue its job; raises ReplyRejectedError naming the fix."""
    review = find_review(tx, reference)
    plan = plan_reply(review, normalize_text(text))
    base = {"subcommand": "reply", "platform": review.platform, "review": review.review_id}
    if isinstance(plan, DashboardReply):
        return {**base, "state": "dashboard", **msgspec.to_builtins(plan)}

    job = reply_job(plan)
    job_id = tx.enqueue(**job)
    queued = job_id is not None
    if job_id is None:
        row = tx.execute("SELECT id FROM jobs WHERE key = ?", (job["key"],)).fetchone()
        job_id = int(row[0])
    log.info(
        "reply.queued",
        extra={"platform": review.platform, "review": review.review_id, "job": job_id},
    )
    return {**base, "state": "queued" if queued else "already_queued", "job": job_id}


def reply_status(tx: Tx, reference: str) -> dict[str, Any]:
    """Return the stored reply of a review and its reply jobs."""
    review = find_review(tx, reference)
    return {
        "subcommand": "reply",
        "state": "status",
        "platform": review.platform,
        "review": review.review_id,
        "deleted_at": review.deleted_at,
        "reply_text": review.reply_text,
        "reply_updated_at": review.reply_updated_at,
        "jobs": reply_jobs(tx, review.platform, review.review_id),
    }
