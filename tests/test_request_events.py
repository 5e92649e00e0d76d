"""The request event catalogue: each ``request.*`` event once, with the payload README lists.

Real journal files, the SMTP sink, and the Twilio and push stand-ins on
loopback.  Provider webhooks go through the inbox's own store-and-process
steps.  The listener's signature checks are tested elsewhere.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plaudit.actors.bounces import Record, record_message
from plaudit.config import load_config
from plaudit.errors import ConfigError
from plaudit.inbound import inbox
from plaudit.journal import Journal
from plaudit.journal.migrations import MIGRATIONS, migrate
from plaudit.matching.store import confirm_match, refresh_matches
from plaudit.messaging.couples import Couple, store_couples
from plaudit.messaging.deliverability.suppression import MessageEvent, SuppressionPolicy
from plaudit.messaging.request_events import (
    REQUEST_EVENT_TYPES,
    domain_of,
    emit_sent,
    recipient_hash,
)
from plaudit.reviews.model import Review, format_timestamp
from plaudit.reviews.store import apply_snapshot
from plaudit.webhooks.catalogue import EVENT_TYPES, unknown_pattern_error
from tests.test_notifier import harness
from tests.test_notifier_channels import world

README = Path(__file__).resolve().parent.parent / "README.md"
# 2026-03-01T00:00:00Z.
NOW = 1_772_323_200.0
DAY = 86400.0
MESSAGE_ID = "<request-1@willow.example>"
POLICY = SuppressionPolicy()


def documented_keys() -> dict[str, set[str]]:
    """Return event type -> payload keys, read from README's webhook event table."""
    rows: dict[str, set[str]] = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        # Values in brackets, such as "(`hard`, `soft` or `policy`)", are not keys.
        keys = set(re.findall(r"`([a-z_]+)`", re.sub(r"\([^)]*\)", "", cells[2])))
        for event_type in re.findall(r"`([a-z]+\.[a-z]+)`", cells[0]):
            base = re.match(r"as `([a-z]+\.[a-z]+)`", cells[2])
            inherited = rows.get(base.group(1), set()) if base else set()
            rows[event_type] = (keys - {base.group(1)} if base else keys) | inherited
    return rows


def request_events(journal: Journal) -> list[tuple[str, str, dict[str, Any]]]:
    rows = journal.query(
        "SELECT type, key, payload FROM events WHERE type LIKE 'request.%' ORDER BY id"
    )
    return [(row[0], row[1], json.loads(row[2])) for row in rows]


def of_type(journal: Journal, event_type: str) -> list[dict[str, Any]]:
    return [payload for kind, _key, payload in request_events(journal) if kind == event_type]


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    clock = [NOW]
    opened = Journal.open(tmp_path / "journal.sqlite3", lease_seconds=60, clock=lambda: clock[0])
    yield opened
    opened.close()


def add_sent_request(journal: Journal, *, names: list[str] | None = None) -> tuple[int, int]:
    """Store a couple and its first e-mail step, sent at NOW; return (couple id, request id)."""
    couple = Couple(
        names=names or ["Ana Pires"],
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
        couple_id = int(tx.execute("SELECT max(id) FROM couples").fetchone()[0])
        row = tx.execute(
            "INSERT INTO requests (couple_id, campaign, step, channel, state, scheduled_at,"
            " sent_at, message_id, updated_at)"
            " VALUES (?, 'after-wedding', 0, 'email', 'sent', ?, ?, ?, ?) RETURNING id",
            (couple_id, NOW, NOW, MESSAGE_ID, NOW),
        ).fetchone()
    return couple_id, int(row[0])


def mailgun(event_id: str, event: str, **fields: Any) -> bytes:
    data: dict[str, Any] = {
        "id": event_id,
        "event": event,
        "timestamp": NOW + 60,
        "recipient": "ana@example.com",
        # Mailgun reports the Message-ID without angle brackets.
        "message": {"headers": {"message-id": MESSAGE_ID.strip("<>")}},
    }
    data.update(fields)
    return json.dumps({"event-data": data}).encode()


def deliver_inbound(journal: Journal, delivery_id: str, body: bytes) -> None:
    """Store one provider request as the listener does, then process it."""
    with journal.transaction() as tx:
        inbound_id = inbox.accept(
            tx, provider="mailgun", delivery_id=delivery_id, headers={}, body=body
        )
        if inbound_id is not None:
            inbox.process(tx, inbound_id, policy=POLICY, platforms=frozenset())


def test_catalogue_documented_in_readme() -> None:
    documented = documented_keys()

    assert set(EVENT_TYPES) <= set(documented)
    assert set(REQUEST_EVENT_TYPES) <= set(EVENT_TYPES)


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("*", ""),
        ("request.*", ""),
        ("request.converted", ""),
        ("deliverability.alert", ""),
        ("request.opened", 'unknown event type "request.opened"'),
        ("reviews.*", 'unknown prefix "reviews.*"'),
    ],
)
def test_event_filter_checked(pattern: str, problem: str) -> None:
    error = unknown_pattern_error(pattern)

    if not problem:
        assert error == ""
    else:
        assert error.startswith(problem)
        assert "request.sent" in error


