"""The shared retry policy on storefront fetches and SMTP sends: what is retried in the call."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
import trio

from plaudit.actors.marketplace import MarketplaceActor
from plaudit.config.loader import load_config
from plaudit.config.model import MarketplaceConfig, MarketplaceProfile, RetryConfig, SmtpConfig
from plaudit.connectors.marketplace.errors import BlockedPageError
from plaudit.connectors.marketplace.fetch import StorefrontFetcher
from plaudit.connectors.marketplace.sites import get_site
from plaudit.errors import PlatformError
from plaudit.journal import AsyncJournal, Journal
from plaudit.messaging.email import (
    Refusal,
    SendError,
    SmtpSender,
    build_message,
    classify_send_error,
    message_id_for,
)
from plaudit.reliability.retry import AttemptTimeoutError, Failure, retry_call
from plaudit.sandbox.smtp import Outcome, SmtpSink
from tests.test_email_send import RENDERED, VENDOR

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "plaudit.example.toml"
HITCHED = get_site("hitched")
STOREFRONT = "https://hitched.test/venues/willow-barn.htm"
CHALLENGE = (
    "<html><head><title>Just a moment...</title></head><body>"
    '<div id="challenge-running">Checking your browser.</div></body></html>'
)
POLICY = RetryConfig(max_attempts=3, backoff_initial=1.0, backoff_max=4.0, deadline=60.0)


class Sleeps:
    """Records each wait and passes it to trio.sleep, so the virtual clock moves."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await trio.sleep(seconds)


