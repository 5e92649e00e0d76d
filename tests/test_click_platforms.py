"""Click events keep their URL and platform, and the report counts clicks per platform."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plaudit.config.model import Config, VendorConfig
from plaudit.inbound import inbox
from plaudit.inbound.events import map_events
from plaudit.journal import Journal, Tx
from plaudit.matching.service import report_context
from plaudit.messaging.click_links import platform_of
from plaudit.messaging.deliverability.suppression import SuppressionPolicy
from plaudit.messaging.event_rules import CampaignRules
from plaudit.reporting.clicks import NO_LINKS_NOTE, NO_URL_NOTE
from plaudit.reporting.figures import ReportContext, build_report
from plaudit.reporting.html import render_html
from plaudit.reporting.render import render_text, write_csv

NOW = 1_800_000_000.0
MESSAGE_ID = "<request-1.step-1@willow.test>"
GOOGLE = "http://127.0.0.1:8931/google/review?place=willow"
FACEBOOK = "http://127.0.0.1:8931/facebook/willow/reviews"
LINKS = {"google": GOOGLE, "facebook": FACEBOOK}
# Tracking commonly appends parameters to the configured link.
CLICKED_GOOGLE = GOOGLE + "&utm_source=plaudit"


def test_platform_of_matches_prefix() -> None:
    assert platform_of(CLICKED_GOOGLE, LINKS) == "google"
    assert platform_of(FACEBOOK, LINKS) == "facebook"


def test_platform_of_folds_scheme_and_host() -> None:
    assert platform_of("HTTP://127.0.0.1:8931/facebook/willow/reviews", LINKS) == "facebook"


def test_platform_of_path_is_case_sensitive() -> None:
    assert platform_of("http://127.0.0.1:8931/FACEBOOK/willow/reviews", LINKS) is None


def test_platform_of_prefers_longest_link() -> None:
    links = {"site": "http://127.0.0.1:8931/", "google": "http://127.0.0.1:8931/google/"}
    assert platform_of("http://127.0.0.1:8931/google/review", links) == "google"
    assert platform_of("http://127.0.0.1:8931/about", links) == "site"


def test_platform_of_other_or_missing_url() -> None:
    assert platform_of("http://127.0.0.1:8931/unsubscribe/abc", LINKS) is None
    assert platform_of(None, LINKS) is None
    assert platform_of("", LINKS) is None
    assert platform_of(CLICKED_GOOGLE, {}) is None


def sendgrid_click(url: str) -> bytes:
    item = {
        "event": "click",
        "email": "ana@guest.test",
        "timestamp": NOW,
        "sg_event_id": "sg-1",
        "smtp-id": MESSAGE_ID,
        "url": url,
    }
    return json.dumps([item]).encode()


def mailgun_click(url: str) -> bytes:
    data = {
        "id": "mg-1",
        "event": "clicked",
        "timestamp": NOW,
        "recipient": "ana@guest.test",
        "url": url,
        "message": {"headers": {"message-id": MESSAGE_ID.strip("<>")}},
    }
    return json.dumps({"event-data": data}).encode()


def postmark_click(url: str) -> bytes:
    record = {
        "RecordType": "Click",
        "MessageID": "pm-1",
        "Recipient": "ana@guest.test",
        "ReceivedAt": "2027-01-15T08:00:00Z",
        "OriginalLink": url,
        "Metadata": {"plaudit-message": MESSAGE_ID},
    }
    return json.dumps(record).encode()


def ses_click(url: str) -> bytes:
    message = {
        "eventType": "Click",
        "mail": {
            "messageId": "ses-1",
            "timestamp": "2027-01-15T08:00:00Z",
            "destination": ["ana@guest.test"],
            "headers": [{"name": "Message-ID", "value": MESSAGE_ID}],
        },
        "click": {"timestamp": "2027-01-15T08:00:00Z", "link": url},
    }
    return json.dumps(message).encode()


def resend_click(url: str) -> bytes:
    event = {
        "type": "email.clicked",
        "created_at": "2027-01-15T08:00:00Z",
        "data": {
            "email_id": "re-1",
            "to": ["ana@guest.test"],
            "click": {"link": url, "timestamp": "2027-01-15T08:00:00Z"},
        },
    }
    return json.dumps(event).encode()


def brevo_click(url: str) -> bytes:
    event = {
        "event": "click",
        "email": "ana@guest.test",
        "ts_epoch": int(NOW * 1000),
        "message-id": MESSAGE_ID,
        "link": url,
    }
    return json.dumps(event).encode()


CLICK_BODIES = {
    "sendgrid": sendgrid_click,
    "mailgun": mailgun_click,
    "postmark": postmark_click,
    "ses": ses_click,
    "resend": resend_click,
    "brevo": brevo_click,
}


@pytest.mark.parametrize("provider", sorted(CLICK_BODIES))
def test_click_mapping_keeps_url(provider: str) -> None:
    body = CLICK_BODIES[provider](CLICKED_GOOGLE)
    events = map_events(provider, body, received_at=NOW, delivery_id="svix-1")

    assert [event.kind for event in events] == ["clicked"]
    assert events[0].url == CLICKED_GOOGLE


def test_non_click_mapping_has_no_url() -> None:
    item = {"event": "delivered", "email": "a@guest.test", "timestamp": NOW, "url": GOOGLE}
    events = map_events("sendgrid", json.dumps([item]).encode(), received_at=NOW)

    assert events[0].url is None


def test_click_url_must_be_text() -> None:
    body = json.loads(mailgun_click(GOOGLE))
    body["event-data"]["url"] = {"href": GOOGLE}
    events = map_events("mailgun", json.dumps(body).encode(), received_at=NOW)

    assert events[0].url is None


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal.open(tmp_path / "journal.sqlite3", instance="click-test")
    yield opened
    opened.close()


def add_sent_request(tx: Tx, email: str = "ana@guest.test", message_id: str = MESSAGE_ID) -> int:
    couple = tx.execute(
        "INSERT INTO couples (email, names, emails, phone, wedding_date, venue, timezone,"
        " vendor, consent_email, consent_sms, created_at, updated_at)"
        " VALUES (?, '[]', ?, NULL, '2026-06-01', 'Lakeside', NULL, 'Willow', 1, 0, 0, 0)"
        " RETURNING id",
        (email, json.dumps([email])),
    ).fetchone()
    tx.execute(
        "INSERT INTO requests (couple_id, campaign, step, channel, state, scheduled_at,"
        " sent_at, message_id, updated_at) VALUES (?, 'after', 0, 'email', 'sent', ?, ?, ?, ?)",
        (int(couple[0]), NOW, NOW, message_id, NOW),
    )
    return int(couple[0])


def receive(journal: Journal, provider: str, body: bytes, rules: CampaignRules) -> None:
    with journal.transaction() as tx:
        inbound_id = inbox.accept(
            tx, provider=provider, delivery_id=f"{provider}-delivery", headers={}, body=body
        )
        assert inbound_id is not None
        outcome = inbox.process(
            tx, inbound_id, policy=SuppressionPolicy(), platforms=frozenset(), rules=rules
        )
        assert outcome is not None and outcome.state == "processed", outcome


def clicked_payloads(journal: Journal) -> list[dict[str, Any]]:
    rows = journal.query("SELECT payload FROM events WHERE type = 'request.clicked'")
    return [json.loads(row[0]) for row in rows]


@pytest.mark.parametrize("provider", ["sendgrid", "mailgun", "postmark", "ses"])
def test_click_stores_url_and_platform(journal: Journal, provider: str) -> None:
    with journal.transaction() as tx:
        add_sent_request(tx)
    receive(
        journal, provider, CLICK_BODIES[provider](CLICKED_GOOGLE), CampaignRules(review_links=LINKS)
    )

    urls = journal.query("SELECT url FROM message_events WHERE kind = 'clicked'")
    assert urls == [(CLICKED_GOOGLE,)]
    payloads = clicked_payloads(journal)
    assert len(payloads) == 1
    assert payloads[0]["platform"] == "google"


def test_click_on_other_link_has_null_platform(journal: Journal) -> None:
    with journal.transaction() as tx:
        add_sent_request(tx)
    other = "http://127.0.0.1:8931/gallery"
    receive(journal, "mailgun", mailgun_click(other), CampaignRules(review_links=LINKS))

    assert clicked_payloads(journal)[0]["platform"] is None


def report_of(journal: Journal, links: dict[str, str]) -> Any:
    context = ReportContext(vendor="Willow", review_links=frozenset(links), review_link_urls=links)
    with journal.transaction() as tx:
        return build_report(tx, journal="journal.sqlite3", now=NOW + 86400.0, context=context)


def test_report_counts_clicks_per_platform(journal: Journal) -> None:
    with journal.transaction() as tx:
        add_sent_request(tx)
        add_sent_request(tx, "cy@guest.test", "<request-2.step-1@willow.test>")
    rules = CampaignRules(review_links=LINKS)
    receive(journal, "mailgun", mailgun_click(CLICKED_GOOGLE), rules)
    body = json.loads(sendgrid_click(FACEBOOK))
    body[0].update({"email": "cy@guest.test", "smtp-id": "<request-2.step-1@willow.test>"})
    receive(journal, "sendgrid", json.dumps(body).encode(), rules)

    funnel = report_of(journal, LINKS).vendors[0].funnel
    assert funnel.clicked == 2
    assert funnel.clicked_per_platform == {"facebook": 1, "google": 1}
    assert NO_URL_NOTE not in funnel.notes


def test_report_matches_stored_urls_to_current_links(journal: Journal) -> None:
    with journal.transaction() as tx:
        add_sent_request(tx)
    # Recorded while the daemon had no review links configured.
    receive(journal, "postmark", postmark_click(CLICKED_GOOGLE), CampaignRules())

    assert clicked_payloads(journal)[0]["platform"] is None
    funnel = report_of(journal, LINKS).vendors[0].funnel
    assert funnel.clicked_per_platform == {"facebook": 0, "google": 1}


def test_report_notes_clicks_without_url(journal: Journal) -> None:
    with journal.transaction() as tx:
        add_sent_request(tx)
    body = json.loads(mailgun_click(GOOGLE))
    del body["event-data"]["url"]
    receive(journal, "mailgun", json.dumps(body).encode(), CampaignRules(review_links=LINKS))

    report = report_of(journal, LINKS)
    funnel = report.vendors[0].funnel
    assert funnel.clicked == 1
    assert funnel.clicked_per_platform == {"facebook": 0, "google": 0}
    assert NO_URL_NOTE in funnel.notes
    assert "CLICKED PER PLATFORM facebook 0, google 0" in render_text(report)


def test_report_notes_missing_links(journal: Journal) -> None:
    with journal.transaction() as tx:
        add_sent_request(tx)
    receive(journal, "mailgun", mailgun_click(GOOGLE), CampaignRules())

    funnel = report_of(journal, {}).vendors[0].funnel
    assert funnel.clicked_per_platform == {}
    assert NO_LINKS_NOTE in funnel.notes


def test_csv_and_html_show_clicks(journal: Journal, tmp_path: Path) -> None:
    with journal.transaction() as tx:
        add_sent_request(tx)
    receive(journal, "mailgun", mailgun_click(CLICKED_GOOGLE), CampaignRules(review_links=LINKS))
    report = report_of(journal, LINKS)

    write_csv(report, tmp_path / "csv")
    with (tmp_path / "csv" / "platforms.csv").open(encoding="utf-8") as file:
        rows = {row["platform"]: row for row in csv.DictReader(file)}
    assert rows["google"]["couples_clicked"] == "1"
    assert rows["facebook"]["couples_clicked"] == "0"
    page = render_html(report)
    assert "Couples who clicked each platform's review link: Facebook 0, Google 1." in page


def test_report_context_has_link_urls() -> None:
    vendor = VendorConfig(
        name="Willow Studio",
        postal_address="12 Elm Street, Springfield, IL 62701",
        from_address="hello@willow.example",
        review_links=LINKS,
    )
    context = report_context(Config(vendor=vendor))

    assert context.review_link_urls == LINKS
    assert context.review_links == frozenset(LINKS)
