"""Reloading the SMS and push senders, and SMS and push campaigns without [smtp]."""

from __future__ import annotations

from pathlib import Path

import msgspec
import trio

from plaudit.actors.notifier import NotifierActor, build_notifier, runs_notifier
from plaudit.config.model import CampaignConfig, CampaignStep, Config, SmtpConfig, VendorConfig
from plaudit.messaging.service import reconfigure_messaging
from plaudit.sandbox.twilio import TwilioStandIn
from tests.test_notifier_channels import PHONE, World, world


def with_sms(config: Config, **changes: object) -> Config:
    assert config.sms is not None
    return msgspec.structs.replace(config, sms=msgspec.structs.replace(config.sms, **changes))


async def send_first_step(w: World, actor: NotifierActor) -> None:
    job = await w.claim()
    await w.facade.complete(job.id, await actor.handle(job))


async def test_reload_switches_sms_provider(tmp_path: Path) -> None:
    replacement = TwilioStandIn()
    async with world(tmp_path) as w, trio.open_nursery() as nursery:
        url = await nursery.start(replacement.serve)
        await reconfigure_messaging({"notifier": w.actor}, with_sms(w.actor.config, base_url=url))
        await send_first_step(w, w.actor)
        statistics = w.actor.channels.statistics()
        nursery.cancel_scope.cancel()

    assert w.twilio.requests == 0
    (message,) = replacement.messages
    assert message.to == PHONE
    assert statistics.sms_sent == 1


async def test_reload_rereads_token_file(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        token = tmp_path / "rotated.token"
        token.write_text("rotated-token\n")
        w.twilio.auth_token = "rotated-token"
        await reconfigure_messaging(
            {"notifier": w.actor}, with_sms(w.actor.config, auth_token_file=str(token))
        )
        await send_first_step(w, w.actor)
        requests = w.requests()

    assert len(w.twilio.messages) == 1
    assert requests[0] == (0, "sms", "sent")


async def test_reload_unreadable_secret_keeps_senders(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        running = w.actor.channels.sms
        broken = with_sms(w.actor.config, auth_token_file=str(tmp_path / "missing.token"))
        vendor = msgspec.structs.replace(w.actor.vendor, name="Renamed Studio")
        renamed = msgspec.structs.replace(broken, vendor=vendor)
        await reconfigure_messaging({"notifier": w.actor}, renamed)
        await send_first_step(w, w.actor)

    assert w.actor.channels.sms is running
    assert w.actor.vendor.name == "Willow Studio"
    assert len(w.twilio.messages) == 1


async def test_reload_removes_push_sender(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await reconfigure_messaging(
            {"notifier": w.actor}, msgspec.structs.replace(w.actor.config, push=None)
        )
        names = w.actor.channels.names

    assert names == frozenset({"email", "sms"})


async def test_sms_campaign_runs_without_smtp(tmp_path: Path) -> None:
    async with world(tmp_path, channels=("sms",)) as w:
        config = msgspec.structs.replace(w.actor.config, smtp=None)
        actor = build_notifier(config, w.facade)
        assert isinstance(actor, NotifierActor)
        await send_first_step(w, actor)
        requests = w.requests()

    assert actor.sender is None
    assert len(w.twilio.messages) == 1
    assert requests == [(0, "sms", "sent")]


def test_smtp_needed_only_for_email() -> None:
    vendor = VendorConfig(
        name="Willow Studio", postal_address="12 Elm Street", from_address="hi@willow.example"
    )
    smtp = SmtpConfig(host="127.0.0.1", port=2525, security="none")
    email = CampaignConfig(
        name="after", steps=[CampaignStep(delay_days=10, subject="Hi", text="Hi")]
    )
    text = CampaignConfig(
        name="after", steps=[CampaignStep(channel="sms", delay_days=10, subject="Hi", text="Hi")]
    )

    assert not runs_notifier(Config(vendor=vendor, campaigns=[email]))
    assert runs_notifier(Config(vendor=vendor, campaigns=[email], smtp=smtp))
    assert runs_notifier(Config(vendor=vendor, campaigns=[text]))
    assert not runs_notifier(Config(campaigns=[text]))
