"""Outcomes and measured lift from assignments and confirmed review matches in the journal."""

from __future__ import annotations

import sqlite3
import zoneinfo
from datetime import UTC, datetime
from pathlib import Path

import pytest

from plaudit.journal import Journal, Tx
from plaudit.messaging.couples import Couple, store_couples
from plaudit.personalisation import store
from plaudit.personalisation.lift import measure_lift, read_lift
from plaudit.personalisation.sendtime import fixed_time

DAY = 86400.0
SENT = datetime(2026, 6, 1, 15, 0, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def couple(number: int) -> Couple:
    return Couple(
        names=[f"Guest {number}"],
        emails=[f"guest{number}@example.com"],
        phone=None,
        wedding_date="2026-05-20",
        venue="Orchard Barn",
        timezone="America/Chicago",
        consent_email=True,
        consent_sms=False,
    )


def add_sent(tx: Tx, couple_id: int, arm: str, *, variant: str = "base") -> None:
    request = tx.execute(
        "INSERT INTO requests (couple_id, campaign, step, channel, state, scheduled_at,"
        " updated_at) VALUES (?, 'after-wedding', 0, 'email', 'sent', ?, ?) RETURNING id",
        (couple_id, SENT, SENT),
    ).fetchone()[0]
    choice = fixed_time(due_at=SENT, now=SENT, zone=zoneinfo.ZoneInfo("UTC"), reason="test")
    store.insert_assignment(
        tx,
        store.Assignment(
            request_id=request,
            couple_id=couple_id,
            campaign="after-wedding",
            step=0,
            arm=arm,
            variant=variant,
            due_at=SENT,
            planned_at=SENT,
            explanation=choice,
            draft_state="off",
        ),
    )
    tx.execute(
        "UPDATE personalisation_assignments SET sent_at = ? WHERE request_id = ?", (SENT, request)
    )


def add_review(tx: Tx, couple_id: int, *, written: float, state: str = "confirmed") -> None:
    created = datetime.fromtimestamp(written, UTC).isoformat().replace("+00:00", "Z")
    review_id = f"r{couple_id}"
    tx.execute(
        "INSERT INTO reviews (platform, review_id, profile, text, author, created_at, updated_at,"
        " content_hash, first_seen_at, last_seen_at) VALUES ('google', ?, 'p', 'Lovely', 'A',"
        " ?, ?, 'h', ?, ?)",
        (review_id, created, created, written, written),
    )
    tx.execute(
        "INSERT INTO review_matches (platform, review_id, couple_id, confidence, method, state,"
        " reasons, created_at, updated_at) VALUES ('google', ?, ?, 1.0, 'exact', ?, '[]', ?, ?)",
        (review_id, couple_id, state, written, written),
    )


@pytest.fixture
def clock() -> Clock:
    return Clock(SENT + 30 * DAY)


@pytest.fixture
def journal(tmp_path: Path, clock: Clock) -> Journal:
    opened = Journal.open(tmp_path / "journal.sqlite3", clock=clock)
    with opened.transaction() as tx:
        store_couples(tx, [couple(number) for number in range(1, 121)], vendor="Willow")
    return opened


def test_lift_counts_converted_couples(journal: Journal) -> None:
    with journal.transaction() as tx:
        for couple_id in range(1, 61):
            add_sent(tx, couple_id, "holdout")
        for couple_id in range(61, 121):
            add_sent(tx, couple_id, "treatment", variant="warm")
        # 6 of 60 holdout couples and 15 of 60 treated couples review within 14 days.
        for couple_id in [*range(1, 7), *range(61, 76)]:
            add_review(tx, couple_id, written=SENT + 3 * DAY)
        report = measure_lift(tx, conversion_days={"after-wedding": 14})

    assert (report.holdout.couples, report.holdout.conversions) == (60, 6)
    assert (report.treatment.couples, report.treatment.conversions) == (60, 15)
    assert report.relative_lift is not None
    assert report.relative_lift.estimate == pytest.approx(1.5)
    assert report.relative_lift.low < 1.5 < report.relative_lift.high
    assert report.absolute_lift is not None
    assert report.absolute_lift.estimate == pytest.approx(0.15)
    assert report.note == ""
    warm = [row for row in report.variants if row.variant == "warm"]
    assert warm[0].converted == 15
    assert warm[0].not_converted == 45


def test_late_or_unconfirmed_review_does_not_convert(journal: Journal) -> None:
    with journal.transaction() as tx:
        add_sent(tx, 1, "treatment")
        add_sent(tx, 2, "treatment")
        add_sent(tx, 3, "treatment")
        add_review(tx, 1, written=SENT + 20 * DAY)
        add_review(tx, 2, written=SENT + 2 * DAY, state="candidate")
        add_review(tx, 3, written=SENT - DAY)
        report = measure_lift(tx, conversion_days={"after-wedding": 14})

    assert (report.treatment.couples, report.treatment.conversions) == (3, 0)
    assert report.relative_lift is None
    assert "no settled holdout couples" in report.note


def test_open_window_stays_pending(journal: Journal, clock: Clock) -> None:
    clock.now = SENT + 5 * DAY
    with journal.transaction() as tx:
        add_sent(tx, 1, "holdout")
        add_sent(tx, 2, "treatment")
        add_review(tx, 2, written=SENT + DAY)
        report = measure_lift(tx, conversion_days={"after-wedding": 14})

    assert report.pending_couples == 1
    assert report.treatment.conversions == 1
    assert report.holdout.couples == 0


def test_profile_round_trip(journal: Journal) -> None:
    with journal.transaction() as tx:
        stored = store.store_profile(tx, 1, store.Profile(found_on="theknot", notes="Barn dance"))
        missing = store.store_profile(tx, 999, store.Profile(found_on="google"))
        profile = store.load_profile(tx, 1)
        empty = store.load_profile(tx, 2)

    assert stored is True
    assert missing is False
    assert profile == store.Profile(found_on="theknot", notes="Barn dance")
    assert empty == store.Profile()


def test_thompson_counts_settled_treatment_only(journal: Journal) -> None:
    with journal.transaction() as tx:
        add_sent(tx, 1, "treatment", variant="warm")
        add_sent(tx, 2, "treatment", variant="warm")
        add_sent(tx, 3, "holdout")
        add_review(tx, 1, written=SENT + DAY)
        store.settle_outcomes(tx, now=tx.now, conversion_days={})
        stats = store.variant_stats(tx, "after-wedding", 0, ["base", "warm"])

    assert [(entry.name, entry.conversions, entry.failures) for entry in stats] == [
        ("base", 0, 0),
        ("warm", 1, 1),
    ]


def test_read_lift_writes_nothing(journal: Journal, tmp_path: Path) -> None:
    with journal.transaction() as tx:
        add_sent(tx, 1, "holdout")
        add_sent(tx, 2, "treatment")
        add_review(tx, 2, written=SENT + DAY)

    path = tmp_path / "journal.sqlite3"
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        report = read_lift(connection, now=SENT + 30 * DAY)
        stored = connection.execute(
            "SELECT outcome FROM personalisation_assignments ORDER BY request_id"
        ).fetchall()
    finally:
        connection.close()

    assert (report.holdout.couples, report.holdout.conversions) == (1, 0)
    assert (report.treatment.couples, report.treatment.conversions) == (1, 1)
    assert stored == [("pending",), ("pending",)]


def test_read_lift_without_table_is_empty() -> None:
    connection = sqlite3.connect(":memory:")
    try:
        report = read_lift(connection, now=SENT)
    finally:
        connection.close()

    assert report.holdout.couples == 0
    assert report.relative_lift is None
    assert report.variants == []
