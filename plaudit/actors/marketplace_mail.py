"""The mailbox mode of a marketplace profile: notification e-mails from a Maildir or IMAP.

A pass stores the reviews of every new message in one journal transaction,
and only after the commit marks the messages read: a Maildir message moves
to ``cur/``, an IMAP message gets ``\\Seen``.  An IMAP message that contains no
review notification gets ``\\Seen`` and ``$PlauditRejected`` instead, so it
stays in the folder for a person to read.  A crash before the marking
leaves the messages new, and storing them again changes nothing, because
reviews are keyed by their id on the site.

Every IMAP call blocks, so it runs in a worker thread.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Final

import msgspec
import trio

from plaudit.config.model import MarketplaceProfile
from plaudit.connectors.marketplace.mailbox import (
    MAX_MESSAGES_PER_PASS,
    MailboxEntry,
    MaildirError,
    parse_entry,
)
from plaudit.connectors.marketplace.notification import MAX_MESSAGE_BYTES
from plaudit.errors import PlatformError
from plaudit.journal import AsyncJournal
from plaudit.messaging.deliverability.imap import ImapMailboxError, ImapSource
from plaudit.reviews.notifications import (
    MailboxReport,
    import_notifications,
    store_notifications,
)

log = logging.getLogger(__name__)

# Seconds a stop request waits for the IMAP logout.
LOGOUT_SECONDS: Final = 5.0


async def read_mailboxes(
    journal: AsyncJournal, profile: MarketplaceProfile, *, site: str
) -> list[MailboxReport]:
    """Run one pass over the profile's Maildir and IMAP folder, whichever are set.

    Raises PlatformError (not retryable) when a mailbox cannot be read, after
    the other mailbox had its pass.
    """
    profiles = {site: profile.profile_id}
    reports: list[MailboxReport] = []
    errors: list[str] = []
    if profile.maildir:
        try:
            reports.append(
                await journal.read(
                    lambda opened: import_notifications(opened, profile.maildir, profiles=profiles)
                )
            )
        except MaildirError as error:
            errors.append(str(error))
    if profile.imap_host:
        try:
            reports.append(await read_imap(journal, profile, site=site))
        except ImapMailboxError as error:
            errors.append(str(error))
    if errors:
        # Local, like a missing import folder: the next slot's pass tries again.
        raise PlatformError(
            f"{site} profile {profile.profile_id!r}: " + "; ".join(errors), retryable=False
        )
    return reports


async def read_imap(
    journal: AsyncJournal, profile: MarketplaceProfile, *, site: str
) -> MailboxReport:
    """Store the reviews of the unseen messages in the profile's IMAP folder.

    Raises ImapMailboxError when the server cannot be reached, logged into or read.
    """
    # check-config rejects a relative password file, so "/" changes nothing.
    source = ImapSource(profile, state_dir=Path("/"))
    try:
        keys = await trio.to_thread.run_sync(
            source.list_new, MAX_MESSAGES_PER_PASS, abandon_on_cancel=True
        )
        entries = [await _fetch(source, key) for key in keys]
        report = await journal.transaction(
            lambda tx: store_notifications(
                tx, entries, profiles={site: profile.profile_id}, mailbox=source.label
            )
        )
        for entry in entries:
            await _mark(source, entry)
    finally:
        with trio.move_on_after(LOGOUT_SECONDS, shield=True):
            await trio.to_thread.run_sync(source.close, abandon_on_cancel=True)
    return report


async def _fetch(source: ImapSource, key: str) -> MailboxEntry:
    # One byte over the parser's limit, so the parser can report the size.
    data = await trio.to_thread.run_sync(
        source.read, key, MAX_MESSAGE_BYTES + 1, abandon_on_cancel=True
    )
    return parse_entry(key, data, source=f"{source.label} UID {key}")


async def _mark(source: ImapSource, entry: MailboxEntry) -> None:
    if entry.notification is None:
        reason = entry.error or "not a review notification"
        await trio.to_thread.run_sync(source.reject, entry.key, reason)
    else:
        await trio.to_thread.run_sync(source.done, entry.key)


def log_mailbox_report(report: MailboxReport, *, site: str, profile: str) -> None:
    """Log a pass that read messages, and warn about the messages it skipped."""
    if report.skipped:
        log.warning(
            "marketplace.mail_skipped",
            extra={
                "site": site,
                "profile": profile,
                "maildir": report.maildir,
                "skipped": report.skipped,
            },
        )
    if report.messages:
        log.info(
            "marketplace.mailbox_read",
            extra={"site": site, "profile": profile, "report": msgspec.to_builtins(report)},
        )
