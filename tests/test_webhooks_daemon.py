"""A real ``plaudit run`` syncs reviews from the sandbox and delivers them as signed webhooks.

Real time, real processes: conditions are awaited with the limit stated at
each call.  The receiver runs in the test process and verifies every
signature with the endpoint's secret.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
import trio

from plaudit.sandbox.receiver import Fault, FaultKind, Receiver, serve_receiver
from plaudit.webhooks.router import webhook_id
from plaudit.webhooks.signing import Secret
from tests.support import DaemonDirs, ctl, open_daemon, query, start_sandbox, stop_daemon, wait_for

pytestmark = pytest.mark.slow

OLD_SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
NEW_SECRET = "whsec_" + base64.b64encode(bytes(range(50, 82))).decode()


def endpoint_config(url: str, *, name: str = "crm", schedule: str = "[0.5, 1.0]") -> str:
    return f"""
[[webhooks.endpoints]]
name = "{name}"
url = "{url}/hooks/plaudit"
secrets = ["{OLD_SECRET}", "{NEW_SECRET}"]
events = ["review.*"]
retry_schedule = {schedule}
timeout = 2.0
allow_private = true
"""


def created_keys(dirs: DaemonDirs) -> set[str]:
    rows = query(dirs.journal, "SELECT key FROM events WHERE type = 'review.created'")
    return {str(row[0]) for row in rows}


async def ctl_in_thread(dirs: DaemonDirs, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``plaudit ctl`` in a thread, so the receiver in this process keeps serving.

    On the event loop, ctl would hold up the receiver past the endpoint's 2 s timeout.
    """
    return await trio.to_thread.run_sync(ctl, dirs, *args)


async def wait_until_disabled(dirs: DaemonDirs) -> None:
    with trio.move_on_after(60):
        while '"disabled"' not in (await ctl_in_thread(dirs, "--json", "webhooks")).stdout:
            await trio.sleep(0.3)
        return
    pytest.fail("timed out after 60 s waiting for the endpoint disabled by 410 Gone")


def delivered(receiver: Receiver, dirs: DaemonDirs) -> bool:
    keys = created_keys(dirs)
    wanted = {webhook_id("crm", key) for key in keys}
    return bool(keys) and wanted <= receiver.accepted_ids()


async def test_reviews_reach_receiver_signed(tmp_path: Path) -> None:
    dirs = DaemonDirs(tmp_path)
    # The new secret alone must verify: during a rotation both secrets sign.
    receiver = Receiver(secrets=[Secret.parse(NEW_SECRET)])
    receiver.add_faults([Fault(FaultKind.STATUS, status=500), Fault(FaultKind.SLOW, seconds=0.5)])
    async with trio.open_nursery() as nursery:
        base_url = await start_sandbox(nursery, seed=5, script_seconds=3.0)
        receiver_url = await nursery.start(serve_receiver, receiver)
        dirs.write_config(base_url, sync_interval=1.0, extra=endpoint_config(receiver_url))
        process = await open_daemon(dirs)
        try:
            await wait_for(
                lambda: delivered(receiver, dirs),
                timeout=60,
                interval=0.2,
                what="every review.created delivered",
            )
            overview = await ctl_in_thread(dirs, "--json", "webhooks")
            attempts = await ctl_in_thread(
                dirs, "--json", "deliveries", "--endpoint", "crm", "--limit", "1000"
            )
        finally:
            exit_code = await stop_daemon(process)
        nursery.cancel_scope.cancel()

    assert exit_code == 0
    assert all(item.verify_error is None for item in receiver.received)
    bodies = [json.loads(item.body) for item in receiver.received]
    assert {body["type"] for body in bodies} <= {
        "review.created",
        "review.updated",
        "review.replied",
        "review.deleted",
    }
    assert overview.returncode == 0, overview.stderr
    [row] = json.loads(overview.stdout)["endpoints"]
    assert row["name"] == "crm"
    assert row["state"] == "enabled"
    assert row["max_in_flight"] == 1
    assert row["max_per_second"] == 0.0
    assert json.loads(overview.stdout)["batching"]["recorded"] >= 1
    log = json.loads(attempts.stdout)["attempts"]
    outcomes = {entry["outcome"] for entry in log}
    # The scripted 500 produced one retry; everything else was delivered.
    assert "retry" in outcomes
    assert "delivered" in outcomes


