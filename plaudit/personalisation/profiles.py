"""Couple profiles from the CRM export: where each couple found the vendor, and notes.

``plaudit ctl import couples`` reads these columns from the same CSV file as
the couples themselves: a lead-source column (HoneyBook's ``Lead Source``,
or ``found_on``, ``source``, ``how did you hear about us``) and a notes
column.  Rows are matched to couples by their first e-mail address, the
key the couple import uses.  An empty cell keeps what is stored already.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from plaudit.journal.tx import Tx
from plaudit.messaging.couples import COLUMN_ALIASES, normalize_header
from plaudit.personalisation.store import Profile, load_profile, store_profile

FOUND_ON_HEADERS: Final = frozenset(
    {
        "lead_source",
        "found_on",
        "source",
        "referral_source",
        "how_did_you_hear",
        "how_did_you_hear_about_us",
    }
)
NOTES_HEADERS: Final = frozenset({"notes", "vendor_notes", "client_notes", "project_notes"})
# Notes feed drafting prompts, so they are kept short.
MAX_NOTES_CHARS: Final = 2000
MAX_PLATFORM_CHARS: Final = 50
_ADDRESS_SEPARATORS: Final = re.compile(r"[;,\s]+")


def normalise_platform(name: str) -> str:
    """Return a platform name as a review_links key is usually written: "The Knot" -> "theknot"."""
    return re.sub(r"[^a-z0-9]", "", name.lower())[:MAX_PLATFORM_CHARS]


def parse_profiles_csv(text: str) -> dict[str, Profile]:
    """Return the profile of each row with a lead source or notes, keyed by lower-cased address."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if header is None:
        return {}

    names = [normalize_header(cell) for cell in header]
    emails = _first(names, {name for name, field in COLUMN_ALIASES.items() if field == "emails"})
    found_on = _first(names, FOUND_ON_HEADERS)
    notes = _first(names, NOTES_HEADERS)
    if emails is None or (found_on is None and notes is None):
        return {}

    profiles: dict[str, Profile] = {}
    for cells in reader:
        address = _first_address(_cell(cells, emails))
        profile = Profile(
            found_on=normalise_platform(_cell(cells, found_on)),
            notes=" ".join(_cell(cells, notes).split())[:MAX_NOTES_CHARS],
        )
        if address and (profile.found_on or profile.notes):
            profiles.setdefault(address, profile)
    return profiles


def read_profiles_file(path: Path) -> dict[str, Profile]:
    """Read the profiles of a CSV export; an unreadable file gives none.

    The couple import reads the same file first and reports its errors.
    """
    try:
        raw = path.read_bytes()
    except OSError:
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    return parse_profiles_csv(text)


def store_profiles(tx: Tx, profiles: Mapping[str, Profile]) -> int:
    """Store each profile on the couple with that first address; return how many were stored."""
    stored = 0
    for address, profile in profiles.items():
        row = tx.execute("SELECT id FROM couples WHERE email = ?", (address,)).fetchone()
        if row is None:
            continue
        existing = load_profile(tx, int(row[0]))
        merged = Profile(
            found_on=profile.found_on or existing.found_on, notes=profile.notes or existing.notes
        )
        stored += store_profile(tx, int(row[0]), merged)
    return stored


def _first(names: list[str], wanted: frozenset[str] | set[str]) -> int | None:
    return next((index for index, name in enumerate(names) if name in wanted), None)


def _cell(cells: list[str], index: int | None) -> str:
    if index is None or index >= len(cells):
        return ""
    return cells[index].strip()


def _first_address(cell: str) -> str:
    parts = [part for part in _ADDRESS_SEPARATORS.split(cell) if part]
    return parts[0].lower() if parts else ""