def test_config_rejects_unknown_event_type(tmp_path: Path) -> None:
    secret = "whsec_" + base64.b64encode(bytes(range(32))).decode()
    path = tmp_path / "plaudit.toml"
    path.write_text(
        "[[webhooks.endpoints]]\n"
        'name = "crm"\n'
        'url = "https://hooks.example.com/in"\n'
        f'secrets = ["{secret}"]\n'
        'events = ["request.sent", "request.opened"]\n',
        encoding="utf-8",
    )

    with pytest.raises(ConfigError) as raised:
        load_config(path)

    text = str(raised.value)
    assert "webhooks.endpoints[0].events[1]" in text
    assert 'unknown event type "request.opened"' in text
    assert "request.converted" in text
    assert "events[0]" not in text


def test_domain_never_full_recipient() -> None:
    assert domain_of("email", "Ana@Example.COM") == "example.com"
    assert domain_of("sms", "+13125550142") == ""
    assert domain_of("push", "https://push.example.net/wpush/v2/secret-token") == "push.example.net"
    assert "ana" not in recipient_hash("ana@example.com")
    assert recipient_hash("Ana@Example.com ") == recipient_hash("ana@example.com")


async def test_email_sent_once_with_payload(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        job = await h.claim()
        effects = await h.actor.handle(job)
        assert effects is not None
        # The effects run twice, as after a commit whose acknowledgement was lost.
        await h.facade.transaction(effects)
        await h.facade.complete(job.id, effects)
        sent = of_type(h.journal, "request.sent")
        kinds = h.journal.query("SELECT DISTINCT kind FROM message_events")

    [payload] = sent
    assert set(payload) == documented_keys()["request.sent"]
    assert payload["request"] == 1
    assert payload["couple"] == 1
    assert payload["campaign"] == "after-wedding"
    assert payload["step"] == 1
    assert payload["channel"] == "email"
    assert payload["message_id"] == h.sink.messages[0].parsed()["Message-ID"]
    assert payload["provider"] == "smtp"
    assert payload["recipient_domains"] == ["example.com"]
    assert "ana@example.com" not in json.dumps(payload)
    assert kinds == [("accepted",)]


async def test_email_rejection_bounced(tmp_path: Path) -> None:
    async with harness(tmp_path, "reject") as h:
        job = await h.claim()
        effects = await h.actor.handle(job)
        await h.facade.complete(job.id, effects)
        bounced = of_type(h.journal, "request.bounced")
        sent = of_type(h.journal, "request.sent")

    [payload] = bounced
    assert sent == []
    assert set(payload) == documented_keys()["request.bounced"]
    assert payload["kind"] in ("hard", "policy")
    assert payload["recipient_domain"] == "example.com"


async def test_sms_sent_and_delivered_once(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.run_job()
        await w.wait_callbacks(2)
        # Twilio posts the delivered callback again, as after a lost response.
        last = w.twilio.callbacks[-1]
        assert await w.twilio.post(last.url, dict(last.fields)) == 200
        await w.process_inbound()
        events = request_events(w.journal)

    types = [event_type for event_type, _key, _payload in events]
    assert types == ["request.sent", "request.delivered"]
    sent, delivered = (payload for _type, _key, payload in events)
    assert set(sent) == documented_keys()["request.sent"]
    assert set(delivered) == documented_keys()["request.delivered"]
    (message,) = w.twilio.messages
    assert sent["message_id"] == message.sid
    assert delivered["message_id"] == message.sid
    assert sent["recipient_domains"] == []
    assert delivered["recipient_domain"] == ""
    assert delivered["provider"] == "twilio"
    assert "+1312" not in json.dumps([sent, delivered])


async def test_sms_undelivered_bounced(tmp_path: Path) -> None:
    async with world(tmp_path, "undelivered") as w:
        await w.run_job()
        await w.wait_callbacks(2)
        bounced = of_type(w.journal, "request.bounced")

    [payload] = bounced
    assert set(payload) == documented_keys()["request.bounced"]
    assert payload["kind"] == "hard"
    assert payload["channel"] == "sms"


async def test_push_accepted_is_delivered(tmp_path: Path) -> None:
    async with world(tmp_path, channels=("push",)) as w:
        await w.run_job()
        events = request_events(w.journal)

    types = [event_type for event_type, _key, _payload in events]
    assert types == ["request.sent", "request.delivered"]
    sent, delivered = (payload for _type, _key, payload in events)
    assert sent["message_id"] is None
    assert delivered["message_id"] is None
    assert sent["recipient_domains"] == ["127.0.0.1"]
    assert delivered["provider"] == "webpush"


async def test_push_gone_bounced(tmp_path: Path) -> None:
    async with world(tmp_path, channels=("push",), push_script=(410,)) as w:
        await w.run_job()
        events = request_events(w.journal)

    [(event_type, _key, payload)] = events
    assert event_type == "request.bounced"
    assert payload["kind"] == "hard"
    assert payload["status"] == "410"


def test_provider_events_linked_once(journal: Journal) -> None:
    _couple, request_id = add_sent_request(journal)

    deliver_inbound(journal, "d1", mailgun("ev-delivered", "delivered"))
    # The same event again under a new delivery id: the event id makes it a repeat.
    deliver_inbound(journal, "d2", mailgun("ev-delivered", "delivered"))
    deliver_inbound(journal, "d3", mailgun("ev-click-1", "clicked"))
    deliver_inbound(journal, "d4", mailgun("ev-click-2", "clicked", timestamp=NOW + 120))
    deliver_inbound(journal, "d5", mailgun("ev-accepted", "accepted"))
    events = request_events(journal)

    types = [event_type for event_type, _key, _payload in events]
    assert types == ["request.delivered", "request.clicked"]
    delivered, clicked = (payload for _type, _key, payload in events)
    assert delivered["request"] == request_id
    assert delivered["provider"] == "mailgun"
    assert delivered["occurred_at"] == NOW + 60
    assert set(clicked) == documented_keys()["request.clicked"]
    assert clicked["occurred_at"] == NOW + 60


def test_provider_bounce_has_kind_and_status(journal: Journal) -> None:
    add_sent_request(journal)
    failed = mailgun(
        "ev-failed",
        "failed",
        severity="permanent",
        **{"delivery-status": {"message": "550 5.1.1 no such user"}},
    )

    deliver_inbound(journal, "d1", failed)
    bounced = of_type(journal, "request.bounced")

    [payload] = bounced
    assert payload["kind"] == "hard"
    assert payload["status"] == "5.1.1"
    assert payload["provider"] == "mailgun"


def test_unknown_message_id_emits_nothing(journal: Journal) -> None:
    add_sent_request(journal)
    other = mailgun(
        "ev-other", "delivered", message={"headers": {"message-id": "other@elsewhere.example"}}
    )

    deliver_inbound(journal, "d1", other)

    assert request_events(journal) == []


def test_bounce_mailbox_bounced_once(journal: Journal) -> None:
    _couple, request_id = add_sent_request(journal)
    event = MessageEvent(
        address="ana@example.com",
        kind="soft_bounce",
        at=NOW + 300,
        status="4.2.2",
        provider="smtp",
        message_id=MESSAGE_ID,
    )
    record = Record(events=(event,))

    with journal.transaction() as tx:
        first = record_message(tx, "maildir:1", record, policy=POLICY)
    # The same message read again after a crash before it was moved to cur/.
    with journal.transaction() as tx:
        again = record_message(tx, "maildir:1", record, policy=POLICY)
    bounced = of_type(journal, "request.bounced")
    state = journal.query("SELECT state FROM requests WHERE id = ?", [request_id])

    assert (first, again) == (1, 0)
    [payload] = bounced
    assert payload["kind"] == "soft"
    assert payload["status"] == "4.2.2"
    assert state == [("bounced",)]


def add_review(journal: Journal, author: str) -> None:
    review = Review(
        platform="google",
        profile="accounts/1/locations/2",
        review_id="g1",
        stars=5,
        text="Wonderful",
        author=author,
        created_at=format_timestamp(NOW + 9 * DAY),
        updated_at=format_timestamp(NOW + 9 * DAY),
    )
    with journal.transaction() as tx:
        apply_snapshot(
            tx, platform=review.platform, profile=review.profile, reviews=[review], complete=False
        )


def test_automatic_match_converts_once(journal: Journal) -> None:
    couple_id, request_id = add_sent_request(journal, names=["William Turner", "Zoe Turner"])
    add_review(journal, "Bill Turner")
    links = {"after-wedding": frozenset({"google"})}

    with journal.transaction() as tx:
        outcome = refresh_matches(tx, campaign_links=links)
    with journal.transaction() as tx:
        refresh_matches(tx, campaign_links=links, full=True)
    converted = of_type(journal, "request.converted")

    assert outcome.confirmed == 1
    [payload] = converted
    assert set(payload) == documented_keys()["request.converted"]
    assert payload["request"] == request_id
    assert payload["couple"] == couple_id
    assert payload["platform"] == "google"
    assert payload["review_id"] == "g1"
    assert payload["decided_by"] == "automatic"
    assert payload["message_id"] == MESSAGE_ID


def test_operator_confirm_converts_once(journal: Journal) -> None:
    couple_id, _request = add_sent_request(journal)
    add_review(journal, "A. Reviewer")
    with journal.transaction() as tx:
        tx.execute(
            "INSERT INTO review_matches (platform, review_id, couple_id, confidence, method,"
            " state, reasons, created_at, updated_at)"
            " VALUES ('google', 'g1', ?, 0.5, 'name', 'candidate', '[]', ?, ?)",
            (couple_id, NOW, NOW),
        )

    for _attempt in range(2):
        with journal.transaction() as tx:
            confirm_match(tx, 1)
    converted = of_type(journal, "request.converted")

    [payload] = converted
    assert payload["decided_by"] == "operator"
    assert payload["match"] == 1


def test_unsent_request_not_converted(journal: Journal) -> None:
    couple_id, request_id = add_sent_request(journal)
    with journal.transaction() as tx:
        tx.execute("UPDATE requests SET state = 'bounced' WHERE id = ?", (request_id,))
    add_review(journal, "A. Reviewer")
    with journal.transaction() as tx:
        tx.execute(
            "INSERT INTO review_matches (platform, review_id, couple_id, confidence, method,"
            " state, reasons, created_at, updated_at)"
            " VALUES ('google', 'g1', ?, 0.5, 'name', 'candidate', '[]', ?, ?)",
            (couple_id, NOW, NOW),
        )
        confirm_match(tx, 1)

    assert of_type(journal, "request.converted") == []


def test_sent_event_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    first = Journal.open(path, lease_seconds=60, clock=lambda: NOW)
    _couple, request_id = add_sent_request(first)
    with first.transaction() as tx:
        emit_sent(tx, request_id, recipients=["ana@example.com"], provider="smtp", message_id=None)
    first.close()

    second = Journal.open(path, lease_seconds=60, clock=lambda: NOW + 60)
    try:
        with second.transaction() as tx:
            again = emit_sent(
                tx, request_id, recipients=["ana@example.com"], provider="smtp", message_id=None
            )
        sent = of_type(second, "request.sent")
    finally:
        second.close()

    assert again is False
    assert len(sent) == 1


def test_migration_renames_sent_kind(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        before = [migration for migration in MIGRATIONS if migration.version < 12]
        migrate(conn, path, now=NOW, migrations=before)
        conn.execute(
            "INSERT INTO message_events (address, domain, kind, provider, occurred_at,"
            " recorded_at) VALUES ('ana@example.com', 'example.com', 'sent', 'smtp', ?, ?)",
            (NOW, NOW),
        )
        migrate(conn, path, now=NOW)
        kinds = conn.execute("SELECT kind FROM message_events").fetchall()
    finally:
        conn.close()

    assert kinds == [("accepted",)]


def test_missing_request_emits_nothing(journal: Journal) -> None:
    with journal.transaction() as tx:
        emitted = emit_sent(tx, 999, recipients=[], provider="smtp", message_id=None)

    assert emitted is False
    assert request_events(journal) == []


def test_request_after_review_not_converted(journal: Journal) -> None:
    couple_id, request_id = add_sent_request(journal)
    add_review(journal, "A. Reviewer")
    with journal.transaction() as tx:
        # Sent a day after Plaudit first saw the review (at NOW), so it did not lead to it.
        tx.execute("UPDATE requests SET sent_at = ? WHERE id = ?", (NOW + DAY, request_id))
        tx.execute(
            "INSERT INTO review_matches (platform, review_id, couple_id, confidence, method,"
            " state, reasons, created_at, updated_at)"
            " VALUES ('google', 'g1', ?, 0.5, 'name', 'candidate', '[]', ?, ?)",
            (couple_id, NOW, NOW),
        )
        confirm_match(tx, 1)

    assert of_type(journal, "request.converted") == []


def test_bounce_from_two_sources_once(journal: Journal) -> None:
    add_sent_request(journal)
    failed = mailgun(
        "ev-failed",
        "failed",
        severity="permanent",
        **{"delivery-status": {"message": "550 5.1.1 no such user"}},
    )
    returned = MessageEvent(
        address="ana@example.com",
        kind="hard_bounce",
        at=NOW + 300,
        status="5.1.1",
        provider="smtp",
        message_id=MESSAGE_ID,
    )

    deliver_inbound(journal, "d1", failed)
    with journal.transaction() as tx:
        record_message(tx, "maildir:2", Record(events=(returned,)), policy=POLICY)
    bounced = of_type(journal, "request.bounced")

    [payload] = bounced
    assert payload["provider"] == "mailgun"