def scripted(
    responses: list[httpx.Response | Exception],
) -> Callable[[httpx.Request], httpx.Response]:
    """Return a transport handler: robots.txt is 404 (no rules), pages follow ``responses``."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/robots.txt":
            return httpx.Response(404)
        step = responses.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    return handle


@asynccontextmanager
async def fetcher_for(
    responses: list[httpx.Response | Exception], *, policy: RetryConfig = POLICY
) -> AsyncIterator[tuple[StorefrontFetcher, Sleeps]]:
    sleeps = Sleeps()
    transport = httpx.MockTransport(scripted(responses))
    async with httpx.AsyncClient(transport=transport) as client:
        yield (
            StorefrontFetcher(
                client,
                contact="ops@example.com",
                retry=policy,
                sleep=sleeps,
                rng=random.Random(7),
            ),
            sleeps,
        )


async def test_storefront_5xx_retried_then_fetched(autojump_clock: trio.testing.MockClock) -> None:
    script: list[httpx.Response | Exception] = [
        httpx.Response(502, text="bad gateway"),
        httpx.Response(200, text="<html>page</html>"),
    ]
    async with fetcher_for(script) as (fetcher, sleeps):
        result = await fetcher.fetch(STOREFRONT, site=HITCHED, profile="willow-barn")

    assert result.outcome == "fetched"
    assert result.html == "<html>page</html>"
    assert fetcher.statistics()["retries"] == 1
    assert len(sleeps.delays) == 1
    assert 0.0 <= sleeps.delays[0] <= 1.0


async def test_storefront_connect_error_retried(autojump_clock: trio.testing.MockClock) -> None:
    script: list[httpx.Response | Exception] = [
        httpx.ConnectError("connection refused"),
        httpx.Response(200, text="<html>page</html>"),
    ]
    async with fetcher_for(script) as (fetcher, _sleeps):
        result = await fetcher.fetch(STOREFRONT, site=HITCHED, profile="willow-barn")

    assert result.outcome == "fetched"
    assert fetcher.statistics()["retries"] == 1


async def test_storefront_retry_after_honoured(autojump_clock: trio.testing.MockClock) -> None:
    script: list[httpx.Response | Exception] = [
        httpx.Response(429, headers={"Retry-After": "3"}, text="slow down"),
        httpx.Response(200, text="<html>page</html>"),
    ]
    async with fetcher_for(script) as (fetcher, sleeps):
        await fetcher.fetch(STOREFRONT, site=HITCHED, profile="willow-barn")

    assert sleeps.delays == [3.0]


async def test_storefront_challenge_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    script: list[httpx.Response | Exception] = [
        httpx.Response(503, text=CHALLENGE),
        httpx.Response(200, text="<html>page</html>"),
    ]
    async with fetcher_for(script) as (fetcher, sleeps):
        with pytest.raises(BlockedPageError) as caught:
            await fetcher.fetch(STOREFRONT, site=HITCHED, profile="willow-barn")

    assert "willow-barn" in str(caught.value)
    assert sleeps.delays == []
    assert len(script) == 1


async def test_storefront_gives_up_after_max_attempts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    script: list[httpx.Response | Exception] = [httpx.Response(500) for _ in range(4)]
    async with fetcher_for(script) as (fetcher, sleeps):
        with pytest.raises(PlatformError) as caught:
            await fetcher.fetch(STOREFRONT, site=HITCHED, profile="willow-barn")

    assert caught.value.status == 500
    assert caught.value.retryable is True
    assert len(sleeps.delays) == 2
    assert len(script) == 1
    assert fetcher.statistics()["requests"] == 1


async def test_storefront_404_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    script: list[httpx.Response | Exception] = [httpx.Response(404), httpx.Response(200)]
    async with fetcher_for(script) as (fetcher, sleeps):
        with pytest.raises(PlatformError) as caught:
            await fetcher.fetch(STOREFRONT, site=HITCHED, profile="willow-barn")

    assert caught.value.retryable is False
    assert sleeps.delays == []


async def test_storefront_default_makes_one_attempt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    script: list[httpx.Response | Exception] = [httpx.Response(503), httpx.Response(200)]
    transport = httpx.MockTransport(scripted(script))
    async with httpx.AsyncClient(transport=transport) as client:
        fetcher = StorefrontFetcher(client, contact="ops@example.com")
        with pytest.raises(PlatformError):
            await fetcher.fetch(STOREFRONT, site=HITCHED, profile="willow-barn")

    assert len(script) == 1


async def test_retry_call_raises_unclassified_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls = 0

    async def attempt() -> int:
        nonlocal calls
        calls += 1
        raise KeyError("not a failure the policy knows")

    with pytest.raises(KeyError):
        await retry_call(attempt, policy=POLICY, what="test call", classify=lambda _error: None)

    assert calls == 1


async def test_retry_call_slow_attempt_cancelled(autojump_clock: trio.testing.MockClock) -> None:
    policy = RetryConfig(max_attempts=2, attempt_timeout=5.0, deadline=60.0)
    started: list[float] = []

    async def attempt() -> str:
        started.append(trio.current_time())
        await trio.sleep(10.0)
        return "done"

    with pytest.raises(AttemptTimeoutError):
        await retry_call(attempt, policy=policy, what="slow call", classify=lambda _error: None)

    assert len(started) == 2


async def test_retry_call_slow_attempt_kept(autojump_clock: trio.testing.MockClock) -> None:
    policy = RetryConfig(max_attempts=2, attempt_timeout=5.0, deadline=60.0)

    async def attempt() -> str:
        await trio.sleep(10.0)
        return "done"

    result = await retry_call(
        attempt,
        policy=policy,
        what="slow call",
        classify=lambda _error: Failure(retryable=True),
        cancel_slow_attempts=False,
    )

    assert result == "done"


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (SendError("connection refused", permanent=False), True),
        (SendError("421 closing", permanent=False, code=421), True),
        (SendError("530 auth required", permanent=False, code=530), False),
        (SendError("550 no such user", permanent=True, code=550), False),
        (SendError("lost after DATA", permanent=False, unconfirmed=True, after_marker=True), False),
        (SendError("451 to DATA", permanent=False, code=451, after_marker=True), False),
    ],
)
def test_send_error_classified(error: SendError, retryable: bool) -> None:
    failure = classify_send_error(error)

    assert failure is not None
    assert failure.retryable is retryable


def test_send_error_with_bounce_not_retried() -> None:
    refusals = [
        Refusal(address="ana@example.com", code=550, status="5.1.1", reply="no such user"),
        Refusal(address="ben@example.com", code=450, status="4.2.1", reply="busy"),
    ]
    error = SendError("every recipient refused", permanent=False, code=550, refused=refusals)

    failure = classify_send_error(error)

    assert failure is not None
    assert failure.retryable is False


def test_other_errors_not_classified() -> None:
    assert classify_send_error(RuntimeError("journal write failed")) is None


class InstantSleeps:
    """Records each wait without waiting, so SMTP tests on real sockets stay fast."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await trio.lowlevel.checkpoint()


