"""Guardrails for drafted opening lines, and the drafter against a loopback stand-in."""

from __future__ import annotations

import functools
import json
import zoneinfo
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio

from plaudit.config.model import Config, DraftingConfig, PersonalisationConfig, VendorConfig
from plaudit.journal import AsyncJournal, Journal
from plaudit.messaging.couples import Couple
from plaudit.personalisation.ahead import DraftQueue
from plaudit.personalisation.drafting import DRAFT_BREAKER, Drafter
from plaudit.personalisation.guardrails import DraftFacts, check_draft
from plaudit.personalisation.sendtime import fixed_time
from plaudit.personalisation.service import Personaliser, Plan

FACTS = DraftFacts(
    names=["Ana Pires", "Ben Okafor"],
    wedding_date="2026-05-02",
    venue="Orchard Barn",
    vendor="Willow Studio",
    found_on="google",
    notes="Rainy morning, first dance to Moon River, Ben's grandmother Rosa gave a toast.",
)


@pytest.mark.parametrize(
    "line",
    [
        "Ana and Ben, the rain at Orchard Barn only made your first dance to Moon River lovelier.",
        "What a joy to see Rosa's toast on May 2 at Orchard Barn.",
        "Thank you both: I still smile at that rainy morning.",
        "Ben's grandmother Rosa stole the show.",
    ],
)
def test_guardrails_accept_grounded_line(line: str) -> None:
    assert check_draft(line, FACTS, max_chars=300) is None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("Leave a review and get 10% off your next session!", "incentive"),
        ("We'd love a review; every couple gets a free print.", "incentive"),
        ("Enter to win a photo book when you review us.", "incentive"),
        ("If you loved your photos, a 5-star review would mean the world.", "steers sentiment"),
        ("Happy couples tell their friends about us.", "steers sentiment"),
        ("We hope you'll give us five stars.", "steers sentiment"),
        ("Your day at Lakeside Manor was magical.", "'Lakeside'"),
        ("What a day, Ana and Carlos!", "'Carlos'"),
        ("Your June wedding was a dream.", "'June'"),
        ("All 150 guests danced in the rain.", "number 150"),
        ("See https://example.invalid for your photos.", "link"),
        ("Hi {{ couple_names }}", "template syntax"),
        ("   ", "empty"),
        ("x" * 400, "more than 300"),
    ],
)
def test_guardrails_reject(line: str, reason: str) -> None:
    problem = check_draft(line, FACTS, max_chars=300)

    assert problem is not None
    assert reason in problem


@dataclass
class StandIn:
    """A chat-completions stand-in on loopback: each request gets the next scripted response."""

    script: list[str]
    requests: list[dict[str, object]] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)

    async def handle(self, stream: trio.SocketStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.decode().split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
            if name.lower() == "authorization":
                self.headers.append(value.strip())
        while len(body) < length:
            body += await stream.receive_some(65536)
        self.requests.append(json.loads(body))

        mode = self.script.pop(0) if self.script else "good"
        if mode == "hang":
            await trio.sleep_forever()
        status, payload = _answer(mode)
        response = (
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        ).encode() + payload
        await stream.send_all(response)
        await stream.aclose()


def _completion(text: str) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()


def _answer(mode: str) -> tuple[str, bytes]:
    if mode == "good":
        return "200 OK", _completion(
            "Ana and Ben, your first dance to Moon River was unforgettable."
        )
    if mode == "incentive":
        return "200 OK", _completion("Review us and get a free album upgrade!")
    if mode == "garbage":
        return "200 OK", b"<html>not json at all"
    if mode == "wrong_shape":
        return "200 OK", b'{"choices": []}'
    return "500 Internal Server Error", b'{"error": "boom"}'


@asynccontextmanager
async def stand_in(*script: str) -> AsyncIterator[tuple[StandIn, str]]:
    server = StandIn(list(script))
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1")
        )
        port = listeners[0].socket.getsockname()[1]
        yield server, f"http://127.0.0.1:{port}/v1/chat/completions"
        nursery.cancel_scope.cancel()


def drafting(url: str, *, timeout: float = 30.0, api_key_file: str = "") -> DraftingConfig:
    return DraftingConfig(url=url, model="local-model", timeout=timeout, api_key_file=api_key_file)


