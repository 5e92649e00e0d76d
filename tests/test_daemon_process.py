"""Real ``plaudit run`` processes against the real sandbox on loopback.

These run in real time: each waits for a condition with a generous timeout
(stated at the call) rather than sleeping a fixed amount.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import trio

from plaudit.demo import compare, read_journal
from plaudit.reviews.model import Review
from plaudit.sandbox.standin import stand_ins_truth_reviews
from plaudit.sandbox.truth import truth_reviews
from tests.support import (
    DaemonDirs,
    ctl,
    datagram_socket,
    open_daemon,
    query,
    start_sandbox,
    stop_daemon,
    wait_for,
)

pytestmark = pytest.mark.slow


async def fetch_truth(base_url: str) -> list[Review]:
    import httpx

    async with httpx.AsyncClient(timeout=30.0) as client:
        response = await client.get(f"{base_url}/_sandbox/truth")
    document = response.json()
    return truth_reviews(document) + stand_ins_truth_reviews(document)


async def fetch_metrics(address: str) -> str:
    import httpx

    async with httpx.AsyncClient(timeout=30.0) as client:
        response = await client.get(f"http://{address}/metrics")
    response.raise_for_status()
    return response.text


async def differences(dirs: DaemonDirs, base_url: str) -> list[str]:
    if not dirs.journal.exists():
        return ["no journal yet"]
    reviews, _ = read_journal(dirs.journal)
    return [str(item) for item in compare(reviews, await fetch_truth(base_url))]


async def wait_until_agrees(dirs: DaemonDirs, base_url: str, *, timeout: float) -> None:
    remaining: list[str] = []
    with trio.move_on_after(timeout):
        while remaining := await differences(dirs, base_url):
            await trio.sleep(0.25)
        return
    pytest.fail(f"the journal still differs from the truth: {remaining[:5]}")


async def wait_until_script_ends(base_url: str, script_seconds: float) -> None:
    """Wait until the sandbox clock passes ``script_seconds``, so its truth stops changing."""
    import httpx

    with trio.fail_after(60):
        while True:
            async with httpx.AsyncClient(timeout=30.0) as client:
                response = await client.get(f"{base_url}/_sandbox/stats")
            if response.json()["elapsed"] > script_seconds:
                return
            await trio.sleep(0.25)


def running_job_ids(dirs: DaemonDirs) -> list[int]:
    return [row[0] for row in query(dirs.journal, "SELECT id FROM jobs WHERE state = 'running'")]


async def test_sigkill_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """SIGKILL while jobs are claimed, three times; every effect happens exactly once."""
    dirs = DaemonDirs(tmp_path)
    killed_while_running: set[int] = set()
    async with trio.open_nursery() as nursery:
        # Slow responses keep each sync job claimed for about a second.
        base_url = await start_sandbox(nursery, seed=11, script_seconds=6.0, latency=0.15)
        dirs.write_config(base_url, sync_interval=1.0)
        for _ in range(3):
            process = await open_daemon(dirs)
            running = await wait_for(
                lambda: running_job_ids(dirs), timeout=30, interval=0.02, what="a claimed job"
            )
            process.send_signal(signal.SIGKILL)
            assert await process.wait() == -signal.SIGKILL
            killed_while_running.update(running)

        process = await open_daemon(dirs)
        await wait_until_script_ends(base_url, 6.0)
        await wait_until_agrees(dirs, base_url, timeout=60)
        assert await stop_daemon(process) == 0
        truth = await fetch_truth(base_url)
        nursery.cancel_scope.cancel()

    reviews, _ = read_journal(dirs.journal)
    assert compare(reviews, truth) == []
    created = query(
        dirs.journal,
        "SELECT subject, count(*) FROM events WHERE type = 'review.created' GROUP BY subject",
    )
    assert created, "no review.created events were written"
    assert {count for _subject, count in created} == {1}
    assert len(created) == len(truth)
    states = dict(query(dirs.journal, "SELECT id, state FROM jobs"))
    assert killed_while_running
    assert all(states[job_id] == "succeeded" for job_id in killed_while_running)
    assert "running" not in states.values()


def google_listing_cursor(dirs: DaemonDirs) -> str:
    rows = query(
        dirs.journal,
        "SELECT value FROM cursors WHERE owner = 'google' AND name = ?",
        ("listing:accounts/1001/locations/2001",),
    )
    return str(rows[0][0]) if rows else ""


async def test_sigkill_mid_listing_resumes_at_the_page(tmp_path: Path) -> None:
    """SIGKILL while a full Google listing is part-way; the restart resumes at its page."""
    dirs = DaemonDirs(tmp_path)
    async with trio.open_nursery() as nursery:
        # Ten reviews a page at 0.2 s a request: a listing of 120 reviews takes seconds.
        base_url = await start_sandbox(nursery, seed=11, script_seconds=0, latency=0.2)
        dirs.write_config(base_url, sync_interval=30.0)
        config = dirs.config.read_text(encoding="utf-8")
        dirs.config.write_text(
            config.replace(
                "request_timeout = 5.0\n\n[[platforms.google.locations]]",
                "request_timeout = 5.0\npage_size = 10\n\n[[platforms.google.locations]]",
                1,
            ),
            encoding="utf-8",
        )
        process = await open_daemon(dirs)
        token = await wait_for(
            lambda: google_listing_cursor(dirs), timeout=60, interval=0.02, what="a page cursor"
        )
        process.send_signal(signal.SIGKILL)
        assert await process.wait() == -signal.SIGKILL
        stored_before = query(
            dirs.journal, "SELECT count(*) FROM reviews WHERE platform = 'google'"
        )

        process = await open_daemon(dirs)
        await wait_for(
            lambda: "google.listing_resumed" in dirs.log.read_text(), timeout=60, what="a resume"
        )
        await wait_until_agrees(dirs, base_url, timeout=60)
        assert await stop_daemon(process) == 0
        nursery.cancel_scope.cancel()

    assert token
    assert stored_before[0][0] > 0
    created = query(
        dirs.journal,
        "SELECT count(*), count(DISTINCT subject) FROM events WHERE type = 'review.created'",
    )
    # No review was announced twice, although its page may have been read twice.
    assert created[0][0] == created[0][1] > 0
    assert google_listing_cursor(dirs) == ""


async def test_sigterm_drains_and_exits_zero(tmp_path: Path) -> None:
    """SIGTERM mid-sync: the daemon releases or finishes its jobs and exits 0."""
    dirs = DaemonDirs(tmp_path)
    async with trio.open_nursery() as nursery:
        base_url = await start_sandbox(nursery, seed=3, script_seconds=2.0, latency=0.2)
        dirs.write_config(base_url, sync_interval=1.0)
        process = await open_daemon(dirs)
        await wait_for(
            lambda: running_job_ids(dirs), timeout=30, interval=0.02, what="a claimed job"
        )
        process.send_signal(signal.SIGTERM)
        # The config's shutdown_timeout is 10 s, and the rest allows for a loaded machine.
        with trio.fail_after(60):
            exit_code = await process.wait()
        nursery.cancel_scope.cancel()
    assert exit_code == 0
    assert running_job_ids(dirs) == []
    assert "daemon.draining" in dirs.log.read_text()


async def test_notify_socket_receives_lifecycle(tmp_path: Path) -> None:
    """With NOTIFY_SOCKET set, the daemon sends READY, STATUS, WATCHDOG and STOPPING."""
    dirs = DaemonDirs(tmp_path)
    messages: list[str] = []
    with datagram_socket(dirs.runtime / "notify.sock") as sock:

        def received(prefix: str) -> bool:
            while True:
                try:
                    messages.append(sock.recv(4096).decode())
                except BlockingIOError:
                    break
            return any(prefix in message for message in messages)

        async with trio.open_nursery() as nursery:
            base_url = await start_sandbox(nursery, seed=5, script_seconds=1.0)
            dirs.write_config(base_url)
            env = {"NOTIFY_SOCKET": str(dirs.runtime / "notify.sock"), "WATCHDOG_USEC": "1000000"}
            process = await open_daemon(dirs, **env)
            await wait_for(lambda: received("READY=1"), timeout=30, what="READY=1")
            # WatchdogSec of 1 s means a ping at least every 0.5 s.
            await wait_for(lambda: received("WATCHDOG=1"), timeout=30, what="WATCHDOG=1")
            assert await stop_daemon(process) == 0
            await wait_for(lambda: received("STOPPING=1"), timeout=30, what="STOPPING=1")
            nursery.cancel_scope.cancel()
    assert any(message.startswith("STATUS=") or "\nSTATUS=" in message for message in messages)


async def test_ctl_commands_against_daemon(tmp_path: Path) -> None:
    """status, jobs, pause, resume, retry and drain work through the real socket."""
    dirs = DaemonDirs(tmp_path)
    async with trio.open_nursery() as nursery:
        base_url = await start_sandbox(nursery, seed=5, script_seconds=1.0)
        dirs.write_config(base_url)
        process = await open_daemon(dirs)
        await wait_for(dirs.socket.exists, timeout=30, what="the control socket")
        await wait_until_agrees(dirs, base_url, timeout=30)

        status = await trio.to_thread.run_sync(ctl, dirs, "--json", "status")
        assert status.returncode == 0, status.stderr
        document = json.loads(status.stdout)
        assert {actor["name"] for actor in document["actors"]} >= {
            "google",
            "control",
            "housekeeping",
        }
        assert document["journal"]["totals"]["succeeded"] >= 2

        address = document["daemon"]["metrics_address"]
        # Job gauges refresh with housekeeping, every 2 s in this config.
        with trio.fail_after(60):
            while 'plaudit_jobs{kind="google.sync",state="succeeded"}' not in (
                scrape := await fetch_metrics(address)
            ):
                await trio.sleep(0.2)
        assert 'plaudit_actor_state{actor="google",state="running"} 1.0' in scrape
        assert "plaudit_job_duration_seconds_bucket" in scrape
        assert "plaudit_journal_commit_seconds_count" in scrape
        assert "plaudit_ready 1.0" in scrape
        assert "plaudit_config_last_reload_successful 1.0" in scrape

        table = await trio.to_thread.run_sync(ctl, dirs, "status")
        assert "google" in table.stdout

        jobs = await trio.to_thread.run_sync(ctl, dirs, "--json", "jobs", "--state", "succeeded")
        assert all(job["state"] == "succeeded" for job in json.loads(jobs.stdout)["jobs"])

        paused = await trio.to_thread.run_sync(ctl, dirs, "--json", "pause", "google")
        assert json.loads(paused.stdout) == {"actor": "google", "paused": True}
        resumed = await trio.to_thread.run_sync(ctl, dirs, "--json", "resume", "google")
        assert json.loads(resumed.stdout) == {"actor": "google", "paused": False}

        missing = await trio.to_thread.run_sync(ctl, dirs, "retry", "999999")
        assert missing.returncode == 1
        assert "999999" in missing.stderr

        drained = await trio.to_thread.run_sync(ctl, dirs, "drain")
        assert drained.returncode == 0
        with trio.fail_after(20):
            assert await process.wait() == 0
        nursery.cancel_scope.cancel()


async def test_reload_rejects_invalid_config(tmp_path: Path) -> None:
    """SIGHUP with a broken file keeps the running config; a valid change applies."""
    dirs = DaemonDirs(tmp_path)
    async with trio.open_nursery() as nursery:
        base_url = await start_sandbox(nursery, seed=5, script_seconds=1.0)
        dirs.write_config(base_url)
        good = dirs.config.read_text()
        process = await open_daemon(dirs)
        await wait_for(dirs.socket.exists, timeout=30, what="the control socket")

        dirs.config.write_text(good + "\n[bogus]\nkey = 1\n")
        rejected = await trio.to_thread.run_sync(ctl, dirs, "reload")
        assert rejected.returncode == 1
        assert "bogus" in rejected.stderr

        process.send_signal(signal.SIGHUP)
        await wait_for(
            lambda: "config.reload_rejected" in dirs.log.read_text(),
            timeout=60,
            what="rejection log",
        )

        dirs.config.write_text(good.replace("sync_interval = 1.0", "sync_interval = 2.0"))
        accepted = await trio.to_thread.run_sync(ctl, dirs, "--json", "reload")
        assert accepted.returncode == 0, accepted.stderr
        assert json.loads(accepted.stdout)["reloaded"] is True
        assert json.loads(accepted.stdout)["restart_required"] == []

        dirs.config.write_text(good.replace("lease_seconds = 15.0", "lease_seconds = 20.0"))
        pending = await trio.to_thread.run_sync(ctl, dirs, "reload")
        assert pending.returncode == 0, pending.stderr
        assert "[journal]" in pending.stdout
        assert await stop_daemon(process) == 0
        nursery.cancel_scope.cancel()
