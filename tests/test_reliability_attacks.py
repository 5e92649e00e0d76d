"""Faults aimed at Plaudit's reliability guards, each checked for the promised outcome.

The platform faults run a real ``plaudit run`` process against the sandbox,
with one platform's ``api_base`` pointed at a loopback proxy in this file
that forwards to the sandbox or misbehaves on request.  Leases, wall-clock
steps, a full journal, resumed Google listings and oversized bodies are
attacked in process.  Everything listens on 127.0.0.1 and is started by the
test.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, final

import httpx
import msgspec
import pytest
import trio

from plaudit.actors import google as google_actors
from plaudit.actors.base import JOURNAL_FULL, Actor, Effects
from plaudit.actors.google import GoogleActor
from plaudit.config import load_config, resolve_paths
from plaudit.config.model import FacebookConfig, GoogleConfig, RetryConfig
from plaudit.connectors.facebook import facebook_client
from plaudit.connectors.google import GoogleClient
from plaudit.daemon import app as daemon_app
from plaudit.daemon.supervisor import ChildContext
from plaudit.errors import PlatformError
from plaudit.journal import AsyncJournal, Job, Journal, Tx
from plaudit.reliability.clock_steps import ClockStepWatch, sweep_leases
from plaudit.reliability.resume import listing_cursor
from plaudit.reviews.replies import REPLY_KIND, ReplyRequest, plan_reply, reply_job
from plaudit.sandbox import SandboxOptions, serve_sandbox
from plaudit.sandbox import app as google_sandbox
from tests.support import DaemonDirs, ctl, open_daemon, query, start_sandbox, stop_daemon, wait_for
from tests.test_google_resume import (
    LOCATION,
    PROFILE,
    PageRecorder,
    google_actor,
    run_sync,
    sandbox_review_ids,
    stored_cursor,
    stored_reviews,
)

# Header bytes read from one proxied request before the proxy gives up on it.
MAX_REQUEST_HEAD = 65536


class FaultProxy:
    """A loopback HTTP/1.1 server that forwards GET requests, or responds with a fault.

    ``fault`` is one of "none", "garbage" (200 with a body that is not JSON),
    "hang" (headers and part of the body, then nothing), "redirect" (302 to
    the same URL) and "trickle" (one body byte every half second).
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.fault = "none"
        self.requests = 0
        self.faulted = 0
        self.url = ""

    async def serve(self, *, task_status: trio.TaskStatus[str]) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, self._handle, listeners)
            task_status.started(self.url)

    async def _handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            head = await read_head(stream)
            if head is None:
                return
            method, target, headers = head
            self.requests += 1
            fault = self.fault
            if fault != "none":
                self.faulted += 1
            # The daemon hangs up on a faulty response once its timeout ends.
            with trio.move_on_after(120), contextlib.suppress(trio.BrokenResourceError):
                await self._answer(stream, fault, method, target, headers)

    async def _answer(
        self,
        stream: trio.SocketStream,
        fault: str,
        method: str,
        target: str,
        headers: dict[str, str],
    ) -> None:
        if fault == "garbage":
            await send_response(stream, 200, b"<html>\x00\xff not json", "application/json")
        elif fault == "redirect":
            head = f"HTTP/1.1 302 Found\r\nLocation: {self.url}{target}\r\nContent-Length: 0\r\n"
            await stream.send_all((head + "Connection: close\r\n\r\n").encode())
        elif fault == "hang":
            head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n"
            await stream.send_all((head + "\r\n").encode() + b'{"reviews": [')
            await trio.sleep_forever()
        elif fault == "trickle":
            head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n"
            await stream.send_all((head + "\r\n").encode())
            for _ in range(5000):
                await stream.send_all(b" ")
                await trio.sleep(0.5)
        else:
            await self._forward(stream, method, target, headers)

    async def _forward(
        self, stream: trio.SocketStream, method: str, target: str, headers: dict[str, str]
    ) -> None:
        forwarded = {k: v for k, v in headers.items() if k in ("authorization", "content-type")}
        try:
            async with httpx.AsyncClient(timeout=30.0) as client:
                response = await client.request(method, self.upstream + target, headers=forwarded)
        except httpx.HTTPError as error:
            # A real proxy reports a slow or failed upstream to its client, so the
            # daemon handles it and the proxy and the test go on.
            body = f'{{"error": "upstream failed: {type(error).__name__}"}}'.encode()
            await send_response(stream, 502, body, "application/json")
            return
        content_type = response.headers.get("content-type", "application/json")
        await send_response(stream, response.status_code, response.content, content_type)


