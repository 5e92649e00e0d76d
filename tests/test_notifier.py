"""The notifier: decisions, and the actor against a real journal and the SMTP sink."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio

from plaudit.actors.notifier import NotifierActor, Snapshot, decide
from plaudit.config.model import Config
from plaudit.daemon.children import ChildContext
from plaudit.errors import PlatformError
from plaudit.journal import AsyncJournal, Journal, Tx
from plaudit.messaging.campaigns import first_step_at
from plaudit.messaging.couples import parse_couples_csv, store_couples
from plaudit.messaging.deliverability.store import record_event
from plaudit.messaging.deliverability.suppression import MessageEvent, SuppressionPolicy
from plaudit.messaging.email import SmtpSender
from plaudit.messaging.templates import MessageTemplate
from plaudit.sandbox.smtp import Outcome, SmtpSink
from tests.support_notifier import NotifierBench, notifier_bench, two_step_config

COUPLES = (
    "first_name,last_name,email,phone,wedding_date,venue,timezone\n"
    "Ana,Pires,ana@example.com,,2026-05-02,Orchard Barn,America/Chicago\n"
)
TEXT = (
    "Dear {{ couple_names }}, thank you for {{ wedding_date }} at {{ venue }}.\n"
    "{% for link in review_links %}{{ link.platform }}: {{ link.url }}\n{% endfor %}"
    "Unsubscribe: {{ unsubscribe_link }}"
)


def make_config(port: int) -> Config:
    links = {"google": "https://reviews.invalid/google", "yelp": "https://reviews.invalid/yelp"}
    return two_step_config(
        port, text=TEXT, subject="Thank you, {{ couple_names }}", review_links=links
    )


class Harness(NotifierBench):
    def request_rows(self) -> list[tuple[object, ...]]:
        return self.journal.query("SELECT step, state, message_id FROM requests ORDER BY step")


@asynccontextmanager
async def harness(tmp_path: Path, *script: Outcome) -> AsyncIterator[Harness]:
    sink = SmtpSink(script=script)
    async with notifier_bench(tmp_path, Harness, make_config, COUPLES, sink=sink) as (bench, _):
        yield bench


def snapshot(**changes: object) -> Snapshot:
    fields: dict[str, object] = {
        "state": "scheduled",
        "channel": "email",
        "addresses": ["ana@example.com", "ben@example.com"],
        "suppressed": {},
        "consent_email": True,
        "review_detected": False,
    }
    fields.update(changes)
    return Snapshot(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "action", "reason"),
    [
        ({}, "send", ""),
        ({"state": "sending"}, "send", ""),
        ({"state": "sent"}, "skip", "already sent"),
        ({"review_detected": True}, "stop", "review"),
        ({"channel": "sms"}, "stop", "channel sms is not available"),
        ({"consent_email": False}, "suppress", "no e-mail consent"),
        (
            {"suppressed": {"ana@example.com": "unsubscribe", "ben@example.com": "complaint"}},
            "suppress",
            "complaint,unsubscribe",
        ),
    ],
)
def test_decide(changes: dict[str, object], action: str, reason: str) -> None:
    decision = decide(snapshot(**changes))

    assert decision.action == action
    assert decision.reason == reason


def test_decide_skips_suppressed_partner() -> None:
    decision = decide(snapshot(suppressed={"ben@example.com": "hard_bounce"}))

    assert decision.recipients == ["ana@example.com"]


async def test_sent_request_schedules_next_step(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        job = await h.claim()
        effects = await h.actor.handle(job)
        await h.facade.complete(job.id, effects)
        rows = h.request_rows()

    assert [(step, state) for step, state, _ in rows] == [(0, "sent"), (1, "scheduled")]
    message = h.sink.messages[0].parsed()
    assert message["Subject"] == "Thank you, Ana Pires"
    body = message.get_content()
    assert "May 2, 2026 at Orchard Barn" in body
    assert "google: https://reviews.invalid/google" in body
    assert "yelp" not in body
    assert "12 Elm Street" in body


async def test_crash_after_send_not_sent_again(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        job = await h.claim()
        await h.actor.handle(job)
        # The process dies before completing the job; its lease returns it.
        await h.facade.release(job.id)
        again = await h.claim()
        effects = await h.actor.handle(again)
        await h.facade.complete(again.id, effects)
        rows = h.request_rows()
        unconfirmed = h.journal.query("SELECT unconfirmed FROM requests WHERE step = 0")

    (only,) = h.sink.messages
    assert rows[0][2] == only.parsed()["Message-ID"]
    assert rows[0][1] == "sent"
    assert unconfirmed == [(1,)]


async def test_temporary_failure_retried(tmp_path: Path) -> None:
    async with harness(tmp_path, "temporary") as h:
        job = await h.claim()
        with pytest.raises(PlatformError) as caught:
            await h.actor.handle(job)
        rows = h.request_rows()

    assert caught.value.retryable is True
    assert rows == [(0, "sending", "<request-1@willow.example>")]
    assert h.sink.messages == []


async def test_permanent_failure_bounces(tmp_path: Path) -> None:
    async with harness(tmp_path, "reject") as h:
        job = await h.claim()
        effects = await h.actor.handle(job)
        await h.facade.complete(job.id, effects)
        rows = h.request_rows()
        suppressed = h.journal.query("SELECT address, reason FROM suppressions")

    assert [(step, state) for step, state, _ in rows] == [(0, "bounced")]
    assert suppressed == [("ana@example.com", "hard_bounce")]


async def test_unsubscribed_couple_not_sent(tmp_path: Path) -> None:
    policy = SuppressionPolicy()

    def unsubscribe(tx: Tx) -> None:
        event = MessageEvent(address="ana@example.com", kind="unsubscribe", at=tx.now)
        record_event(tx, event, policy=policy)

    async with harness(tmp_path) as h:
        await h.facade.transaction(unsubscribe)
        job = await h.claim()
        effects = await h.actor.handle(job)
        await h.facade.complete(job.id, effects)
        rows = h.request_rows()

    assert [(step, state) for step, state, _ in rows] == [(0, "suppressed")]
    assert h.sink.messages == []


async def test_template_error_never_sent(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        broken = MessageTemplate("broken", subject="s", text="{{ no_such_variable }}")
        h.actor.templates[("after-wedding", 0)] = broken
        job = await h.claim()
        with pytest.raises(PlatformError) as caught:
            await h.actor.handle(job)
        rows = h.request_rows()

    assert caught.value.retryable is False
    assert rows[0][1] == "failed"
    assert h.sink.messages == []


@pytest.mark.parametrize(
    ("zone", "wedding", "expected_utc"),
    [
        # 2026-03-08 + 10 days is after the US switch to daylight time (UTC-5).
        ("America/Chicago", "2026-03-08", "2026-03-18T15:00:00+00:00"),
        # 2026-10-20 + 10 days is after the EU switch back to CET (UTC+1).
        ("Europe/Berlin", "2026-10-20", "2026-10-30T09:00:00+00:00"),
    ],
)
def test_first_step_at_local_ten(zone: str, wedding: str, expected_utc: str) -> None:
    couple = parse_couples_csv(
        f"first_name,email,wedding_date,timezone\nAna,ana@example.com,{wedding},{zone}\n"
    ).couples[0]
    campaign = make_config(25).campaigns[0]

    at = first_step_at(couple, campaign, vendor_timezone="UTC")

    assert datetime.fromtimestamp(at, tz=UTC).isoformat() == expected_utc


async def test_actor_retries_temporary_failure(tmp_path: Path) -> None:
    """The shell records the 4xx as a failed attempt, and the retry sends the same message."""
    journal = Journal.open(tmp_path / "journal.sqlite3", retry_initial=0.1, retry_max=0.2)
    facade = AsyncJournal(journal)
    sink = SmtpSink(script=["temporary"])
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(facade.run)
            port = await nursery.start(sink.serve)
            config = make_config(port)
            parsed = parse_couples_csv(COUPLES)
            await facade.transaction(
                lambda tx: store_couples(tx, parsed.couples, vendor="Willow Studio")
            )
            actor = NotifierActor(
                facade, config, SmtpSender(config.smtp), lease_seconds=30, poll_interval=0.05
            )
            context = ChildContext("notifier")
            # The actor stops before the journal writer, as under the supervisor.
            async with trio.open_nursery() as actors:
                actors.start_soon(actor.start, context)
                # Real SMTP on loopback; generous, because the suite shares two cores.
                with trio.fail_after(60):
                    while journal.query("SELECT state FROM requests WHERE step = 0") != [("sent",)]:
                        await trio.sleep(0.05)
                context.stop_requested.set()
            nursery.cancel_scope.cancel()
        rows = journal.query("SELECT attempts, state FROM jobs WHERE key = 'request:1'")
        message_ids = journal.query("SELECT message_id FROM requests WHERE step = 0")
    finally:
        journal.close()

    assert rows == [(2, "succeeded")]
    assert sink.statistics()["transactions"] == 2
    assert message_ids == [(sink.messages[0].parsed()["Message-ID"],)]
