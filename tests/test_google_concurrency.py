"""The Google actor lists the locations of one claimed batch concurrently."""

from __future__ import annotations

import collections
import re
import sqlite3
from pathlib import Path

import httpx
import trio

from plaudit.actors.google import GoogleActor
from plaudit.config.model import GoogleConfig, GoogleLocation
from plaudit.connectors.google import GoogleClient
from plaudit.daemon.children import ChildContext
from plaudit.journal import AsyncJournal, Journal
from plaudit.sandbox import SandboxOptions, serve_sandbox
from plaudit.sandbox import app as google_sandbox

_LOCATION = re.compile(r"/(locations/\d+)/reviews")


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts the review listings in flight, in all and per location."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.in_flight = 0
        self.max_in_flight = 0
        self.per_location: collections.Counter[str] = collections.Counter()
        self.max_per_location = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        match = _LOCATION.search(request.url.path)
        if match is None:
            return await self._inner.handle_async_request(request)
        location = match[1]
        self.in_flight += 1
        self.per_location[location] += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.max_per_location = max(self.max_per_location, self.per_location[location])
        try:
            response = await self._inner.handle_async_request(request)
            await response.aread()
            return response
        finally:
            self.in_flight -= 1
            self.per_location[location] -= 1

    async def aclose(self) -> None:
        await self._inner.aclose()


def config_for(base_url: str, locations: int) -> GoogleConfig:
    return GoogleConfig(
        api_base=f"{base_url}/google/v4",
        token_url=f"{base_url}/google/oauth2/token",
        client_id=google_sandbox.SANDBOX_CLIENT_ID,
        client_secret=google_sandbox.SANDBOX_CLIENT_SECRET,
        refresh_token=google_sandbox.SANDBOX_REFRESH_TOKEN,
        request_timeout=10.0,
        # Long slots: the test's jobs are the ones it enqueues.
        sync_interval=3600.0,
        locations=[
            GoogleLocation(account="accounts/1001", location=f"locations/{2001 + index}")
            for index in range(locations)
        ],
    )


def stored_profiles(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT profile, count(*) FROM reviews WHERE platform = 'google' GROUP BY profile"
        ).fetchall()
    return {str(profile): int(count) for profile, count in rows}


async def run_actor(
    base_url: str, path: Path, transport: CountingTransport, *, locations: int, extra_jobs: int
) -> None:
    """Start the actor, add ``extra_jobs`` jobs for location 2001, and let everything run."""
    opened = Journal.open(path, instance="concurrency-1")
    context = ChildContext("test")

    def client(settings: GoogleConfig) -> GoogleClient:
        return GoogleClient(
            settings,
            client_secret=settings.client_secret,
            refresh_token=settings.refresh_token,
            transport=transport,
        )

    async with trio.open_nursery() as nursery:
        writer = AsyncJournal(opened)
        await nursery.start(writer.run)
        for number in range(extra_jobs):
            await writer.enqueue(
                kind="google.sync",
                owner="google",
                key=f"google.sync:extra:{number}",
                payload={"account": "accounts/1001", "location": "locations/2001"},
            )
        actor = GoogleActor(writer, config_for(base_url, locations), client, lease_seconds=120.0)
        nursery.start_soon(actor.start, context)
        # Real time: the journal works in threads.  Generous, for a loaded machine.
        with trio.move_on_after(120.0):
            while succeeded_jobs(path) < locations + extra_jobs:
                await trio.sleep(0.2)
        context.stop_requested.set()
        actor.wake()
        await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
    opened.close()


def succeeded_jobs(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        row = connection.execute(
            "SELECT count(*) FROM jobs WHERE kind = 'google.sync' AND state = 'succeeded'"
        ).fetchone()
    return int(row[0])


async def test_batch_locations_listed_concurrently(nursery: trio.Nursery, tmp_path: Path) -> None:
    # Half a second a response, so listings overlap when they run at once.
    options = SandboxOptions(seed=5, script_seconds=0, extra_locations=4, latency=0.5)
    base_url: str = await nursery.start(serve_sandbox, options)
    transport = CountingTransport()
    path = tmp_path / "journal.sqlite3"
    await run_actor(base_url, path, transport, locations=6, extra_jobs=0)

    # A batch is four jobs, so four of the six locations are listed at once.
    assert transport.max_in_flight == 4
    assert transport.max_per_location == 1
    stored = stored_profiles(path)
    assert sorted(stored) == [f"accounts/1001/locations/{2001 + index}" for index in range(6)]
    assert stored["accounts/1001/locations/2001"] == 120
    assert stored["accounts/1001/locations/2002"] == 40


async def test_jobs_of_one_location_run_in_turn(nursery: trio.Nursery, tmp_path: Path) -> None:
    options = SandboxOptions(seed=5, script_seconds=0, latency=0.5)
    base_url: str = await nursery.start(serve_sandbox, options)
    transport = CountingTransport()
    path = tmp_path / "journal.sqlite3"
    # Three more jobs of location 2001 beside the two scheduled ones.
    await run_actor(base_url, path, transport, locations=2, extra_jobs=3)

    assert transport.max_per_location == 1
    assert transport.max_in_flight == 2
    with sqlite3.connect(path) as connection:
        states = connection.execute(
            "SELECT state, count(*) FROM jobs WHERE kind = 'google.sync' GROUP BY state"
        ).fetchall()
    # The two current slots' jobs and the three extra ones; the next slots wait.
    assert dict(states)["succeeded"] == 5
    assert succeeded_jobs(path) == 5
