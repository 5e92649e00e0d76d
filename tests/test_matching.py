"""Matching reviews to couples: names, scores, decisions and the journal's matches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plaudit.actors.notifier import review_detected
from plaudit.alerts import list_alerts
from plaudit.journal import Journal
from plaudit.matching.ctl import render_review
from plaudit.matching.links import review_groups
from plaudit.matching.names import name_similarity, parse_people
from plaudit.matching.scoring import (
    AUTO_CONFIRM_THRESHOLD,
    CANDIDATE_THRESHOLD,
    CoupleFacts,
    ReviewFacts,
    Score,
    decide,
    score,
)
from plaudit.matching.store import (
    MatchNotFoundError,
    confirm_match,
    list_matches,
    refresh_matches,
    reject_match,
)
from plaudit.messaging.couples import Couple, store_couples
from plaudit.reviews.model import Review, format_timestamp
from plaudit.reviews.store import apply_snapshot

# 2026-03-01T00:00:00Z; the couples married in February.
NOW = 1_772_323_200.0
DAY = 86400.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def journal(tmp_path: Path, clock: Clock) -> Iterator[Journal]:
    opened = Journal.open(tmp_path / "journal.sqlite3", clock=clock)
    yield opened
    opened.close()


@pytest.mark.parametrize(
    ("display_name", "names", "lowest", "highest"),
    [
        ("Anna & Ben Smith", ["Anna Smith", "Ben Smith"], 1.0, 1.0),
        ("Ben and Anna Smith", ["Anna Smith", "Ben Smith"], 1.0, 1.0),
        ("BEN & ANNA SMITH", ["anna smith", "ben smith"], 1.0, 1.0),
        ("Zoë Müller", ["Zoe Muller"], 1.0, 1.0),
        ("José y María López", ["Maria Lopez", "Jose Lopez"], 0.9, 1.0),
        ("Bill Turner", ["William Turner", "Zoe Turner"], 0.9, 0.95),
        ("Annie S.", ["Anna Smith", "Ben Smith"], 0.7, 0.85),
        ("A. and B. Smith", ["Anna Smith", "Ben Smith"], 0.7, 0.8),
        ("Anna & Ben", ["Anna Smith", "Ben Smith"], 0.8, 0.85),
        ("The Smiths", ["Anna Smith", "Ben Smith"], 0.8, 0.85),
        ("Karen W", ["Anna Smith", "Ben Smith"], 0.0, 0.0),
        ("", ["Anna Smith"], 0.0, 0.0),
    ],
)
def test_name_similarity_table(
    display_name: str, names: list[str], lowest: float, highest: float
) -> None:
    similarity = name_similarity(display_name, names)
    assert lowest <= similarity <= highest


def test_shared_family_name_goes_to_each_partner() -> None:
    people = parse_people("Ben and Anna Smith")
    assert [person.family_name for person in people] == ["smith", "smith"]
    assert [person.given_name for person in people] == ["ben", "anna"]


def test_initials_survive_separators() -> None:
    people = parse_people("E. Smith & J. Smith")
    assert [person.given_name for person in people] == ["e", "j"]


def facts(author: str, *, created: float = NOW + 10 * DAY, **fields: Any) -> ReviewFacts:
    return ReviewFacts(
        platform=fields.pop("platform", "google"),
        review_id=fields.pop("review_id", "r1"),
        author=author,
        created_at=format_timestamp(created),
        first_seen_at=fields.pop("first_seen_at", created + 3600),
        **fields,
    )


def couple_facts(couple_id: int = 1, **fields: Any) -> CoupleFacts:
    values: dict[str, Any] = {
        "names": ["Anna Smith", "Ben Smith"],
        "emails": ["anna@example.com"],
        "wedding_date": "2026-02-14",
        "first_request_at": NOW,
        "platforms": frozenset({"google"}),
        "references": frozenset({str(couple_id)}),
    }
    values.update(fields)
    return CoupleFacts(couple_id=couple_id, **values)


def test_exact_email_beats_names() -> None:
    result = score(facts("Someone Else", email="ANNA@example.com"), couple_facts())
    assert result.method == "exact"
    assert result.confidence == 1.0


def test_exact_reference_matches() -> None:
    result = score(facts("X", reference="1"), couple_facts())
    assert result.method == "exact"


def test_other_platform_lowers_confidence() -> None:
    sent = score(facts("Anna Smith"), couple_facts())
    other = score(facts("Anna Smith", platform="facebook"), couple_facts())
    assert other.confidence < sent.confidence
    assert any("was not sent the facebook link" in reason for reason in other.reasons)


def test_review_before_wedding_is_unlikely() -> None:
    early = score(facts("Anna Smith", created=NOW - 60 * DAY), couple_facts())
    assert early.confidence < CANDIDATE_THRESHOLD
    assert any("before the wedding" in reason for reason in early.reasons)


def test_clock_ahead_uses_first_seen_time() -> None:
    # The platform dates the review a year ahead; Plaudit saw it 10 days after the request.
    review = facts("Anna Smith", created=NOW + 365 * DAY, first_seen_at=NOW + 10 * DAY)
    result = score(review, couple_facts())
    assert result.confidence == 1.0
    assert any("platform clock ahead" in reason for reason in result.reasons)


def test_clock_behind_within_skew_counts_as_after() -> None:
    review = facts("Anna Smith", created=NOW - DAY, first_seen_at=NOW + DAY)
    assert score(review, couple_facts()).confidence == 1.0


def test_decide_confirms_clear_winner() -> None:
    scores = [
        Score(couple_id=1, confidence=0.95, method="name", reasons=[]),
        Score(couple_id=2, confidence=0.6, method="name", reasons=[]),
        Score(couple_id=3, confidence=0.1, method="name", reasons=[]),
    ]
    decision = decide(scores)
    assert decision.confirmed == 1
    assert [item.couple_id for item in decision.candidates] == [1, 2]


def test_decide_leaves_ties_to_operator() -> None:
    scores = [
        Score(couple_id=1, confidence=1.0, method="name", reasons=[]),
        Score(couple_id=2, confidence=1.0, method="name", reasons=[]),
    ]
    decision = decide(scores)
    assert decision.confirmed is None
    assert "ambiguous" in decision.note


def test_decide_below_threshold_stays_candidate() -> None:
    decision = decide([Score(couple_id=1, confidence=0.85, method="name", reasons=[])])
    assert decision.confirmed is None
    assert str(AUTO_CONFIRM_THRESHOLD) in decision.note


# -- the journal -------------------------------------------------------------


def add_couple(journal: Journal, names: list[str], email: str) -> int:
    couple = Couple(
        names=names,
        emails=[email],
        phone=None,
        wedding_date="2026-02-14",
        venue="Lakeside",
        timezone=None,
        consent_email=True,
        consent_sms=False,
    )
    with journal.transaction() as tx:
        store_couples(tx, [couple], vendor="Willow")
        row = tx.execute("SELECT id FROM couples WHERE email = ?", (email,)).fetchone()
    return int(row[0])


def add_requests(journal: Journal, couple_id: int) -> None:
    """A sent first step and a scheduled reminder."""
    with journal.transaction() as tx:
        tx.execute(
            "INSERT INTO requests (couple_id, campaign, step, channel, state, scheduled_at,"
            " sent_at, message_id, updated_at) VALUES (?, 'after', 0, 'email', 'sent', ?, ?, ?, ?)",
            (couple_id, NOW, NOW, f"<m{couple_id}@example.com>", NOW),
        )
        tx.execute(
            "INSERT INTO requests (couple_id, campaign, step, channel, state, scheduled_at,"
            " updated_at) VALUES (?, 'after', 1, 'email', 'scheduled', ?, ?)",
            (couple_id, NOW + 7 * DAY, NOW),
        )


def add_review(journal: Journal, clock: Clock, review_id: str, author: str, **fields: Any) -> None:
    clock.now = NOW + 10 * DAY
    values: dict[str, Any] = {
        "platform": "google",
        "profile": "accounts/1/locations/2",
        "review_id": review_id,
        "stars": 5,
        "text": "Wonderful",
        "author": author,
        "created_at": format_timestamp(NOW + 9 * DAY),
        "updated_at": format_timestamp(NOW + 9 * DAY),
    }
    values.update(fields)
    review = Review(**values)
    with journal.transaction() as tx:
        apply_snapshot(
            tx, platform=review.platform, profile=review.profile, reviews=[review], complete=False
        )


def refresh(journal: Journal, **options: Any) -> Any:
    links = {"after": frozenset({"google", "facebook"})}
    with journal.transaction() as tx:
        return refresh_matches(tx, campaign_links=links, **options)


def requests_of(journal: Journal, couple_id: int) -> list[tuple[str, str | None]]:
    with journal.transaction() as tx:
        rows = tx.execute(
            "SELECT state, last_error FROM requests WHERE couple_id = ? ORDER BY step",
            (couple_id,),
        ).fetchall()
    return [(row[0], row[1]) for row in rows]


def detected(journal: Journal, couple_id: int) -> bool:
    with journal.transaction() as tx:
        return review_detected(tx, couple_id)


def test_nickname_match_stops_follow_ups(journal: Journal, clock: Clock) -> None:
    couple = add_couple(journal, ["William Turner", "Zoe Turner"], "will@example.com")
    add_requests(journal, couple)
    add_review(journal, clock, "g1", "Bill Turner")

    outcome = refresh(journal)

    assert outcome.confirmed == 1
    assert detected(journal, couple) is True
    assert requests_of(journal, couple) == [("sent", None), ("stopped", "stopped: review")]
    assert open_alerts(journal) == []
    [match] = list_matches_of(journal, state="confirmed")
    assert match.decided_by == "automatic"
    assert match.couple_id == couple


def test_match_keeps_follow_ups_unless_listed(journal: Journal, clock: Clock) -> None:
    couple = add_couple(journal, ["William Turner", "Zoe Turner"], "will@example.com")
    add_requests(journal, couple)
    add_review(journal, clock, "g1", "Bill Turner")

    # No campaign lists "review" in its stop_on.
    outcome = refresh(journal, stop_campaigns=frozenset())

    assert outcome.confirmed == 1
    assert detected(journal, couple) is True
    assert requests_of(journal, couple) == [("sent", None), ("scheduled", None)]


def list_matches_of(journal: Journal, **options: Any) -> list[Any]:
    with journal.transaction() as tx:
        return list_matches(tx, **options)


def test_same_names_need_operator(journal: Journal, clock: Clock) -> None:
    first = add_couple(journal, ["Anna Smith", "Ben Smith"], "anna@example.com")
    second = add_couple(journal, ["Anna Smith", "Ben Smith"], "smiths@example.org")
    add_requests(journal, first)
    add_requests(journal, second)
    add_review(journal, clock, "g1", "Anna & Ben Smith")

    outcome = refresh(journal)

    assert outcome.confirmed == 0
    assert "ambiguous" in outcome.notes["google:g1"]
    candidates = list_matches_of(journal, state="candidate")
    assert sorted(match.couple_id for match in candidates) == [first, second]
    assert detected(journal, first) is False
    assert detected(journal, second) is False
    [alert] = open_alerts(journal)
    assert alert.source == "matching"
    assert alert.key == "google:g1"
    assert "plaudit ctl review match" in alert.summary

    chosen = next(match for match in candidates if match.couple_id == second)
    with journal.transaction() as tx:
        confirmed = confirm_match(tx, chosen.id)
    assert confirmed.state == "confirmed"
    assert confirmed.decided_by == "operator"
    assert detected(journal, second) is True
    assert detected(journal, first) is False
    [other] = list_matches_of(journal, state="rejected")
    assert other.couple_id == first
    assert requests_of(journal, second)[1] == ("stopped", "stopped: review")
    assert requests_of(journal, first)[1] == ("scheduled", None)
    assert open_alerts(journal) == []


def open_alerts(journal: Journal) -> list[Any]:
    with journal.transaction() as tx:
        return list_alerts(tx, open_only=True)


def test_rejected_match_is_not_proposed_again(journal: Journal, clock: Clock) -> None:
    couple = add_couple(journal, ["William Turner", "Zoe Turner"], "will@example.com")
    add_requests(journal, couple)
    add_review(journal, clock, "g1", "Bill Turner")
    refresh(journal)
    [match] = list_matches_of(journal, state="confirmed")

    with journal.transaction() as tx:
        reject_match(tx, match.id)
    refresh(journal, full=True)

    [after] = list_matches_of(journal)
    assert after.state == "rejected"
    assert detected(journal, couple) is False


def test_unknown_match_id_is_reported(journal: Journal) -> None:
    with (
        pytest.raises(MatchNotFoundError, match="no review match has id 99"),
        journal.transaction() as tx,
    ):
        confirm_match(tx, 99)


def test_new_couple_is_scored_against_old_reviews(journal: Journal, clock: Clock) -> None:
    add_review(journal, clock, "g1", "Bill Turner")
    assert refresh(journal).candidates == 0

    couple = add_couple(journal, ["William Turner", "Zoe Turner"], "will@example.com")
    outcome = refresh(journal)

    assert outcome.confirmed == 1
    assert detected(journal, couple) is True


def test_refresh_scores_each_pair_once(journal: Journal, clock: Clock) -> None:
    add_couple(journal, ["Anna Smith", "Ben Smith"], "anna@example.com")
    add_review(journal, clock, "g1", "Annie S.")
    assert refresh(journal).reviews_scored == 1
    assert refresh(journal).reviews_scored == 0
    assert refresh(journal, full=True).reviews_scored == 1


def test_edited_review_keeps_its_match(journal: Journal, clock: Clock) -> None:
    couple = add_couple(journal, ["William Turner", "Zoe Turner"], "will@example.com")
    add_review(journal, clock, "g1", "Bill Turner", stars=5)
    refresh(journal)
    add_review(
        journal, clock, "g1", "Bill Turner", stars=1, updated_at=format_timestamp(NOW + 20 * DAY)
    )
    refresh(journal, full=True)

    [group] = review_groups_of(journal)
    assert group.couple_id == couple
    assert [review.stars for review in group.reviews] == [1]


def review_groups_of(journal: Journal) -> list[Any]:
    with journal.transaction() as tx:
        return review_groups(tx)


def test_links_group_platforms_without_merging(journal: Journal, clock: Clock) -> None:
    couple = add_couple(journal, ["William Turner", "Zoe Turner"], "will@example.com")
    add_requests(journal, couple)
    add_review(journal, clock, "g1", "Bill Turner", stars=5, text="Great photos")
    add_review(
        journal,
        clock,
        "fb1",
        "Zoe Turner",
        platform="facebook",
        profile="301",
        stars=None,
        recommendation="positive",
        text="Loved it",
    )
    refresh(journal)

    [group] = review_groups_of(journal)
    assert group.platforms == ["facebook", "google"]
    assert [(review.platform, review.review_id) for review in group.reviews] == [
        ("facebook", "fb1"),
        ("google", "g1"),
    ]
    with journal.transaction() as tx:
        texts = tx.execute("SELECT review_id, text FROM reviews ORDER BY review_id").fetchall()
    assert texts == [("fb1", "Loved it"), ("g1", "Great photos")]


def test_exact_contact_from_side_table(journal: Journal, clock: Clock) -> None:
    couple = add_couple(journal, ["Anna Smith", "Ben Smith"], "anna@example.com")
    add_review(journal, clock, "t1", "A happy customer", platform="trustpilot", profile="unit")
    with journal.transaction() as tx:
        tx.execute(
            "INSERT INTO review_contacts (platform, review_id, email, reference, updated_at)"
            " VALUES ('trustpilot', 't1', 'Anna@Example.com', NULL, ?)",
            (NOW,),
        )

    outcome = refresh(journal)

    assert outcome.confirmed == 1
    [match] = list_matches_of(journal, state="confirmed")
    assert match.method == "exact"
    assert match.couple_id == couple


def test_rejecting_every_candidate_resolves_alert(journal: Journal, clock: Clock) -> None:
    add_couple(journal, ["Anna Smith", "Ben Smith"], "anna@example.com")
    add_couple(journal, ["Anna Smith", "Ben Smith"], "smiths@example.org")
    add_review(journal, clock, "g1", "Anna & Ben Smith")
    refresh(journal)
    first, second = list_matches_of(journal, state="candidate")

    with journal.transaction() as tx:
        reject_match(tx, first.id)
    assert len(open_alerts(journal)) == 1

    with journal.transaction() as tx:
        reject_match(tx, second.id)
    assert open_alerts(journal) == []
    refresh(journal, full=True)
    assert open_alerts(journal) == []
    assert list_matches_of(journal, state="candidate") == []


def test_new_couple_competes_with_earlier_candidate(journal: Journal, clock: Clock) -> None:
    # The first couple was sent only the Facebook link, so a Google review scores 0.8.
    first = add_couple(journal, ["Anna Smith", "Ben Smith"], "anna@example.com")
    add_requests(journal, first)
    links = {"after": frozenset({"facebook"})}
    add_review(journal, clock, "g1", "Anna & Ben Smith")
    with journal.transaction() as tx:
        refresh_matches(tx, campaign_links=links)
    [earlier] = list_matches_of(journal, state="candidate")
    assert earlier.confidence == 0.8

    # Nicknames: 0.94 alone would be confirmed, but it is within 0.15 of 0.8.
    add_couple(journal, ["Annie Smith", "Benny Smith"], "smiths@example.org")
    with journal.transaction() as tx:
        outcome = refresh_matches(tx, campaign_links=links)

    assert outcome.confirmed == 0
    assert "ambiguous" in outcome.notes["google:g1"]
    assert len(list_matches_of(journal, state="candidate")) == 2


def test_long_display_name_is_cut() -> None:
    # Only the first 200 characters count: the given name still agrees.
    hostile = "Anna Smith" + "x" * 100_000
    assert name_similarity(hostile, ["Anna Smith", "Ben Smith"]) == 0.6
    assert len(parse_people("& ".join(["Anna"] * 1000))) == 4


def test_listing_escapes_control_characters() -> None:
    match = {"id": 1, "platform": "google", "review_id": "g1\x1b[2J", "reasons": ["a\x07"]}
    text = render_review({"subcommand": "match", "matches": [match]})
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "g1\\x1b[2J" in text


def send_first_request(journal: Journal, couple_id: int, sent_at: float) -> None:
    with journal.transaction() as tx:
        tx.execute(
            "INSERT INTO requests (couple_id, campaign, step, channel, state, scheduled_at,"
            " sent_at, message_id, updated_at) VALUES (?, 'after', 0, 'email', 'sent', ?, ?, ?, ?)",
            (couple_id, sent_at, sent_at, f"<m{couple_id}@example.com>", sent_at),
        )


def test_first_request_rescores_candidate(journal: Journal, clock: Clock) -> None:
    couple = add_couple(journal, ["Anna Smith", "Ben Smith"], "anna@example.com")
    add_review(journal, clock, "g1", "Annie S.")
    refresh(journal)
    [before] = list_matches_of(journal, state="candidate")
    assert "time 1.00: 24 days after the wedding" in before.reasons

    # The review was written three days before the first request went out.
    send_first_request(journal, couple, NOW + 12 * DAY)
    outcome = refresh(journal)

    assert outcome.reviews_scored == 1
    [after] = list_matches_of(journal, state="candidate")
    assert after.id == before.id
    assert "time 0.80: before the request, after the wedding" in after.reasons
    assert "platform 1.00: was sent the google link" in after.reasons
    assert after.confidence < before.confidence
    assert refresh(journal).reviews_scored == 0


def send_jobs(journal: Journal) -> list[tuple[str, str, float]]:
    with journal.transaction() as tx:
        rows = tx.execute(
            "SELECT key, state, next_run_at FROM jobs WHERE kind = 'request.send' ORDER BY id"
        ).fetchall()
    return [(row[0], row[1], float(row[2])) for row in rows]


# A reminder still ahead when the review arrives at NOW + 10 days.
REMINDER_AT = NOW + 30 * DAY


def confirmed_nickname_match(journal: Journal, clock: Clock) -> tuple[int, int]:
    """Return a couple whose reminder a confirmed match stopped, and the match id."""
    couple = add_couple(journal, ["William Turner", "Zoe Turner"], "will@example.com")
    add_requests(journal, couple)
    with journal.transaction() as tx:
        tx.execute(
            "UPDATE requests SET scheduled_at = ? WHERE couple_id = ? AND step = 1",
            (REMINDER_AT, couple),
        )
    add_review(journal, clock, "g1", "Bill Turner")
    refresh(journal)
    [match] = list_matches_of(journal, state="confirmed")
    assert requests_of(journal, couple)[1] == ("stopped", "stopped: review")
    return couple, match.id


def test_reject_reschedules_due_follow_up(journal: Journal, clock: Clock) -> None:
    couple, match_id = confirmed_nickname_match(journal, clock)

    with journal.transaction() as tx:
        reject_match(tx, match_id)

    assert requests_of(journal, couple) == [("sent", None), ("scheduled", None)]
    [(key, state, run_at)] = send_jobs(journal)
    assert key.startswith("request:")
    assert state == "ready"
    assert run_at == REMINDER_AT
    assert detected(journal, couple) is False


def test_reject_keeps_passed_follow_up_stopped(journal: Journal, clock: Clock) -> None:
    couple, match_id = confirmed_nickname_match(journal, clock)
    clock.now = REMINDER_AT + 1

    with journal.transaction() as tx:
        reject_match(tx, match_id)

    assert requests_of(journal, couple)[1] == ("stopped", "stopped: review")
    assert send_jobs(journal) == []


def test_reject_reuses_waiting_send_job(journal: Journal, clock: Clock) -> None:
    couple, match_id = confirmed_nickname_match(journal, clock)
    with journal.transaction() as tx:
        [(request_id,)] = tx.execute(
            "SELECT id FROM requests WHERE couple_id = ? AND step = 1", (couple,)
        ).fetchall()
        tx.enqueue(
            kind="request.send",
            owner="notifier",
            key=f"request:{request_id}",
            payload={"request": request_id},
            run_at=REMINDER_AT,
        )

    with journal.transaction() as tx:
        reject_match(tx, match_id)

    assert requests_of(journal, couple)[1] == ("scheduled", None)
    assert [key for key, _state, _run_at in send_jobs(journal)] == [f"request:{request_id}"]


def test_reject_candidate_changes_no_request(journal: Journal, clock: Clock) -> None:
    first = add_couple(journal, ["Anna Smith", "Ben Smith"], "anna@example.com")
    add_couple(journal, ["Anna Smith", "Ben Smith"], "smiths@example.org")
    add_requests(journal, first)
    add_review(journal, clock, "g1", "Anna & Ben Smith")
    refresh(journal)
    candidate = next(m for m in list_matches_of(journal) if m.couple_id == first)

    with journal.transaction() as tx:
        reject_match(tx, candidate.id)

    assert requests_of(journal, first)[1] == ("scheduled", None)
    assert send_jobs(journal) == []


def test_reject_keeps_stop_while_other_match_stands(journal: Journal, clock: Clock) -> None:
    couple, match_id = confirmed_nickname_match(journal, clock)
    add_review(journal, clock, "fb1", "Zoe Turner", platform="facebook", profile="301")
    refresh(journal, full=True)
    assert len(list_matches_of(journal, state="confirmed")) == 2

    with journal.transaction() as tx:
        reject_match(tx, match_id)

    assert detected(journal, couple) is True
    assert requests_of(journal, couple)[1] == ("stopped", "stopped: review")
    assert send_jobs(journal) == []
