"""Personalisation inside the notifier: a real journal, the SMTP sink and a drafting stand-in."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
import trio

from plaudit.actors.notifier import NotifierActor, build_notifier
from plaudit.config.model import (
    CampaignConfig,
    CampaignPersonalisation,
    CampaignStep,
    Config,
    DraftingConfig,
    PersonalisationConfig,
    SmtpConfig,
    TemplateVariant,
    VendorConfig,
)
from plaudit.errors import PlatformError
from plaudit.journal import AsyncJournal, Journal
from plaudit.messaging.campaigns import schedule_new_couples
from plaudit.messaging.couples import parse_couples_csv, store_couples
from plaudit.messaging.requests import show_request
from plaudit.personalisation.store import Profile, store_profile
from plaudit.sandbox.smtp import SmtpSink

CHICAGO = ZoneInfo("America/Chicago")
COUPLES = (
    "first_name,last_name,email,phone,wedding_date,venue,timezone\n"
    "Ana,Pires,ana@example.com,,2026-05-02,Orchard Barn,America/Chicago\n"
)
# The first step is due ten days after the wedding at 10:00 local time.
DUE = datetime(2026, 5, 12, 10, 0, tzinfo=CHICAGO).timestamp()
TEXT = (
    "{{ opening_line }}\nDear {{ couple_names }}, thank you.\n"
    "{% for link in review_links %}{{ link.platform }}: {{ link.url }}\n{% endfor %}"
    "Unsubscribe: {{ unsubscribe_link }}"
)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_config(
    port: int, *, holdout: float, drafting_url: str = "", drafting_timeout: float = 30.0
) -> Config:
    step = CampaignStep(
        delay_days=10,
        subject="Base subject",
        text=TEXT,
        variants=[TemplateVariant(name="warm", subject="Warm subject", text=TEXT)],
        send_window_hours=24,
    )
    drafting = (
        DraftingConfig(url=drafting_url, model="local", timeout=drafting_timeout)
        if drafting_url
        else None
    )
    return Config(
        vendor=VendorConfig(
            name="Willow Studio",
            postal_address="12 Elm Street, Springfield, IL 62701",
            from_address="hello@willow.example",
            timezone="America/Chicago",
            review_links={
                "google": "https://reviews.invalid/google",
                "theknot": "https://reviews.invalid/theknot",
            },
            unsubscribe_url="https://willow.example/unsubscribe",
        ),
        smtp=SmtpConfig(host="127.0.0.1", port=port, security="none", timeout=30),
        campaigns=[
            CampaignConfig(
                name="after-wedding",
                steps=[step],
                personalisation=CampaignPersonalisation(holdout=holdout),
            )
        ],
        personalisation=PersonalisationConfig(drafting=drafting),
    )


@dataclass
class Harness:
    journal: Journal
    facade: AsyncJournal
    sink: SmtpSink
    actor: NotifierActor
    clock: Clock

    async def run_due(self) -> int:
        """Claim and run every due notifier job; return how many ran."""
        jobs = await self.facade.claim("notifier", limit=10)
        for job in jobs:
            effects = await self.actor.handle(job)
            await self.facade.complete(job.id, effects)
        return len(jobs)

    def assignment(self) -> dict[str, Any]:
        rows = self.journal.query(
            "SELECT arm, variant, planned_at, explanation, draft_state, opening_line, sent_at,"
            " outcome FROM personalisation_assignments"
        )
        (row,) = rows
        keys = ("arm", "variant", "planned_at", "explanation", "draft_state", "opening_line")
        found = dict(zip((*keys, "sent_at", "outcome"), row, strict=True))
        found["explanation"] = json.loads(found["explanation"])
        return found


@asynccontextmanager
async def harness(
    tmp_path: Path,
    *,
    holdout: float = 0.0,
    clicks_at_hour: int | None = None,
    profile: Profile | None = None,
    drafting_url: str = "",
    drafting_timeout: float = 30.0,
    couples: str = COUPLES,
) -> AsyncIterator[Harness]:
    clock = Clock(DUE + 1)
    journal = Journal.open(tmp_path / "journal.sqlite3", lease_seconds=60, clock=clock)
    facade = AsyncJournal(journal)
    sink = SmtpSink()
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(facade.run)
            port = await nursery.start(sink.serve)
            config = make_config(
                port,
                holdout=holdout,
                drafting_url=drafting_url,
                drafting_timeout=drafting_timeout,
            )
            parsed = parse_couples_csv(couples)
            await facade.transaction(
                lambda tx: store_couples(tx, parsed.couples, vendor="Willow Studio")
            )
            await facade.transaction(lambda tx: schedule_new_couples(tx, config))
            if profile is not None:
                for couple_id in range(1, len(parsed.couples) + 1):
                    await facade.transaction(
                        functools.partial(store_profile, couple_id=couple_id, profile=profile)
                    )
            if clicks_at_hour is not None:
                with journal.transaction() as tx:
                    for days in range(1, 6):
                        day = datetime(2026, 4, 1, clicks_at_hour, 5, tzinfo=CHICAGO)
                        moment = (day + timedelta(days=days)).timestamp()
                        tx.execute(
                            "INSERT INTO message_events (address, domain, kind, provider,"
                            " occurred_at, recorded_at) VALUES (?, ?, 'clicked', 'smtp', ?, ?)",
                            ("ana@example.com", "example.com", moment, moment),
                        )
            actor = build_notifier(config, facade)
            assert actor is not None
            nursery.start_soon(actor.drafts.run, facade, lambda: actor.personaliser)
            yield Harness(journal, facade, sink, actor, clock)
            nursery.cancel_scope.cancel()
    finally:
        journal.close()


async def test_no_history_sends_at_due_time(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        ran = await h.run_due()
        found = h.assignment()

    assert ran == 1
    assert len(h.sink.messages) == 1
    assert found["arm"] == "treatment"
    assert found["variant"] in ("base", "warm")
    assert found["planned_at"] == DUE + 1
    assert found["sent_at"] == DUE + 1
    assert found["outcome"] == "pending"
    assert "no clicks or reviews" in found["explanation"]["reason"]


async def test_variant_template_matches_assignment(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        await h.run_due()
        found = h.assignment()

    subject = h.sink.messages[0].parsed()["Subject"]
    expected = "Warm subject" if found["variant"] == "warm" else "Base subject"
    assert subject == expected


async def test_evening_clicks_defer_send(tmp_path: Path) -> None:
    async with harness(tmp_path, clicks_at_hour=19) as h:
        first = await h.run_due()
        sent_early = len(h.sink.messages)
        planned = h.journal.query("SELECT next_run_at FROM jobs WHERE key = 'request:1:planned'")
        h.clock.now = planned[0][0]
        second = await h.run_due()
        found = h.assignment()

    assert first == 1
    assert sent_early == 0
    assert datetime.fromtimestamp(planned[0][0], CHICAGO).hour == 19
    assert second == 1
    assert len(h.sink.messages) == 1
    assert found["sent_at"] == planned[0][0]
    assert found["explanation"]["recipient_events"] == 5
    assert "moved 9 h" in found["explanation"]["reason"]


async def test_holdout_gets_baseline(tmp_path: Path) -> None:
    profile = Profile(found_on="theknot", notes="Rainy morning at Orchard Barn.")
    async with harness(tmp_path, holdout=1.0, clicks_at_hour=19, profile=profile) as h:
        await h.run_due()
        found = h.assignment()

    message = h.sink.messages[0].parsed()
    body = message.get_content()
    assert found["arm"] == "holdout"
    assert found["variant"] == "base"
    assert found["sent_at"] == DUE + 1
    assert message["Subject"] == "Base subject"
    assert body.index("google:") < body.index("theknot:")
    assert body.lstrip().startswith("Dear Ana Pires")


async def test_found_on_platform_leads(tmp_path: Path) -> None:
    async with harness(tmp_path, profile=Profile(found_on="theknot")) as h:
        await h.run_due()

    body = h.sink.messages[0].parsed().get_content()
    assert body.index("theknot:") < body.index("google:")


@asynccontextmanager
async def drafting_stand_in(mode: str) -> AsyncIterator[tuple[list[bytes], str]]:
    """A chat-completions stand-in on loopback that returns one fixed completion."""
    bodies: list[bytes] = []

    async def handle(stream: trio.SocketStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return
            data += chunk
        bodies.append(data)
        if mode == "hang":
            await trio.sleep_forever()
        line = "Ana, your rainy morning at Orchard Barn was beautiful."
        payload = json.dumps({"choices": [{"message": {"content": line}}]}).encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        await stream.send_all(head.encode() + payload)
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, handle, 0, host="127.0.0.1")
        )
        port = listeners[0].socket.getsockname()[1]
        yield bodies, f"http://127.0.0.1:{port}/v1/chat/completions"
        nursery.cancel_scope.cancel()


async def test_drafted_line_opens_message(tmp_path: Path) -> None:
    profile = Profile(found_on="google", notes="Rainy morning at Orchard Barn.")
    async with (
        drafting_stand_in("good") as (bodies, url),
        harness(tmp_path, profile=profile, drafting_url=url) as h,
    ):
        await h.run_due()
        found = h.assignment()

    body = h.sink.messages[0].parsed().get_content()
    assert body.startswith("Ana, your rainy morning at Orchard Barn was beautiful.")
    assert found["draft_state"] == "accepted"
    assert len(bodies) == 1


async def test_draft_made_ahead_of_deferred_send(tmp_path: Path) -> None:
    profile = Profile(notes="Rainy morning at Orchard Barn.")
    async with (
        drafting_stand_in("good") as (bodies, url),
        harness(tmp_path, profile=profile, drafting_url=url, clicks_at_hour=19) as h,
    ):
        await h.run_due()
        # The worker drafts in the background; the stand-in responds at once.
        with trio.fail_after(30):
            while h.assignment()["draft_state"] == "pending":
                await trio.sleep(0.01)
        drafted_before_send = (len(bodies), len(h.sink.messages))
        h.clock.now = h.assignment()["planned_at"]
        await h.run_due()

    assert drafted_before_send == (1, 0)
    assert len(bodies) == 1
    assert h.sink.messages[0].parsed().get_content().startswith("Ana, your rainy")


async def test_hanging_drafter_still_sends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="plaudit.personalisation")
    profile = Profile(notes="Rainy morning at Orchard Barn.")
    async with (
        drafting_stand_in("hang") as (_bodies, url),
        harness(tmp_path, profile=profile, drafting_url=url, drafting_timeout=1.0) as h,
    ):
        await h.run_due()
        found = h.assignment()

    assert len(h.sink.messages) == 1
    assert found["draft_state"] == "timed_out"
    assert found["opening_line"] is None
    assert "personalisation.draft_unused" in caplog.messages


async def test_unknown_timezone_still_sends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="plaudit.personalisation")
    async with harness(tmp_path) as h:
        with h.journal.transaction() as tx:
            tx.execute("UPDATE couples SET timezone = 'Mars/Olympus_Mons'")
        await h.run_due()
        found = h.assignment()

    assert len(h.sink.messages) == 1
    assert "unknown couple time zone" in found["explanation"]["reason"]
    assert found["explanation"]["timezone"] == "America/Chicago"
    assert "personalisation.timezone_fallback" in caplog.messages


async def test_retry_reuses_assignment(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        # A 451 reply to the message is a known failure, so the retry sends again.
        h.sink.script = ["temporary"]
        (job,) = await h.facade.claim("notifier", limit=1)
        with pytest.raises(PlatformError):
            await h.actor.handle(job)
        await h.facade.release(job.id)
        first = h.assignment()
        await h.run_due()
        second = h.assignment()

    assert msgspec.json.encode(first["explanation"]) == msgspec.json.encode(second["explanation"])
    assert first["variant"] == second["variant"]
    assert len(h.sink.messages) == 1
    assert h.sink.statistics()["transactions"] == 2


async def test_request_show_includes_explanation(tmp_path: Path) -> None:
    async with harness(tmp_path, clicks_at_hour=19) as h:
        before = await h.facade.transaction(lambda tx: show_request(tx, 1))
        await h.run_due()
        after = await h.facade.transaction(lambda tx: show_request(tx, 1))

    assert before["personalisation"] is None
    explained = after["personalisation"]
    assert explained["arm"] == "treatment"
    assert explained["timezone"] == "America/Chicago"
    assert explained["local_time"].endswith("19:00")
    assert explained["evidence"]["couple_events"] == 5
    assert explained["sent_at"] is None


async def test_zero_holdout_logged_and_sent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="plaudit.personalisation")
    async with harness(tmp_path, holdout=0.0) as h:
        await h.run_due()
        found = h.assignment()

    warnings = [record for record in caplog.records if record.msg == "personalisation.no_holdout"]
    planned = [record for record in caplog.records if record.msg == "personalisation.planned"]
    assert len(h.sink.messages) == 1
    assert found["arm"] == "treatment"
    assert warnings[0].__dict__["campaign"] == "after-wedding"
    assert "no clicks or reviews" in planned[0].__dict__["reason"]


SIX_COUPLES = "first_name,last_name,email,phone,wedding_date,venue,timezone\n" + "".join(
    f"Ana{number},Pires,ana{number}@example.com,,2026-05-02,Orchard Barn,America/Chicago\n"
    for number in range(6)
)


async def test_hanging_drafter_delays_no_due_send(tmp_path: Path) -> None:
    # Real time.  Drafting each send in turn with the 10 s timeout would take
    # 60 s.  Each send waits at most 0.5 s, and the breaker stops requests after
    # three timeouts, so the run takes about 1.5 s.  The 20 s limit allows for
    # a loaded machine.
    profile = Profile(notes="Rainy morning at Orchard Barn.")
    async with (
        drafting_stand_in("hang") as (bodies, url),
        harness(
            tmp_path, profile=profile, drafting_url=url, drafting_timeout=10.0, couples=SIX_COUPLES
        ) as h,
    ):
        with trio.fail_after(20):
            ran = await h.run_due()
        states = [
            row[0]
            for row in h.journal.query(
                "SELECT draft_state FROM personalisation_assignments ORDER BY request_id"
            )
        ]
        sent = h.journal.query(
            "SELECT count(*) FROM personalisation_assignments WHERE sent_at = ?", (DUE + 1,)
        )

    assert ran == 6
    assert len(h.sink.messages) == 6
    assert sent == [(6,)]
    assert states == ["timed_out"] * 3 + ["skipped"] * 3
    assert len(bodies) == 3


async def test_draft_ready_before_due_send(tmp_path: Path) -> None:
    profile = Profile(notes="Rainy morning at Orchard Barn.")
    async with (
        drafting_stand_in("good") as (bodies, url),
        harness(tmp_path, profile=profile, drafting_url=url) as h,
    ):
        h.clock.now = DUE - 1800
        planned = await h.actor.drafts.plan_once(h.facade, h.actor.personaliser)
        with trio.fail_after(30):
            while h.assignment()["draft_state"] == "pending":
                await trio.sleep(0.01)
        early = h.journal.query("SELECT count(*) FROM jobs WHERE key = 'request:1:planned'")
        h.clock.now = DUE + 1
        await h.run_due()
        found = h.assignment()

    assert planned == 1
    assert early == [(0,)]
    assert found["draft_state"] == "accepted"
    assert found["sent_at"] == DUE + 1
    # Drafted once, ahead; the send itself called no model.
    assert len(bodies) == 1
    assert h.sink.messages[0].parsed().get_content().startswith("Ana, your rainy")


async def test_plan_ahead_skips_due_requests(tmp_path: Path) -> None:
    profile = Profile(notes="Rainy morning at Orchard Barn.")
    async with (
        drafting_stand_in("good") as (bodies, url),
        harness(tmp_path, profile=profile, drafting_url=url) as h,
    ):
        planned = await h.actor.drafts.plan_once(h.facade, h.actor.personaliser)
        rows = h.journal.query("SELECT count(*) FROM personalisation_assignments")

    assert planned == 0
    assert rows == [(0,)]
    assert bodies == []
