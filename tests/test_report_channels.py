"""``plaudit report`` per channel: e-mail, SMS and push requests, estimated delivery and lift."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from plaudit.inbound.mapping import InboundEvent
from plaudit.journal import Journal, Tx
from plaudit.messaging import request_events
from plaudit.messaging.channel_sends import mark_accepted
from plaudit.messaging.couples import store_couples
from plaudit.messaging.sms_events import track_status
from plaudit.reporting.command import read_report
from plaudit.reporting.figures import ReportContext
from plaudit.reporting.html import render_html
from plaudit.reporting.model import Report
from plaudit.reporting.render import render_text, write_csv
from tests.test_personalisation_lift import SENT, Clock, add_review, add_sent, couple

DAY = 86400.0
CONTEXT = ReportContext(vendor="Willow Studio", conversion_days={"after-wedding": 14})


@pytest.fixture
def clock() -> Clock:
    return Clock(SENT)


@pytest.fixture
def journal(tmp_path: Path, clock: Clock) -> Iterator[Journal]:
    opened = Journal.open(tmp_path / "journal.sqlite3", clock=clock)
    with opened.transaction() as tx:
        store_couples(tx, [couple(number) for number in range(1, 5)], vendor="Willow Studio")
    yield opened
    opened.close()


def add_request(tx: Tx, couple_id: int, channel: str) -> int:
    """Insert a sent request the way the notifier leaves it, with its e-mail style Message-ID."""
    row = tx.execute(
        "INSERT INTO requests (couple_id, campaign, step, channel, state, scheduled_at,"
        " sent_at, updated_at) VALUES (?, 'thank-you', 0, ?, 'sent', ?, ?, ?) RETURNING id",
        (couple_id, channel, SENT, SENT, SENT),
    ).fetchone()
    request_id = int(row[0])
    tx.execute(
        "UPDATE requests SET message_id = ? WHERE id = ?",
        (f"<request-{request_id}@willow.example>", request_id),
    )
    return request_id


def add_message_event(tx: Tx, request_id: int, kind: str, address: str) -> None:
    tx.execute(
        "INSERT INTO message_events (address, domain, kind, provider, message_id, occurred_at,"
        " recorded_at) VALUES (?, 'example.com', ?, 'smtp', ?, ?, ?)",
        (address, kind, f"<request-{request_id}@willow.example>", SENT, SENT),
    )


def send_on_every_channel(journal: Journal) -> None:
    """E-mail to couples 1 and 4 (4 bounces), SMS to couple 2 (delivered), push to couple 3."""
    with journal.transaction() as tx:
        for couple_id, address in ((1, "guest1@example.com"), (4, "guest4@example.com")):
            request_id = add_request(tx, couple_id, "email")
            message_id = f"<request-{request_id}@willow.example>"
            request_events.emit_sent(
                tx, request_id, recipients=[address], provider="smtp", message_id=message_id
            )
            add_message_event(tx, request_id, "accepted", address)
        add_message_event(tx, 2, "hard_bounce", "guest4@example.com")
        facts = request_events.load_request(tx, 2)
        assert facts is not None
        request_events.emit_bounced(
            tx,
            facts,
            recipient="guest4@example.com",
            provider="smtp",
            occurred_at=SENT,
            kind="hard",
            status="5.1.1",
        )

        sms = add_request(tx, 2, "sms")
        mark_accepted(tx, sms, "+15555550102", "SM0001")
        request_events.emit_sent(
            tx, sms, recipients=["+15555550102"], provider="twilio", message_id="SM0001"
        )
        callback = InboundEvent(
            type="message",
            provider_event_id="twilio-1",
            occurred_at=SENT + 60,
            kind="delivered",
            message_id="SM0001",
            recipient="+15555550102",
        )
        assert track_status(tx, callback)

        push = add_request(tx, 3, "push")
        request_events.emit_push_outcomes(
            tx, push, accepted=["https://push.example.net/endpoint/1"], gone={}
        )


def report_of(journal: Journal, now: float = SENT + DAY) -> Report:
    return read_report(Path(journal.path), context=CONTEXT, now=now)


def test_funnel_counts_every_channel(journal: Journal) -> None:
    send_on_every_channel(journal)

    funnel = report_of(journal).vendors[0].funnel

    assert list(funnel.channels) == ["email", "sms", "push"]
    email, sms, push = funnel.channels.values()
    assert (email.requests, email.delivered, email.bounced) == (2, 0, 1)
    assert (sms.requests, sms.delivered, sms.bounced) == (1, 1, 0)
    assert (push.requests, push.delivered, push.bounced) == (1, 1, 0)
    assert funnel.sent == 4
    # SMS and push couples; no e-mail delivery report arrived.
    assert funnel.delivered == 2


def test_channel_delivery_estimated_without_reports(journal: Journal) -> None:
    send_on_every_channel(journal)

    channels = report_of(journal).vendors[0].funnel.channels

    assert channels["email"].delivery_estimated is True
    assert channels["email"].delivery_rate == 0.5
    assert channels["sms"].delivery_estimated is False
    assert channels["sms"].delivery_rate == 1.0


def test_deliverability_estimated_like_ctl(journal: Journal) -> None:
    send_on_every_channel(journal)

    mail = report_of(journal).vendors[0].deliverability

    assert mail.sent == 2
    assert mail.delivered == 0
    assert mail.delivery_estimated is True
    # Accepted 2, hard bounces 1: the rule of `ctl deliverability`.
    assert mail.delivery_rate == 0.5
    assert any("estimated" in note for note in mail.notes)


def test_delivery_reports_end_estimate(journal: Journal) -> None:
    send_on_every_channel(journal)
    with journal.transaction() as tx:
        add_message_event(tx, 1, "delivered", "guest1@example.com")

    mail = report_of(journal).vendors[0].deliverability

    assert mail.delivery_estimated is False
    assert mail.delivery_rate == 0.5


def test_text_shows_channels_ratings_months(journal: Journal) -> None:
    send_on_every_channel(journal)
    with journal.transaction() as tx:
        add_review(tx, 1, written=SENT + 2 * DAY)
        tx.execute("UPDATE reviews SET stars = 4")

    text = render_text(report_of(journal, now=SENT + 30 * DAY))

    assert "CHANNELS" in text
    assert "50.0% estimated" in text
    assert "RATING DISTRIBUTION" in text
    assert "REVIEWS PER MONTH" in text
    assert "google: 2026-06 1" in text
    assert "CLICKED PER PLATFORM none" in text


def test_lift_per_campaign(journal: Journal) -> None:
    with journal.transaction() as tx:
        add_sent(tx, 1, "treatment")
        add_sent(tx, 2, "treatment")
        add_sent(tx, 3, "holdout")
        add_sent(tx, 4, "holdout")
        add_review(tx, 1, written=SENT + 2 * DAY)
        add_review(tx, 3, written=SENT + 3 * DAY)

    report = report_of(journal, now=SENT + 30 * DAY)
    (lift,) = report.vendors[0].lift

    assert lift.campaign == "after-wedding"
    assert (lift.treatment_conversions, lift.treatment_couples) == (1, 2)
    assert (lift.holdout_conversions, lift.holdout_couples) == (1, 2)
    assert lift.relative_lift == 0.0
    assert lift.relative_low is not None and lift.relative_low < 0
    assert lift.relative_high is not None and lift.relative_high > 0
    assert "fewer than 30" in lift.note
    assert "after-wedding" in render_text(report)
    assert "+0.0% (" in render_text(report)


def test_lift_pending_inside_window(journal: Journal) -> None:
    with journal.transaction() as tx:
        add_sent(tx, 1, "treatment")
        add_sent(tx, 2, "holdout")

    (lift,) = report_of(journal, now=SENT + DAY).vendors[0].lift

    assert lift.pending_couples == 2
    assert lift.relative_lift is None
    assert "no settled holdout couples" in lift.note


def test_no_personalisation_says_so(journal: Journal) -> None:
    report = report_of(journal)

    assert report.vendors[0].lift == []
    assert "LIFT no personalised request sent yet" in render_text(report)


def test_csv_has_channels_and_lift(journal: Journal, tmp_path: Path) -> None:
    with journal.transaction() as tx:
        add_sent(tx, 1, "treatment")
        add_sent(tx, 2, "holdout")
        push = add_request(tx, 3, "push")
        request_events.emit_push_outcomes(
            tx, push, accepted=["https://push.example.net/endpoint/1"], gone={}
        )

    write_csv(report_of(journal, now=SENT + 30 * DAY), tmp_path / "csv")

    with (tmp_path / "csv" / "channels.csv").open(encoding="utf-8") as file:
        channels = list(csv.DictReader(file))
    with (tmp_path / "csv" / "lift.csv").open(encoding="utf-8") as file:
        lifts = list(csv.DictReader(file))
    assert [row["channel"] for row in channels] == ["push"]
    assert channels[0]["delivered"] == "1"
    assert channels[0]["delivery_estimated"] == "False"
    assert lifts[0]["campaign"] == "after-wedding"
    assert lifts[0]["treatment_couples"] == "1"


def test_html_has_channel_and_lift_tables(journal: Journal) -> None:
    send_on_every_channel(journal)
    with journal.transaction() as tx:
        add_sent(tx, 1, "treatment")
        add_sent(tx, 2, "holdout")

    page = render_html(report_of(journal, now=SENT + 30 * DAY))

    assert '<table id="channels">' in page
    assert "<td>sms</td>" in page
    assert "50.0% (estimated)" in page
    assert '<table id="lift">' in page
    assert "<td>after-wedding</td>" in page
    assert "delivery estimated" in page