async def test_good_answer_accepted(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("sk-test\n")
    async with stand_in("good") as (server, url):
        drafter = Drafter(drafting(url, api_key_file=str(key)))
        outcome = await drafter.draft(FACTS, seconds=60)
        await drafter.aclose()

    assert outcome.state == "accepted"
    assert "Moon River" in outcome.text
    assert server.headers == ["Bearer sk-test"]
    request = server.requests[0]
    assert request["model"] == "local-model"
    assert "Orchard Barn" in json.dumps(request["messages"])
    assert drafter.statistics() == {"accepted": 1}


@pytest.mark.parametrize(
    ("mode", "state", "reason"),
    [
        ("incentive", "rejected", "incentive"),
        ("garbage", "failed", "not a chat completion"),
        ("wrong_shape", "failed", "not a chat completion"),
        ("error", "failed", "HTTP 500"),
    ],
)
async def test_bad_answers_fall_back(mode: str, state: str, reason: str) -> None:
    async with stand_in(mode) as (_server, url):
        drafter = Drafter(drafting(url))
        outcome = await drafter.draft(FACTS, seconds=60)
        await drafter.aclose()

    assert outcome.state == state
    assert reason in outcome.reason
    assert outcome.text == ""


async def test_hanging_endpoint_times_out() -> None:
    # Real time: the stand-in never responds, and the drafter gives up after 1 s.
    async with stand_in("hang") as (_server, url):
        drafter = Drafter(drafting(url, timeout=1.0))
        outcome = await drafter.draft(FACTS, seconds=60)
        await drafter.aclose()

    assert outcome.state == "timed_out"


async def test_deadline_shorter_than_timeout_wins() -> None:
    async with stand_in("hang") as (_server, url):
        drafter = Drafter(drafting(url, timeout=30.0))
        with trio.fail_after(20):
            outcome = await drafter.draft(FACTS, seconds=1.0)
        await drafter.aclose()

    assert outcome.state == "timed_out"
    assert "1.0 s" in outcome.reason


async def test_no_time_left_skips_request() -> None:
    async with stand_in("good") as (server, url):
        drafter = Drafter(drafting(url))
        outcome = await drafter.draft(FACTS, seconds=0.05)
        await drafter.aclose()

    assert outcome.state == "timed_out"
    assert server.requests == []


async def test_unreachable_endpoint_fails() -> None:
    # A port that was just free: nothing listens there.
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    drafter = Drafter(drafting(f"http://127.0.0.1:{port}/v1/chat/completions"))
    outcome = await drafter.draft(FACTS, seconds=60)
    await drafter.aclose()

    assert outcome.state == "failed"


async def test_missing_key_file_fails(tmp_path: Path) -> None:
    drafter = Drafter(drafting("http://127.0.0.1:9/", api_key_file=str(tmp_path / "absent")))
    outcome = await drafter.draft(FACTS, seconds=60)

    assert outcome.state == "failed"
    assert "api_key_file" in outcome.reason


def plan_for(request_id: int) -> Plan:
    choice = fixed_time(due_at=0.0, now=0.0, zone=zoneinfo.ZoneInfo("UTC"), reason="test")
    return Plan(
        request_id=request_id,
        arm="treatment",
        variant="base",
        send_at=0.0,
        draft_seconds=60.0,
        deferred=False,
        draft_state="pending",
        opening_line="",
        found_on="",
        notes="Rainy morning.",
        explanation=choice,
    )


async def test_repeated_failures_pause_and_alert(tmp_path: Path) -> None:
    couple = Couple(
        names=["Ana Pires"],
        emails=["ana@example.com"],
        phone=None,
        wedding_date="2026-05-02",
        venue="Orchard Barn",
        timezone=None,
        consent_email=True,
        consent_sms=False,
    )
    journal = Journal.open(tmp_path / "journal.sqlite3")
    facade = AsyncJournal(journal)
    clock = ManualClock()
    drafts = DraftQueue()
    try:
        async with (
            stand_in("error", "error", "error", "good") as (server, url),
            trio.open_nursery() as nursery,
        ):
            await nursery.start(facade.run)
            config = Config(
                vendor=VendorConfig(
                    name="Willow Studio", postal_address="1 Elm", from_address="a@b.c"
                ),
                personalisation=PersonalisationConfig(drafting=drafting(url, timeout=30.0)),
            )
            personaliser = Personaliser(config, drafter=Drafter(drafting(url), clock=clock))
            states = [
                (await personaliser.complete_draft(facade, couple, plan_for(number), drafts=drafts))
                for number in range(1, 6)
            ]
            opened = journal.query("SELECT summary, resolved_at FROM alerts")
            requests_while_paused = len(server.requests)
            clock.now += DRAFT_BREAKER.open_initial
            probe = await personaliser.complete_draft(facade, couple, plan_for(6), drafts=drafts)
            resolved = journal.query("SELECT resolved_at IS NOT NULL FROM alerts")
            nursery.cancel_scope.cancel()
    finally:
        journal.close()

    assert [plan.draft_state for plan in states] == ["failed"] * 3 + ["skipped"] * 2
    assert requests_while_paused == 3
    assert len(opened) == 1
    assert "failed 3 times in a row and is paused" in opened[0][0]
    # The probe reached the endpoint; its line names people the facts lack.
    assert probe.draft_state == "rejected"
    assert len(server.requests) == 4
    assert resolved == [(1,)]


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_draft_queue_drops_when_full() -> None:
    couple = Couple(
        names=["Ana Pires"],
        emails=["ana@example.com"],
        phone=None,
        wedding_date="2026-05-02",
        venue="Orchard Barn",
        timezone=None,
        consent_email=True,
        consent_sms=False,
    )
    drafts = DraftQueue(size=1)

    drafts.submit(couple, plan_for(1))
    drafts.submit(couple, plan_for(1))
    drafts.submit(couple, plan_for(2))
    waited = await drafts.wait_for(2, 0.0)

    stats = drafts.statistics()
    assert stats.queued == 1
    assert stats.dropped == 1
    assert stats.in_progress == 1
    assert waited is False
