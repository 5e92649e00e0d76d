"""Steps with channel auto, sent by the notifier through the loopback stand-ins.

A real journal file, the Twilio, push and SMTP stand-ins on loopback, and the
journal's clock set to the step's due time.  The per-channel outcomes are
replaced by lopsided counts where a test needs the learned choice to be SMS,
so the Thompson draw is all but certain.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from plaudit.actors.notifier import NotifierActor, build_notifier
from plaudit.config.model import CampaignConfig, CampaignPersonalisation, CampaignStep
from plaudit.journal import AsyncJournal, Journal, Tx
from plaudit.messaging.campaigns import schedule_new_couples
from plaudit.messaging.couples import parse_couples_csv, store_couples
from plaudit.messaging.requests import show_request
from plaudit.metrics import REGISTRY
from plaudit.personalisation import channel_choice
from plaudit.personalisation.ctl import render_explain, render_lift
from plaudit.personalisation.lift import ChannelOutcome, measure_lift
from plaudit.personalisation.variants import VariantStats
from plaudit.sandbox.smtp import SmtpSink
from plaudit.sandbox.twilio import TwilioStandIn
from plaudit.sandbox.webpush import PushStandIn
from tests.support_mail import free_port
from tests.support_notifier import channel_stand_ins
from tests.test_notifier_channels import COUPLES, DUE, PHONE, make_config

TEXT = "Hi {{ couple_names }}, a review helps: {{ review_links[0].url }} Reply STOP to opt out."
SMS_WINS = [
    VariantStats(name="email", conversions=0, failures=500),
    VariantStats(name="sms", conversions=500, failures=0),
]


@dataclass
class AutoWorld:
    journal: Journal
    facade: AsyncJournal
    twilio: TwilioStandIn
    sink: SmtpSink
    actor: NotifierActor

    async def run_job(self) -> None:
        (job,) = await self.facade.claim("notifier", limit=1)
        effects = await self.actor.handle(job)
        await self.facade.complete(job.id, effects)

    def requests(self) -> list[tuple[Any, ...]]:
        return self.journal.query("SELECT step, channel, state FROM requests ORDER BY step")

    def choices(self) -> list[tuple[Any, ...]]:
        return self.journal.query("SELECT arm, channel, reason FROM personalisation_channels")

    async def show(self, request_id: int) -> dict[str, Any]:
        def read(tx: Tx) -> dict[str, Any]:
            return show_request(tx, request_id)

        return await self.facade.transaction(read)


@asynccontextmanager
async def auto_world(
    tmp_path: Path,
    *,
    holdout: float,
    consent: str = "yes",
    channels: list[Any] | None = None,
    clock_at: float = DUE,
) -> AsyncIterator[AutoWorld]:
    twilio = TwilioStandIn()
    listener = f"http://127.0.0.1:{free_port()}"
    async with channel_stand_ins(tmp_path, twilio=twilio, push=PushStandIn(), now=DUE) as served:
        facade = served.facade
        base = make_config(
            tmp_path,
            channels=["email"],
            twilio_url=served.twilio_url,
            smtp_port=served.smtp_port,
            listener=listener,
        )
        step = CampaignStep(
            channel="auto",
            channels=channels or ["email", "sms"],
            delay_days=10,
            subject="Thank you",
            text=TEXT,
        )
        # send_time off keeps the send at the due time, so no deferral.
        campaign = CampaignConfig(
            name="after-wedding",
            steps=[step],
            personalisation=CampaignPersonalisation(send_time=False, holdout=holdout),
        )
        config = msgspec.structs.replace(base, campaigns=[campaign])

        parsed = parse_couples_csv(COUPLES.format(consent=consent))
        assert parsed.errors == []
        await facade.transaction(
            lambda tx: store_couples(tx, parsed.couples, vendor="Willow Studio")
        )
        await facade.transaction(lambda tx: schedule_new_couples(tx, config))
        actor = build_notifier(config, facade)
        assert actor is not None
        served.clock[0] = clock_at
        yield AutoWorld(served.journal, facade, twilio, served.sink, actor)


@pytest.fixture
def sms_converts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(channel_choice, "channel_stats", lambda tx: SMS_WINS)


def chosen_count(arm: str, channel: str) -> float:
    labels = {"arm": arm, "channel": channel}
    return REGISTRY.get_sample_value("plaudit_personalisation_channels_total", labels) or 0.0


@pytest.mark.usefixtures("sms_converts")
async def test_auto_step_sent_by_sms(tmp_path: Path) -> None:
    counted = chosen_count("treatment", "sms")
    async with auto_world(tmp_path, holdout=0.0) as w:
        before = w.requests()
        await w.run_job()
        requests = w.requests()
        choices = w.choices()
        details = await w.show(1)

    assert before == [(0, "auto", "scheduled")]
    (message,) = w.twilio.messages
    assert message.to == PHONE
    assert w.sink.messages == []
    assert requests == [(0, "sms", "sent")]
    assert choices[0][:2] == ("treatment", "sms")
    assert "Thompson sampling" in choices[0][2]
    channel = details["personalisation"]["channel"]
    assert channel["chosen"] == "sms"
    assert channel["allowed"] == ["email", "sms"]
    assert channel["receivable"] == ["email", "sms"]
    assert chosen_count("treatment", "sms") == counted + 1


@pytest.mark.usefixtures("sms_converts")
async def test_no_sms_consent_gets_email(tmp_path: Path) -> None:
    async with auto_world(tmp_path, holdout=0.0, consent="no") as w:
        await w.run_job()
        requests = w.requests()
        choices = w.choices()

    assert w.twilio.requests == 0
    assert len(w.sink.messages) == 1
    assert requests == [(0, "email", "sent")]
    assert choices == [("treatment", "email", "the only listed channel that can reach the couple")]


@pytest.mark.usefixtures("sms_converts")
async def test_holdout_gets_first_channel(tmp_path: Path) -> None:
    async with auto_world(tmp_path, holdout=1.0) as w:
        await w.run_job()
        requests = w.requests()
        choices = w.choices()
        details = await w.show(1)

    assert w.twilio.requests == 0
    assert len(w.sink.messages) == 1
    assert requests == [(0, "email", "sent")]
    assert choices == [("holdout", "email", "holdout group: the first listed channel")]
    assert details["personalisation"]["arm"] == "holdout"
    assert details["personalisation"]["channel"]["chosen"] == "email"


async def test_unreachable_push_falls_to_email(tmp_path: Path) -> None:
    # Push is configured but the couple has no subscription, so only e-mail reaches them.
    async with auto_world(tmp_path, holdout=0.0, channels=["push", "email"]) as w:
        await w.run_job()
        requests = w.requests()
        choices = w.choices()

    assert len(w.sink.messages) == 1
    assert requests == [(0, "email", "sent")]
    assert choices[0][1] == "email"


async def test_choice_kept_across_attempts(tmp_path: Path) -> None:
    async with auto_world(tmp_path, holdout=0.0) as w:
        await w.run_job()
        first = w.choices()
        stored = w.requests()
        await w.facade.transaction(
            lambda tx: channel_choice.resolve_channel(
                tx,
                request_id=1,
                couple_id=1,
                campaign=w.actor.personaliser.campaigns["after-wedding"],
                step=0,
                reaches=lambda name: pytest.fail(f"receivability asked again for {name}"),
                rng=random.Random(0),
            )
        )
        again = w.choices()

    assert len(first) == 1
    assert again == first
    assert stored[0][1] == first[0][1]


async def test_stats_count_settled_outcomes(tmp_path: Path) -> None:
    async with auto_world(tmp_path, holdout=0.0) as w:
        await w.run_job()
        pending = await w.facade.transaction(channel_choice.channel_stats)
        await w.facade.transaction(
            lambda tx: tx.execute(
                "UPDATE personalisation_assignments SET outcome = 'converted' WHERE request_id = 1"
            )
        )
        settled = await w.facade.transaction(channel_choice.channel_stats)
        chosen = w.choices()[0][1]

    assert pending == [VariantStats(name=chosen, conversions=0, failures=0)]
    assert settled == [VariantStats(name=chosen, conversions=1, failures=0)]


async def test_stats_leave_out_holdout(tmp_path: Path) -> None:
    async with auto_world(tmp_path, holdout=1.0) as w:
        await w.run_job()
        await w.facade.transaction(
            lambda tx: tx.execute(
                "UPDATE personalisation_assignments SET outcome = 'converted' WHERE request_id = 1"
            )
        )
        settled = await w.facade.transaction(channel_choice.channel_stats)

    assert settled == []


@pytest.mark.usefixtures("sms_converts")
async def test_sms_choice_waits_quiet_hours(tmp_path: Path) -> None:
    # 23:00 in Chicago: the chosen text waits for 08:00 with its channel kept.
    late = datetime(2026, 5, 13, 4, 0, tzinfo=UTC).timestamp()
    async with auto_world(tmp_path, holdout=0.0, clock_at=late) as w:
        await w.run_job()
        requests = w.requests()
        details = await w.show(1)

    assert w.twilio.requests == 0
    assert requests == [(0, "sms", "scheduled")]
    assert details["personalisation"]["channel"]["chosen"] == "sms"
    assert "arm" not in details["personalisation"]
    rendered = render_explain(details["personalisation"])
    assert "send not planned yet" in rendered
    assert "channel  sms of email, sms: Thompson sampling" in rendered


@pytest.mark.usefixtures("sms_converts")
async def test_explain_renders_channel(tmp_path: Path) -> None:
    async with auto_world(tmp_path, holdout=0.0) as w:
        await w.run_job()
        details = await w.show(1)

    rendered = render_explain(details["personalisation"])
    assert "treatment group" in rendered
    assert "channel  sms of email, sms: Thompson sampling" in rendered


@pytest.mark.usefixtures("sms_converts")
async def test_lift_lists_chosen_channels(tmp_path: Path) -> None:
    async with auto_world(tmp_path, holdout=0.0) as w:
        await w.run_job()
        await w.facade.transaction(
            lambda tx: tx.execute(
                "UPDATE personalisation_assignments SET outcome = 'converted' WHERE request_id = 1"
            )
        )
        report = await w.facade.transaction(measure_lift)

    assert report.channels == [
        ChannelOutcome(arm="treatment", channel="sms", sent=1, converted=1, not_converted=0)
    ]
    rendered = render_lift({**msgspec.to_builtins(report), "action": "lift"})
    assert "CHANNEL" in rendered
    assert "treatment  sms" in rendered
