"""SMS and push review requests end to end: notifier, Twilio and push stand-ins, inbound listener.

Everything runs on loopback with a real journal file.  Each test sets the
journal's clock, so quiet hours and retry waits need no real waiting.  Only
HTTP between the parts takes real time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

import pytest
import trio

from plaudit.actors.notifier import NotifierActor, Snapshot, build_notifier, decide
from plaudit.config.model import (
    CampaignConfig,
    CampaignStep,
    Config,
    InboundConfig,
    InboundTwilio,
    PushConfig,
    RetryConfig,
    SmsConfig,
    SmtpConfig,
    VendorConfig,
)
from plaudit.errors import PlatformError
from plaudit.inbound import inbox
from plaudit.inbound.providers import Verifiers
from plaudit.inbound.server import InboundServer
from plaudit.journal import AsyncJournal, Job, Journal
from plaudit.messaging.campaigns import schedule_new_couples
from plaudit.messaging.channel_sends import UNKNOWN_OUTCOME_WAIT, begin_send
from plaudit.messaging.couples import parse_couples_csv, store_couples
from plaudit.messaging.deliverability.suppression import SuppressionPolicy
from plaudit.messaging.push import add_subscription
from plaudit.sandbox.twilio import ACCOUNT_SID, AUTH_TOKEN, Outcome, TwilioStandIn
from plaudit.sandbox.webpush import PushStandIn, write_vapid_key
from tests.support_mail import free_port
from tests.support_notifier import channel_stand_ins

ChannelName = Literal["email", "sms", "push"]
PHONE = "+13125550142"
COUPLES = (
    "first_name,last_name,email,phone,wedding_date,venue,timezone,sms_consent\n"
    "Ana,Pires,ana@example.com,+1 312 555 0142,2026-05-02,Orchard Barn,America/Chicago,{consent}\n"
)
HELP_TEXT = "Willow Studio: hello@willow.example, +1 312 555 0100. Reply STOP to opt out."
TEXT = "Hi {{ couple_names }}, a review of {{ venue }} helps: {{ review_links[0].url }}"
RETRY = RetryConfig(max_attempts=2, backoff_initial=0.01, backoff_max=0.05, retry_after_max=2.0)
# The first step is due at 10:00 in Chicago (CDT, UTC-5) ten days after the wedding.
DUE = datetime(2026, 5, 12, 15, 0, tzinfo=UTC).timestamp()


def make_config(
    folder: Path, *, channels: list[ChannelName], twilio_url: str, smtp_port: int, listener: str
) -> Config:
    (folder / "twilio.token").write_text(AUTH_TOKEN)
    (folder / "twilio.token").chmod(0o600)
    write_vapid_key(folder / "vapid.pem")
    steps = [
        CampaignStep(
            channel=channel, delay_days=10 if number == 0 else 7, subject="Thank you", text=TEXT
        )
        for number, channel in enumerate(channels)
    ]
    return Config(
        vendor=VendorConfig(
            name="Willow Studio",
            postal_address="12 Elm Street, Springfield, IL 62701",
            from_address="hello@willow.example",
            timezone="America/Chicago",
            review_links={"google": "https://reviews.invalid/google"},
            unsubscribe_url="https://willow.example/unsubscribe",
        ),
        smtp=SmtpConfig(host="127.0.0.1", port=smtp_port, security="none", timeout=30),
        campaigns=[CampaignConfig(name="after-wedding", steps=steps)],
        sms=SmsConfig(
            account_sid=ACCOUNT_SID,
            auth_token_file=str(folder / "twilio.token"),
            from_number="+13125550100",
            base_url=twilio_url,
            status_callback_url=f"{listener}/inbound/twilio",
            help_text=HELP_TEXT,
            timeout=5.0,
            retry=RETRY,
        ),
        push=PushConfig(
            vapid_private_key_file=str(folder / "vapid.pem"),
            subject="mailto:hello@willow.example",
            timeout=5.0,
            retry=RETRY,
            allow_private_endpoints=True,
        ),
        inbound=InboundConfig(
            twilio=InboundTwilio(auth_token_file=str(folder / "twilio.token"), public_url=listener)
        ),
    )


@dataclass
class World:
    journal: Journal
    facade: AsyncJournal
    twilio: TwilioStandIn
    push: PushStandIn
    actor: NotifierActor
    listener: str
    clock: list[float] = field(default_factory=list)

    def at(self, moment: float) -> None:
        self.clock[0] = moment

    async def claim(self) -> Job:
        (job,) = await self.facade.claim("notifier", limit=1)
        return job

    async def run_job(self) -> None:
        job = await self.claim()
        effects = await self.actor.handle(job)
        await self.facade.complete(job.id, effects)

    async def text_in(self, body: str) -> None:
        status = await self.twilio.text_in(
            f"{self.listener}/inbound/twilio", sender=PHONE, to="+13125550100", body=body
        )
        assert status == 200
        await self.process_inbound()

    async def wait_callbacks(self, count: int) -> None:
        with trio.fail_after(60):
            while len(self.twilio.callbacks) < count:
                await trio.sleep(0.01)
        assert all(callback.status == 200 for callback in self.twilio.callbacks)
        await self.process_inbound()

    async def process_inbound(self) -> None:
        policy = SuppressionPolicy()
        pending = self.journal.query("SELECT id FROM inbound_events WHERE state = 'pending'")
        for (inbound_id,) in pending:
            process = partial(
                inbox.process, inbound_id=inbound_id, policy=policy, platforms=frozenset()
            )
            await self.facade.transaction(process)

    def requests(self) -> list[tuple[Any, ...]]:
        return self.journal.query("SELECT step, channel, state FROM requests ORDER BY step")

    def suppressions(self) -> list[tuple[Any, ...]]:
        return self.journal.query("SELECT address, reason FROM suppressions")

    def events(self) -> list[str]:
        return [row[0] for row in self.journal.query("SELECT type FROM events ORDER BY id")]


@asynccontextmanager
async def world(
    tmp_path: Path,
    *script: Outcome,
    channels: tuple[ChannelName, ...] = ("sms", "push"),
    consent: str = "yes",
    push_script: tuple[int, ...] = (),
) -> AsyncIterator[World]:
    twilio = TwilioStandIn(script=script)
    push = PushStandIn(script=push_script)
    port = free_port()
    listener = f"http://127.0.0.1:{port}"
    async with channel_stand_ins(tmp_path, twilio=twilio, push=push, now=DUE) as served:
        facade = served.facade
        config = make_config(
            tmp_path,
            channels=list(channels),
            twilio_url=served.twilio_url,
            smtp_port=served.smtp_port,
            listener=listener,
        )
        assert config.inbound is not None
        server = InboundServer(facade, Verifiers(config.inbound), max_body_bytes=65536)
        await served.nursery.start(server.serve, "127.0.0.1", port)

        parsed = parse_couples_csv(COUPLES.format(consent=consent))
        assert parsed.errors == []
        await facade.transaction(
            lambda tx: store_couples(tx, parsed.couples, vendor="Willow Studio")
        )
        subscription = push.subscribe()
        await facade.transaction(lambda tx: add_subscription(tx, 1, subscription))
        await facade.transaction(lambda tx: schedule_new_couples(tx, config))
        actor = build_notifier(config, facade)
        assert actor is not None
        yield World(served.journal, facade, twilio, push, actor, listener, served.clock)


async def test_sms_step_sent_and_delivered(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.run_job()
        await w.wait_callbacks(2)
        sends = w.journal.query("SELECT channel, recipient, provider_id, state FROM channel_sends")
        requests = w.requests()
        events = w.events()

    (message,) = w.twilio.messages
    assert message.to == PHONE
    assert (
        message.body
        == "Hi Ana Pires, a review of Orchard Barn helps: https://reviews.invalid/google"
    )
    assert message.status_callback == f"{w.listener}/inbound/twilio"
    assert sends == [("sms", PHONE, message.sid, "delivered")]
    assert requests == [(0, "sms", "sent"), (1, "push", "scheduled")]
    assert "request.delivered" in events


async def test_push_step_decrypted_by_browser(tmp_path: Path) -> None:
    async with world(tmp_path, channels=("push",)) as w:
        await w.run_job()
        requests = w.requests()
        sends = w.journal.query("SELECT channel, state FROM channel_sends")

    (received,) = w.push.received
    assert received.payload["title"] == "Thank you"
    assert received.payload["body"].startswith("Hi Ana Pires")
    assert requests == [(0, "push", "sent")]
    assert sends == [("push", "accepted")]


async def test_gone_push_subscription_removed(tmp_path: Path) -> None:
    async with world(tmp_path, channels=("push",), push_script=(410,)) as w:
        await w.run_job()
        requests = w.requests()
        removed = w.journal.query("SELECT removed_reason FROM push_subscriptions")

    assert w.push.received == []
    assert requests == [(0, "push", "bounced")]
    assert removed == [("gone",)]


async def test_no_sms_consent_suppressed(tmp_path: Path) -> None:
    async with world(tmp_path, consent="no") as w:
        await w.run_job()
        requests = w.requests()

    assert w.twilio.requests == 0
    # Only the SMS channel is out: the push step still follows.
    assert requests == [(0, "sms", "suppressed"), (1, "push", "scheduled")]


async def test_quiet_hours_defer_to_eight(tmp_path: Path) -> None:
    # 23:00 in Chicago: the job ran late, so the text waits for 08:00 (13:00 UTC).
    late = datetime(2026, 5, 13, 4, 0, tzinfo=UTC).timestamp()
    morning = datetime(2026, 5, 13, 13, 0, tzinfo=UTC).timestamp()
    async with world(tmp_path) as w:
        w.at(late)
        await w.run_job()
        scheduled = w.journal.query("SELECT scheduled_at, state FROM requests WHERE step = 0")
        early = await w.facade.claim("notifier", limit=1)
        w.at(morning)
        await w.run_job()
        requests = w.requests()

    assert scheduled == [(morning, "scheduled")]
    assert early == []
    assert len(w.twilio.messages) == 1
    assert requests[0] == (0, "sms", "sent")


async def test_lost_answer_not_sent_twice(tmp_path: Path) -> None:
    async with world(tmp_path, "accept_then_disconnect") as w:
        job = await w.claim()
        with pytest.raises(PlatformError) as caught:
            await w.actor.handle(job)
        await w.facade.fail(job.id, str(caught.value), retry_after=caught.value.retry_after)
        await w.wait_callbacks(2)
        w.at(DUE + 3600)
        await w.run_job()
        requests = w.requests()
        sends = w.journal.query("SELECT provider_id, state, attempts FROM channel_sends")

    assert caught.value.retryable
    (message,) = w.twilio.messages
    assert sends == [(message.sid, "delivered", 1)]
    assert requests[0] == (0, "sms", "sent")


@pytest.mark.parametrize("word", ["STOP", "unsubscribe", "Opt Out", "REVOKE", "cancel"])
async def test_opt_out_word_suppresses(tmp_path: Path, word: str) -> None:
    async with world(tmp_path) as w:
        await w.text_in(word)
        await w.run_job()
        requests = w.requests()
        suppressions = w.suppressions()

    assert suppressions == [(PHONE, "unsubscribe")]
    assert w.twilio.messages == []
    assert requests == [(0, "sms", "suppressed"), (1, "push", "scheduled")]


async def test_help_answered_with_contact(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.text_in("HELP")
        jobs = w.journal.query("SELECT kind FROM jobs WHERE kind = 'sms.reply'")
        job = (await w.facade.claim("notifier", kinds=["sms.reply"], limit=1))[0]
        await w.facade.complete(job.id, await w.actor.handle(job))

    assert jobs == [("sms.reply",)]
    (reply,) = w.twilio.messages
    assert reply.to == PHONE
    assert reply.body == HELP_TEXT


async def test_start_lifts_opt_out(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.text_in("STOP")
        stopped = w.suppressions()
        await w.text_in("START")
        lifted = w.suppressions()
        await w.run_job()

    assert stopped == [(PHONE, "unsubscribe")]
    assert lifted == []
    assert len(w.twilio.messages) == 1


async def test_undelivered_marks_bounced(tmp_path: Path) -> None:
    async with world(tmp_path, "undelivered") as w:
        await w.run_job()
        await w.wait_callbacks(2)
        requests = w.requests()
        events = w.events()

    assert requests[0] == (0, "sms", "bounced")
    assert "request.bounced" in events


async def test_unsubscribed_number_rejected(tmp_path: Path) -> None:
    async with world(tmp_path, "unsubscribed") as w:
        await w.run_job()
        requests = w.requests()
        suppressions = w.suppressions()

    assert requests == [(0, "sms", "bounced")]
    assert suppressions == [(PHONE, "unsubscribe")]


async def test_provider_outage_retried_later(tmp_path: Path) -> None:
    async with world(tmp_path, "server_error", "server_error") as w:
        job = await w.claim()
        with pytest.raises(PlatformError) as caught:
            await w.actor.handle(job)
        await w.facade.fail(job.id, str(caught.value))
        w.at(DUE + 3600)
        await w.run_job()

    assert caught.value.retryable
    assert w.twilio.requests == 3
    assert len(w.twilio.messages) == 1


def snapshot(**changes: object) -> Snapshot:
    fields: dict[str, object] = {
        "state": "scheduled",
        "channel": "sms",
        "addresses": [PHONE],
        "suppressed": {},
        "consent_email": True,
        "review_detected": False,
        "channels": frozenset({"email", "sms", "push"}),
        "consent_sms": True,
        "now": DUE,
        "timezone": "America/Chicago",
    }
    fields.update(changes)
    return Snapshot(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "action", "reason"),
    [
        ({}, "send", ""),
        ({"consent_sms": False}, "suppress", "no SMS consent"),
        ({"addresses": []}, "suppress", "no phone number"),
        ({"suppressed": {PHONE: "unsubscribe"}}, "suppress", "unsubscribe"),
        ({"channels": frozenset({"email"})}, "stop", "channel sms is not available"),
        ({"now": DUE + 12 * 3600}, "defer", "quiet hours"),
        ({"channel": "push", "addresses": []}, "suppress", "no push subscription"),
        ({"channel": "push", "now": DUE + 12 * 3600}, "send", ""),
    ],
)
def test_decide_channels(changes: dict[str, object], action: str, reason: str) -> None:
    decision = decide(snapshot(**changes))

    assert decision.action == action
    assert decision.reason == reason


def test_decide_defer_names_time() -> None:
    decision = decide(snapshot(now=DUE + 12 * 3600))

    # 22:00 in Chicago; 08:00 the next morning is 13:00 UTC.
    assert decision.run_at == datetime(2026, 5, 13, 13, 0, tzinfo=UTC).timestamp()
    assert decision.recipients == [PHONE]


async def test_help_replied_once_per_hour(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.text_in("HELP")
        await w.text_in("help")
        jobs = w.journal.query("SELECT key FROM jobs WHERE kind = 'sms.reply'")

    assert len(jobs) == 1


async def test_help_reply_callback_not_bound(tmp_path: Path) -> None:
    async with world(tmp_path, "disconnect") as w:
        job = await w.claim()
        with pytest.raises(PlatformError):
            await w.actor.handle(job)
        await w.facade.fail(job.id, "lost", retry_after=3600)
        await w.text_in("HELP")
        (reply_job,) = await w.facade.claim("notifier", kinds=["sms.reply"], limit=1)
        await w.facade.complete(reply_job.id, await w.actor.handle(reply_job))
        await w.wait_callbacks(2)
        sends = w.journal.query("SELECT provider_id, state FROM channel_sends")

    (reply,) = w.twilio.messages
    assert reply.body == HELP_TEXT
    assert sends == [(None, "unknown")]


async def test_interrupted_send_waits_for_callback(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        # An attempt that began and never finished, as when the process stopped mid-send.
        await w.facade.transaction(lambda tx: begin_send(tx, 1, "sms", PHONE))
        job = await w.claim()
        with pytest.raises(PlatformError) as caught:
            await w.actor.handle(job)
        await w.facade.fail(job.id, str(caught.value), retry_after=caught.value.retry_after)
        waited = w.twilio.requests
        w.at(DUE + UNKNOWN_OUTCOME_WAIT)
        await w.run_job()
        sends = w.journal.query("SELECT state, attempts FROM channel_sends")

    assert caught.value.retryable
    assert caught.value.retry_after == UNKNOWN_OUTCOME_WAIT
    assert waited == 0
    assert len(w.twilio.messages) == 1
    assert sends == [("accepted", 2)]
