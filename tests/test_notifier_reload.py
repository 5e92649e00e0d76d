"""A reload changes the running notifier's campaigns and templates from the next job on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from plaudit.actors.base import Actor
from plaudit.actors.notifier import NotifierActor, build_notifier
from plaudit.config.model import CampaignConfig, CampaignStep, Config, SmtpConfig, VendorConfig
from plaudit.journal import AsyncJournal, Journal, Tx
from plaudit.messaging.campaigns import schedule_new_couples
from plaudit.messaging.couples import parse_couples_csv, store_couples
from plaudit.messaging.service import reconfigure_messaging
from plaudit.sandbox.smtp import SmtpSink

COUPLES = "names,email,wedding_date\nAna & Ben,ana@example.com,2026-05-02\n"
VENDOR = VendorConfig(
    name="Willow Studio",
    postal_address="12 Elm Street, Springfield, IL 62701",
    from_address="hello@willow.example",
    unsubscribe_url="https://willow.example/unsubscribe",
)


def make_config(port: int, *campaigns: tuple[str, str], vendor: bool = True) -> Config:
    return Config(
        vendor=VENDOR if vendor else None,
        smtp=SmtpConfig(host="127.0.0.1", port=port, security="none"),
        campaigns=[
            CampaignConfig(
                name=name, steps=[CampaignStep(delay_days=10, subject=subject, text="Hello")]
            )
            for name, subject in campaigns
        ],
    )


def make_due(tx: Tx) -> None:
    tx.execute("UPDATE jobs SET next_run_at = 0 WHERE state = 'ready'")
    tx.execute("UPDATE requests SET scheduled_at = 0 WHERE state = 'scheduled'")


@dataclass
class Daemonless:
    journal: Journal
    facade: AsyncJournal
    sink: SmtpSink
    port: int
    actors: dict[str, Actor]

    @property
    def notifier(self) -> NotifierActor:
        actor = self.actors["notifier"]
        assert isinstance(actor, NotifierActor)
        return actor

    async def send_due(self) -> None:
        for _ in range(5):
            await self.facade.transaction(make_due)
            jobs = await self.facade.claim("notifier", limit=10)
            if not jobs:
                return
            for job in jobs:
                await self.facade.complete(job.id, await self.notifier.handle(job))


@asynccontextmanager
async def running(tmp_path: Path) -> AsyncIterator[Daemonless]:
    journal = Journal.open(tmp_path / "journal.sqlite3", lease_seconds=60)
    facade = AsyncJournal(journal)
    sink = SmtpSink()
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(facade.run)
            port = await nursery.start(sink.serve)
            config = make_config(port, ("after-wedding", "Old subject"))
            parsed = parse_couples_csv(COUPLES)
            await facade.transaction(lambda tx: store_couples(tx, parsed.couples, vendor="W"))
            await facade.transaction(lambda tx: schedule_new_couples(tx, config))
            notifier = build_notifier(config, facade)
            assert notifier is not None
            yield Daemonless(journal, facade, sink, port, {"notifier": notifier})
            nursery.cancel_scope.cancel()
    finally:
        journal.close()


async def test_reload_changes_template(tmp_path: Path) -> None:
    async with running(tmp_path) as daemon:
        new = make_config(daemon.port, ("after-wedding", "New subject"))
        await reconfigure_messaging(daemon.actors, new)
        await daemon.send_due()

    assert [message.parsed()["Subject"] for message in daemon.sink.messages] == ["New subject"]


async def test_reload_schedules_added_campaign(tmp_path: Path) -> None:
    async with running(tmp_path) as daemon:
        new = make_config(
            daemon.port, ("after-wedding", "Thank you"), ("anniversary", "One year on")
        )
        await reconfigure_messaging(daemon.actors, new)
        campaigns = daemon.journal.query("SELECT campaign FROM requests ORDER BY id")
        await daemon.send_due()

    assert campaigns == [("after-wedding",), ("anniversary",)]
    subjects = sorted(message.parsed()["Subject"] for message in daemon.sink.messages)
    assert subjects == ["One year on", "Thank you"]


async def test_reload_without_vendor_keeps_running_config(tmp_path: Path) -> None:
    async with running(tmp_path) as daemon:
        new = make_config(daemon.port, ("after-wedding", "New subject"), vendor=False)
        await reconfigure_messaging(daemon.actors, new)
        await daemon.send_due()

    assert [message.parsed()["Subject"] for message in daemon.sink.messages] == ["Old subject"]
