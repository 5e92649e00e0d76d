"""Compliance: check-config rules for templates, and what every sent request carries."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
import trio

from plaudit.actors.notifier import NotifierActor, build_notifier
from plaudit.config.check import check_config
from plaudit.config.model import CampaignConfig, CampaignStep, Config, SmtpConfig, VendorConfig
from plaudit.journal import AsyncJournal, Journal, Tx
from plaudit.messaging.campaigns import schedule_new_couples
from plaudit.messaging.compliance import incentive_wording
from plaudit.messaging.couples import parse_couples_csv, store_couples
from plaudit.messaging.deliverability.store import record_event
from plaudit.messaging.deliverability.suppression import MessageEvent, SuppressionPolicy
from plaudit.sandbox.smtp import SmtpSink

CONFIG = """
[vendor]
name = "Willow Studio"
postal_address = "12 Elm Street, Springfield, IL 62701"
from_address = "hello@willow.example"
unsubscribe_url = "https://willow.example/unsubscribe"
unsubscribe_mailto = "unsubscribe@willow.example"
review_links = { google = "https://reviews.invalid/google" }

[smtp]
host = "127.0.0.1"
port = 2525
security = "none"

[[campaigns]]
name = "after-wedding"

[[campaigns.steps]]
delay_days = 10
subject = "Thank you"
text = "Hi {{ couple_names }}"