async def test_gone_then_replay(tmp_path: Path) -> None:
    dirs = DaemonDirs(tmp_path)
    receiver = Receiver(secrets=[Secret.parse(OLD_SECRET)])
    receiver.add_faults([Fault(FaultKind.STATUS, status=410)])
    async with trio.open_nursery() as nursery:
        base_url = await start_sandbox(nursery, seed=5, script_seconds=2.0)
        receiver_url = await nursery.start(serve_receiver, receiver)
        dirs.write_config(base_url, sync_interval=1.0, extra=endpoint_config(receiver_url))
        process = await open_daemon(dirs)
        try:
            await wait_until_disabled(dirs)
            since = "2000-01-01T00:00:00Z"
            refused = await ctl_in_thread(dirs, "replay", "--endpoint", "crm", "--since", since)
            enabled = await ctl_in_thread(dirs, "webhooks", "--enable", "crm")
            replayed = await ctl_in_thread(
                dirs, "--json", "replay", "--endpoint", "crm", "--since", since
            )
            await wait_for(
                lambda: delivered(receiver, dirs),
                timeout=60,
                interval=0.2,
                what="every review.created delivered after the replay",
            )
            text = await ctl_in_thread(dirs, "deliveries", "--state", "disabled")
        finally:
            exit_code = await stop_daemon(process)
        nursery.cancel_scope.cancel()

    assert exit_code == 0
    assert refused.returncode == 1
    assert "enable it first" in refused.stderr
    assert enabled.returncode == 0, enabled.stderr
    assert "crm" in enabled.stdout
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout)["replayed"]
    assert "410" in text.stdout
    # The disable raised one operator alert for the notifier; enabling resolved it.
    [(key, resolved_at)] = query(
        dirs.journal, "SELECT key, resolved_at FROM alerts WHERE source = 'webhooks'"
    )
    assert key == "endpoint_disabled:crm"
    assert resolved_at is not None
    alert_jobs = query(dirs.journal, "SELECT count(*) FROM jobs WHERE kind = 'alert.send'")
    assert alert_jobs == [(1,)]


async def test_reload_adds_endpoint(tmp_path: Path) -> None:
    dirs = DaemonDirs(tmp_path)
    first = Receiver(secrets=[Secret.parse(OLD_SECRET)])
    second = Receiver(secrets=[Secret.parse(OLD_SECRET)])
    async with trio.open_nursery() as nursery:
        # Scripted reviews keep arriving every 1 to 2 s for 60 s, so some arrive
        # after the reload even when the daemon starts slowly.
        base_url = await start_sandbox(nursery, seed=9, script_seconds=60.0)
        first_url = await nursery.start(serve_receiver, first)
        second_url = await nursery.start(serve_receiver, second)
        dirs.write_config(base_url, sync_interval=1.0, extra=endpoint_config(first_url))
        process = await open_daemon(dirs)
        try:
            await wait_for(first.accepted_ids, timeout=60, interval=0.1, what="a first delivery")
            dirs.write_config(
                base_url,
                sync_interval=1.0,
                extra=endpoint_config(first_url) + endpoint_config(second_url, name="sheet"),
            )
            reloaded = await ctl_in_thread(dirs, "reload")
            await wait_for(
                second.accepted_ids,
                timeout=60,
                interval=0.1,
                what="a delivery to the endpoint added by the reload",
            )
            table = await ctl_in_thread(dirs, "webhooks")
        finally:
            exit_code = await stop_daemon(process)
        nursery.cancel_scope.cancel()

    assert exit_code == 0
    assert reloaded.returncode == 0, reloaded.stderr
    assert table.returncode == 0, table.stderr
    assert table.stdout.startswith("ENDPOINT")
    assert "sheet" in table.stdout
    assert all(item.verify_error is None for item in second.received)
