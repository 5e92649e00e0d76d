"""The e-mail address and reference a platform gives with each review, for exact matching.

Rows live in the journal's ``review_contacts`` table, keyed by platform and
review id.  A listing writes them in the same transaction as the reviews, so
a review and its contact commit together.  A review whose platform gives
neither value gets no row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from plaudit.reviews.model import Contact
from plaudit.reviews.store import SupportsExecute

if TYPE_CHECKING:
    from plaudit.journal.tx import Tx

# The row is rewritten only when a value changed, so a repeated listing
# leaves updated_at alone.
_UPSERT: Final = """
INSERT INTO review_contacts (platform, review_id, email, reference, updated_at)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (platform, review_id) DO UPDATE
SET email = excluded.email, reference = excluded.reference, updated_at = excluded.updated_at
WHERE email IS NOT excluded.email OR reference IS NOT excluded.reference
"""


def store_contacts(tx: Tx, platform: str, contacts: Mapping[str, Contact]) -> int:
    """Insert or update the contact of each review id; return the rows written.

    A contact with neither an address nor a reference is skipped: it would
    match nothing, and an earlier value stays rather than being erased by a
    response that left the fields out.
    """
    written = 0
    for review_id, contact in contacts.items():
        email = contact.email.strip() if contact.email else None
        reference = contact.reference.strip() if contact.reference else None
        if not email and not reference:
            continue

        cursor = tx.execute(_UPSERT, (platform, review_id, email, reference, tx.now))
        written += cursor.rowcount
    return written


def load_contacts(source: SupportsExecute, platform: str) -> dict[str, Contact]:
    """Return review id -> contact for the reviews of ``platform`` that have one."""
    rows = source.execute(
        "SELECT review_id, email, reference FROM review_contacts WHERE platform = ?",
        (platform,),
    ).fetchall()
    return {row[0]: Contact(email=row[1], reference=row[2]) for row in rows}


def find_by_email(source: SupportsExecute, email: str) -> list[tuple[str, str]]:
    """Return the (platform, review id) pairs whose address equals ``email``, ignoring case."""
    rows = source.execute(
        "SELECT platform, review_id FROM review_contacts "
        "WHERE lower(email) = lower(?) AND email IS NOT NULL ORDER BY platform, review_id",
        (email.strip(),),
    ).fetchall()
    return [(row[0], row[1]) for row in rows]


def find_by_reference(source: SupportsExecute, reference: str) -> list[tuple[str, str]]:
    """Return the (platform, review id) pairs whose reference equals ``reference`` exactly."""
    rows = source.execute(
        "SELECT platform, review_id FROM review_contacts "
        "WHERE reference = ? ORDER BY platform, review_id",
        (reference.strip(),),
    ).fetchall()
    return [(row[0], row[1]) for row in rows]
