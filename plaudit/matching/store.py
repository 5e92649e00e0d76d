"""Matches between reviews and couples in the journal's ``review_matches`` table.

:func:`refresh_matches` scores reviews against couples and stores every
candidate at or above the candidate threshold.  It confirms a match on its
own only when :func:`plaudit.matching.scoring.decide` finds the evidence
clear; the operator confirms or rejects the rest with
``plaudit ctl review match``.  A confirmed match stops the couple's
scheduled follow-ups with the stop reason "review".

A match is a link between a review and a couple: the review itself is never
changed, merged or copied.  Each review has at most one confirmed match.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, final

import msgspec

from plaudit.alerts import raise_alert, resolve_alert
from plaudit.matching.scoring import CoupleFacts, Decision, ReviewFacts, Score, decide, score
from plaudit.messaging.campaigns import stop_couple
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
# Campaign name -> platforms whose links its steps send.
CampaignLinks = Mapping[str, frozenset[str]]

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
    tx: Tx, *, campaign_links: CampaignLinks | None = None, full: bool = False
) -> RefreshOutcome:
    """Score new reviews against every couple and every review against new couples.

    "New" is measured by cursors in the journal, so each pair is scored
    once; ``full`` scores every pair again.  Candidates already confirmed
    or rejected keep their state.
    NOTE: a pair is not scored again when the couple's first request is sent
    later, so its time factor may be stale until a full refresh.
    """
    review_mark = 0.0 if full else float(tx.get_cursor(CURSOR_OWNER, REVIEW_CURSOR) or 0.0)
    couple_mark = 0.0 if full else float(tx.get_cursor(CURSOR_OWNER, COUPLE_CURSOR) or 0.0)
    reviews = load_review_facts(tx)
    couples = load_couple_facts(tx, campaign_links)
    outcome = RefreshOutcome(couples=len(couples))
    if not couples:
        return outcome

    new_couples = [couple for couple in couples if couple[1] > couple_mark]
    for review, first_seen in reviews:
        against = couples if first_seen > review_mark else new_couples
        if not against or _has_confirmed(tx, review):
            continue
        scores = {couple.couple_id: score(review, couple) for couple, _updated in against}
        # Couples scored in earlier refreshes still compete, so a new couple
        # is never confirmed over an older one with the same names.
        earlier = _stored_scores(tx, review)
        merged = [*(item for key, item in earlier.items() if key not in scores), *scores.values()]
        _store_decision(tx, review, decide(merged), outcome)
        outcome.reviews_scored += 1

    if reviews:
        tx.set_cursor(CURSOR_OWNER, REVIEW_CURSOR, repr(max(seen for _r, seen in reviews)))
    tx.set_cursor(CURSOR_OWNER, COUPLE_CURSOR, repr(max(updated for _c, updated in couples)))
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
    tx: Tx, review: ReviewFacts, decision: Decision, outcome: RefreshOutcome
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
    _confirm(tx, match_id, decided_by="automatic")
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


def confirm_match(tx: Tx, match_id: int) -> Match:
    """Confirm a match for the operator; the review's other matches become rejected.

    Raises MatchNotFoundError when no match has ``match_id``.
    """
    if _state_of(tx, match_id) is None:
        raise _not_found(match_id)
    _confirm(tx, match_id, decided_by="operator")
    return get_match(tx, match_id)


def reject_match(tx: Tx, match_id: int) -> Match:
    """Reject a match for the operator; a later refresh does not propose it again.

    Rejecting a confirmed match does not reschedule follow-ups that its
    confirmation stopped.  Raises MatchNotFoundError when no match has ``match_id``.
    """
    if _state_of(tx, match_id) is None:
        raise _not_found(match_id)
    _set_state(tx, match_id, "rejected", decided_by="operator")
    match = get_match(tx, match_id)
    pending = list_matches(tx, state="candidate", review=(match.platform, match.review_id))
    if not pending:
        resolve_alert(tx, source=ALERT_SOURCE, key=f"{match.platform}:{match.review_id}")
    log.info("matching.rejected", extra={"match": match_id})
    return match


def _confirm(tx: Tx, match_id: int, *, decided_by: str) -> None:
    match = get_match(tx, match_id)
    # One review is written by one couple: every other match of it is rejected.
    tx.execute(
        "UPDATE review_matches SET state = 'rejected', decided_by = ?, decided_at = ?,"
        " updated_at = ? WHERE platform = ? AND review_id = ? AND id != ? AND state != 'rejected'",
        (decided_by, tx.now, tx.now, match.platform, match.review_id, match_id),
    )
    _set_state(tx, match_id, "confirmed", decided_by=decided_by)
    resolve_alert(tx, source=ALERT_SOURCE, key=f"{match.platform}:{match.review_id}")
    stopped = stop_couple(tx, match.couple_id, reason="review")
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


def load_review_facts(source: SupportsExecute) -> list[tuple[ReviewFacts, float]]:
    """Return each live review with its first-seen time, with its contact when stored."""
    contacts = load_contacts(source)
    rows = source.execute(
        "SELECT platform, review_id, author, created_at, first_seen_at FROM reviews"
        " WHERE deleted_at IS NULL ORDER BY first_seen_at, platform, review_id",
        (),
    ).fetchall()
    facts = []
    for platform, review_id, author, created_at, first_seen_at in rows:
        email, reference = contacts.get((platform, review_id), (None, None))
        review = ReviewFacts(
            platform=platform,
            review_id=review_id,
            author=author,
            created_at=created_at,
            first_seen_at=float(first_seen_at),
            email=email,
            reference=reference,
        )
        facts.append((review, float(first_seen_at)))
    return facts


def load_contacts(source: SupportsExecute) -> dict[tuple[str, str], tuple[str | None, str | None]]:
    """Return (platform, review id) -> (e-mail, reference) for reviews whose platform gave them.

    The rows come from ``review_contacts``, which the platform sources fill
    (plaudit.reviews.contacts).  A journal older than that table has none.
    """
    table = source.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'review_contacts'", ()
    ).fetchone()
    if table is None:
        return {}
    rows = source.execute(
        "SELECT platform, review_id, email, reference FROM review_contacts", ()
    ).fetchall()
    return {(row[0], row[1]): (row[2], row[3]) for row in rows}


def load_couple_facts(
    source: SupportsExecute, campaign_links: CampaignLinks | None
) -> list[tuple[CoupleFacts, float]]:
    """Return each couple with its last update time, its first request and links sent."""
    requests = _sent_requests(source)
    rows = source.execute(
        "SELECT id, names, emails, wedding_date, updated_at FROM couples ORDER BY id", ()
    ).fetchall()
    facts = []
    for couple_id, names, emails, wedding_date, updated_at in rows:
        sent = requests.get(int(couple_id), [])
        platforms: frozenset[str] = frozenset()
        if campaign_links is not None:
            platforms = frozenset().union(*(campaign_links.get(c, frozenset()) for c, *_ in sent))
        references = {str(couple_id), f"couple-{couple_id}"}
        references.update(message_id for _c, _at, message_id in sent if message_id)
        couple = CoupleFacts(
            couple_id=int(couple_id),
            names=msgspec.json.decode(names, type=list[str]),
            emails=[address.lower() for address in msgspec.json.decode(emails, type=list[str])],
            wedding_date=wedding_date,
            first_request_at=min((at for _c, at, _m in sent), default=None),
            platforms=platforms,
            references=frozenset(references),
        )
        facts.append((couple, float(updated_at)))
    return facts


def _sent_requests(source: SupportsExecute) -> dict[int, list[tuple[str, float, str | None]]]:
    rows = source.execute(
        "SELECT couple_id, campaign, sent_at, message_id FROM requests WHERE sent_at IS NOT NULL",
        (),
    ).fetchall()
    sent: dict[int, list[tuple[str, float, str | None]]] = {}
    for couple_id, campaign, sent_at, message_id in rows:
        sent.setdefault(int(couple_id), []).append((campaign, float(sent_at), message_id))
    return sent
