"""Matches between reviews and couples in the journal's ``review_matches`` table.

:func:`refresh_matches` scores reviews against couples and stores every
candidate at or above the candidate threshold.  It confirms a match on its
own only when :func:`plaudit.matching.scoring.decide` finds the evidence
clear; the operator confirms or rejects the rest with
``plaudit ctl review match``.  A confirmed match stops the couple's
scheduled follow-ups with the stop reason "review", and rejecting it again
schedules those whose send time is still ahead.

A match is a link between a review and a couple: the review itself is never
changed, merged or copied.  Each review has at most one confirmed match.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, final

import msgspec

from plaudit.alerts import raise_alert, resolve_alert
from plaudit.matching.facts import CampaignLinks, load_couple_facts, load_review_facts
from plaudit.matching.scoring import Decision, ReviewFacts, Score, decide, score
from plaudit.messaging.campaigns import OWNER, SEND_JOB, stop_couple
from plaudit.messaging.request_events import emit_converted
from plaudit.reviews.store import SupportsExecute

if TYPE_CHECKING:
    from plaudit.journal.tx import Tx

log = logging.getLogger(__name__)

MatchState = Literal["candidate", "confirmed", "rejected"]
MATCH_STATES: Final = ("candidate", "confirmed", "rejected")
CURSOR_OWNER: Final = "matching"
# Operator alerts about reviews that fit several couples, keyed "platform:review id".
ALERT_SOURCE: Final = "matching"
# The latest review first_seen_at and couple updated_at already scored; later
# rows are scored on the next refresh.
REVIEW_CURSOR: Final = "reviews_first_seen_at"
COUPLE_CURSOR: Final = "couples_updated_at"
# The latest first-request time already scored: a couple whose first request
# went out later is scored again, because the request moves the time factor's
# anchor from the wedding to the request and sets the platforms it linked.
REQUEST_CURSOR: Final = "couples_first_request_at"
# The stop reason that a confirmed match gives the couple's follow-ups.
_REVIEW_STOP: Final = "stopped: review"

_MATCH_COLUMNS: Final = (
    "id, platform, review_id, couple_id, confidence, method, state, decided_by, reasons,"
    " created_at, updated_at, decided_at"
)
_UPSERT: Final = """
INSERT INTO review_matches (platform, review_id, couple_id, confidence, method, state,
                            reasons, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, 'candidate', ?, ?, ?)
ON CONFLICT (platform, review_id, couple_id) DO UPDATE SET
    confidence = excluded.confidence, method = excluded.method, reasons = excluded.reasons,
    updated_at = excluded.updated_at
