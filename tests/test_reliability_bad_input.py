"""Bad input from a platform or the disk: named failures, nothing lost, recovery by itself.

A loopback server that responds with garbage, stalls mid-body or redirects
to itself, and a journal whose file may not grow (SQLite's ``max_page_count``
makes writes fail with SQLITE_FULL as a full disk does).
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from plaudit.actors.base import JOURNAL_FULL
from plaudit.actors.listing import ListingActor
from plaudit.actors.sources import build_sources
from plaudit.config.model import (
    Config,
    PlatformsConfig,
    RetryConfig,
    TrustpilotBusinessUnit,
    TrustpilotConfig,
    YelpBusiness,
    YelpConfig,
)
from plaudit.connectors.apiclient import ApiClient, decode_json
from plaudit.daemon.children import ChildContext
from plaudit.errors import JournalError, PlatformError
from plaudit.journal import AsyncJournal, Journal, Tx
from plaudit.metrics import REGISTRY
from plaudit.reliability.health import HealthState
from plaudit.reliability.monitor import PlatformHealthMonitor, disk_full
from plaudit.reviews.store import load_reviews
from plaudit.sandbox import SandboxOptions, serve_sandbox
from plaudit.sandbox import trustpilot as tp_sandbox
from plaudit.sandbox import yelp as yelp_sandbox

RETRY = RetryConfig(
    max_attempts=3, attempt_timeout=5.0, deadline=60.0, backoff_initial=0.1, backoff_max=0.5
)

Respond = Callable[[trio.SocketStream], Awaitable[None]]


class Server:
    """A loopback HTTP/1.1 server whose every response ``respond`` writes by hand."""

    def __init__(self, respond: Respond) -> None:
        self.respond = respond
        self.requests = 0
        self.url = ""

    async def handle(self, stream: trio.SocketStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(4096)
            if not chunk:
                return
            data += chunk
        self.requests += 1
        await self.respond(stream)


async def start_server(nursery: trio.Nursery, respond: Respond) -> Server:
    server = Server(respond)
    serve = functools.partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1")
    listeners = await nursery.start(serve)
    port = listeners[0].socket.getsockname()[1]
    server.url = f"http://127.0.0.1:{port}/v1/reviews"
    return server


async def call(server: Server) -> dict[str, Any]:
    client = ApiClient("test", timeout=10.0, retry=RETRY)
    try:
        result: dict[str, Any] = await client.call(
            "GET",
            server.url,
            lambda body: decode_json(body, dict[str, Any], "reviews", "test"),
        )
        return result
    finally:
        await client.aclose()


async def stall_mid_body(stream: trio.SocketStream) -> None:
    await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n" + b'{"reviews": [')
    await trio.sleep_forever()


async def garbage(stream: trio.SocketStream) -> None:
    body = b"\x00\xff<html>not json"
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
    await stream.send_all(head.encode() + b"\r\n\r\n" + body)


async def redirect_to_itself(stream: trio.SocketStream) -> None:
    await stream.send_all(
        b"HTTP/1.1 302 Found\r\nLocation: /v1/reviews\r\nContent-Length: 0\r\n\r\n"
    )


async def test_stalled_body_times_out_retryable(
    nursery: trio.Nursery, autojump_clock: trio.abc.Clock
) -> None:
    server = await start_server(nursery, stall_mid_body)
    started = trio.current_time()
    with pytest.raises(PlatformError, match="attempt timeout") as raised:
        await call(server)
    assert raised.value.retryable is True
    assert server.requests == RETRY.max_attempts
    assert trio.current_time() - started < RETRY.deadline


async def test_garbage_body_retried_then_named(
    nursery: trio.Nursery, autojump_clock: trio.abc.Clock
) -> None:
    server = await start_server(nursery, garbage)
    with pytest.raises(PlatformError, match="malformed reviews from test") as raised:
        await call(server)
    assert raised.value.retryable is True
    assert server.requests == RETRY.max_attempts


async def test_redirect_loop_not_followed(
    nursery: trio.Nursery, autojump_clock: trio.abc.Clock
) -> None:
    server = await start_server(nursery, redirect_to_itself)
    with pytest.raises(PlatformError, match="HTTP 302") as raised:
        await call(server)
    assert raised.value.retryable is False
    assert server.requests == 1


def requests_counted(outcome: str) -> float:
    labels = {"platform": "test", "outcome": outcome}
    return REGISTRY.get_sample_value("plaudit_platform_requests_total", labels) or 0.0


async def test_unsupported_scheme_named_and_not_retried() -> None:
    client = ApiClient("test", timeout=10.0, retry=RETRY)
    errors_before = requests_counted("error")
    retryable_before = requests_counted("retryable")
    try:
        with pytest.raises(PlatformError, match=r"platforms\.test\.api_base") as raised:
            await client.call("GET", "ftp://127.0.0.1/v1/reviews", bytes)
    finally:
        await client.aclose()
    assert raised.value.retryable is False
    assert requests_counted("error") == errors_before + 1
    assert requests_counted("retryable") == retryable_before


# A full disk under the journal.


def config_for(base_url: str) -> Config:
    trustpilot = TrustpilotConfig(
        api_base=f"{base_url}/trustpilot/v1",
        token_url=f"{base_url}/trustpilot/v1/oauth/oauth-business-users-for-applications/accesstoken",
        api_key=tp_sandbox.SANDBOX_API_KEY,
        api_secret=tp_sandbox.SANDBOX_API_SECRET,
        business_units=[TrustpilotBusinessUnit(business_unit_id=u) for u in tp_sandbox.UNIT_IDS],
    )
    yelp = YelpConfig(
        api_base=f"{base_url}/yelp/v3",
        api_key=yelp_sandbox.SANDBOX_API_KEY,
        businesses=[YelpBusiness(business_id=b) for b in yelp_sandbox.BUSINESS_IDS],
    )
    return Config(platforms=PlatformsConfig(trustpilot=trustpilot, yelp=yelp))


@pytest.fixture
async def opened(tmp_path: Path) -> AsyncIterator[tuple[Journal, AsyncJournal]]:
    journal = Journal.open(tmp_path / "journal.sqlite3", instance="full-1")
    async with trio.open_nursery() as nursery:
        writer = AsyncJournal(journal)
        await nursery.start(writer.run)
        yield journal, writer
        nursery.cancel_scope.cancel()
    journal.close()


async def fill_journal(writer: AsyncJournal) -> None:
    """Cap the file at its size, then use up its free pages, as a full disk would."""

    def cap(tx: Tx) -> None:
        tx.execute("CREATE TABLE filler (data BLOB)")
        pages = tx.execute("PRAGMA page_count").fetchone()[0]
        tx.execute(f"PRAGMA max_page_count = {pages}")

    await writer.transaction(cap)
    # Large rows first, then small ones for the space left in partly used pages.
    for size in (4096, 512, 64, 1):
        await fill_with_rows(writer, size)


async def fill_with_rows(writer: AsyncJournal, size: int) -> None:
    # Bounded: even a 1 GiB file would be full after 262,144 rows of 4 KiB.
    for _ in range(262_144):
        try:
            await writer.transaction(
                lambda tx: tx.execute("INSERT INTO filler VALUES (zeroblob(?))", (size,))
            )
        except JournalError as error:
            assert disk_full(error), error
            return
    pytest.fail("the capped journal never reported SQLITE_FULL")


def stored_count(path: Path, platform: str) -> int:
    with sqlite3.connect(path) as connection:
        return len(load_reviews(connection, platform))


async def wait_until(condition: Callable[[], bool], *, seconds: float) -> None:
    with trio.fail_after(seconds):
        while not condition():
            await trio.sleep(0.1)


# Real time, because the journal writes in a worker thread, and a virtual
# clock would jump past every wait while that thread runs.  The limits are
# generous for a loaded machine; the waits end as soon as the state is reached.
async def test_full_journal_waits_then_recovers(
    opened: tuple[Journal, AsyncJournal],
    tmp_path: Path,
    nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _journal, writer = opened
    journal_path = tmp_path / "journal.sqlite3"
    base_url = await nursery.start(serve_sandbox, SandboxOptions(seed=6, script_seconds=0))
    monitor = PlatformHealthMonitor()
    actors = [
        ListingActor(
            writer,
            source,
            sync_interval=3600.0,
            breaker=breaker,
            lease_seconds=30.0,
            monitor=monitor,
        )
        for source, _, breaker in build_sources(config_for(base_url)).values()
    ]
    await fill_journal(writer)

    trustpilot, yelp = actors
    context = ChildContext("test")
    caplog.set_level(logging.INFO)
    async with trio.open_nursery() as actor_nursery:
        for actor in actors:
            actor_nursery.start_soon(actor.start, context)
        # Trustpilot's 60 reviews do not fit; Yelp's 6 excerpts may still fit.
        await wait_until(lambda: trustpilot.health == JOURNAL_FULL, seconds=60.0)
        await wait_until(
            lambda: yelp.statistics().jobs_succeeded > 0 or yelp.health == JOURNAL_FULL,
            seconds=60.0,
        )
        state_while_full = monitor.state_of("trustpilot")
        reviews_while_full = stored_count(journal_path, "trustpilot")

        await writer.transaction(lambda tx: tx.execute("PRAGMA max_page_count = 1073741823"))
        await wait_until(lambda: all(actor.health == "healthy" for actor in actors), seconds=120.0)
        context.stop_requested.set()

    # The actors waited instead of crashing: the nursery above saw no error.
    assert state_while_full in (HealthState.DEGRADED, HealthState.DOWN)
    assert reviews_while_full == 0
    events = [(record.msg, getattr(record, "actor", "")) for record in caplog.records]
    # One error line per actor and episode, however often it retried.
    assert events.count(("actor.journal_full", "trustpilot")) == 1
    assert events.count(("actor.journal_writable", "trustpilot")) == 1
    assert stored_count(journal_path, "trustpilot") > 0
    assert stored_count(journal_path, "yelp") > 0
