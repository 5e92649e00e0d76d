"""Operator alerts: e-mail through the loopback SMTP sink, listing only, and ctl alerts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from plaudit.actors.base import Actor
from plaudit.actors.notifier import NotifierActor, build_notifier
from plaudit.actors.operator import OperatorAlertActor, build_alert_actor
from plaudit.alerts import ALERT_JOB, raise_alert, resolve_alert
from plaudit.config.model import (
    CampaignConfig,
    CampaignStep,
    Config,
    OperatorConfig,
    SmtpConfig,
    VendorConfig,
)
from plaudit.errors import PlatformError
from plaudit.journal import AsyncJournal, Job, Journal
from plaudit.messaging.operator_alerts import check_operator
from plaudit.messaging.sms import TwilioClient
from plaudit.sandbox.smtp import Outcome, SmtpSink
from plaudit.sandbox.twilio import AUTH_TOKEN, TwilioStandIn
from plaudit.sandbox.twilio import Outcome as TwilioOutcome
from tests.support import run_ctl_against
from tests.test_sms import sms_config

VENDOR = VendorConfig(
    name="Willow Studio",
    postal_address="12 Elm Street, Springfield, IL 62701",
    from_address="hello@willow.example",
    unsubscribe_url="https://willow.example/unsubscribe",
)


def make_config(
    port: int, *, operators: list[str], campaigns: bool = True, smtp: bool = True
) -> Config:
    step = CampaignStep(delay_days=10, subject="Thank you", text="Hi {{ couple_names }}")
    return Config(
        vendor=VENDOR,
        smtp=SmtpConfig(host="127.0.0.1", port=port, security="none") if smtp else None,
        campaigns=[CampaignConfig(name="after-wedding", steps=[step])] if campaigns else [],
        operator=OperatorConfig(email=operators),
    )


@dataclass
class Bench:
    journal: Journal
    facade: AsyncJournal
    sink: SmtpSink
    port: int

    async def raise_one(self, key: str = "google/locations/1") -> int:
        return await self.facade.transaction(
            lambda tx: raise_alert(
                tx,
                source="health",
                key=key,
                severity="critical",
                summary="google is down",
                detail={"cause": "HTTP 503 from the API", "since": "2026-12-04T10:00:00Z"},
            )
        )

    async def claim(self) -> Job:
        (job,) = await self.facade.claim("notifier", kinds=[ALERT_JOB], limit=1)
        return job


@asynccontextmanager
async def bench(tmp_path: Path, *script: Outcome) -> AsyncIterator[Bench]:
    journal = Journal.open(tmp_path / "journal.sqlite3", lease_seconds=60)
    facade = AsyncJournal(journal)
    sink = SmtpSink(script=script)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(facade.run)
            port = await nursery.start(sink.serve)
            yield Bench(journal, facade, sink, port)
            nursery.cancel_scope.cancel()
    finally:
        journal.close()


def notifier_for(config: Config, facade: AsyncJournal) -> Actor:
    notifier = build_notifier(config, facade)
    assert notifier is not None
    return notifier


async def test_notifier_mails_alert_to_operator(tmp_path: Path) -> None:
    async with bench(tmp_path) as test:
        config = make_config(test.port, operators=["ops@willow.example", "owner@willow.example"])
        alert_id = await test.raise_one()
        notifier = notifier_for(config, test.facade)
        job = await test.claim()
        effects = await notifier.handle(job)
        await test.facade.complete(job.id, effects)

    (received,) = test.sink.messages
    message = received.parsed()
    assert received.recipients == ["ops@willow.example", "owner@willow.example"]
    assert message["Subject"] == "[Plaudit critical] google is down"
    assert message["Message-ID"] == f"<alert-{alert_id}@willow.example>"
    assert message["Auto-Submitted"] == "auto-generated"
    body = message.get_content()
    assert "source:   health" in body
    assert "cause: HTTP 503 from the API" in body
    assert "plaudit ctl alerts --open" in body


async def test_alert_actor_without_campaigns(tmp_path: Path) -> None:
    async with bench(tmp_path) as test:
        config = make_config(test.port, operators=["ops@willow.example"], campaigns=False)
        assert build_notifier(config, test.facade) is None
        actor = build_alert_actor(config, test.facade)
        await test.raise_one()
        job = await test.claim()
        await actor.handle(job)

    assert isinstance(actor, OperatorAlertActor)
    assert actor.name == "notifier"
    assert [message.recipients for message in test.sink.messages] == [["ops@willow.example"]]


async def test_no_operator_address_lists_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with bench(tmp_path) as test:
        config = make_config(test.port, operators=[])
        await test.raise_one()
        notifier = notifier_for(config, test.facade)
        job = await test.claim()
        caplog.set_level("INFO", logger="plaudit.messaging.operator_alerts")
        effects = await notifier.handle(job)
        await test.facade.complete(job.id, effects)
        state = test.journal.query("SELECT state FROM jobs WHERE kind = ?", (ALERT_JOB,))

    assert test.sink.messages == []
    assert state == [("succeeded",)]
    listed = [record for record in caplog.records if record.msg == "alert.listed_only"]
    assert len(listed) == 1
    assert "only listed" in listed[0].reason  # type: ignore[attr-defined]


async def test_temporary_smtp_failure_retried(tmp_path: Path) -> None:
    async with bench(tmp_path, "temporary") as test:
        config = make_config(test.port, operators=["ops@willow.example"], campaigns=False)
        actor = build_alert_actor(config, test.facade)
        await test.raise_one()
        job = await test.claim()
        with pytest.raises(PlatformError) as raised:
            await actor.handle(job)
        await actor.handle(job)

    assert raised.value.retryable
    ids = {message.parsed()["Message-ID"] for message in test.sink.messages}
    assert len(ids) == 1


async def test_rejected_operator_address_not_retried(tmp_path: Path) -> None:
    async with bench(tmp_path, "reject") as test:
        config = make_config(test.port, operators=["ops@willow.example"], campaigns=False)
        actor = build_alert_actor(config, test.facade)
        await test.raise_one()
        job = await test.claim()
        with pytest.raises(PlatformError, match="check \\[operator\\] email") as raised:
            await actor.handle(job)

    assert not raised.value.retryable


async def test_reload_adds_operator_address(tmp_path: Path) -> None:
    async with bench(tmp_path) as test:
        actor = build_alert_actor(make_config(test.port, operators=[]), test.facade)
        actor.reconfigure(make_config(test.port, operators=["ops@willow.example"]))
        await test.raise_one()
        await actor.handle(await test.claim())

    assert len(test.sink.messages) == 1


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"operators": ["not-an-address"]}, "operator.email.0: invalid e-mail address"),
        ({"operators": ["ops@willow.example"], "smtp": False}, "needs an [smtp] table"),
    ],
)
def test_check_operator(changes: dict[str, Any], problem: str) -> None:
    config = make_config(25, **changes)
    found = [
        ".".join(str(part) for part in path) + ": " + message
        for path, message in check_operator(config)
    ]

    assert any(problem in line for line in found), found


def test_check_operator_accepts_valid() -> None:
    assert list(check_operator(make_config(25, operators=["ops@willow.example"]))) == []


async def run_ctl(journal: Journal, sock_path: Path, *argv: str) -> int:
    return await run_ctl_against(journal, sock_path, argv, config=make_config(25, operators=[]))


async def test_ctl_alerts_lists_open_and_all(
    tmp_path: Path, sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = Journal.open(tmp_path / "journal.sqlite3")
    try:
        with journal.transaction() as tx:
            raise_alert(tx, source="health", key="a", severity="warning", summary="slow api")
            raise_alert(tx, source="webhooks", key="crm", severity="critical", summary="disabled")
            resolve_alert(tx, source="health", key="a")

        assert await run_ctl(journal, sock_path, "alerts", "--open") == 0
        open_text = capsys.readouterr().out
        assert await run_ctl(journal, sock_path, "alerts", "--json") == 0
        every = json.loads(capsys.readouterr().out)
        assert await run_ctl(journal, sock_path, "--json", "alerts", "--open") == 0
        open_json = json.loads(capsys.readouterr().out)
    finally:
        journal.close()

    assert "disabled" in open_text
    assert "slow api" not in open_text
    assert "SEVERITY" in open_text
    assert [alert["summary"] for alert in every["alerts"]] == ["disabled", "slow api"]
    assert [alert["source"] for alert in open_json["alerts"]] == ["webhooks"]


async def test_ctl_alerts_none_open(
    tmp_path: Path, sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = Journal.open(tmp_path / "journal.sqlite3")
    try:
        code = await run_ctl(journal, sock_path, "alerts", "--open")
    finally:
        journal.close()

    assert code == 0
    assert capsys.readouterr().out == "no open alerts\n"


async def test_alert_resolved_before_send_says_so(tmp_path: Path) -> None:
    async with bench(tmp_path) as test:
        config = make_config(test.port, operators=["ops@willow.example"], campaigns=False)
        actor = build_alert_actor(config, test.facade)
        await test.raise_one()
        await test.facade.transaction(
            lambda tx: resolve_alert(tx, source="health", key="google/locations/1")
        )
        await actor.handle(await test.claim())

    body = test.sink.messages[0].parsed().get_content()
    assert "resolved: " in body
    assert "before this message was sent" in body


async def send_alert_with_texts(
    tmp_path: Path, *script: TwilioOutcome
) -> tuple[Bench, TwilioStandIn]:
    stand_in = TwilioStandIn(script=script)
    async with bench(tmp_path) as test, trio.open_nursery() as nursery:
        base_url = await nursery.start(stand_in.serve)
        config = msgspec.structs.replace(
            make_config(test.port, operators=["ops@willow.example"]),
            operator=OperatorConfig(email=["ops@willow.example"], sms=["+13125550142"]),
        )
        await test.raise_one()
        notifier = notifier_for(config, test.facade)
        assert isinstance(notifier, NotifierActor)
        notifier.channels.sms = TwilioClient(sms_config(base_url), AUTH_TOKEN)
        job = await test.claim()
        effects = await notifier.handle(job)
        await test.facade.complete(job.id, effects)
        await notifier.channels.sms.aclose()
        nursery.cancel_scope.cancel()
    return test, stand_in


async def test_alert_texted_and_mailed(tmp_path: Path) -> None:
    test, stand_in = await send_alert_with_texts(tmp_path)

    (text,) = stand_in.messages
    assert text.to == "+13125550142"
    assert text.body.startswith("Plaudit critical alert: google is down")
    assert len(test.sink.messages) == 1


async def test_failed_text_still_mails(tmp_path: Path) -> None:
    test, stand_in = await send_alert_with_texts(tmp_path, "invalid_number")

    assert stand_in.messages == []
    assert len(test.sink.messages) == 1


def test_check_operator_rejects_bad_number() -> None:
    config = msgspec.structs.replace(
        make_config(25, operators=[]), operator=OperatorConfig(sms=["0770 090"])
    )
    found = [".".join(map(str, path)) + ": " + text for path, text in check_operator(config)]

    assert any(line.startswith("operator.sms.0: invalid phone number") for line in found)
    assert any("alert texts need an [sms] table" in line for line in found)