WHERE review_matches.state = 'candidate'
"""


class MatchNotFoundError(LookupError):
    """No match has the requested id."""


@final
class Match(msgspec.Struct, frozen=True, kw_only=True):
    """One stored review-to-couple match."""

    id: int
    platform: str
    review_id: str
    couple_id: int
    confidence: float
    method: str
    state: str
    # automatic or operator; None while a candidate.
    decided_by: str | None
    reasons: list[str]
    created_at: float
    updated_at: float
    decided_at: float | None


@final
class RefreshOutcome(msgspec.Struct, kw_only=True):
    """Counts of one refresh: reviews scored, candidates stored, matches confirmed."""

    reviews_scored: int = 0
    couples: int = 0
    candidates: int = 0
    confirmed: int = 0
    # Review "platform:id" -> why it was not confirmed automatically.
    notes: dict[str, str] = msgspec.field(default_factory=dict)


def refresh_matches(
    tx: Tx,
    *,
    campaign_links: CampaignLinks | None = None,
    full: bool = False,
    stop_campaigns: Collection[str] | None = None,
) -> RefreshOutcome:
    """Score new reviews against every couple and every review against new couples.

    "New" is measured by cursors in the journal, so each pair is scored
    once, plus once more after the couple's first request goes out.
    ``full`` scores every pair again.  Candidates already confirmed or
    rejected keep their state.  A confirmed match stops the couple's follow-ups
    in ``stop_campaigns`` (the campaigns whose stop_on lists "review"), or in
    every campaign when it is None.
    """
    review_mark = 0.0 if full else float(tx.get_cursor(CURSOR_OWNER, REVIEW_CURSOR) or 0.0)
    couple_mark = 0.0 if full else float(tx.get_cursor(CURSOR_OWNER, COUPLE_CURSOR) or 0.0)
    request_mark = 0.0 if full else float(tx.get_cursor(CURSOR_OWNER, REQUEST_CURSOR) or 0.0)
    reviews = load_review_facts(tx)
    couples = load_couple_facts(tx, campaign_links)
    outcome = RefreshOutcome(couples=len(couples))
    if not couples:
        return outcome

    new_couples = [
        (couple, updated)
        for couple, updated in couples
        if updated > couple_mark or (couple.first_request_at or 0.0) > request_mark
    ]
    for review, first_seen in reviews:
        against = couples if first_seen > review_mark else new_couples
        if not against or _has_confirmed(tx, review):
            continue
        scores = {couple.couple_id: score(review, couple) for couple, _updated in against}
        # Couples scored in earlier refreshes still compete, so a new couple
        # is never confirmed over an older one with the same names.
        earlier = _stored_scores(tx, review)
        merged = [*(item for key, item in earlier.items() if key not in scores), *scores.values()]
        _store_decision(tx, review, decide(merged), outcome, stop_campaigns)
        outcome.reviews_scored += 1

    if reviews:
        tx.set_cursor(CURSOR_OWNER, REVIEW_CURSOR, repr(max(seen for _r, seen in reviews)))
    tx.set_cursor(CURSOR_OWNER, COUPLE_CURSOR, repr(max(updated for _c, updated in couples)))
    first_requests = [c.first_request_at for c, _u in couples if c.first_request_at is not None]
    if first_requests:
        tx.set_cursor(CURSOR_OWNER, REQUEST_CURSOR, repr(max(first_requests)))
    return outcome


def _stored_scores(tx: Tx, review: ReviewFacts) -> dict[int, Score]:
    rows = tx.execute(
        "SELECT couple_id, confidence, method, reasons FROM review_matches"
        " WHERE platform = ? AND review_id = ? AND state = 'candidate'",
        (review.platform, review.review_id),
    ).fetchall()
    return {
        int(row[0]): Score(
            couple_id=int(row[0]),
            confidence=float(row[1]),
            method=row[2],
            reasons=msgspec.json.decode(row[3], type=list[str]),
        )
        for row in rows
    }


def _has_confirmed(tx: Tx, review: ReviewFacts) -> bool:
    row = tx.execute(
        "SELECT 1 FROM review_matches WHERE platform = ? AND review_id = ? AND state = 'confirmed'",
        (review.platform, review.review_id),
    ).fetchone()
    return row is not None


def _store_decision(
    tx: Tx,
    review: ReviewFacts,
    decision: Decision,
    outcome: RefreshOutcome,
    stop_campaigns: Collection[str] | None,
) -> None:
    for item in decision.candidates:
        _upsert(tx, review, item)
        outcome.candidates += 1
    if decision.note:
        outcome.notes[f"{review.platform}:{review.review_id}"] = decision.note
    if decision.needs_operator and not _decided_by_operator(tx, review):
        _alert_operator(tx, review, decision)
    if decision.confirmed is None:
        return

    match_id = _match_id(tx, review.platform, review.review_id, decision.confirmed)
    if match_id is None or _state_of(tx, match_id) == "rejected":
        # The operator rejected this pair before, so it stays rejected.
        return
    _confirm(tx, match_id, decided_by="automatic", stop_campaigns=stop_campaigns)
    outcome.confirmed += 1


def _decided_by_operator(tx: Tx, review: ReviewFacts) -> bool:
    row = tx.execute(
        "SELECT 1 FROM review_matches WHERE platform = ? AND review_id = ?"
        " AND decided_by = 'operator' LIMIT 1",
        (review.platform, review.review_id),
    ).fetchone()
    return row is not None


def _alert_operator(tx: Tx, review: ReviewFacts, decision: Decision) -> None:
    couples = [item.couple_id for item in decision.candidates]
    raise_alert(
        tx,
        source=ALERT_SOURCE,
        key=f"{review.platform}:{review.review_id}",
        severity="warning",
        summary=f"the {review.platform} review {review.review_id} by {review.author!r} fits "
        f"{len(couples)} couples ({decision.note}); confirm the right match with "
        "'plaudit ctl review match', because their follow-ups continue until then",
        detail={
            "platform": review.platform,
            "review_id": review.review_id,
            "couples": couples,
            "confidences": [item.confidence for item in decision.candidates],
        },
    )


def _upsert(tx: Tx, review: ReviewFacts, item: Score) -> None:
    reasons = msgspec.json.encode(item.reasons).decode()
    tx.execute(
        _UPSERT,
        (
            review.platform,
            review.review_id,
            item.couple_id,
            item.confidence,
            item.method,
            reasons,
            tx.now,
            tx.now,
        ),
    )


def _match_id(tx: Tx, platform: str, review_id: str, couple_id: int) -> int | None:
    row = tx.execute(
        "SELECT id FROM review_matches WHERE platform = ? AND review_id = ? AND couple_id = ?",
        (platform, review_id, couple_id),
    ).fetchone()
    return None if row is None else int(row[0])


def _state_of(tx: Tx, match_id: int) -> str | None:
    row = tx.execute("SELECT state FROM review_matches WHERE id = ?", (match_id,)).fetchone()
    return None if row is None else str(row[0])


def confirm_match(tx: Tx, match_id: int, *, stop_campaigns: Collection[str] | None = None) -> Match:
    """Confirm a match for the operator; the review's other matches become rejected.

    The couple's follow-ups stop in ``stop_campaigns``, or in every campaign when None.

    Raises MatchNotFoundError when no match has ``match_id``.
    """
    if _state_of(tx, match_id) is None:
        raise _not_found(match_id)
    _confirm(tx, match_id, decided_by="operator", stop_campaigns=stop_campaigns)
    return get_match(tx, match_id)


def reject_match(tx: Tx, match_id: int) -> Match:
    """Reject a match for the operator; a later refresh does not propose it again.

    Rejecting a confirmed match schedules again the couple's follow-ups that
    a confirmed match stopped and whose send time has not passed, unless
    another confirmed match remains for the couple.  Raises
    MatchNotFoundError when no match has ``match_id``.
    """
    previous = _state_of(tx, match_id)
    if previous is None:
        raise _not_found(match_id)
    _set_state(tx, match_id, "rejected", decided_by="operator")
    match = get_match(tx, match_id)
    pending = list_matches(tx, state="candidate", review=(match.platform, match.review_id))
    if not pending:
        resolve_alert(tx, source=ALERT_SOURCE, key=f"{match.platform}:{match.review_id}")
    resumed = 0
    if previous == "confirmed" and not review_detected(tx, match.couple_id):
        resumed = _resume_follow_ups(tx, match.couple_id)
    log.info("matching.rejected", extra={"match": match_id, "requests_resumed": resumed})
    return match


def _resume_follow_ups(tx: Tx, couple_id: int) -> int:
    """Schedule again the couple's requests stopped by a review and still due; return how many.

    A request whose send time has passed stays stopped: a reminder sent
    late would arrive out of its campaign's rhythm.
    """
    rows = tx.execute(
        "UPDATE requests SET state = 'scheduled', last_error = NULL, updated_at = ?"
        " WHERE couple_id = ? AND state = 'stopped' AND last_error = ? AND scheduled_at > ?"
        " RETURNING id, scheduled_at",
        (tx.now, couple_id, _REVIEW_STOP, tx.now),
    ).fetchall()
    for request_id, scheduled_at in rows:
        # A send job due after the stop is still waiting and will send.  An
        # earlier one ran, saw the stop and finished, so a new job is added.
        if not _send_job_waiting(tx, int(request_id)):
            tx.enqueue(
                kind=SEND_JOB,
                owner=OWNER,
                key=f"request:{request_id}:resumed:{tx.now!r}",
                payload={"request": int(request_id)},
                run_at=float(scheduled_at),
            )
    return len(rows)


def _send_job_waiting(tx: Tx, request_id: int) -> bool:
    row = tx.execute(
        "SELECT 1 FROM jobs WHERE kind = ? AND state IN ('ready', 'running')"
        " AND (key = ? OR key LIKE ?) LIMIT 1",
        (SEND_JOB, f"request:{request_id}", f"request:{request_id}:%"),
    ).fetchone()
    return row is not None


def _confirm(
    tx: Tx, match_id: int, *, decided_by: str, stop_campaigns: Collection[str] | None = None
) -> None:
    match = get_match(tx, match_id)
    # One review is written by one couple: every other match of it is rejected.
    tx.execute(
        "UPDATE review_matches SET state = 'rejected', decided_by = ?, decided_at = ?,"
        " updated_at = ? WHERE platform = ? AND review_id = ? AND id != ? AND state != 'rejected'",
        (decided_by, tx.now, tx.now, match.platform, match.review_id, match_id),
    )
    _set_state(tx, match_id, "confirmed", decided_by=decided_by)
    resolve_alert(tx, source=ALERT_SOURCE, key=f"{match.platform}:{match.review_id}")
    stopped = stop_couple(tx, match.couple_id, reason="review", campaigns=stop_campaigns)
    emit_converted(
        tx,
        couple_id=match.couple_id,
        platform=match.platform,
        review_id=match.review_id,
        match_id=match_id,
        decided_by=decided_by,
    )
    log.info(
        "matching.confirmed",
        extra={
            "match": match_id,
            "platform": match.platform,
            "review": match.review_id,
            "couple": match.couple_id,
            "decided_by": decided_by,
            "requests_stopped": stopped,
        },
    )


def _set_state(tx: Tx, match_id: int, state: MatchState, *, decided_by: str) -> None:
    tx.execute(
        "UPDATE review_matches SET state = ?, decided_by = ?, decided_at = ?, updated_at = ?"
        " WHERE id = ?",
        (state, decided_by, tx.now, tx.now, match_id),
    )


def get_match(source: SupportsExecute, match_id: int) -> Match:
    """Return one match; raises MatchNotFoundError when no match has ``match_id``."""
    row = source.execute(
        f"SELECT {_MATCH_COLUMNS} FROM review_matches WHERE id = ?", (match_id,)
    ).fetchone()
    if row is None:
        raise _not_found(match_id)
    return _row_to_match(row)


def list_matches(
    source: SupportsExecute,
    *,
    state: MatchState | None = None,
    couple_id: int | None = None,
    review: tuple[str, str] | None = None,
    limit: int = 100,
) -> list[Match]:
    """Return matches, highest confidence first, optionally of one state, couple or review.

    ``review`` is a (platform, review id) pair.
    """
    conditions: list[str] = []
    params: list[Any] = []
    if review is not None:
        conditions.append("platform = ? AND review_id = ?")
        params.extend(review)
    if state is not None:
        conditions.append("state = ?")
        params.append(state)
    if couple_id is not None:
        conditions.append("couple_id = ?")
        params.append(couple_id)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = source.execute(
        f"SELECT {_MATCH_COLUMNS} FROM review_matches{where} ORDER BY confidence DESC, id LIMIT ?",
        (*params, limit),
    ).fetchall()
    return [_row_to_match(row) for row in rows]


def count_matches(source: SupportsExecute) -> dict[str, int]:
    """Return the number of matches in each state."""
    rows = source.execute(
        "SELECT state, count(*) FROM review_matches GROUP BY state", ()
    ).fetchall()
    return {str(state): int(count) for state, count in rows}


def review_detected(source: SupportsExecute, couple_id: int) -> bool:
    """Return True when a review is confirmed as the couple's, automatically or by the operator."""
    row = source.execute(
        "SELECT 1 FROM review_matches WHERE couple_id = ? AND state = 'confirmed' LIMIT 1",
        (couple_id,),
    ).fetchone()
    return row is not None


def _not_found(match_id: int) -> MatchNotFoundError:
    return MatchNotFoundError(
        f"no review match has id {match_id}; list the matches with 'plaudit ctl review match'"
    )


def _row_to_match(row: Sequence[Any]) -> Match:
    return Match(
        id=int(row[0]),
        platform=row[1],
        review_id=row[2],
        couple_id=int(row[3]),
        confidence=float(row[4]),
        method=row[5],
        state=row[6],
        decided_by=row[7],
        reasons=msgspec.json.decode(row[8], type=list[str]),
        created_at=float(row[9]),
        updated_at=float(row[10]),
        decided_at=None if row[11] is None else float(row[11]),
    )
