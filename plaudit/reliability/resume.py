"""Resume cursors of interrupted listings, and the limit on resuming at one cursor.

A listing commits each page with the cursor of the page after it (the sync
cursor ``listing:<profile>``), so the next job resumes where a crash or a
failing page cut the listing short.  A page that fails on every attempt
would hold each later sync at that cursor, and no sync would read the first
page, where new reviews appear.  So each resume is counted
(``listing_resumes:<profile>``), a committed page resets the count, and the
resume after ``MAX_RESUMES`` resumes without a committed page starts at the
first page instead.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from plaudit.journal import Tx

log = logging.getLogger(__name__)

# Resumes in a row that commit no page before the cursor is dropped.
MAX_RESUMES: Final = 3


def listing_cursor(profile: str) -> str:
    """Return the name of the sync cursor that stores where the profile's listing resumes."""
    return f"listing:{profile}"


def resume_count_cursor(profile: str) -> str:
    """Return the name of the sync cursor that counts resumes since the last committed page."""
    return f"listing_resumes:{profile}"


def take_resume(tx: Tx, owner: str, profile: str) -> str | None:
    """Return the cursor to resume the profile's listing at, counting this resume.

    Returns None when no listing was interrupted.  It also returns None
    after ``MAX_RESUMES`` resumes in a row that committed no page, and clears
    the cursor, so the listing starts at the first page.
    """
    cursor = tx.get_cursor(owner, listing_cursor(profile))
    if not cursor:
        return None

    resumes = _count(tx.get_cursor(owner, resume_count_cursor(profile)))
    if resumes >= MAX_RESUMES:
        log.warning(
            "listing.resume_abandoned",
            extra={"platform": owner, "profile": profile, "resumes": resumes},
        )
        clear_resume(tx, owner, profile)
        return None

    tx.set_cursor(owner, resume_count_cursor(profile), str(resumes + 1))
    return cursor


def store_page_cursor(tx: Tx, owner: str, profile: str, following: str | None) -> None:
    """Store the cursor of the page after a committed one (None: the listing ended)."""
    tx.set_cursor(owner, listing_cursor(profile), following or "")
    tx.set_cursor(owner, resume_count_cursor(profile), "0")


def clear_resume(tx: Tx, owner: str, profile: str) -> None:
    """Forget where the profile's listing would resume, so the next one starts at the first page."""
    store_page_cursor(tx, owner, profile, None)


def _count(value: str | None) -> int:
    try:
        return max(0, int(value or "0"))
    except ValueError:
        return 0
