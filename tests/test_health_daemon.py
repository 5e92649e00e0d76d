"""A real ``plaudit run`` through a sandbox outage: down, then recovered, seen by ``ctl health``.

Runs in real time against the sandbox on loopback; each wait states its
timeout at the call instead of sleeping a fixed amount.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.support import (
    DaemonDirs,
    ctl,
    open_daemon,
    plaudit_env,
    query,
    start_sandbox,
    stop_daemon,
)

pytestmark = pytest.mark.slow

# Fast retries and a short open interval, so an outage shows within seconds.
RELIABILITY = """
[platforms.google.retry]
max_attempts = 2
backoff_initial = 0.1
backoff_max = 0.2

[platforms.google.breaker]
failure_threshold = 2
open_initial = 1.0
open_max = 2.0
"""


async def health(dirs: DaemonDirs) -> dict[str, Any]:
    # In a thread, so the sandbox in this process keeps serving meanwhile.
    done = await trio.to_thread.run_sync(ctl, dirs, "--json", "health")
    if done.returncode != 0:
        return {}
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def platform_row(report: dict[str, Any]) -> dict[str, Any]:
    rows = [row for row in report.get("subjects", []) if row["platform"] == "google"]
    return next((row for row in rows if row["profile"] == ""), {})


async def wait_for_state(dirs: DaemonDirs, states: set[str], *, timeout: float) -> dict[str, Any]:
    with trio.fail_after(timeout):
        while True:
            report = await health(dirs)
            if platform_row(report).get("state") in states:
                return report
            await trio.sleep(0.2)


def ctl_command(dirs: DaemonDirs) -> list[str]:
    return [sys.executable, "-m", "plaudit", "ctl", "--socket", str(dirs.socket)]


async def read_until_down(watcher: trio.Process) -> list[dict[str, Any]]:
    """Read ``ctl --json watch`` lines until the platform is down, then stop the watcher."""
    assert watcher.stdout is not None
    items: list[dict[str, Any]] = []
    buffer = b""
    try:
        with trio.fail_after(30):
            while not any(
                item.get("state") == "down" and item.get("profile") == "" for item in items
            ):
                chunk = await watcher.stdout.receive_some(65536)
                if not chunk:
                    break
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                items += [json.loads(line) for line in lines if line.strip()]
    finally:
        watcher.kill()
        await watcher.wait()
    return [item for item in items if item.get("platform") == "google" and item["profile"] == ""]


async def set_faults(base_url: str, **settings: float) -> None:
    async with httpx.AsyncClient(timeout=5.0) as client:
        response = await client.post(f"{base_url}/_sandbox/faults", json=settings)
    response.raise_for_status()


async def test_outage_goes_down_then_recovers(tmp_path: Path) -> None:
    dirs = DaemonDirs(tmp_path)
    async with trio.open_nursery() as nursery:
        base_url = await start_sandbox(nursery, seed=5)
        dirs.write_config(base_url, sync_interval=1.0, extra=RELIABILITY)
        process = await open_daemon(dirs)
        try:
            report = await wait_for_state(dirs, {"healthy"}, timeout=30)
            with trio.fail_after(30):
                while platform_row(report).get("last_success_at") is None:
                    await trio.sleep(0.2)
                    report = await health(dirs)

            watcher = await trio.lowlevel.open_process(
                [*ctl_command(dirs), "--json", "watch"],
                stdout=subprocess.PIPE,
                env=plaudit_env(),
            )
            await set_faults(base_url, error_rate=1.0)
            report = await wait_for_state(dirs, {"down"}, timeout=30)
            assert report["breakers"][0]["state"] in ("open", "half-open")
            assert platform_row(report)["breaker"] in ("open", "half-open")
            watched = await read_until_down(watcher)

            await set_faults(base_url, error_rate=0.0)
            report = await wait_for_state(dirs, {"healthy"}, timeout=30)
            text = await trio.to_thread.run_sync(ctl, dirs, "health")
            status = await trio.to_thread.run_sync(ctl, dirs, "--json", "status")
        finally:
            code = await stop_daemon(process)
        nursery.cancel_scope.cancel()

    assert code == 0, dirs.log.read_text()
    assert watched[0]["type"] == "current"
    assert watched[-1]["state"] == "down"
    assert text.returncode == 0
    assert "google" in text.stdout
    assert "INCIDENT" in text.stdout
    incidents = [row for row in report["incidents"] if row["profile"] == ""]
    assert len(incidents) == 1
    assert incidents[0]["resolved_at"] is not None
    assert incidents[0]["duration_seconds"] > 0
    assert report["breakers"][0]["state"] == "closed"
    assert platform_row(report)["breaker"] == "closed"
    assert platform_row(report)["uptime"]["1h"] < 1.0
    actors = {row["name"]: row for row in json.loads(status.stdout)["actors"]}
    assert actors["google"]["breaker"] == "closed"

    events = query(dirs.journal, "SELECT type FROM events WHERE subject = 'google' ORDER BY id", ())
    types = [row[0] for row in events]
    # The breaker may trip before the first failed job is observed, so a total
    # outage can go from healthy straight to down without a degraded event.
    assert types[0] in ("platform.degraded", "platform.down")
    assert "platform.down" in types
    assert types.count("platform.recovered") == 1
    assert types[-1] == "platform.recovered"
