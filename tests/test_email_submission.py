"""E-mail submission to the loopback SMTP sink: refusals, bounces, stop reasons, at most once."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from plaudit.actors.bounces import Record, record_message
from plaudit.config.model import Config
from plaudit.errors import PlatformError
from plaudit.messaging.deliverability.store import record_event
from plaudit.messaging.deliverability.suppression import MessageEvent, SuppressionPolicy
from plaudit.messaging.requests import show_request
from plaudit.messaging.submission import confirm_submission, decide_bounce
from plaudit.sandbox.smtp import Outcome, SmtpSink
from tests.support_notifier import NotifierBench, notifier_bench, two_step_config

COUPLES = (
    "first_name,last_name,email,phone,wedding_date,venue,timezone\n"
    "Ana & Ben,Pires,ana@example.com; ben@example.com,,2026-05-02,Orchard Barn,UTC\n"
)
TEXT = "Dear {{ couple_names }}.\nUnsubscribe: {{ unsubscribe_link }}"
EVERY_STOP = ["review", "unsubscribe", "hard_bounce", "complaint"]
BEN_MISSING = {"ben@example.com": "550 5.1.1 no such user"}
POLICY = SuppressionPolicy()


class Harness(NotifierBench):
    def steps(self) -> list[tuple[object, ...]]:
        return self.journal.query("SELECT step, state FROM requests ORDER BY step")

    def events(self) -> list[tuple[object, ...]]:
        return self.journal.query("SELECT address, kind, status FROM message_events ORDER BY id")

    def suppressions(self) -> list[tuple[object, ...]]:
        return self.journal.query("SELECT address, reason FROM suppressions ORDER BY address")

    def first_step(self) -> tuple[object, ...]:
        (row,) = self.journal.query(
            "SELECT state, last_error, submitting_at, unconfirmed FROM requests WHERE step = 0"
        )
        return row


@asynccontextmanager
async def harness(
    tmp_path: Path,
    *script: Outcome,
    refusals: dict[str, str] | None = None,
    stop_on: list[str] | None = None,
) -> AsyncIterator[Harness]:
    def config(port: int) -> Config:
        return two_step_config(port, text=TEXT, stop_on=EVERY_STOP if stop_on is None else stop_on)

    sink = SmtpSink(script=script, refusals=refusals)
    async with notifier_bench(tmp_path, Harness, config, COUPLES, sink=sink) as (bench, _):
        yield bench


async def test_partial_refusal_sends_to_accepted(tmp_path: Path) -> None:
    async with harness(tmp_path, refusals=BEN_MISSING) as h:
        await h.send_next()

        assert h.steps() == [(0, "sent"), (1, "scheduled")]
        assert h.events() == [
            ("ben@example.com", "hard_bounce", "5.1.1"),
            ("ana@example.com", "accepted", None),
        ]
        assert h.suppressions() == [("ben@example.com", "hard_bounce")]
    assert h.sink.messages[0].recipients == ["ana@example.com"]


async def test_partial_policy_refusal_alerts(tmp_path: Path) -> None:
    refusals = {"ben@example.com": "550 5.7.1 rejected by policy"}
    async with harness(tmp_path, refusals=refusals) as h:
        await h.send_next()
        alerts = h.journal.query("SELECT source, key FROM alerts WHERE resolved_at IS NULL")

        assert h.steps() == [(0, "sent"), (1, "scheduled")]
        assert ("ben@example.com", "policy_block", "5.7.1") in h.events()
        assert h.suppressions() == []
    assert alerts == [("deliverability", "policy_block:example.com")]


async def test_every_address_hard_bounced_stops(tmp_path: Path) -> None:
    async with harness(tmp_path, "reject") as h:
        await h.send_next()
        state, last_error, marker, _unconfirmed = h.first_step()
        show = await h.facade.transaction(lambda tx: show_request(tx, 1))

        assert h.steps() == [(0, "bounced")]
        assert h.suppressions() == [
            ("ana@example.com", "hard_bounce"),
            ("ben@example.com", "hard_bounce"),
        ]
    assert state == "bounced"
    assert str(last_error).startswith("stopped: hard_bounce; ")
    assert marker is None
    assert str(show["stop_reason"]).startswith("stopped: hard_bounce")


async def test_hard_bounce_not_listed_continues(tmp_path: Path) -> None:
    async with harness(tmp_path, "reject", stop_on=["review"]) as h:
        await h.send_next()
        _state, last_error, _marker, _unconfirmed = h.first_step()

        assert h.steps() == [(0, "bounced"), (1, "scheduled")]
    assert str(last_error).startswith("hard_bounce; ")


async def test_policy_block_fails_step_and_continues(tmp_path: Path) -> None:
    async with harness(tmp_path, "policy_rcpt") as h:
        await h.send_next()
        _state, last_error, _marker, _unconfirmed = h.first_step()
        alerts = h.journal.query("SELECT source, key FROM alerts WHERE resolved_at IS NULL")
        alert_jobs = h.journal.query("SELECT owner FROM jobs WHERE kind = 'alert.send'")

        assert h.steps() == [(0, "failed"), (1, "scheduled")]
        assert h.suppressions() == []
    assert str(last_error).startswith("policy_block; ")
    assert alerts == [("deliverability", "policy_block:example.com")]
    assert alert_jobs == [("notifier",)]


async def test_rejected_after_data_is_bounce(tmp_path: Path) -> None:
    async with harness(tmp_path, "reject_data") as h:
        await h.send_next()
        _state, _last_error, marker, unconfirmed = h.first_step()

        assert h.steps() == [(0, "failed"), (1, "scheduled")]
        assert [kind for _address, kind, _status in h.events()] == ["policy_block"] * 2
    assert marker is None
    assert unconfirmed == 0
    assert h.sink.messages == []


async def test_disconnect_after_data_unconfirmed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with harness(tmp_path, "disconnect") as h:
        await h.send_next()
        state, last_error, marker, unconfirmed = h.first_step()
        show = await h.facade.transaction(lambda tx: show_request(tx, 1))

        assert h.steps() == [(0, "sent"), (1, "scheduled")]
        assert h.events() == []
    assert (state, marker, unconfirmed) == ("sent", None, 1)
    assert str(last_error).startswith("unconfirmed: ")
    assert show["request"]["unconfirmed"] == 1
    assert len(h.sink.dropped) == 1
    assert "notifier.submission_unconfirmed" in caplog.messages


async def test_crash_after_marker_not_resent(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        job = await h.claim()
        await h.actor.handle(job)
        # The process dies before completing the job; its lease returns it.
        await h.facade.release(job.id)
        await h.send_next()
        _state, _last_error, _marker, unconfirmed = h.first_step()

        assert h.steps() == [(0, "sent"), (1, "scheduled")]
    assert len(h.sink.messages) == 1
    assert unconfirmed == 1


async def test_disconnect_before_data_retries(tmp_path: Path) -> None:
    # One disconnect for each in-call attempt of the default [smtp.retry].
    async with harness(tmp_path, "disconnect_rcpt", "disconnect_rcpt", "disconnect_rcpt") as h:
        job = await h.claim()
        with pytest.raises(PlatformError) as caught:
            await h.actor.handle(job)
        state, _last_error, marker, _unconfirmed = h.first_step()

    assert caught.value.retryable is True
    assert state == "sending"
    assert marker is None
    assert h.sink.dropped == []


async def test_temporary_reply_to_data_clears_marker(tmp_path: Path) -> None:
    async with harness(tmp_path, "temporary") as h:
        job = await h.claim()
        with pytest.raises(PlatformError):
            await h.actor.handle(job)
        await h.facade.release(job.id)
        await h.send_next()
        _state, _last_error, marker, unconfirmed = h.first_step()

        assert h.steps() == [(0, "sent"), (1, "scheduled")]
    assert (marker, unconfirmed) == (None, 0)
    assert len(h.sink.messages) == 1


async def test_complaint_stops_couple(tmp_path: Path) -> None:
    complaint = MessageEvent(address="ben@example.com", kind="complaint", at=0.0)
    async with harness(tmp_path) as h:
        await h.facade.transaction(
            lambda tx: record_event(tx, complaint, policy=SuppressionPolicy())
        )
        await h.send_next()
        _state, last_error, _marker, _unconfirmed = h.first_step()

        assert h.steps() == [(0, "stopped")]
    assert last_error == "complaint"
    assert h.sink.messages == []


async def test_complaint_not_listed_sends_partner(tmp_path: Path) -> None:
    complaint = MessageEvent(address="ben@example.com", kind="complaint", at=0.0)
    async with harness(tmp_path, stop_on=["review"]) as h:
        await h.facade.transaction(
            lambda tx: record_event(tx, complaint, policy=SuppressionPolicy())
        )
        await h.send_next()

        assert h.steps() == [(0, "sent"), (1, "scheduled")]
    assert h.sink.messages[0].recipients == ["ana@example.com"]


@pytest.mark.parametrize(
    ("kinds", "all_suppressed", "stop_on", "expected"),
    [
        (["hard_bounce"], True, EVERY_STOP, ("bounced", True, False)),
        (["hard_bounce"], True, ["review"], ("bounced", False, True)),
        (["policy_block"], False, EVERY_STOP, ("failed", False, True)),
        (["hard_bounce", "policy_block"], False, EVERY_STOP, ("failed", False, True)),
        (["soft_bounce"], False, EVERY_STOP, ("bounced", False, True)),
    ],
)
def test_decide_bounce(
    kinds: list[str], all_suppressed: bool, stop_on: list[str], expected: tuple[str, bool, bool]
) -> None:
    outcome = decide_bounce(
        kinds,  # type: ignore[arg-type]
        all_suppressed=all_suppressed,
        stop_on=stop_on,
        reply="SMTP server replied 550",
    )

    assert (outcome.state, outcome.stop, outcome.continues) == expected
    assert outcome.reason.endswith("SMTP server replied 550") or outcome.state == "failed"


async def test_mixed_refusals_retry_without_bounced(tmp_path: Path) -> None:
    refusals = {"ana@example.com": "550 5.1.1 no such user", "ben@example.com": "450 4.2.1 busy"}
    async with harness(tmp_path, refusals=refusals) as h:
        job = await h.claim()
        with pytest.raises(PlatformError) as caught:
            await h.actor.handle(job)
        suppressed = h.suppressions()
        await h.facade.release(job.id)
        # The busy mailbox recovers before the retry.
        del h.sink.refusals["ben@example.com"]
        await h.send_next()

        assert h.steps() == [(0, "sent"), (1, "scheduled")]
    assert caught.value.retryable is True
    assert suppressed == [("ana@example.com", "hard_bounce")]
    assert h.sink.messages[0].recipients == ["ben@example.com"]


async def test_later_bounce_confirms_submission(tmp_path: Path) -> None:
    async with harness(tmp_path, "disconnect") as h:
        await h.send_next()
        before = h.first_step()
        bounce = MessageEvent(
            address="ana@example.com",
            kind="soft_bounce",
            at=0.0,
            status="4.2.2",
            provider="mailbox",
            message_id="<request-1@willow.example>",
        )
        stored = await h.facade.transaction(
            lambda tx: record_message(tx, "bounce-1", Record(events=(bounce,)), policy=POLICY)
        )
        after = h.first_step()

    assert before[3] == 1
    assert stored == 1
    assert after == ("bounced", None, None, 0)


async def test_own_accepted_event_confirms_nothing(tmp_path: Path) -> None:
    accepted = MessageEvent(
        address="ana@example.com",
        kind="accepted",
        at=0.0,
        message_id="<request-1@willow.example>",
    )
    async with harness(tmp_path, "disconnect") as h:
        await h.send_next()
        confirmed = await h.facade.transaction(lambda tx: confirm_submission(tx, accepted))
        _state, _last_error, _marker, unconfirmed = h.first_step()

    assert confirmed is False
    assert unconfirmed == 1
