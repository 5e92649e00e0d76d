"""Complaints and late hard bounces stop a couple's scheduled steps when they are recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from plaudit.actors.bounces import BounceMailboxActor, MaildirSource
from plaudit.config.model import CampaignConfig, CampaignStep, Config, VendorConfig
from plaudit.inbound import inbox
from plaudit.journal import AsyncJournal, Journal, Tx
from plaudit.messaging.deliverability.suppression import SuppressionPolicy
from plaudit.messaging.event_rules import CampaignRules, campaign_rules_of, no_rules
from plaudit.messaging.requests import show_request
from tests.support import run_actor_until
from tests.test_bounce_mailbox import complaint, dsn

NOW = 1_800_000_000.0
SENT_ID = "<request-7.step-1@plaudit.test>"
RULES = CampaignRules(
    stop_on_complaint=frozenset({"after"}), stop_on_hard_bounce=frozenset({"after"})
)


@pytest.fixture
def maildir(tmp_path: Path) -> Path:
    root = tmp_path / "bounces"
    for folder in ("new", "cur", "tmp"):
        (root / folder).mkdir(parents=True)
    return root


async def add_couple(
    writer: AsyncJournal, emails: list[str], *, message_id: str = SENT_ID
) -> tuple[int, int]:
    """Store a couple whose first step was sent and whose reminder is scheduled."""

    def insert(tx: Tx) -> tuple[int, int]:
        couple = tx.execute(
            "INSERT INTO couples (email, names, emails, phone, wedding_date, venue, timezone,"
            " vendor, consent_email, consent_sms, created_at, updated_at)"
            " VALUES (?, '[]', ?, NULL, '2026-06-01', 'Lakeside', NULL, 'willow', 1, 0, 0, 0)"
            " RETURNING id",
            (emails[0], json.dumps(emails)),
        ).fetchone()
        couple_id = int(couple[0])
        tx.execute(
            "INSERT INTO requests (couple_id, campaign, step, channel, state, scheduled_at,"
            " message_id, updated_at) VALUES (?, 'after', 0, 'email', 'sent', 0, ?, 0)",
            (couple_id, message_id),
        )
        reminder = tx.execute(
            "INSERT INTO requests (couple_id, campaign, step, channel, state, scheduled_at,"
            " message_id, updated_at) VALUES (?, 'after', 1, 'email', 'scheduled', ?, NULL, 0)"
            " RETURNING id",
            (couple_id, NOW + 86400.0),
        ).fetchone()
        return couple_id, int(reminder[0])

    result: tuple[int, int] = await writer.transaction(insert)
    return result


async def shown(writer: AsyncJournal, request_id: int) -> dict[str, Any]:
    shown_request: dict[str, Any] = await writer.transaction(
        lambda tx: show_request(tx, request_id)
    )
    return shown_request


def mailbox_actor(writer: AsyncJournal, maildir: Path, rules: CampaignRules) -> BounceMailboxActor:
    return BounceMailboxActor(
        writer,
        [MaildirSource(maildir)],
        policy=SuppressionPolicy(),
        poll_interval=30.0,
        clock=lambda: NOW,
        rules=lambda: rules,
    )


async def test_arf_complaint_stops_reminder(writer: AsyncJournal, maildir: Path) -> None:
    _, reminder = await add_couple(writer, ["ana@guest.test", "ben@guest.test"])
    (maildir / "new" / "5001.a.host").write_bytes(complaint("ana@guest.test"))
    await mailbox_actor(writer, maildir, RULES).read_once()

    view = await shown(writer, reminder)
    assert view["request"]["state"] == "stopped"
    assert view["stop_reason"] == "stopped: complaint"


async def test_complaint_without_stop_on_keeps_reminder(
    writer: AsyncJournal, maildir: Path
) -> None:
    _, reminder = await add_couple(writer, ["ana@guest.test"])
    (maildir / "new" / "5002.a.host").write_bytes(complaint("ana@guest.test"))
    await mailbox_actor(writer, maildir, CampaignRules()).read_once()

    view = await shown(writer, reminder)
    assert view["request"]["state"] == "scheduled"
    assert view["stop_reason"] is None


async def test_complaint_stops_only_listed_campaigns(writer: AsyncJournal, maildir: Path) -> None:
    _, reminder = await add_couple(writer, ["ana@guest.test"])
    (maildir / "new" / "5003.a.host").write_bytes(complaint("ana@guest.test"))
    other = CampaignRules(stop_on_complaint=frozenset({"anniversary"}))
    await mailbox_actor(writer, maildir, other).read_once()

    assert (await shown(writer, reminder))["request"]["state"] == "scheduled"


async def test_late_hard_bounce_stops_reminder(writer: AsyncJournal, maildir: Path) -> None:
    _, reminder = await add_couple(writer, ["ana@guest.test"])
    (maildir / "new" / "5004.a.host").write_bytes(dsn("ana@guest.test", "5.1.1"))
    await mailbox_actor(writer, maildir, RULES).read_once()

    view = await shown(writer, reminder)
    assert view["request"]["state"] == "stopped"
    assert view["stop_reason"] == "stopped: hard_bounce"


async def test_hard_bounce_of_one_partner_keeps_reminder(
    writer: AsyncJournal, maildir: Path
) -> None:
    _, reminder = await add_couple(writer, ["ana@guest.test", "ben@guest.test"])
    (maildir / "new" / "5005.a.host").write_bytes(dsn("ana@guest.test", "5.1.1"))
    await mailbox_actor(writer, maildir, RULES).read_once()

    # Ben's address still receives mail, so the reminder goes to him.
    assert (await shown(writer, reminder))["request"]["state"] == "scheduled"


async def test_mailbox_reads_rules_per_message(writer: AsyncJournal, maildir: Path) -> None:
    # The test complaints quote SENT_ID, so only the second couple is linked by Message-ID.
    _, first = await add_couple(writer, ["ana@guest.test"], message_id="<other@plaudit.test>")
    _, second = await add_couple(writer, ["cy@guest.test"])
    current = [CampaignRules()]
    actor = BounceMailboxActor(
        writer,
        [MaildirSource(maildir)],
        policy=SuppressionPolicy(),
        poll_interval=30.0,
        clock=lambda: NOW,
        rules=lambda: current[0],
    )
    (maildir / "new" / "5006.a.host").write_bytes(complaint("ana@guest.test"))
    await actor.read_once()
    # A reload adds "complaint" to the campaign's stop_on.
    current[0] = RULES
    (maildir / "new" / "5007.a.host").write_bytes(complaint("cy@guest.test"))
    await actor.read_once()

    assert (await shown(writer, first))["request"]["state"] == "scheduled"
    assert (await shown(writer, second))["request"]["state"] == "stopped"


def mailgun_body(event_id: str, event: str, recipient: str, **extra: Any) -> bytes:
    data = {
        "id": event_id,
        "event": event,
        "timestamp": NOW,
        "recipient": recipient,
        "message": {"headers": {"message-id": SENT_ID.strip("<>")}},
        **extra,
    }
    return json.dumps({"event-data": data}).encode()


async def process_webhook(
    writer: AsyncJournal, body: bytes, event_id: str, rules: CampaignRules
) -> inbox.Outcome | None:
    def run(tx: Tx) -> inbox.Outcome | None:
        inbound_id = inbox.accept(
            tx, provider="mailgun", delivery_id=event_id, headers={}, body=body
        )
        assert inbound_id is not None
        return inbox.process(
            tx, inbound_id, policy=SuppressionPolicy(), platforms=frozenset(), rules=rules
        )

    outcome: inbox.Outcome | None = await writer.transaction(run)
    return outcome


async def test_webhook_complaint_stops_reminder(writer: AsyncJournal) -> None:
    _, reminder = await add_couple(writer, ["ana@guest.test", "ben@guest.test"])
    body = mailgun_body("mg-1", "complained", "ben@guest.test")
    outcome = await process_webhook(writer, body, "mg-1", RULES)

    assert outcome is not None and outcome.state == "processed"
    view = await shown(writer, reminder)
    assert view["request"]["state"] == "stopped"
    assert view["stop_reason"] == "stopped: complaint"


async def test_webhook_late_bounce_stops_reminder(writer: AsyncJournal) -> None:
    _, reminder = await add_couple(writer, ["ana@guest.test"])
    body = mailgun_body(
        "mg-2",
        "failed",
        "ana@guest.test",
        severity="permanent",
        **{"delivery-status": {"message": "550 5.1.1 user unknown", "code": 550}},
    )
    await process_webhook(writer, body, "mg-2", RULES)

    assert (await shown(writer, reminder))["stop_reason"] == "stopped: hard_bounce"


async def test_webhook_delivery_keeps_reminder(writer: AsyncJournal) -> None:
    _, reminder = await add_couple(writer, ["ana@guest.test"])
    await process_webhook(
        writer, mailgun_body("mg-3", "delivered", "ana@guest.test"), "mg-3", RULES
    )

    assert (await shown(writer, reminder))["request"]["state"] == "scheduled"


async def test_inbox_actor_reads_rules_source(writer: AsyncJournal, sync_journal: Journal) -> None:
    _, reminder = await add_couple(writer, ["ana@guest.test"])
    body = mailgun_body("mg-4", "complained", "ana@guest.test")
    await writer.transaction(
        lambda tx: inbox.accept(tx, provider="mailgun", delivery_id="mg-4", headers={}, body=body)
    )
    actor = inbox.InboxActor(
        writer, lease_seconds=30, platforms=frozenset(), poll_interval=0.05, rules=lambda: RULES
    )
    # Generous: the machine runs several suites at once.
    await run_actor_until(
        actor,
        lambda: sync_journal.query("SELECT state FROM inbound_events") == [("processed",)],
        name="inbound",
        timeout=60,
    )

    assert (await shown(writer, reminder))["stop_reason"] == "stopped: complaint"


def test_rules_of_config_lists_stopping_campaigns() -> None:
    step = CampaignStep(delay_days=10, subject="Thank you", text="Hello")
    config = Config(
        vendor=VendorConfig(
            name="Willow Studio",
            postal_address="12 Elm Street, Springfield, IL 62701",
            from_address="hello@willow.example",
            review_links={"google": "http://127.0.0.1:9/google"},
        ),
        campaigns=[
            CampaignConfig(name="after", steps=[step], stop_on=["complaint", "hard_bounce"]),
            CampaignConfig(name="anniversary", steps=[step], stop_on=["review"]),
        ],
    )
    rules = campaign_rules_of(config)

    assert rules.stop_on_complaint == frozenset({"after"})
    assert rules.stop_on_hard_bounce == frozenset({"after"})
    assert rules.review_links == {"google": "http://127.0.0.1:9/google"}
    assert campaign_rules_of(Config()) == no_rules()
