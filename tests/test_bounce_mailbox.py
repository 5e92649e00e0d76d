"""The bounce mailbox actor: a real Maildir and a real journal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio

from plaudit.actors.bounces import (
    BounceMailboxActor,
    Ignore,
    MaildirSource,
    Record,
    Reject,
    build_bounce_actor,
    decide,
)
from plaudit.config.model import BounceMailboxConfig, DeliverabilityConfig
from plaudit.daemon.children import ChildContext
from plaudit.journal import AsyncJournal, Journal
from plaudit.messaging.deliverability import parse_bounce
from plaudit.messaging.deliverability.mime import MAX_MESSAGE_BYTES
from plaudit.messaging.deliverability.suppression import SuppressionPolicy

POLICY = SuppressionPolicy(soft_bounce_limit=3, soft_bounce_window_seconds=7 * 86400)
NOW = 1_800_000_000.0
REQUEST_ID = "<request-7.step-1@plaudit.test>"


def dsn(
    recipient: str,
    status: str,
    *,
    action: str = "failed",
    diagnostic: str = "smtp; 550 5.1.1 user unknown",
    message_id: str = REQUEST_ID,
) -> bytes:
    """Build an RFC 3464 delivery status notification with CRLF line endings."""
    text = f"""From: Mail Delivery System <MAILER-DAEMON@mx.guest.test>
To: bounces@plaudit.test
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="part"

--part
Content-Type: text/plain

The message could not be delivered.

--part
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.guest.test

Final-Recipient: rfc822; {recipient}
Action: {action}
Status: {status}
Diagnostic-Code: {diagnostic}

--part
Content-Type: text/rfc822-headers

From: Lakeside Venue <reviews@plaudit.test>
To: {recipient}
Subject: How was your wedding?
Message-ID: {message_id}

--part--
"""
    return text.replace("\n", "\r\n").encode()


def complaint(recipient: str) -> bytes:
    """Build an RFC 5965 abuse report."""
    text = f"""From: feedback@isp.test
To: fbl@plaudit.test
Subject: Abuse report
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="fb"

--fb
Content-Type: text/plain

This is an abuse report.

--fb
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: isp-fbl/1.0
Version: 1
Original-Rcpt-To: {recipient}

--fb
Content-Type: message/rfc822

From: reviews@plaudit.test
To: {recipient}
Subject: How was your wedding?
Message-ID: {REQUEST_ID}