@asynccontextmanager
async def smtp_sender(
    *script: Outcome,
) -> AsyncIterator[tuple[SmtpSink, SmtpSender, InstantSleeps]]:
    sink = SmtpSink(script=script)
    sleeps = InstantSleeps()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(sink.serve)
        config = SmtpConfig(host="127.0.0.1", port=port, security="none", timeout=30, retry=POLICY)
        yield sink, SmtpSender(config, sleep=sleeps, rng=random.Random(7)), sleeps
        nursery.cancel_scope.cancel()


def request_message() -> EmailMessage:
    return build_message(
        RENDERED,
        vendor=VENDOR,
        to=["ana@example.com"],
        message_id=message_id_for(11, domain="willow.example"),
        unsubscribe_token="tok11",
    )


@pytest.mark.parametrize("outcome", ["temporary_rcpt", "disconnect_rcpt"])
async def test_smtp_failure_before_data_retried(outcome: Outcome) -> None:
    async with smtp_sender(outcome) as (sink, sender, sleeps):
        receipt = await sender.send(request_message())

    assert receipt.accepted == ["ana@example.com"]
    assert len(sink.messages) == 1
    assert sink.statistics()["transactions"] == 2
    assert sender.statistics().retries == 1
    assert len(sleeps.delays) == 1


async def test_smtp_retries_give_up() -> None:
    script: tuple[Outcome, ...] = ("temporary_rcpt",) * 3
    async with smtp_sender(*script) as (sink, sender, sleeps):
        with pytest.raises(SendError) as caught:
            await sender.send(request_message())

    assert caught.value.code == 450
    assert caught.value.permanent is False
    assert sink.messages == []
    assert len(sleeps.delays) == 2


@pytest.mark.parametrize("outcome", ["disconnect", "temporary", "reject", "reject_data"])
async def test_smtp_no_retry_after_data_or_bounce(outcome: Outcome) -> None:
    marks = 0

    async def before_data() -> None:
        nonlocal marks
        marks += 1

    async with smtp_sender(outcome) as (sink, sender, sleeps):
        with pytest.raises(SendError):
            await sender.send(request_message(), before_data=before_data)

    assert sink.statistics()["transactions"] == 1
    assert sleeps.delays == []
    assert sink.messages == []
    assert marks == (0 if outcome == "reject" else 1)


async def test_smtp_before_data_error_not_retried() -> None:
    async def before_data() -> None:
        raise OSError("journal disk full")

    async with smtp_sender() as (sink, sender, sleeps):
        with pytest.raises(OSError, match="journal disk full"):
            await sender.send(request_message(), before_data=before_data)

    assert sink.statistics()["transactions"] == 1
    assert sleeps.delays == []


def test_retry_tables_load(tmp_path: Path) -> None:
    path = tmp_path / "plaudit.toml"
    path.write_text(
        '[smtp]\nhost = "127.0.0.1"\n[smtp.retry]\nmax_attempts = 5\ndeadline = 12.0\n',
        encoding="utf-8",
    )

    config = load_config(path)

    assert config.smtp is not None
    assert config.smtp.retry.max_attempts == 5
    assert config.smtp.retry.deadline == 12.0


def test_example_retry_tables_load() -> None:
    config = load_config(str(EXAMPLE))

    assert config.smtp is not None
    assert config.smtp.retry.deadline == 20.0
    assert config.platforms.marketplace is not None
    assert config.platforms.marketplace.retry.max_attempts == 2


def test_retry_defaults_stay_short() -> None:
    smtp = SmtpConfig(host="127.0.0.1")

    assert smtp.retry.deadline == 20.0
    assert smtp.retry.max_attempts == 3


async def test_marketplace_actor_uses_retry_table(tmp_path: Path) -> None:
    opened = Journal.open(tmp_path / "journal.sqlite3")
    journal = AsyncJournal(opened, window=0.0)
    storefront = MarketplaceProfile(
        site="hitched",
        profile_id="willow-barn",
        vendor_name="Willow Barn",
        storefront_url="https://hitched.test/venues/willow-barn.htm",
        modes=["storefront"],
    )
    first = MarketplaceConfig(profiles=[storefront], retry=RetryConfig(max_attempts=4))
    second = MarketplaceConfig(profiles=[storefront], retry=RetryConfig(max_attempts=1))
    try:
        actor = MarketplaceActor(journal, HITCHED, first, lease_seconds=30.0)
        initial = actor.fetcher.retry.max_attempts
        actor.reconfigure(second)
        reloaded = actor.fetcher.retry.max_attempts
    finally:
        opened.close()

    assert initial == 4
    assert reloaded == 1
