"""Each e-mail provider's events link to the request that sent the message.

The notifier sends one request through the loopback SMTP sink, which
replies like the provider's submission server.  Delivered, bounce and
click webhooks, written here in the provider's format, then go through the
inbox's store-and-process steps against the same journal file.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trio

from plaudit.actors.notifier import build_notifier
from plaudit.inbound import inbox
from plaudit.journal import AsyncJournal, Journal, Tx
from plaudit.messaging.campaigns import schedule_new_couples
from plaudit.messaging.couples import parse_couples_csv, store_couples
from plaudit.messaging.deliverability.suppression import SuppressionPolicy
from plaudit.messaging.message_aliases import TRACKING_KEY
from plaudit.sandbox.smtp import ReplyStyle, SmtpSink
from tests.test_notifier import COUPLES, make_config

ADDRESS = "ana@example.com"
POLICY = SuppressionPolicy()
LINKED = ["request.sent", "request.delivered", "request.bounced", "request.clicked"]


@dataclass
class Sent:
    """One accepted send: the journal, the Message-ID set and the id the reply named."""

    journal: Journal
    facade: AsyncJournal
    message_id: str
    provider_id: str | None

    async def post(self, provider: str, delivery_id: str, body: bytes) -> None:
        """Store one webhook request as the listener does, then process it."""

        def store_and_process(tx: Tx) -> None:
            inbound_id = inbox.accept(
                tx, provider=provider, delivery_id=delivery_id, headers={}, body=body
            )
            if inbound_id is not None:
                inbox.process(tx, inbound_id, policy=POLICY, platforms=frozenset())

        await self.facade.transaction(store_and_process)

    def request_events(self) -> list[tuple[str, str]]:
        rows = self.journal.query(
            "SELECT type, subject FROM events WHERE type LIKE 'request.%' ORDER BY id"
        )
        return [(str(row[0]), str(row[1])) for row in rows]

    def payload_message_ids(self) -> set[str]:
        rows = self.journal.query("SELECT payload FROM events WHERE type LIKE 'request.%'")
        return {json.loads(row[0])["message_id"] for row in rows}

    def provider_message_ids(self, provider: str) -> set[str]:
        rows = self.journal.query(
            "SELECT DISTINCT message_id FROM message_events WHERE provider = ?", (provider,)
        )
        return {str(row[0]) for row in rows}


@asynccontextmanager
async def sent_request(tmp_path: Path, reply_style: ReplyStyle) -> AsyncIterator[Sent]:
    """Send the first step of the one couple's campaign through a sink with ``reply_style``."""
    journal = Journal.open(tmp_path / "journal.sqlite3", lease_seconds=60)
    facade = AsyncJournal(journal)
    sink = SmtpSink(reply_style=reply_style)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(facade.run)
            port = await nursery.start(sink.serve)
            config = make_config(port)
            couples = parse_couples_csv(COUPLES).couples
            await facade.transaction(lambda tx: store_couples(tx, couples, vendor="Willow Studio"))
            await facade.transaction(lambda tx: schedule_new_couples(tx, config))
            actor = build_notifier(config, facade)
            assert actor is not None
            (job,) = await facade.claim("notifier", limit=1)
            effects = await actor.handle(job)
            await facade.complete(job.id, effects)

            (message,) = sink.messages
            message_id = str(message.parsed()["Message-ID"])
            yield Sent(journal, facade, message_id, message.provider_id)
            nursery.cancel_scope.cancel()
    finally:
        journal.close()


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


Webhooks = list[tuple[str, bytes]]


def ses(message_id: str, provider_id: str | None, *, with_headers: bool) -> Webhooks:
    now = iso(time.time())
    mail: dict[str, Any] = {
        "messageId": provider_id or f"0100019a00000000-{uuid.uuid4()}-000000",
        "timestamp": now,
        "destination": [ADDRESS],
    }
    if with_headers:
        mail["headers"] = [
            {"name": "From", "value": "Willow Studio <hello@willow.example>"},
            {"name": "Message-ID", "value": message_id},
        ]
    bounce = {
        "bounceType": "Permanent",
        "bounceSubType": "General",
        "timestamp": now,
        "feedbackId": "0100019a-feedback-1",
        "bouncedRecipients": [
            {"emailAddress": ADDRESS, "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1"}
        ],
    }
    return [
        ("ses-1", _json({"eventType": "Delivery", "mail": mail, "delivery": {"timestamp": now}})),
        ("ses-2", _json({"notificationType": "Bounce", "mail": mail, "bounce": bounce})),
        ("ses-3", _json({"eventType": "Click", "mail": mail, "click": {"timestamp": now}})),
    ]


def sendgrid(message_id: str, provider_id: str | None) -> Webhooks:
    now = int(time.time())
    # The delivered event carries only SendGrid's id; it links through the SMTP reply's id.
    sg_message_id = f"{provider_id}.filter0017.24411.6750A2C41.0"
    delivered = {"event": "delivered", "sg_event_id": "sg-1", "sg_message_id": sg_message_id}
    bounce = {
        "event": "bounce",
        "type": "bounce",
        "status": "5.1.1",
        "reason": "550 5.1.1 mailbox unknown",
        "sg_event_id": "sg-2",
        "smtp-id": message_id,
        "sg_message_id": sg_message_id,
    }
    # Click events have no smtp-id; the unique argument from X-SMTPAPI links them.
    click = {
        "event": "click",
        "url": "https://reviews.invalid/google",
        "sg_event_id": "sg-3",
        "sg_message_id": sg_message_id,
        TRACKING_KEY: message_id,
    }
    common = {"email": ADDRESS, "timestamp": now}
    return [
        (f"sendgrid-{number}", _json([{**common, **event}]))
        for number, event in enumerate((delivered, bounce, click), start=1)
    ]


