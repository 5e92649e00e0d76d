"""Deliverability end to end: sends, their outcomes, the rates and the operator alerts.

A real journal, the SMTP sink on loopback, a real Maildir and the inbound
inbox; the rates are read through the report that ``plaudit ctl
deliverability`` prints.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from plaudit.actors.bounces import BounceMailboxActor, MaildirSource
from plaudit.alerts import list_alerts
from plaudit.config.model import Config, DeliverabilityConfig
from plaudit.inbound.inbox import accept, process
from plaudit.journal import Journal, Tx
from plaudit.messaging.deliverability.ctl import render_deliverability
from plaudit.messaging.deliverability.monitor import DeliverabilityMonitor
from plaudit.messaging.deliverability.service import report
from plaudit.messaging.deliverability.store import record_event
from plaudit.messaging.deliverability.suppression import MessageEvent, SuppressionPolicy
from plaudit.messaging.email import SendError
from plaudit.sandbox.demo_mail import COUPLES_CSV, EXPECTED_SENT, DemoMail
from tests.support import DaemonDirs, ctl, open_daemon, query, stop_daemon, wait_for
from tests.support_mail import write_deliverability_config
from tests.support_notifier import NotifierBench, notifier_bench
from tests.test_bounce_mailbox import dsn
from tests.test_notifier import make_config

COUPLES = (
    "first_name,last_name,email,phone,wedding_date,venue,timezone\n"
    "Ana,Pires,ana@guests.example.com,,2026-05-02,Orchard Barn,UTC\n"
    "Ben,Okafor,ben@guests.example.com,,2026-05-09,Orchard Barn,UTC\n"
    "Cleo,Marsh,cleo@guests.example.com,,2026-05-16,Orchard Barn,UTC\n"
    "Dev,Rao,dev@guests.example.com,,2026-05-23,Orchard Barn,UTC\n"
)
SETTINGS = DeliverabilityConfig(min_attempts=1, windows=[86400.0, 7 * 86400.0])
POLICY = SuppressionPolicy()


class Flow(NotifierBench):
    @property
    def maildir(self) -> Path:
        return self.folder / "bounces"

    async def send_all(self) -> dict[str, str]:
        """Send every due request; return each recipient's Message-ID."""
        jobs = await self.facade.claim("notifier", limit=10)
        for job in jobs:
            await self.run_job(job)
        rows = self.journal.query(
            "SELECT c.emails, r.message_id FROM requests r JOIN couples c ON c.id = r.couple_id"
            " WHERE r.state IN ('sent', 'bounced')"
        )
        return {json.loads(emails)[0]: str(message_id) for emails, message_id in rows}

    async def read_bounces(self) -> None:
        actor = BounceMailboxActor(
            self.facade, [MaildirSource(self.maildir)], policy=POLICY, poll_interval=60.0
        )
        await actor.read_once()

    def report(self, *, later: float = 1.0) -> dict[str, Any]:
        return report(self.journal, Config(deliverability=SETTINGS), now=time.time() + later)


@asynccontextmanager
async def flow(tmp_path: Path) -> AsyncIterator[Flow]:
    for folder in ("new", "cur", "tmp"):
        (tmp_path / "bounces" / folder).mkdir(parents=True)
    async with notifier_bench(tmp_path, Flow, make_config, COUPLES) as (bench, _):
        yield bench


def day_rate(result: dict[str, Any], domain: str) -> dict[str, Any]:
    rates = [
        rate
        for rate in result["rates"]
        if rate["domain"] == domain and rate["window_seconds"] == 86400.0
    ]
    assert len(rates) == 1, result["rates"]
    rate: dict[str, Any] = rates[0]
    return rate


def mailgun_body(event: str, recipient: str, message_id: str, **extra: Any) -> bytes:
    data = {
        "event": event,
        "id": f"{event}-{recipient}",
        "timestamp": time.time(),
        "recipient": recipient,
        # Mailgun passes the Message-ID header without its angle brackets.
        "message": {"headers": {"message-id": message_id.strip("<>")}},
        **extra,
    }
    return json.dumps({"signature": {}, "event-data": data}).encode()


def deliver_inbound(tx: Tx, bodies: list[bytes]) -> None:
    for number, body in enumerate(bodies):
        inbound_id = accept(
            tx, provider="mailgun", delivery_id=f"delivery-{number}", headers={}, body=body
        )
        assert inbound_id is not None
        process(tx, inbound_id, policy=POLICY, platforms=frozenset())


async def test_sends_recorded_per_recipient(tmp_path: Path) -> None:
    async with flow(tmp_path) as f:
        message_ids = await f.send_all()
        rows = f.journal.query(
            "SELECT address, domain, provider, message_id FROM message_events"
            " WHERE kind = 'accepted' ORDER BY address"
        )

    assert len(f.sink.messages) == 4
    assert rows == [
        (address, "guests.example.com", "smtp", message_ids[address])
        for address in sorted(message_ids)
    ]


