"""Provider ids as aliases of Plaudit's Message-ID: SMTP replies, tracking headers, mappers.

Payloads are written here in each provider's documented shape.  The
end-to-end sends through the SMTP sink are in test_provider_linking.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plaudit.config.model import VendorConfig
from plaudit.inbound.message_ids import (
    mailgun_message_id,
    postmark_message_id,
    resend_message_id,
    sendgrid_message_id,
    ses_message_id,
)
from plaudit.journal import Journal
from plaudit.messaging.couples import Couple, store_couples
from plaudit.messaging.deliverability.store import record_event
from plaudit.messaging.deliverability.suppression import MessageEvent, SuppressionPolicy
from plaudit.messaging.email import SendReceipt, build_message
from plaudit.messaging.message_aliases import (
    TRACKING_KEY,
    alias_candidates,
    aliases_of,
    original_message_id,
    provider_id_from_reply,
    record_alias,
    tracking_headers,
)
from plaudit.messaging.receipts import record_receipt
from plaudit.messaging.request_events import request_by_message_id
from plaudit.messaging.templates import RenderedMessage

NOW = 1_772_323_200.0
MESSAGE_ID = "<request-1@willow.example>"
SES_ID = "0100019a2b3c4d5e-1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b-000000"
QUEUE_ID = "3f9a1c2b7d4.e5f.a1b2c3"
POLICY = SuppressionPolicy()


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal.open(tmp_path / "journal.sqlite3", lease_seconds=60, clock=lambda: NOW)
    yield opened
    opened.close()


def add_request(journal: Journal) -> int:
    """Store a couple and its first e-mail step, sent with MESSAGE_ID; return the request id."""
    couple = Couple(
        names=["Ana Pires"],
        emails=["ana@example.com"],
        phone=None,
        wedding_date="2026-01-10",
        venue="Orchard Barn",
        timezone=None,
        consent_email=True,
        consent_sms=False,
    )
    with journal.transaction() as tx:
        store_couples(tx, [couple], vendor="Willow Studio")
        row = tx.execute(
            "INSERT INTO requests (couple_id, campaign, step, channel, state, scheduled_at,"
            " sent_at, message_id, updated_at)"
            " VALUES (1, 'after-wedding', 0, 'email', 'sent', ?, ?, ?, ?) RETURNING id",
            (NOW, NOW, MESSAGE_ID, NOW),
        ).fetchone()
    return int(row[0])


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (f"Ok {SES_ID}", SES_ID),
        (f"Ok <{SES_ID}>", SES_ID),
        (f"Ok: queued as {QUEUE_ID}", QUEUE_ID),
        (f"2.0.0 Ok: queued as {QUEUE_ID}", QUEUE_ID),
        ("2.0.0 OK: queued as <em_4yM2nTvR8o>", "em_4yM2nTvR8o"),
        ("2.0.0 accepted", None),
        ("OK", None),
        ("Ok", None),
        ("Ok message accepted for delivery", None),
        ("", None),
    ],
)
def test_reply_provider_id(reply: str, expected: str | None) -> None:
    assert provider_id_from_reply(reply) == expected


def test_tracking_headers_echo_message_id() -> None:
    headers = tracking_headers(MESSAGE_ID)

    assert headers[f"X-PM-Metadata-{TRACKING_KEY}"] == MESSAGE_ID
    assert json.loads(headers["X-SMTPAPI"]) == {"unique_args": {TRACKING_KEY: MESSAGE_ID}}
    assert json.loads(headers["X-Mailgun-Variables"]) == {TRACKING_KEY: MESSAGE_ID}


def test_built_message_has_tracking_headers() -> None:
    vendor = VendorConfig(
        name="Willow Studio",
        postal_address="12 Elm Street, Springfield, IL 62701",
        from_address="hello@willow.example",
        review_links={"google": "https://reviews.invalid/google"},
    )
    rendered = RenderedMessage(subject="Thank you", text="Thank you.", html="")

    message = build_message(
        rendered,
        vendor=vendor,
        to=["ana@example.com"],
        message_id=MESSAGE_ID,
        unsubscribe_token="t",
    )

    assert message["Message-ID"] == MESSAGE_ID
    assert message[f"X-PM-Metadata-{TRACKING_KEY}"] == MESSAGE_ID
    smtpapi = json.loads(str(message["X-SMTPAPI"]))
    assert smtpapi["unique_args"][TRACKING_KEY] == MESSAGE_ID
    assert json.loads(str(message["X-Mailgun-Variables"]))[TRACKING_KEY] == MESSAGE_ID


def test_sendgrid_event_id_has_queue_candidate() -> None:
    assert alias_candidates(f"{QUEUE_ID}.filter0001.16648.5515E0B88.0") == [
        f"{QUEUE_ID}.filter0001.16648.5515E0B88.0",
        QUEUE_ID,
    ]
    assert alias_candidates(f" <{SES_ID}> ") == [SES_ID]
    assert alias_candidates("") == []


def ses_mail(**fields: Any) -> dict[str, Any]:
    mail: dict[str, Any] = {"messageId": SES_ID, "destination": ["ana@example.com"]}
    mail.update(fields)
    return mail


@pytest.mark.parametrize(
    ("mail", "expected"),
    [
        (ses_mail(headers=[{"name": "Message-ID", "value": MESSAGE_ID}]), MESSAGE_ID),
        (ses_mail(headers=[{"name": "message-id", "value": MESSAGE_ID}]), MESSAGE_ID),
        (ses_mail(commonHeaders={"messageId": SES_ID}), SES_ID),
        (ses_mail(commonHeaders={"messageId": MESSAGE_ID}), MESSAGE_ID),
        (ses_mail(headers=[{"name": "Subject", "value": "Hi"}]), SES_ID),
        (ses_mail(headers="not a list"), SES_ID),
        ({}, None),
    ],
)
def test_ses_message_id(mail: dict[str, Any], expected: str | None) -> None:
    assert ses_message_id(mail) == expected


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({TRACKING_KEY: MESSAGE_ID, "sg_message_id": f"{QUEUE_ID}.filter1"}, MESSAGE_ID),
        ({"smtp-id": MESSAGE_ID, "sg_message_id": f"{QUEUE_ID}.filter1"}, MESSAGE_ID),
        ({"sg_message_id": f"{QUEUE_ID}.filter1"}, f"{QUEUE_ID}.filter1"),
        ({"smtp-id": "", "sg_message_id": 7}, None),
    ],
)
def test_sendgrid_message_id(item: dict[str, Any], expected: str | None) -> None:
    assert sendgrid_message_id(item) == expected


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            {"message": {"headers": {"message-id": "request-1@willow.example"}}},
            "request-1@willow.example",
        ),
        ({"message": {"headers": {}}, "user-variables": {TRACKING_KEY: MESSAGE_ID}}, MESSAGE_ID),
        ({"message": "odd", "user-variables": {TRACKING_KEY: MESSAGE_ID}}, MESSAGE_ID),
        ({"user-variables": ["odd"]}, None),
    ],
)
def test_mailgun_message_id(event: dict[str, Any], expected: str | None) -> None:
    assert mailgun_message_id(event) == expected


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"MessageID": "5c1d7e0f-uuid", "Metadata": {TRACKING_KEY: MESSAGE_ID}}, MESSAGE_ID),
        ({"MessageID": "5c1d7e0f-uuid", "Metadata": {"other": "x"}}, "5c1d7e0f-uuid"),
        ({"MessageID": "5c1d7e0f-uuid", "Metadata": None}, "5c1d7e0f-uuid"),
    ],
)
def test_postmark_message_id(record: dict[str, Any], expected: str | None) -> None:
    assert postmark_message_id(record) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"email_id": "re-1", "headers": [{"name": "Message-ID", "value": MESSAGE_ID}]},
            MESSAGE_ID,
        ),
        ({"email_id": "re-1", "headers": {"Message-Id": MESSAGE_ID}}, MESSAGE_ID),
        ({"email_id": "re-1", "headers": [{"name": "X-Other", "value": "x"}]}, "re-1"),
        ({"email_id": "re-1"}, "re-1"),
    ],
)
def test_resend_message_id(data: dict[str, Any], expected: str | None) -> None:
    assert resend_message_id(data) == expected


def test_alias_recorded_once(journal: Journal) -> None:
    with journal.transaction() as tx:
        first = record_alias(tx, alias=SES_ID, message_id=MESSAGE_ID)
        again = record_alias(tx, alias=f"<{SES_ID}>", message_id="<other@willow.example>")
        empty = record_alias(tx, alias=" ", message_id=MESSAGE_ID)
        found = original_message_id(tx, SES_ID)
        listed = aliases_of(tx, "request-1@willow.example")

    assert (first, again, empty) == (True, False, False)
    assert found == MESSAGE_ID
    assert listed == [SES_ID]


def test_request_found_by_alias(journal: Journal) -> None:
    request_id = add_request(journal)
    with journal.transaction() as tx:
        record_alias(tx, alias=QUEUE_ID, message_id=MESSAGE_ID)
        by_queue_id = request_by_message_id(tx, f"{QUEUE_ID}.filter0001.16648.5515E0B88.0")
        by_message_id = request_by_message_id(tx, "request-1@willow.example")
        unknown = request_by_message_id(tx, SES_ID)

    assert by_queue_id is not None
    assert by_queue_id.request_id == request_id
    assert by_message_id is not None
    assert by_message_id.request_id == request_id
    assert unknown is None


def test_event_stored_under_message_id(journal: Journal) -> None:
    add_request(journal)
    event = MessageEvent(
        address="ana@example.com", kind="delivered", at=NOW, provider="ses", message_id=SES_ID
    )
    with journal.transaction() as tx:
        record_alias(tx, alias=SES_ID, message_id=MESSAGE_ID)
        record_event(tx, event, policy=POLICY, provider_event_id="d1")

    assert journal.query("SELECT message_id FROM message_events") == [(MESSAGE_ID,)]


def test_early_event_linked_by_receipt(journal: Journal) -> None:
    request_id = add_request(journal)
    event = MessageEvent(
        address="ana@example.com", kind="delivered", at=NOW, provider="ses", message_id=SES_ID
    )
    receipt = SendReceipt(reply=f"Ok {SES_ID}", provider_id=SES_ID)
    with journal.transaction() as tx:
        record_event(tx, event, policy=POLICY, provider_event_id="d1")
    with journal.transaction() as tx:
        emitted = record_receipt(tx, MESSAGE_ID, receipt)
        repeated = record_receipt(tx, MESSAGE_ID, receipt)

    assert (emitted, repeated) == (1, 0)
    assert journal.query("SELECT message_id FROM message_events") == [(MESSAGE_ID,)]
    events = journal.query("SELECT type, subject FROM events WHERE type LIKE 'request.%'")
    assert events == [("request.delivered", f"requests/{request_id}")]


def test_receipt_without_id_records_nothing(journal: Journal) -> None:
    with journal.transaction() as tx:
        plain = record_receipt(
            tx, MESSAGE_ID, SendReceipt(reply="2.0.0 accepted", provider_id=None)
        )
        missing = record_receipt(tx, MESSAGE_ID, None)

    assert (plain, missing) == (0, 0)
    assert journal.query("SELECT count(*) FROM message_aliases") == [(0,)]