def postmark(message_id: str, provider_id: str | None) -> Webhooks:
    now = iso(time.time())
    common: dict[str, Any] = {
        "MessageID": str(uuid.uuid4()),
        "Metadata": {TRACKING_KEY: message_id},
    }
    delivery: dict[str, Any] = {"RecordType": "Delivery", "Recipient": ADDRESS, "DeliveredAt": now}
    bounce: dict[str, Any] = {
        "RecordType": "Bounce",
        "ID": 4242,
        "Type": "HardBounce",
        "Email": ADDRESS,
        "BouncedAt": now,
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
    }
    click: dict[str, Any] = {"RecordType": "Click", "Recipient": ADDRESS, "ReceivedAt": now}
    return [
        (f"postmark-{number}", _json({**common, **record}))
        for number, record in enumerate((delivery, bounce, click), start=1)
    ]


def mailgun(message_id: str, provider_id: str | None) -> Webhooks:
    now = time.time()
    common: dict[str, Any] = {
        "timestamp": now,
        "recipient": ADDRESS,
        # No message-id header: the X-Mailgun-Variables value links the events.
        "message": {"headers": {}},
        "user-variables": {TRACKING_KEY: message_id},
    }
    failed: dict[str, Any] = {
        "event": "failed",
        "severity": "permanent",
        "delivery-status": {"message": "5.1.1 mailbox unknown", "description": ""},
    }
    events: tuple[dict[str, Any], ...] = ({"event": "delivered"}, failed, {"event": "clicked"})
    return [
        (f"mailgun-{number}", _json({"event-data": {**common, **event, "id": f"mg-{number}"}}))
        for number, event in enumerate(events, start=1)
    ]


def resend(message_id: str, provider_id: str | None) -> Webhooks:
    now = iso(time.time())
    data = {"email_id": provider_id, "to": [ADDRESS], "created_at": now}
    bounce = {"type": "Permanent", "message": "550 5.1.1 mailbox unknown"}
    events = (
        {"type": "email.delivered", "data": data},
        {"type": "email.bounced", "data": {**data, "bounce": bounce}},
        {"type": "email.clicked", "data": data},
    )
    return [
        (f"msg_resend{number}", _json({**event, "created_at": now}))
        for number, event in enumerate(events, start=1)
    ]


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


Builder = Callable[[str, "str | None"], Webhooks]
CASES: list[tuple[str, ReplyStyle, Builder]] = [
    ("ses", "ses", lambda mid, pid: ses(mid, pid, with_headers=False)),
    ("ses", "plain", lambda mid, pid: ses(mid, pid, with_headers=True)),
    ("sendgrid", "queued", sendgrid),
    ("postmark", "plain", postmark),
    ("mailgun", "plain", mailgun),
    ("resend", "queued", resend),
]


@pytest.mark.parametrize(
    ("provider", "reply_style", "build"),
    CASES,
    ids=["ses-alias", "ses-headers", "sendgrid", "postmark", "mailgun", "resend-alias"],
)
async def test_provider_events_link_once(
    tmp_path: Path, provider: str, reply_style: ReplyStyle, build: Builder
) -> None:
    async with sent_request(tmp_path, reply_style) as sent:
        webhooks = build(sent.message_id, sent.provider_id)
        for delivery_id, body in webhooks:
            await sent.post(provider, delivery_id, body)
        # Every request again, as after lost responses, and a second click.
        for delivery_id, body in webhooks:
            await sent.post(provider, delivery_id, body)
        await sent.post(provider, webhooks[-1][0] + "-again", webhooks[-1][1])
        events = sent.request_events()
        stored_ids = sent.provider_message_ids(provider)
        payload_ids = sent.payload_message_ids()

    assert [event_type for event_type, _subject in events] == LINKED
    assert {subject for _type, subject in events} == {"requests/1"}
    assert stored_ids == {sent.message_id}
    assert payload_ids == {sent.message_id}


async def test_reply_id_recorded_as_alias(tmp_path: Path) -> None:
    async with sent_request(tmp_path, "ses") as sent:
        aliases = sent.journal.query("SELECT alias, message_id, source FROM message_aliases")

    assert sent.provider_id is not None
    assert aliases == [(sent.provider_id, sent.message_id, "smtp_reply")]


async def test_plain_reply_records_no_alias(tmp_path: Path) -> None:
    async with sent_request(tmp_path, "plain") as sent:
        aliases = sent.journal.query("SELECT count(*) FROM message_aliases")

    assert sent.provider_id is None
    assert aliases == [(0,)]


async def test_unknown_provider_id_links_nothing(tmp_path: Path) -> None:
    async with sent_request(tmp_path, "plain") as sent:
        for delivery_id, body in ses(sent.message_id, None, with_headers=False):
            await sent.post("ses", delivery_id, body)
        events = sent.request_events()
        stored = sent.journal.query("SELECT count(*) FROM message_events WHERE provider = 'ses'")

    assert [event_type for event_type, _subject in events] == ["request.sent"]
    assert stored == [(3,)]
