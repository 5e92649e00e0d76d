"""Personalisation facts in the journal: profiles, engagement, assignments, outcomes.

Every function takes an open :class:`~plaudit.journal.Tx`, so an assignment
commits with the job step that made it.  An assignment's outcome is
``pending`` until its request is sent and settled: ``converted`` when a
review confirmed as the couple's was written within the campaign's
conversion window after the send, ``not_converted`` once that window has
passed without one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final, final

import msgspec

from plaudit.journal.tx import Tx
from plaudit.personalisation.sendtime import SendTimeChoice
from plaudit.personalisation.variants import VariantStats
from plaudit.reviews.store import SupportsExecute

DAY: Final = 86400.0
# The most recent events the vendor-level model reads; older habits matter less.
MAX_VENDOR_EVENTS: Final = 5000
MAX_RECIPIENT_EVENTS: Final = 500
# For campaigns no longer in the config.
DEFAULT_CONVERSION_DAYS: Final = 14


@final
class Profile(msgspec.Struct, frozen=True, kw_only=True):
    """The vendor's details about a couple beyond the import row."""

    found_on: str = ""
    notes: str = ""


@final
class Assignment(msgspec.Struct, frozen=True, kw_only=True):
    """One request's personalisation: group, variant, send time and draft."""

    request_id: int
    couple_id: int
    campaign: str
    step: int
    arm: str
    variant: str
    due_at: float
    planned_at: float
    explanation: SendTimeChoice
    draft_state: str
    draft_reason: str | None = None
    opening_line: str | None = None
    sent_at: float | None = None
    outcome: str = "pending"
    converted_at: float | None = None


_ASSIGNMENT_COLUMNS: Final = (
    "request_id, couple_id, campaign, step, arm, variant, due_at, planned_at, explanation,"
    " draft_state, draft_reason, opening_line, sent_at, outcome, converted_at"
)


def load_profile(tx: Tx, couple_id: int) -> Profile:
    """Return the couple's profile; an empty one when none is stored."""
    row = tx.execute(
        "SELECT found_on, notes FROM couple_profiles WHERE couple_id = ?", (couple_id,)
    ).fetchone()
    return Profile() if row is None else Profile(found_on=row[0], notes=row[1])


def store_profile(tx: Tx, couple_id: int, profile: Profile) -> bool:
    """Insert or replace the couple's profile; return False when no such couple exists."""
    exists = tx.execute("SELECT 1 FROM couples WHERE id = ?", (couple_id,)).fetchone()
    if exists is None:
        return False
    tx.execute(
        "INSERT INTO couple_profiles (couple_id, found_on, notes, updated_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (couple_id) DO UPDATE SET found_on = excluded.found_on,"
        " notes = excluded.notes, updated_at = excluded.updated_at",
        (couple_id, profile.found_on, profile.notes, tx.now),
    )
    return True


def couple_engagement(tx: Tx, couple_id: int, addresses: Sequence[str]) -> list[float]:
    """Return the Unix times of the couple's clicks and confirmed reviews, newest first."""
    lowered = sorted({address.lower() for address in addresses})
    times: list[float] = []
    if lowered:
        marks = ", ".join("?" * len(lowered))
        rows = tx.execute(
            "SELECT occurred_at FROM message_events"
            f" WHERE kind = 'clicked' AND address IN ({marks}) ORDER BY occurred_at DESC LIMIT ?",
            (*lowered, MAX_RECIPIENT_EVENTS),
        ).fetchall()
        times.extend(float(row[0]) for row in rows)
    times.extend(review_times(tx, [couple_id]).get(couple_id, []))
    return sorted(times, reverse=True)[:MAX_RECIPIENT_EVENTS]


def vendor_engagement(tx: Tx) -> list[float]:
    """Return the Unix times of all recent clicks and reviews, newest first."""
    clicks = tx.execute(
        "SELECT occurred_at FROM message_events WHERE kind = 'clicked'"
        " ORDER BY occurred_at DESC LIMIT ?",
        (MAX_VENDOR_EVENTS,),
    ).fetchall()
    reviews = tx.execute(
        "SELECT created_at FROM reviews WHERE deleted_at IS NULL"
        " ORDER BY first_seen_at DESC LIMIT ?",
        (MAX_VENDOR_EVENTS,),
    ).fetchall()
    times = [float(row[0]) for row in clicks]
    times.extend(moment for row in reviews if (moment := _unix_time(row[0])) is not None)
    return sorted(times, reverse=True)[:MAX_VENDOR_EVENTS]


def load_assignment(tx: Tx, request_id: int) -> Assignment | None:
    """Return the request's assignment, or None before it was planned."""
    row = tx.execute(
        f"SELECT {_ASSIGNMENT_COLUMNS} FROM personalisation_assignments WHERE request_id = ?",
        (request_id,),
    ).fetchone()
    return None if row is None else _assignment(row)


def insert_assignment(tx: Tx, assignment: Assignment) -> None:
    """Store a new assignment; an existing one for the request is kept unchanged."""
    tx.execute(
        f"INSERT INTO personalisation_assignments ({_ASSIGNMENT_COLUMNS}, assigned_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (request_id) DO NOTHING",
        (
            assignment.request_id,
            assignment.couple_id,
            assignment.campaign,
            assignment.step,
            assignment.arm,
            assignment.variant,
            assignment.due_at,
            assignment.planned_at,
            msgspec.json.encode(assignment.explanation).decode(),
            assignment.draft_state,
            assignment.draft_reason,
            assignment.opening_line,
            assignment.sent_at,
            assignment.outcome,
            assignment.converted_at,
            tx.now,
        ),
    )