async def read_head(stream: trio.SocketStream) -> tuple[str, str, dict[str, str]] | None:
    data = b""
    with trio.move_on_after(10):
        while b"\r\n\r\n" not in data and len(data) < MAX_REQUEST_HEAD:
            chunk = await stream.receive_some(4096)
            if not chunk:
                return None
            data += chunk
    if b"\r\n\r\n" not in data:
        return None
    lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return method, target, headers


async def send_response(
    stream: trio.SocketStream, status: int, body: bytes, content_type: str
) -> None:
    head = (
        f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    await stream.send_all(head.encode() + body)


# The platform behind the proxy, the path of its API base, and the other
# platform that must keep syncing meanwhile.
PROXIED = {"google": ("google/v4", "facebook"), "facebook": ("facebook/v19.0", "google")}


def fast_guards(platform: str) -> str:
    """Return config tables with short retries and breaker intervals for ``platform``.

    With them a fault shows, and clears, within seconds.
    """
    return f"""
[platforms.{platform}.retry]
max_attempts = 2
attempt_timeout = 4.0
deadline = 8.0
backoff_max = 1.0

[platforms.{platform}.breaker]
open_initial = 2.0
open_max = 4.0
"""


def health_of(dirs: DaemonDirs, platform: str) -> list[str]:
    """Return the states that ``plaudit ctl health --json`` reports for the platform."""
    result = ctl(dirs, "health", "--json")
    if result.returncode != 0:
        return []
    document = json.loads(result.stdout)
    return [
        str(item["state"])
        for item in document.get("subjects", document.get("platforms", []))
        if item.get("platform") == platform
    ]


async def wait_for_health(
    dirs: DaemonDirs, platform: str, accept: Callable[[list[str]], bool], *, what: str
) -> list[str]:
    """Poll ``ctl health`` until ``accept`` takes the platform's states, for up to 45 s.

    ``ctl`` runs in a thread because on the event loop it would stop the sandbox
    and the proxy in this process from serving the daemon while it waits.
    """
    states: list[str] = []
    with trio.move_on_after(45):
        while True:
            states = await trio.to_thread.run_sync(health_of, dirs, platform)
            if accept(states):
                return states
            await trio.sleep(0.5)
    pytest.fail(f"timed out after 45 s waiting for {what}; last states: {states}")


def succeeded_syncs(dirs: DaemonDirs, owner: str) -> int:
    rows = query(
        dirs.journal,
        "SELECT count(*) FROM jobs WHERE owner = ? AND kind LIKE '%.sync' AND state = 'succeeded'",
        (owner,),
    )
    return int(rows[0][0]) if rows else 0


async def start_proxied_daemon(
    nursery: trio.Nursery, tmp_path: Path, platform: str
) -> tuple[DaemonDirs, FaultProxy, trio.Process]:
    """Start the sandbox, a proxy in front of ``platform``'s API and a daemon using both."""
    dirs = DaemonDirs(tmp_path)
    base_url = await start_sandbox(nursery, seed=7, script_seconds=0)
    proxy = FaultProxy(base_url)
    proxy_url = await nursery.start(proxy.serve)
    dirs.write_config(base_url, sync_interval=1.0, extra=fast_guards(platform))
    config = dirs.config.read_text(encoding="utf-8")
    path = PROXIED[platform][0]
    dirs.config.write_text(
        config.replace(f'api_base = "{base_url}/{path}"', f'api_base = "{proxy_url}/{path}"', 1),
        encoding="utf-8",
    )
    process = await open_daemon(dirs)
    # Real time on a loaded machine: the first sync may take a while.
    await wait_for(
        lambda: succeeded_syncs(dirs, platform) > 0, timeout=60, what=f"a {platform} sync"
    )
    return dirs, proxy, process


@pytest.mark.slow
@pytest.mark.parametrize("platform", sorted(PROXIED))
@pytest.mark.parametrize("fault", ["garbage", "hang", "redirect", "trickle"])
async def test_platform_fault_marked_and_recovers(
    tmp_path: Path, platform: str, fault: str
) -> None:
    """A misbehaving platform is marked unhealthy, another keeps syncing, and it recovers."""
    other = PROXIED[platform][1]
    async with trio.open_nursery() as nursery:
        dirs, proxy, process = await start_proxied_daemon(nursery, tmp_path, platform)
        proxy.fault = fault
        other_before = succeeded_syncs(dirs, other)

        states = await wait_for_health(
            dirs,
            platform,
            lambda states: any(state != "healthy" for state in states),
            what=f"a {platform} health state other than healthy under the {fault} fault",
        )
        assert proxy.faulted > 0
        assert set(states) - {"healthy"} <= {"degraded", "down"}
        # The other platform's next sync may finish after the health change.
        await wait_for(
            lambda: succeeded_syncs(dirs, other) > other_before,
            timeout=60,
            what=f"a {other} sync while {platform} has the {fault} fault",
        )
        log = dirs.log.read_text(encoding="utf-8", errors="replace").splitlines()
        changes = [line for line in log if "platform.health_changed" in line]
        assert [line for line in changes if platform in line]

        proxy.fault = "none"
        await wait_for_health(
            dirs,
            platform,
            lambda states: set(states) == {"healthy"},
            what=f"{platform} healthy again after the {fault} fault was removed",
        )
        assert await stop_daemon(process) == 0
        nursery.cancel_scope.cancel()


# Leases and the wall clock, in process.

# A Unix time in 2026 where the wall clock of the clock-jump tests starts.
WALL_START = 1_790_000_000.0


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[AsyncJournal]:
    opened = Journal.open(tmp_path / "journal.sqlite3", instance="attacks-1")
    async with trio.open_nursery() as nursery:
        async_journal = AsyncJournal(opened)
        await nursery.start(async_journal.run)
        yield async_journal
        nursery.cancel_scope.cancel()
    opened.close()


@final
class SlowActor(Actor):
    """An actor that takes ``seconds`` for each job and counts the jobs it runs at once."""

    kinds: Sequence[str] = ("attack.slow",)

    def __init__(self, journal: AsyncJournal, *, lease_seconds: float, seconds: float) -> None:
        super().__init__("slow", journal, lease_seconds=lease_seconds, poll_interval=0.2)
        self.seconds = seconds
        self.entered = 0
        self.running = 0
        self.max_running = 0

    async def handle(self, job: Job) -> Effects | None:
        self.entered += 1
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await trio.sleep(self.seconds)
        finally:
            self.running -= 1
        return None


async def sweep_periodically(journal: AsyncJournal, *, interval: float) -> None:
    """Recover expired leases every ``interval`` seconds, as the daemon's housekeeping does."""
    watch = ClockStepWatch(wall=time.time, monotonic=time.monotonic)
    while True:
        await sweep_leases(journal, watch)
        await trio.sleep(interval)


async def job_state(journal: AsyncJournal, key: str) -> str:
    rows = await journal.read(lambda j: j.query("SELECT state FROM jobs WHERE key = ?", [key]))
    return str(rows[0][0]) if rows else ""


@pytest.mark.slow
async def test_job_longer_than_lease_runs_once(journal: AsyncJournal) -> None:
    """A job that runs for three leases is neither taken back nor run a second time."""
    # Real time, because the journal's worker thread defeats trio's autojump
    # clock.  A renewal may come two seconds late before the lease expires.
    actor = SlowActor(journal, lease_seconds=3.0, seconds=9.0)
    await journal.enqueue(kind="attack.slow", owner="slow", key="slow-1", payload={})

    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: sweep_periodically(journal, interval=0.25))
        context = ChildContext("slow")
        nursery.start_soon(actor.start, context)
        with trio.move_on_after(60):
            while await job_state(journal, "slow-1") != "succeeded":
                await trio.sleep(0.25)
        context.stop_requested.set()
        nursery.cancel_scope.cancel()

    assert await job_state(journal, "slow-1") == "succeeded"
    assert actor.entered == 1
    assert actor.max_running == 1


