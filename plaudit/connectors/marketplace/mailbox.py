"""Reading review notifications from a Maildir.

Messages in ``new/`` are read and parsed.  After the caller has stored their
reviews, :func:`mark_processed` moves them to ``cur/`` the way a mail client
does, so the next pass skips them and nothing is lost if the store fails.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Final, final

import msgspec

from plaudit.connectors.marketplace.notification import (
    MAX_MESSAGE_BYTES,
    Notification,
    NotificationError,
    parse_notification,
)
from plaudit.errors import PlauditError

# Messages read per pass; the rest wait for the next pass.
MAX_MESSAGES_PER_PASS: Final = 500


class MaildirError(PlauditError):
    """The Maildir is missing or cannot be read."""


@final
class MailboxEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One message of the Maildir: its review, or why it has none."""

    key: str
    notification: Notification | None = None
    error: str | None = None


def read_new_notifications(
    path: str | Path, *, limit: int = MAX_MESSAGES_PER_PASS
) -> list[MailboxEntry]:
    """Parse up to ``limit`` messages from the Maildir's ``new/`` folder, oldest name first.

    Raises MaildirError when the folder is not a Maildir.  A message that is
    not a review notification becomes an entry with ``error`` set.
    """
    folder = Path(path)
    if not (folder / "new").is_dir() or not (folder / "cur").is_dir():
        raise MaildirError(
            f"{folder} is not a Maildir: it needs new/ and cur/ folders; point the "
            "mailbox setting at the Maildir itself"
        )

    entries = []
    for name in sorted(entry.name for entry in (folder / "new").iterdir())[:limit]:
        entries.append(_read_one(folder / "new" / name, key=name.split(":", 1)[0]))
    return entries


def _read_one(path: Path, *, key: str) -> MailboxEntry:
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_MESSAGE_BYTES + 1)
    except OSError as error:
        return MailboxEntry(key=key, error=f"cannot read {path}: {error.strerror}")

    return parse_entry(key, data, source=str(path))


def parse_entry(key: str, data: bytes, *, source: str) -> MailboxEntry:
    """Parse one message read from any mailbox; ``source`` names it in errors."""
    try:
        notification = parse_notification(data, source=source)
    except NotificationError as error:
        return MailboxEntry(key=key, error=str(error))
    return MailboxEntry(key=key, notification=notification)


def mark_processed(path: str | Path, keys: Iterable[str]) -> int:
    """Move the named messages from ``new/`` to ``cur/``, bytes unchanged; return how many moved.

    The ``:2,`` suffix with no flags marks a message seen by a client but not
    read, so mail clients still show it as unread.  A message
    that is already gone (another client moved it) is skipped.
    """
    folder = Path(path)
    wanted = set(keys)
    moved = 0
    for entry in sorted((folder / "new").iterdir()):
        key = entry.name.split(":", 1)[0]
        if key not in wanted:
            continue
        try:
            entry.rename(folder / "cur" / f"{key}:2,")
        except FileNotFoundError:
            continue
        moved += 1
    return moved