def record_draft(tx: Tx, request_id: int, *, state: str, reason: str, text: str) -> None:
    """Store how drafting ended for the request; an accepted ``text`` becomes its opening line.

    Only a pending draft is updated: the first outcome stored is the one the
    send used, so a late result from the drafting worker never replaces it.
    """
    tx.execute(
        "UPDATE personalisation_assignments SET draft_state = ?, draft_reason = ?,"
        " opening_line = ? WHERE request_id = ? AND draft_state = 'pending'",
        (state, reason or None, text or None, request_id),
    )


def mark_sent(tx: Tx, request_id: int) -> None:
    """Record the send time; the conversion window starts here."""
    tx.execute(
        "UPDATE personalisation_assignments SET sent_at = coalesce(sent_at, ?)"
        " WHERE request_id = ?",
        (tx.now, request_id),
    )


def settle_outcomes(tx: Tx, *, now: float, conversion_days: Mapping[str, int]) -> int:
    """Settle pending sent assignments against confirmed reviews; return how many changed.

    Campaigns missing from ``conversion_days`` (removed from the config)
    use ``DEFAULT_CONVERSION_DAYS``.
    """
    rows = tx.execute(
        "SELECT request_id, couple_id, campaign, sent_at FROM personalisation_assignments"
        " WHERE outcome = 'pending' AND sent_at IS NOT NULL"
    ).fetchall()
    if not rows:
        return 0

    reviews = review_times(tx, sorted({int(row[1]) for row in rows}))
    changed = 0
    for request_id, couple_id, campaign, sent_at in rows:
        window = conversion_days.get(campaign, DEFAULT_CONVERSION_DAYS) * DAY
        outcome, converted_at = settled_outcome(
            sent_at, reviews.get(couple_id, []), window=window, now=now
        )
        if outcome == "pending":
            continue
        tx.execute(
            "UPDATE personalisation_assignments SET outcome = ?, converted_at = ?"
            " WHERE request_id = ?",
            (outcome, converted_at, request_id),
        )
        changed += 1
    return changed


def settled_outcome(
    sent_at: float, reviews: Sequence[float], *, window: float, now: float
) -> tuple[str, float | None]:
    """Return (outcome, conversion time) of one send given the couple's review times."""
    converted = [moment for moment in reviews if sent_at <= moment <= sent_at + window]
    if converted:
        return "converted", min(converted)
    if now >= sent_at + window:
        return "not_converted", None
    return "pending", None


def variant_stats(tx: Tx, campaign: str, step: int, names: Sequence[str]) -> list[VariantStats]:
    """Return settled treatment-group outcomes for each of ``names``, in that order."""
    rows = tx.execute(
        "SELECT variant, sum(outcome = 'converted'), sum(outcome = 'not_converted')"
        " FROM personalisation_assignments WHERE campaign = ? AND step = ? AND arm = 'treatment'"
        " GROUP BY variant",
        (campaign, step),
    ).fetchall()
    counts = {row[0]: (int(row[1]), int(row[2])) for row in rows}
    return [
        VariantStats(
            name=name, conversions=counts.get(name, (0, 0))[0], failures=counts.get(name, (0, 0))[1]
        )
        for name in names
    ]


def sent_assignments(source: SupportsExecute, campaign: str | None) -> list[tuple[Any, ...]]:
    """Return (couple_id, campaign, step, arm, variant, sent_at, outcome) of each sent request."""
    where = "sent_at IS NOT NULL" + (" AND campaign = ?" if campaign is not None else "")
    params: tuple[Any, ...] = (campaign,) if campaign is not None else ()
    return list(
        source.execute(
            "SELECT couple_id, campaign, step, arm, variant, sent_at, outcome"
            f" FROM personalisation_assignments WHERE {where} ORDER BY request_id",
            params,
        ).fetchall()
    )


def review_times(source: SupportsExecute, couple_ids: Sequence[int]) -> dict[int, list[float]]:
    """Return the Unix times of the reviews confirmed as each couple's."""
    found: dict[int, list[float]] = {}
    # Chunks of 500 stay below the 999 parameters per statement of SQLite before 3.32.
    for start in range(0, len(couple_ids), 500):
        chunk = couple_ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        rows = source.execute(
            "SELECT m.couple_id, r.created_at FROM review_matches m JOIN reviews r"
            " ON r.platform = m.platform AND r.review_id = m.review_id"
            f" WHERE m.state = 'confirmed' AND r.deleted_at IS NULL AND m.couple_id IN ({marks})",
            tuple(chunk),
        ).fetchall()
        for couple_id, created_at in rows:
            moment = _unix_time(created_at)
            if moment is not None:
                found.setdefault(int(couple_id), []).append(moment)
    return found


def _unix_time(text: str) -> float | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


def _assignment(row: Sequence[Any]) -> Assignment:
    return Assignment(
        request_id=row[0],
        couple_id=row[1],
        campaign=row[2],
        step=row[3],
        arm=row[4],
        variant=row[5],
        due_at=row[6],
        planned_at=row[7],
        explanation=msgspec.json.decode(row[8], type=SendTimeChoice),
        draft_state=row[9],
        draft_reason=row[10],
        opening_line=row[11],
        sent_at=row[12],
        outcome=row[13],
        converted_at=row[14],
    )