@pytest.fixture
async def sandbox_url(nursery: trio.Nursery) -> str:
    url: str = await nursery.start(serve_sandbox, SandboxOptions(seed=5, script_seconds=0))
    return url


async def run_due_syncs(journal: AsyncJournal, actor: GoogleActor) -> int:
    """Claim the due Google jobs and run them as the actor's loop does; return how many ran."""
    jobs = await journal.claim("google", kinds=actor.kinds, limit=4)
    for job in jobs:
        await journal.complete(job.id, await actor.handle(job))
    return len(jobs)


async def test_clock_stepped_back_keeps_syncing(
    tmp_path: Path, sandbox_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Google syncs go on after the wall clock steps back two hours."""
    wall = [WALL_START]
    monkeypatch.setattr(google_actors, "time", SimpleNamespace(time=lambda: wall[0]))
    opened = Journal.open(tmp_path / "journal.sqlite3", instance="attacks-2", clock=lambda: wall[0])
    async with trio.open_nursery() as nursery:
        journal = AsyncJournal(opened)
        await nursery.start(journal.run)
        actor = google_actor(journal, sandbox_url, PageRecorder())
        interval = actor.config.sync_interval
        await actor.on_start()

        # Three hours of syncs on schedule, one a slot.
        before = 0
        for _ in range(36):
            before += await run_due_syncs(journal, actor)
            wall[0] += interval
            await actor.on_idle()

        # The clock steps back two hours, as a large NTP correction does.
        wall[0] -= 2 * 3600
        after = 0
        for _ in range(3):
            await actor.on_idle()
            after += await run_due_syncs(journal, actor)
            wall[0] += interval
        nursery.cancel_scope.cancel()
    opened.close()

    assert before >= 35
    assert after > 0


# A full disk under the journal, provoked with SQLite's page limit.


@final
class EventActor(Actor):
    """Records one event of about 64 KiB a job, enough to need new journal pages."""

    kinds: Sequence[str] = ("attack.event",)

    def __init__(self, journal: AsyncJournal) -> None:
        super().__init__("events", journal, lease_seconds=2.0, poll_interval=0.1)

    async def handle(self, job: Job) -> Effects | None:
        def record(tx: Tx) -> None:
            tx.emit(
                type="attack.recorded",
                key=f"attack.recorded:{job.key}",
                platform="attack",
                subject=job.key,
                payload={"filler": "x" * 65536},
            )

        return record


def set_page_limit(journal: Journal, pages: int | None) -> int:
    """Set the journal connection's page limit (None: the current page count plus 2)."""
    if pages is None:
        pages = int(journal.query("PRAGMA page_count")[0][0]) + 2
    return int(journal.query(f"PRAGMA max_page_count = {pages}")[0][0])


async def test_full_disk_keeps_jobs_and_resumes(
    journal: AsyncJournal, caplog: pytest.LogCaptureFixture
) -> None:
    """A full journal marks the actor journal-full, loses no job, and resumes once space returns."""
    actor = EventActor(journal)
    await journal.enqueue(kind="attack.event", owner="events", key="first", payload={})
    await journal.read(lambda j: set_page_limit(j, None))
    await journal.enqueue(kind="attack.event", owner="events", key="second", payload={})

    async with trio.open_nursery() as nursery:
        # The failed completion leaves its job running until the lease expires.
        nursery.start_soon(lambda: sweep_periodically(journal, interval=0.25))
        context = ChildContext("events")
        with caplog.at_level(logging.INFO):
            nursery.start_soon(actor.start, context)
            with trio.move_on_after(30):
                while actor.health != JOURNAL_FULL:
                    await trio.sleep(0.1)
            health_while_full = actor.health
            states_while_full = {
                await job_state(journal, "first"),
                await job_state(journal, "second"),
            }

            # Space returns: 1,000,000 pages of 4 KiB is far more than the test writes.
            await journal.read(lambda j: set_page_limit(j, 1_000_000))
            with trio.move_on_after(60):
                while {await job_state(journal, "first"), await job_state(journal, "second")} != {
                    "succeeded"
                }:
                    await trio.sleep(0.2)
        context.stop_requested.set()
        nursery.cancel_scope.cancel()

    assert health_while_full == JOURNAL_FULL
    assert "succeeded" not in states_while_full
    assert any(record.message == "actor.journal_full" for record in caplog.records)
    assert await job_state(journal, "first") == "succeeded"
    assert await job_state(journal, "second") == "succeeded"
    assert actor.health == "healthy"
    events = await journal.read(
        lambda j: j.query("SELECT subject, count(*) FROM events GROUP BY subject ORDER BY subject")
    )
    assert events == [("first", 1), ("second", 1)]


# Google full listings that resume at a stored page token.


async def test_reply_during_paused_listing_kept(journal: AsyncJournal, sandbox_url: str) -> None:
    """A reply posted while a listing waits to resume is kept, and no review is announced twice."""
    transport = PageRecorder(fail_at=3)
    actor = google_actor(journal, sandbox_url, transport)
    with pytest.raises(PlatformError):
        await run_sync(journal, actor, slot=1)
    assert await stored_cursor(journal, listing_cursor(PROFILE))

    # Reply to the oldest review stored so far, from the second page.
    stored = sorted(await stored_reviews(journal), key=lambda review: review.updated_at)
    request = plan_reply(stored[0], "Thank you both, it was a joy!")
    assert isinstance(request, ReplyRequest)
    await journal.enqueue(**reply_job(request))
    (reply,) = await journal.claim("google", kinds=[REPLY_KIND])
    await journal.complete(reply.id, await actor.handle(reply))

    transport.fail_at = None
    await run_sync(journal, actor, slot=2)
    await run_sync(journal, actor, slot=3)

    after = {review.review_id: review for review in await stored_reviews(journal)}
    assert set(after) == await sandbox_review_ids(sandbox_url)
    assert after[stored[0].review_id].reply_text == "Thank you both, it was a joy!"
    announced = await journal.read(
        lambda j: j.query(
            "SELECT type, subject, count(*) FROM events WHERE type IN "
            "('review.created', 'review.replied', 'review.deleted') GROUP BY type, subject"
        )
    )
    assert {count for _type, _subject, count in announced} == {1}
    assert [subject for kind, subject, _ in announced if kind == "review.deleted"] == []
    assert await stored_cursor(journal, listing_cursor(PROFILE)) == ""


def test_uptime_survives_clock_step_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's uptime counts elapsed time, whatever the wall clock does."""
    wall = [WALL_START]
    elapsed = [100.0]
    fake_time = SimpleNamespace(time=lambda: wall[0], monotonic=lambda: elapsed[0])
    monkeypatch.setattr(daemon_app, "time", fake_time)
    config_path = tmp_path / "plaudit.toml"
    config_path.write_text("")
    config = load_config(config_path)
    paths = resolve_paths(config, state_dir=str(tmp_path / "state"), runtime_dir=str(tmp_path))
    daemon = daemon_app.Daemon(str(config_path), config, paths)

    wall[0] -= 2 * 3600
    elapsed[0] += 5.0

    assert daemon.status()["uptime_seconds"] == 5.0


# A Facebook reply whose daemon is killed while the comment POST is in flight.


async def sandbox_json(base_url: str, path: str, changes: dict[str, Any] | None = None) -> Any:
    async with httpx.AsyncClient(timeout=10.0) as client:
        if changes is None:
            response = await client.get(base_url + path)
        else:
            response = await client.post(base_url + path, json=changes)
    response.raise_for_status()
    return response.json()


def unreplied_facebook_review(dirs: DaemonDirs) -> str:
    rows = query(
        dirs.journal,
        "SELECT review_id FROM reviews WHERE platform = 'facebook' AND reply_text IS NULL "
        "AND deleted_at IS NULL AND review_id NOT LIKE 'derived-%' ORDER BY review_id LIMIT 1",
    )
    return str(rows[0][0]) if rows else ""


async def arrived_requests(base_url: str, route: str) -> int:
    """Return how many requests for the sandbox ``route`` have arrived, finished or not."""
    statistics = await sandbox_json(base_url, "/_sandbox/stats")
    return int(statistics["requests"].get(route, 0))


async def facebook_comment_posts(base_url: str) -> dict[str, int]:
    """Return the number of comment POSTs the Facebook stand-in has completed, by story."""
    posts: dict[str, int] = (await sandbox_json(base_url, "/_sandbox/facebook/requests"))[
        "comments"
    ]
    return posts


def reply_job_states(dirs: DaemonDirs) -> list[str]:
    rows = query(dirs.journal, "SELECT state FROM jobs WHERE kind = 'review.reply'")
    return [str(row[0]) for row in rows]


@pytest.mark.slow
async def test_facebook_reply_killed_mid_post_once(tmp_path: Path) -> None:
    """SIGKILL while the comment POST is in flight; the restarted daemon posts no second one."""
    dirs = DaemonDirs(tmp_path)
    async with trio.open_nursery() as nursery:
        base_url = await start_sandbox(nursery, seed=7, script_seconds=0)
        dirs.write_config(base_url, sync_interval=1.0)
        process = await open_daemon(dirs)
        review_id = await wait_for(
            lambda: unreplied_facebook_review(dirs), timeout=60, what="a stored Facebook rating"
        )
        # The sandbox creates the comment 3 s after the POST arrives, well within
        # the 5 s request timeout, so the daemon is killed before any response.
        await sandbox_json(
            base_url, "/_sandbox/facebook/faults", {"latency": 3.0, "routes": ["fb.comment"]}
        )
        result = await trio.to_thread.run_sync(
            ctl, dirs, "review", "reply", f"facebook:{review_id}", "--text", "Thank you!"
        )
        assert result.returncode == 0, result.stderr
        # The sandbox counts a request when it arrives, before the 3 s latency.
        with trio.fail_after(60):
            while await arrived_requests(base_url, "fb.comment") < 1:
                await trio.sleep(0.05)
        assert reply_job_states(dirs) == ["running"]
        process.kill()
        await process.wait()

        # The sandbox finishes the POST it received and creates the comment.
        with trio.fail_after(60):
            while not (posted_while_down := await facebook_comment_posts(base_url)):
                await trio.sleep(0.1)
        await sandbox_json(base_url, "/_sandbox/facebook/faults", {"latency": 0.0, "routes": []})

        process = await open_daemon(dirs)
        await wait_for(
            lambda: reply_job_states(dirs) == ["succeeded"], timeout=60, what="the reply posted"
        )
        posted = (await sandbox_json(base_url, "/_sandbox/facebook/requests"))["comments"]
        assert await stop_daemon(process) == 0
        nursery.cancel_scope.cancel()

    assert list(posted_while_down.values()) == [1]
    assert posted == posted_while_down
    replied = query(
        dirs.journal,
        "SELECT count(*) FROM events WHERE type = 'review.replied' AND subject = ?",
        (review_id,),
    )
    assert replied == [(1,)]


# A platform that responds with a body far larger than any page of reviews.

# The body the flooding server declares and sends at most: 64 MiB.
FLOOD_BYTES = 64 * 1024 * 1024


class FloodServer:
    """A loopback HTTP server that responds to every request with ``FLOOD_BYTES`` of spaces."""

    def __init__(self) -> None:
        self.sent = 0

    async def serve(self, *, task_status: trio.TaskStatus[str]) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, self._handle, listeners)
            task_status.started(f"http://127.0.0.1:{port}")

    async def _handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            if await read_head(stream) is None:
                return
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {FLOOD_BYTES}\r\nConnection: close\r\n\r\n"
            )
            chunk = b" " * 65536
            with contextlib.suppress(trio.BrokenResourceError):
                await stream.send_all(head.encode())
                for _ in range(FLOOD_BYTES // len(chunk)):
                    await stream.send_all(chunk)
                    self.sent += len(chunk)


async def test_oversized_body_read_bounded(nursery: trio.Nursery, sandbox_url: str) -> None:
    """A 64 MiB response is cut off long before its end and fails the call."""
    flood = FloodServer()
    flood_url = await nursery.start(flood.serve)
    config = GoogleConfig(
        api_base=f"{flood_url}/google/v4",
        token_url=f"{sandbox_url}/google/oauth2/token",
        client_id=google_sandbox.SANDBOX_CLIENT_ID,
        client_secret=google_sandbox.SANDBOX_CLIENT_SECRET,
        refresh_token=google_sandbox.SANDBOX_REFRESH_TOKEN,
        retry=RetryConfig(max_attempts=1, attempt_timeout=60.0, deadline=60.0),
        request_timeout=30.0,
        locations=[LOCATION],
    )
    client = GoogleClient(
        config, client_secret=config.client_secret, refresh_token=config.refresh_token
    )
    try:
        with pytest.raises(PlatformError):
            await client.list_reviews_page(LOCATION.account, LOCATION.location)
    finally:
        await client.aclose()

    # A page of 50 reviews is tens of kilobytes, and 16 MiB allows for socket buffers.
    assert flood.sent < 16 * 1024 * 1024


async def test_oversized_graph_body_bounded(nursery: trio.Nursery) -> None:
    """The shared API client cuts a 64 MiB Graph response off and fails the call."""
    flood = FloodServer()
    flood_url = await nursery.start(flood.serve)
    config = FacebookConfig(
        api_base=f"{flood_url}/facebook/v19.0",
        request_timeout=30.0,
        retry=RetryConfig(max_attempts=1, attempt_timeout=60.0, deadline=60.0),
    )
    client = facebook_client(config, page_tokens={"301001": "sandbox-facebook-page-token"})
    try:
        with pytest.raises(PlatformError):
            await client.list_ratings_page("301001")
    finally:
        await client.aclose()

    assert flood.sent < 16 * 1024 * 1024


@pytest.mark.slow
async def test_clock_step_forward_runs_job_once(tmp_path: Path) -> None:
    """The wall clock steps two hours forward mid-job; the job still runs exactly once."""
    offset = [0.0]

    def wall() -> float:
        return time.time() + offset[0]

    opened = Journal.open(tmp_path / "journal.sqlite3", instance="attacks-3", clock=wall)
    # The daemon's housekeeping sweep, with the clocks it uses.
    watch = ClockStepWatch(wall=wall, monotonic=time.monotonic)
    watch.forward_step()
    async with trio.open_nursery() as nursery:
        journal = AsyncJournal(opened)
        await nursery.start(journal.run)
        actor = SlowActor(journal, lease_seconds=3.0, seconds=2.0)
        await journal.enqueue(kind="attack.slow", owner="slow", key="slow-1", payload={})
        context = ChildContext("slow")
        nursery.start_soon(actor.start, context)
        await wait_for(lambda: actor.running == 1, timeout=30, interval=0.05, what="the job")

        offset[0] += 2 * 3600
        assert await sweep_leases(journal, watch) == 0
        with trio.move_on_after(30):
            while await job_state(journal, "slow-1") != "succeeded":
                await trio.sleep(0.1)
        context.stop_requested.set()
        nursery.cancel_scope.cancel()
    opened.close()

    assert actor.entered == 1


class PoisonedPage(PageRecorder):
    """Records listing requests like PageRecorder; every request for ``poison`` fails."""

    def __init__(self) -> None:
        super().__init__()
        self.poison: str | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        token = request.url.params.get("pageToken", "")
        if request.url.path.endswith("/reviews") and self.poison and token == self.poison:
            self.tokens.append(token)
            raise httpx.ConnectError("connection refused by the test", request=request)
        return await super().handle_async_request(request)


async def test_failing_resume_page_still_reads_first(
    journal: AsyncJournal, sandbox_url: str
) -> None:
    """While one page keeps failing, later syncs still read the first page of new reviews."""
    transport = PoisonedPage()
    transport.fail_at = 3
    actor = google_actor(journal, sandbox_url, transport)
    with pytest.raises(PlatformError):
        await run_sync(journal, actor, slot=1)
    transport.fail_at = None
    transport.poison = transport.tokens[2]
    failed_first = len(transport.tokens)

    for slot in range(2, 7):
        with contextlib.suppress(PlatformError):
            await run_sync(journal, actor, slot=slot)

    later = transport.tokens[failed_first:]
    assert later
    assert "" in later


async def test_removed_location_listing_ends_quietly(
    journal: AsyncJournal, sandbox_url: str
) -> None:
    """A location removed mid-listing finishes its listing, schedules nothing, deletes nothing."""
    transport = PageRecorder(fail_at=3)
    actor = google_actor(journal, sandbox_url, transport)
    with pytest.raises(PlatformError):
        await run_sync(journal, actor, slot=1)
    transport.fail_at = None

    actor.reconfigure(msgspec.structs.replace(actor.config, locations=[]))
    await run_sync(journal, actor, slot=2)

    scheduled = await journal.read(
        lambda j: j.query(
            "SELECT count(*) FROM jobs WHERE kind = 'google.sync' AND state = 'ready'"
        )
    )
    deleted = await journal.read(
        lambda j: j.query("SELECT count(*) FROM events WHERE type = 'review.deleted'")
    )
    assert scheduled == [(0,)]
    assert deleted == [(0,)]
    assert await stored_cursor(journal, listing_cursor(PROFILE)) == ""