async def test_maildir_bounce_rated_over_sends(tmp_path: Path) -> None:
    async with flow(tmp_path) as f:
        message_ids = await f.send_all()
        bounce = dsn(
            "ben@guests.example.com", "5.1.1", message_id=message_ids["ben@guests.example.com"]
        )
        (f.maildir / "new" / "3001.a.host").write_bytes(bounce)
        await f.read_bounces()
        result = f.report()

    rate = day_rate(result, "guests.example.com")
    assert rate["provider"] == "smtp"
    assert rate["attempts"] == 4
    assert rate["hard_bounces"] == 1
    assert rate["hard_bounce_rate"] == 0.25
    assert rate["delivery_rate"] == 0.75
    assert rate["delivery_estimated"] is True
    assert result["suppressions"] == {"hard_bounce": 1}
    text = render_deliverability(result)
    assert "~75.00%" in text
    assert "25.00%" in text


async def test_inbound_events_rated_over_sends(tmp_path: Path) -> None:
    async with flow(tmp_path) as f:
        message_ids = await f.send_all()
        bodies = [
            mailgun_body("delivered", address, message_ids[address])
            for address in (
                "ana@guests.example.com",
                "ben@guests.example.com",
                "cleo@guests.example.com",
            )
        ]
        failure = {
            "severity": "permanent",
            "delivery-status": {"message": "550 5.1.1 user unknown", "description": ""},
        }
        bodies.append(
            mailgun_body(
                "failed", "dev@guests.example.com", message_ids["dev@guests.example.com"], **failure
            )
        )
        await f.facade.transaction(lambda tx: deliver_inbound(tx, bodies))
        result = f.report()

    providers = {rate["provider"] for rate in result["rates"]}
    assert providers == {"smtp"}
    rate = day_rate(result, "guests.example.com")
    assert rate["attempts"] == 4
    assert rate["delivered"] == 3
    assert rate["delivery_estimated"] is False
    assert rate["delivery_rate"] == 0.75
    assert rate["hard_bounce_rate"] == 0.25
    assert "75.00%" in render_deliverability(result)


async def test_policy_block_alerts_without_suppression(tmp_path: Path) -> None:
    async with flow(tmp_path) as f:
        message_ids = await f.send_all()
        block = dsn(
            "cleo@guests.example.com",
            "5.7.1",
            diagnostic="smtp; 550 5.7.1 message rejected by policy",
            message_id=message_ids["cleo@guests.example.com"],
        )
        (f.maildir / "new" / "3002.a.host").write_bytes(block)
        await f.read_bounces()
        alerts = await f.facade.transaction(lambda tx: list_alerts(tx, open_only=True))
        suppressions = f.journal.query("SELECT address FROM suppressions")

        # Two days later the one-day window contains no block, so the alert resolves.
        monitor = DeliverabilityMonitor(
            f.facade, lambda: SETTINGS, clock=lambda: time.time() + 2 * 86400.0
        )
        await monitor.evaluate_once()
        still_open = await f.facade.transaction(lambda tx: list_alerts(tx, open_only=True))

    assert suppressions == []
    assert [(alert.source, alert.key) for alert in alerts] == [
        ("deliverability", "policy_block:guests.example.com")
    ]
    assert "5.7.1" in alerts[0].summary
    assert still_open == []


async def test_submission_policy_reject_blocks(tmp_path: Path) -> None:
    class RejectingSender:
        async def send(self, message: object, *, before_data: object = None) -> None:
            error = SendError("550 5.7.1 sender rejected", permanent=True, code=550)
            error.status = "5.7.1"
            raise error

    async with flow(tmp_path) as f:
        f.actor.sender = RejectingSender()  # type: ignore[assignment]
        await f.send_all()
        kinds = f.journal.query("SELECT DISTINCT kind FROM message_events")
        suppressions = f.journal.query("SELECT address FROM suppressions")
        alerts = await f.facade.transaction(lambda tx: list_alerts(tx, open_only=True))

    assert kinds == [("policy_block",)]
    assert suppressions == []
    assert [alert.key for alert in alerts] == ["policy_block:guests.example.com"]
    assert alerts[0].repeats == 3


def rate_events(delivered: int, hard: int, *, at: float) -> list[MessageEvent]:
    events = [
        MessageEvent(address=f"d{index}@isp.test", kind="delivered", at=at, provider="smtp")
        for index in range(delivered)
    ]
    events += [
        MessageEvent(address=f"h{index}@isp.test", kind="hard_bounce", at=at, provider="smtp")
        for index in range(hard)
    ]
    return events


