"""Storing the reviews of notification e-mails from a Maildir.

Like a file import, each pass is a partial listing written through
:func:`plaudit.reviews.store.apply_snapshot`, one snapshot per platform and
profile, in one journal transaction.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, final

import msgspec

from plaudit.connectors.marketplace.mailbox import (
    MailboxEntry,
    mark_processed,
    read_new_notifications,
)
from plaudit.connectors.marketplace.models import to_review
from plaudit.reviews.model import Review
from plaudit.reviews.store import apply_snapshot

if TYPE_CHECKING:
    from plaudit.journal.store import Journal
    from plaudit.journal.tx import Tx


@final
class MailboxReport(msgspec.Struct, kw_only=True):
    """Counts of one pass over a Maildir of review notifications."""

    maildir: str
    messages: int = 0
    reviews: int = 0
    # Messages announcing a review already taken from another message of the pass.
    duplicates: int = 0
    # "<message key>: <reason>" for each message that held no usable review.
    skipped: list[str] = msgspec.field(default_factory=list)
    created: int = 0
    updated: int = 0
    unchanged: int = 0


def import_notifications(
    journal: Journal,
    maildir: str | Path,
    *,
    profiles: Mapping[str, str],
    now: float | None = None,
) -> MailboxReport:
    """Store the reviews announced by the notification e-mails in a Maildir's ``new/``.

    ``profiles`` maps each platform name to the vendor's profile there; a
    notice from another platform is skipped and reported.  Every message that
    was read moves to ``cur/`` after the journal commit, including skipped
    ones, which the report lists.  Raises MaildirError when the folder is not
    a Maildir.
    """
    entries = read_new_notifications(maildir)
    with journal.transaction() as tx:
        report = store_notifications(tx, entries, profiles=profiles, mailbox=str(maildir), now=now)
    mark_processed(maildir, (entry.key for entry in entries))
    return report


def store_notifications(
    tx: Tx,
    entries: Sequence[MailboxEntry],
    *,
    profiles: Mapping[str, str],
    mailbox: str,
    now: float | None = None,
) -> MailboxReport:
    """Store the reviews of parsed messages from any mailbox in one transaction.

    ``mailbox`` names the source in the report; the caller marks the
    messages read once the transaction commits.
    """
    moment = time.time() if now is None else now
    report = MailboxReport(maildir=mailbox)
    groups = _group_reviews(entries, profiles=profiles, now=moment, report=report)
    for (platform, profile), reviews in groups.items():
        outcome = apply_snapshot(
            tx,
            platform=platform,
            profile=profile,
            reviews=list(reviews.values()),
            complete=False,
        )
        report.reviews += len(reviews)
        report.created += outcome.created + outcome.restored
        report.updated += outcome.updated + outcome.replied
        report.unchanged += outcome.unchanged
    return report


def _group_reviews(
    entries: Sequence[MailboxEntry],
    *,
    profiles: Mapping[str, str],
    now: float,
    report: MailboxReport,
) -> dict[tuple[str, str], dict[str, Review]]:
    groups: dict[tuple[str, str], dict[str, Review]] = {}
    for entry in entries:
        report.messages += 1
        notice = entry.notification
        if notice is None:
            report.skipped.append(f"{entry.key}: {entry.error}")
            continue

        profile = profiles.get(notice.platform)
        if profile is None:
            report.skipped.append(
                f"{entry.key}: no profile is configured for platform {notice.platform!r}; "
                "add one to receive its reviews"
            )
            continue

        group = groups.setdefault((notice.platform, profile), {})
        if notice.review_id in group:
            report.duplicates += 1
            continue
        group[notice.review_id] = to_review(
            notice.to_page_review(), platform=notice.platform, profile=profile, fallback_time=now
        )
    return groups
