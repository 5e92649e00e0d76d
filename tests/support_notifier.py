"""A notifier actor against a real journal and the loopback SMTP sink, without a daemon.

:func:`notifier_bench` opens the journal, serves the sink, stores the
couples of a CSV and schedules their campaign steps.  Tests then claim and
run the notifier's jobs one at a time.  :func:`channel_stand_ins` serves
the SMS and push stand-ins too, for tests that build their notifier themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import trio

from plaudit.actors.notifier import NotifierActor, build_notifier
from plaudit.config.model import CampaignConfig, CampaignStep, Config, SmtpConfig, VendorConfig
from plaudit.journal import AsyncJournal, Job, Journal
from plaudit.messaging.campaigns import schedule_new_couples
from plaudit.messaging.couples import parse_couples_csv, store_couples
from plaudit.sandbox.smtp import SmtpSink
from plaudit.sandbox.twilio import TwilioStandIn
from plaudit.sandbox.webpush import PushStandIn

GOOGLE_ONLY = {"google": "https://reviews.invalid/google"}


def two_step_config(
    port: int,
    *,
    text: str,
    subject: str = "Thank you",
    review_links: dict[str, str] | None = None,
    stop_on: Sequence[str] | None = None,
) -> Config:
    """Return Willow Studio's config: SMTP on ``port`` and a first step and a reminder.

    ``stop_on`` of None keeps the campaign's default stop events.
    """
    steps = [
        CampaignStep(delay_days=10, subject=subject, text=text),
        CampaignStep(delay_days=7, subject="A reminder", text=text),
    ]
    campaign: dict[str, Any] = {"name": "after-wedding", "steps": steps}
    if stop_on is not None:
        campaign["stop_on"] = list(stop_on)
    return Config(
        vendor=VendorConfig(
            name="Willow Studio",
            postal_address="12 Elm Street, Springfield, IL 62701",
            from_address="hello@willow.example",
            review_links=GOOGLE_ONLY if review_links is None else review_links,
            unsubscribe_url="https://willow.example/unsubscribe",
        ),
        smtp=SmtpConfig(host="127.0.0.1", port=port, security="none", timeout=30),
        campaigns=[CampaignConfig(**campaign)],
    )


@dataclass
class NotifierBench:
    """The journal, the sink and the notifier of one test; subclasses add their own queries."""

    folder: Path
    journal: Journal
    facade: AsyncJournal
    sink: SmtpSink
    actor: NotifierActor
    config: Config

    async def claim(self) -> Job:
        """Claim the one notifier job that is due."""
        (job,) = await self.facade.claim("notifier", limit=1)
        return job

    async def run_job(self, job: Job) -> None:
        """Handle ``job`` as the actor's loop does and commit its effects."""
        effects = await self.actor.handle(job)
        await self.facade.complete(job.id, effects)

    async def send_next(self) -> None:
        """Claim the one due notifier job and run it."""
        await self.run_job(await self.claim())


Bench = TypeVar("Bench", bound=NotifierBench)


@asynccontextmanager
async def notifier_bench(
    tmp_path: Path,
    kind: type[Bench],
    config: Callable[[int], Config],
    couples_csv: str,
    *,
    sink: SmtpSink | None = None,
    vendor: str = "Willow Studio",
) -> AsyncIterator[tuple[Bench, trio.Nursery]]:
    """Build a ``kind`` bench whose sink and journal writer run until the block ends.

    ``config`` maps the sink's port to the config.  The nursery it yields
    alongside serves further loopback servers for the block's length.
    """
    journal = Journal.open(tmp_path / "journal.sqlite3", lease_seconds=60)
    facade = AsyncJournal(journal)
    sink = SmtpSink() if sink is None else sink
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(facade.run)
            port: int = await nursery.start(sink.serve)
            built = config(port)
            parsed = parse_couples_csv(couples_csv)
            await facade.transaction(lambda tx: store_couples(tx, parsed.couples, vendor=vendor))
            await facade.transaction(lambda tx: schedule_new_couples(tx, built))
            actor = build_notifier(built, facade)
            assert actor is not None, "the config has no campaign, so there is no notifier"
            yield kind(tmp_path, journal, facade, sink, actor, built), nursery
            nursery.cancel_scope.cancel()
    finally:
        journal.close()


@dataclass
class ChannelStandIns:
    """A journal whose clock the test sets, and the Twilio, push and SMTP stand-ins it sends to.

    ``clock[0]`` is the journal's current time in Unix seconds.
    """

    journal: Journal
    facade: AsyncJournal
    twilio: TwilioStandIn
    push: PushStandIn
    sink: SmtpSink
    twilio_url: str
    smtp_port: int
    clock: list[float]
    nursery: trio.Nursery


@asynccontextmanager
async def channel_stand_ins(
    tmp_path: Path, *, twilio: TwilioStandIn, push: PushStandIn, now: float
) -> AsyncIterator[ChannelStandIns]:
    """Serve ``twilio``, ``push`` and an SMTP sink on loopback with a journal at ``now``.

    The nursery in the result serves further loopback servers until the block ends.
    """
    clock = [now]
    journal = Journal.open(tmp_path / "journal.sqlite3", lease_seconds=60, clock=lambda: clock[0])
    facade = AsyncJournal(journal)
    sink = SmtpSink()
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(facade.run)
            twilio_url: str = await nursery.start(twilio.serve)
            await nursery.start(push.serve)
            smtp_port: int = await nursery.start(sink.serve)
            yield ChannelStandIns(
                journal, facade, twilio, push, sink, twilio_url, smtp_port, clock, nursery
            )
            nursery.cancel_scope.cancel()
    finally:
        journal.close()