def store_events(tx: Tx, events: list[MessageEvent]) -> None:
    for event in events:
        record_event(tx, event, policy=POLICY)


def open_rate_alerts(journal: Journal) -> list[tuple[object, ...]]:
    return journal.query(
        "SELECT key, severity FROM alerts"
        " WHERE source = 'deliverability' AND resolved_at IS NULL ORDER BY key"
    )


async def test_rate_alert_survives_restart_and_resolves(tmp_path: Path) -> None:
    now = time.time()
    settings = msgspec.structs.replace(SETTINGS, windows=[86400.0])

    async with flow(tmp_path) as f:
        await f.facade.transaction(lambda tx: store_events(tx, rate_events(9, 1, at=now)))
        first = DeliverabilityMonitor(f.facade, lambda: settings, clock=lambda: now + 1)
        await first.evaluate_once()
        opened = open_rate_alerts(f.journal)

        # A new monitor, as after a restart, finds the alerts open and sends nothing again.
        second = DeliverabilityMonitor(f.facade, lambda: settings, clock=lambda: now + 2)
        await second.evaluate_once()
        emitted = f.journal.query("SELECT count(*) FROM events WHERE type = 'deliverability.alert'")

        await f.facade.transaction(lambda tx: store_events(tx, rate_events(190, 0, at=now)))
        await second.evaluate_once()
        after = open_rate_alerts(f.journal)
        resolved = f.journal.query(
            "SELECT count(*) FROM alerts WHERE source = 'deliverability'"
            " AND resolved_at IS NOT NULL"
        )

    assert opened == [
        ("rate:smtp/*/86400/alert", "warning"),
        ("rate:smtp/isp.test/86400/alert", "warning"),
    ]
    assert emitted == [(2,)]
    assert second.statistics().active_alerts == 0
    assert after == []
    assert resolved == [(2,)]


def daemon_config(dirs: DaemonDirs, mail: DemoMail, smtp_port: int) -> None:
    # The review links are only printed into the messages; nothing requests them.
    write_deliverability_config(dirs, mail.config(smtp_port, "https://willow-vine.example"))


@pytest.mark.slow
async def test_ctl_rates_over_daemon_sends(tmp_path: Path) -> None:
    """Sends from a real daemon, a bounce in its Maildir, then ``ctl deliverability``.

    Real time: each wait allows 60 s.
    """
    dirs = DaemonDirs(tmp_path)
    mail = DemoMail()
    couples = tmp_path / "couples.csv"
    couples.write_text(COUPLES_CSV, encoding="utf-8")
    async with trio.open_nursery() as nursery:
        smtp_port = await nursery.start(mail.sink.serve)
        daemon_config(dirs, mail, smtp_port)
        process = await open_daemon(dirs)
        try:
            await wait_for(
                lambda: ctl(dirs, "import", "couples", str(couples)).returncode == 0,
                timeout=60,
                interval=0.5,
                what="the couples import",
            )
            await wait_for(
                lambda: len(mail.sink.messages) == EXPECTED_SENT,
                timeout=60,
                what="the first step to reach every consenting couple",
            )
            maya = next(
                message.parsed()
                for message in mail.sink.messages
                if "maya.ortiz@example.com" in str(message.parsed()["To"])
            )
            bounce = dsn("maya.ortiz@example.com", "5.1.1", message_id=str(maya["Message-ID"]))
            (dirs.state / "bounces" / "new" / "4001.a.host").write_bytes(bounce)
            await wait_for(
                lambda: query(dirs.journal, "SELECT address FROM suppressions"),
                timeout=60,
                what="the bounce to be recorded",
            )
            as_json = await trio.to_thread.run_sync(ctl, dirs, "--json", "deliverability")
            as_text = await trio.to_thread.run_sync(ctl, dirs, "deliverability")
        finally:
            status = await stop_daemon(process)
            nursery.cancel_scope.cancel()

    assert status == 0, dirs.log.read_text(encoding="utf-8")[-4000:]
    assert as_json.returncode == 0, as_json.stderr
    result = json.loads(as_json.stdout)
    # Four recipients: Maya and Jonah share one message, Priya and Lena get one each.
    everyone = day_rate(result, "")
    assert everyone["provider"] == "smtp"
    assert everyone["attempts"] == 4
    assert everyone["hard_bounce_rate"] == 0.25
    assert everyone["delivery_rate"] == 0.75
    assert everyone["delivery_estimated"] is True
    assert day_rate(result, "example.com")["hard_bounce_rate"] == 0.5
    assert day_rate(result, "example.org")["hard_bounce_rate"] == 0.0
    assert "~75.00%" in as_text.stdout