Please leave a review.
--fb--
"""
    return text.replace("\n", "\r\n").encode()


AUTO_REPLY = (
    b"From: guest@guest.test\r\nTo: reviews@plaudit.test\r\nSubject: Out of office\r\n"
    b"Auto-Submitted: auto-replied\r\n\r\nI am on my honeymoon until June.\r\n"
)


@pytest.fixture
def maildir(tmp_path: Path) -> Path:
    root = tmp_path / "bounces"
    for folder in ("new", "cur", "tmp"):
        (root / folder).mkdir(parents=True)
    return root


def deliver(maildir: Path, name: str, data: bytes) -> None:
    (maildir / "new" / name).write_bytes(data)


def actor_for(writer: AsyncJournal, maildir: Path) -> BounceMailboxActor:
    return BounceMailboxActor(
        writer, [MaildirSource(maildir)], policy=POLICY, poll_interval=30.0, clock=lambda: NOW
    )


def events(journal: Journal) -> list[tuple[Any, ...]]:
    return [
        tuple(row)
        for row in journal.query(
            "SELECT address, kind, status, provider, message_id FROM message_events ORDER BY id"
        )
    ]


def suppressions(journal: Journal) -> dict[str, str]:
    return dict(journal.query("SELECT address, reason FROM suppressions"))


def emitted(journal: Journal, event_type: str) -> list[dict[str, Any]]:
    rows = journal.query("SELECT payload FROM events WHERE type = ?", (event_type,))
    return [json.loads(row[0]) for row in rows]


async def test_hard_bounce_suppresses_and_moves(
    writer: AsyncJournal, sync_journal: Journal, maildir: Path
) -> None:
    deliver(maildir, "1001.a.host", dsn("Guest@Guest.test", "5.1.1"))
    actor = actor_for(writer, maildir)
    assert await actor.read_once() == 1

    assert events(sync_journal) == [
        ("guest@guest.test", "hard_bounce", "5.1.1", "smtp", REQUEST_ID)
    ]
    assert suppressions(sync_journal) == {"guest@guest.test": "hard_bounce"}
    assert list((maildir / "new").iterdir()) == []
    assert [path.name for path in (maildir / "cur").iterdir()] == ["1001.a.host:2,S"]
    assert actor.statistics().recorded == 1


async def test_delay_warning_is_deferred(
    writer: AsyncJournal, sync_journal: Journal, maildir: Path
) -> None:
    delay = dsn("b@guest.test", "4.2.2", action="delayed", diagnostic="smtp; 452 4.2.2 full")
    deliver(maildir, "1002.a.host", delay)
    await actor_for(writer, maildir).read_once()

    assert [row[1] for row in events(sync_journal)] == ["deferred"]
    assert suppressions(sync_journal) == {}


async def test_policy_block_alerts_without_suppression(
    writer: AsyncJournal, sync_journal: Journal, maildir: Path
) -> None:
    block = dsn("c@guest.test", "5.7.1", diagnostic="smtp; 550 5.7.1 rejected by policy")
    deliver(maildir, "1003.a.host", block)
    await actor_for(writer, maildir).read_once()

    assert [row[1] for row in events(sync_journal)] == ["policy_block"]
    assert suppressions(sync_journal) == {}
    alerts = emitted(sync_journal, "deliverability.alert")
    assert len(alerts) == 1
    assert alerts[0]["alert"] == "sender_reputation"
    assert alerts[0]["status"] == "5.7.1"
    assert alerts[0]["domain"] == "guest.test"


async def test_complaint_suppresses(
    writer: AsyncJournal, sync_journal: Journal, maildir: Path
) -> None:
    deliver(maildir, "1004.a.host", complaint("d@guest.test"))
    await actor_for(writer, maildir).read_once()

    assert suppressions(sync_journal) == {"d@guest.test": "complaint"}
    assert events(sync_journal)[0][4] == REQUEST_ID


async def test_auto_reply_ignored(
    writer: AsyncJournal, sync_journal: Journal, maildir: Path
) -> None:
    deliver(maildir, "1005.a.host", AUTO_REPLY)
    actor = actor_for(writer, maildir)
    await actor.read_once()

    assert events(sync_journal) == []
    assert [path.name for path in (maildir / "cur").iterdir()] == ["1005.a.host:2,S"]
    assert actor.statistics().ignored == 1


async def test_unreadable_moved_aside_others_processed(
    writer: AsyncJournal, sync_journal: Journal, maildir: Path
) -> None:
    deliver(maildir, "1006.a.host", b"  \r\n")
    deliver(maildir, "1007.a.host", b"X" * (MAX_MESSAGE_BYTES + 10))
    deliver(maildir, "1008.a.host", dsn("e@guest.test", "5.1.1"))
    actor = actor_for(writer, maildir)
    await actor.read_once()

    rejected = maildir / "rejected"
    assert (rejected / "1006.a.host").read_bytes() == b"  \r\n"
    assert "empty" in (rejected / "1006.a.host.error").read_text()
    assert "limit" in (rejected / "1007.a.host.error").read_text()
    assert suppressions(sync_journal) == {"e@guest.test": "hard_bounce"}
    assert actor.statistics().rejected == 2
    assert list((maildir / "new").iterdir()) == []


async def test_reread_after_crash_adds_nothing(
    writer: AsyncJournal, sync_journal: Journal, maildir: Path
) -> None:
    message = dsn("f@guest.test", "5.2.2", diagnostic="smtp; 552 5.2.2 mailbox full")
    deliver(maildir, "1009.a.host", message)
    actor = actor_for(writer, maildir)
    await actor.read_once()
    # A crash between the commit and the move leaves the message in new/.
    deliver(maildir, "1009.a.host", message)
    await actor.read_once()

    assert len(events(sync_journal)) == 1
    assert list((maildir / "new").iterdir()) == []


async def test_repeated_soft_bounces_suppress(
    writer: AsyncJournal, sync_journal: Journal, maildir: Path
) -> None:
    actor = actor_for(writer, maildir)
    for index in range(3):
        message = dsn("g@guest.test", "5.2.2", diagnostic="smtp; 552 5.2.2 mailbox full")
        deliver(maildir, f"10{index}.soft.host", message)
        await actor.read_once()
        expected = {"g@guest.test": "repeated_soft_bounce"} if index == 2 else {}
        assert suppressions(sync_journal) == expected


async def test_missing_maildir_reports_then_recovers(
    writer: AsyncJournal, sync_journal: Journal, tmp_path: Path
) -> None:
    root = tmp_path / "later"
    actor = actor_for(writer, root)
    assert await actor.read_once() == 0
    error = actor.statistics().last_error
    assert error is not None
    assert str(root) in error

    for folder in ("new", "cur", "tmp"):
        (root / folder).mkdir(parents=True)
    deliver(root, "1010.a.host", dsn("h@guest.test", "5.1.1"))
    assert await actor.read_once() == 1
    assert suppressions(sync_journal) == {"h@guest.test": "hard_bounce"}


async def test_actor_polls_until_stopped(
    writer: AsyncJournal, sync_journal: Journal, maildir: Path
) -> None:
    """Real time, because the Maildir is read in worker threads; the bound is 30 s."""
    actor = actor_for(writer, maildir)
    actor.poll_interval = 0.05
    ready = trio.Event()
    ctx = ChildContext("bounces", on_started=ready.set)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(actor.start, ctx)
            while actor.statistics().passes < 1:
                await trio.sleep(0.05)
            assert ready.is_set()
            deliver(maildir, "1011.a.host", dsn("i@guest.test", "5.1.1"))
            while not suppressions(sync_journal):
                await trio.sleep(0.05)
            ctx.stop_requested.set()

    assert suppressions(sync_journal) == {"i@guest.test": "hard_bounce"}
    assert actor.statistics().passes >= 2


def test_decide_outcomes() -> None:
    assert isinstance(decide(parse_bounce(AUTO_REPLY), at=NOW), Ignore)
    assert isinstance(decide(parse_bounce(b""), at=NOW), Reject)
    record = decide(parse_bounce(dsn("j@guest.test", "5.1.1")), at=NOW)
    assert isinstance(record, Record)
    assert record.events[0].message_id == REQUEST_ID
    assert record.events[0].at == NOW


def test_build_needs_maildir(tmp_path: Path, sync_journal: Journal) -> None:
    config = DeliverabilityConfig()
    assert build_bounce_actor(config, AsyncJournal(sync_journal), state_dir=tmp_path) is None
    with_mailbox = DeliverabilityConfig(mailbox=BounceMailboxConfig(maildir="bounces"))
    actor = build_bounce_actor(with_mailbox, AsyncJournal(sync_journal), state_dir=tmp_path)
    assert actor is not None
    assert [source.label for source in actor.sources] == [str(tmp_path / "bounces")]


async def test_reload_switches_maildir(
    writer: AsyncJournal, sync_journal: Journal, tmp_path: Path
) -> None:
    for name in ("first", "second"):
        for folder in ("new", "cur", "tmp"):
            (tmp_path / name / folder).mkdir(parents=True)
    current = {"config": DeliverabilityConfig(mailbox=BounceMailboxConfig(maildir="first"))}
    actor = build_bounce_actor(
        current["config"], writer, state_dir=tmp_path, settings=lambda: current["config"]
    )
    assert actor is not None
    deliver(tmp_path / "second", "3001.a.host", dsn("l@guest.test", "5.1.1"))
    await actor.read_once()
    assert suppressions(sync_journal) == {}

    current["config"] = DeliverabilityConfig(
        soft_bounce_limit=7, mailbox=BounceMailboxConfig(maildir="second", poll_interval=5.0)
    )
    await actor.read_once()
    assert suppressions(sync_journal) == {"l@guest.test": "hard_bounce"}
    assert actor.poll_interval == 5.0
    assert actor.policy.soft_bounce_limit == 7


async def add_request(writer: AsyncJournal, *, state: str) -> int:
    def insert(tx: Any) -> int:
        tx.execute(
            "INSERT INTO couples (email, names, emails, phone, wedding_date, venue, timezone,"
            " vendor, consent_email, consent_sms, created_at, updated_at)"
            " VALUES ('r@guest.test', '[]', '[]', NULL, '2026-06-01', 'Lakeside', NULL,"
            " 'willow', 1, 0, 0, 0)"
        )
        row = tx.execute(
            "INSERT INTO requests (couple_id, campaign, step, channel, state, scheduled_at,"
            " message_id, updated_at) VALUES (1, 'after', 1, 'email', ?, 0, ?, 0) RETURNING id",
            (state, REQUEST_ID),
        ).fetchone()
        return int(row[0])

    request_id: int = await writer.transaction(insert)
    return request_id


def request_state(journal: Journal, request_id: int) -> tuple[Any, ...]:
    rows = journal.query("SELECT state, last_error FROM requests WHERE id = ?", (request_id,))
    return tuple(rows[0])


async def test_bounce_marks_request_bounced(
    writer: AsyncJournal, sync_journal: Journal, maildir: Path
) -> None:
    request_id = await add_request(writer, state="sent")
    deliver(maildir, "4001.a.host", dsn("r@guest.test", "5.1.1"))
    await actor_for(writer, maildir).read_once()

    state, error = request_state(sync_journal, request_id)
    assert state == "bounced"
    assert error == "hard_bounce 5.1.1 for r@guest.test"


async def test_delay_leaves_request_sent(
    writer: AsyncJournal, sync_journal: Journal, maildir: Path
) -> None:
    request_id = await add_request(writer, state="sent")
    delay = dsn("r@guest.test", "4.4.1", action="delayed", diagnostic="smtp; 451 4.4.1 later")
    deliver(maildir, "4002.a.host", delay)
    await actor_for(writer, maildir).read_once()

    assert request_state(sync_journal, request_id) == ("sent", None)


async def test_policy_alert_names_request(
    writer: AsyncJournal, sync_journal: Journal, maildir: Path
) -> None:
    request_id = await add_request(writer, state="sent")
    block = dsn("r@guest.test", "5.7.1", diagnostic="smtp; 550 5.7.1 rejected by policy")
    deliver(maildir, "4003.a.host", block)
    await actor_for(writer, maildir).read_once()

    alerts = emitted(sync_journal, "deliverability.alert")
    assert alerts[0]["request_id"] == request_id
    assert request_state(sync_journal, request_id)[0] == "bounced"