[[campaigns.steps]]
delay_days = 7
subject = "SUBJECT"
text = "TEXT"
html = "HTML"
"""


def run_check(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    *,
    subject: str = "A reminder",
    text: str = "Hello again",
    html: str = "<p>Hello again</p>",
) -> tuple[int, str]:
    path = tmp_path / "plaudit.toml"
    config = CONFIG.replace("SUBJECT", subject).replace("TEXT", text).replace("HTML", html)
    path.write_text(config)
    code = check_config(str(path), out=sys.stdout, err=sys.stderr)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_check_config_accepts_plain_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = run_check(
        tmp_path, capsys, text="Feel free to leave a review: {{ review_links[0].url }}"
    )

    assert code == 0, output


@pytest.mark.parametrize(
    ("part", "source", "words"),
    [
        ("subject", "Thanks {{ couple_name }}", "couple_name"),
        ("text", "Hi\\nthere {{ venue | nofilter }}", "line 2"),
        ("html", "<p>{% if venue %}</p>", "expected tag endif"),
        ("subject", "{% for %}", "missing expression"),
    ],
)
def test_check_config_catches_later_step_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], part: str, source: str, words: str
) -> None:
    code, output = run_check(tmp_path, capsys, **{part: source})

    assert code != 0
    assert "campaigns[0].steps[1]" in output
    assert f"after-wedding step 2' {part}" in output
    assert words in output


@pytest.mark.parametrize(
    ("part", "source", "phrase"),
    [
        ("text", "Leave us a review and get 10% off your next session!", "% off"),
        ("text", "Every review earns a free print.", "free"),
        ("subject", "A gift card for your review", "gift card"),
        ("html", "<p>Review us</p><p>and claim your <b>voucher</b></p>", "voucher"),
        ("text", "We offer a discount in exchange for reviews.", "discount"),
        ("text", "Post a review to enter our raffle", "raffle"),
    ],
)
def test_check_config_rejects_incentive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], part: str, source: str, phrase: str
) -> None:
    code, output = run_check(tmp_path, capsys, **{part: source})

    assert code != 0
    assert f"campaigns[0].steps[1].{part}" in output
    assert f"offers an incentive ({phrase!r}) near the word review" in output


def test_check_config_rejects_yelp_mention(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = run_check(tmp_path, capsys, text="Find us on Yelp too")

    assert code != 0
    assert "campaigns[0].steps[1].text" in output
    assert "mentions Yelp" in output


@pytest.mark.parametrize(
    "source",
    [
        "Feel free to leave a review",
        "A hassle-free review takes a minute",
        "Free parking at the venue. " + "More words here. " * 10 + "Leave a review.",
        "{% for link in review_links %}{{ link.url }}{% endfor %} Enjoy a free dessert!",
        "Thank you for choosing us; we are free on weekends.",
    ],
)
def test_innocent_wording_passes(source: str) -> None:
    assert incentive_wording(source) is None


STEP_TEXT = (
    "Dear {{ couple_names }},\n"
    "{% for link in review_links %}{{ link.platform }}: {{ link.url }}\n{% endfor %}"
)
COUPLES = (
    "names,email,wedding_date,venue\n"
    "Ana & Ben,ana@example.com,2026-05-02,Orchard Barn\n"
    "Cara & Dan,cara@example.com,2026-05-02,The Old Mill\n"
    "Eve & Finn,eve@example.com,2026-05-02,Harbour House\n"
)


def _make_all_due(tx: Tx) -> None:
    # Both clocks: the job's next run and the step's due time, which a
    # send-time choice may push later.
    tx.execute("UPDATE jobs SET next_run_at = 0 WHERE state = 'ready'")
    tx.execute("UPDATE requests SET scheduled_at = 0 WHERE state = 'scheduled'")


@dataclass
class Run:
    journal: Journal
    facade: AsyncJournal
    sink: SmtpSink
    notifier: NotifierActor

    async def send_all(self) -> None:
        """Run every job until none is left, bringing each forward to now.

        A step may be deferred (send-time choice), which enqueues a later
        job, so this takes a few rounds.
        """
        for _ in range(10):
            await self.facade.transaction(_make_all_due)
            jobs = await self.facade.claim("notifier", limit=20)
            if not jobs:
                return
            for job in jobs:
                effects = await self.notifier.handle(job)
                await self.facade.complete(job.id, effects)

    async def send_first_steps(self) -> None:
        """Send the three first steps only; the reminders stay scheduled."""
        await self.facade.transaction(_make_all_due)
        for job in await self.facade.claim("notifier", limit=20):
            effects = await self.notifier.handle(job)
            await self.facade.complete(job.id, effects)


@asynccontextmanager
async def sending(tmp_path: Path) -> AsyncIterator[Run]:
    journal = Journal.open(tmp_path / "journal.sqlite3", lease_seconds=60)
    facade = AsyncJournal(journal)
    sink = SmtpSink()
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(facade.run)
            port = await nursery.start(sink.serve)
            steps = [
                CampaignStep(delay_days=10, subject="Thank you", text=STEP_TEXT),
                CampaignStep(delay_days=7, subject="A reminder", text=STEP_TEXT),
            ]
            config = Config(
                vendor=VendorConfig(
                    name="Willow Studio",
                    postal_address="12 Elm Street, Springfield, IL 62701",
                    from_address="hello@willow.example",
                    review_links={
                        "google": "https://reviews.invalid/google",
                        "yelp": "https://reviews.invalid/yelp",
                        "knot": "https://reviews.invalid/knot",
                    },
                    unsubscribe_url="https://willow.example/unsubscribe",
                ),
                smtp=SmtpConfig(host="127.0.0.1", port=port, security="none"),
                campaigns=[CampaignConfig(name="after-wedding", steps=steps)],
            )
            parsed = parse_couples_csv(COUPLES)
            await facade.transaction(lambda tx: store_couples(tx, parsed.couples, vendor="W"))
            await facade.transaction(lambda tx: schedule_new_couples(tx, config))
            notifier = build_notifier(config, facade)
            assert notifier is not None
            yield Run(journal, facade, sink, notifier)
            nursery.cancel_scope.cancel()
    finally:
        journal.close()


def links_of(message: EmailMessage) -> list[str]:
    text = message.get_body(("plain",))
    assert text is not None
    return [line for line in text.get_content().splitlines() if "https://reviews" in line]


async def test_every_couple_gets_same_links_without_yelp(tmp_path: Path) -> None:
    async with sending(tmp_path) as run:
        await run.send_all()

    link_sets = {tuple(links_of(message.parsed())) for message in run.sink.messages}
    assert len(run.sink.messages) == 6
    assert link_sets == {
        ("google: https://reviews.invalid/google", "knot: https://reviews.invalid/knot")
    }


async def test_every_message_carries_postal_address(tmp_path: Path) -> None:
    async with sending(tmp_path) as run:
        await run.send_all()

    for received in run.sink.messages:
        message = received.parsed()
        body = message.get_body(("plain",))
        assert body is not None
        assert "12 Elm Street, Springfield, IL 62701" in body.get_content()
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


async def test_message_id_stable_per_step(tmp_path: Path) -> None:
    async with sending(tmp_path) as run:
        await run.send_all()
        stored = run.journal.query("SELECT message_id FROM requests ORDER BY id")

    sent = [received.parsed()["Message-ID"] for received in run.sink.messages]
    assert len(set(sent)) == 6
    assert sorted(sent) == sorted(row[0] for row in stored)


async def test_suppression_checked_before_every_step(tmp_path: Path) -> None:
    async with sending(tmp_path) as run:
        await run.send_first_steps()
        # Cara complains after her first request: her reminder must not go out.
        await run.facade.transaction(
            lambda tx: record_event(
                tx,
                MessageEvent(address="cara@example.com", kind="complaint", at=tx.now),
                policy=SuppressionPolicy(),
            )
        )
        await run.send_all()
        states = run.journal.query(
            "SELECT c.email, r.step, r.state FROM requests r JOIN couples c ON c.id = r.couple_id"
            " ORDER BY c.email, r.step"
        )

    recipients = [received.recipients for received in run.sink.messages]
    assert recipients.count(["cara@example.com"]) == 1
    assert recipients.count(["ana@example.com"]) == 2
    assert ("cara@example.com", 1, "suppressed") in states
    assert ("ana@example.com", 1, "sent") in states
