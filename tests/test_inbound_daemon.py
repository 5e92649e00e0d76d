"""A real ``plaudit run`` with ``[inbound]``: signed events stored, processed and synced.

Real time, real processes: conditions are awaited with the limit stated at
each call.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import pytest
import trio

from plaudit.inbound.testing import PubSubSigner, basic_auth, pubsub_body
from tests.support import (
    DaemonDirs,
    ctl,
    open_daemon,
    query,
    start_sandbox,
    stop_daemon,
    wait_for,
)

pytestmark = pytest.mark.slow

AUDIENCE = "https://hooks.example.com/inbound/google"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def inbound_config(folder: Path, port: int) -> str:
    (folder / "postmark.pw").write_text("pm-pass\n")
    return f"""
[inbound]
host = "127.0.0.1"
port = {port}

[inbound.postmark]
username = "pm"
password_file = "{folder / "postmark.pw"}"

[inbound.google]
certificates = ["{folder / "google.pem"}"]
audience = "{AUDIENCE}"
"""


async def test_daemon_processes_inbound_events(tmp_path: Path) -> None:
    dirs = DaemonDirs(tmp_path)
    signer = PubSubSigner()
    signer.write_public_key(tmp_path / "google.pem")
    port = free_port()
    delivery = json.dumps(
        {
            "RecordType": "Bounce",
            "ID": 7,
            "Type": "HardBounce",
            "Email": "couple@example.com",
            "MessageID": "pm-7",
            "BouncedAt": "2026-01-01T10:00:00Z",
            "Details": "550 5.1.1 unknown user",
        }
    ).encode()
    push = pubsub_body(
        "push-1",
        {"type": "NEW_REVIEW", "location": "accounts/1001/locations/2001"},
        published="2026-01-01T10:00:00Z",
    )
    async with trio.open_nursery() as nursery:
        base_url = await start_sandbox(nursery, seed=3, script_seconds=2.0)
        dirs.write_config(base_url, sync_interval=60.0, extra=inbound_config(tmp_path, port))
        process = await open_daemon(dirs)
        url = f"http://127.0.0.1:{port}/inbound"
        try:
            async with httpx.AsyncClient(timeout=10) as client:

                async def listening() -> bool:
                    try:
                        await client.get(f"{url}/postmark")
                    except httpx.TransportError:
                        return False
                    return True

                with trio.fail_after(60):
                    while not await listening():
                        await trio.sleep(0.2)
                bounce = await client.post(
                    f"{url}/postmark", content=delivery, headers=basic_auth("pm", "pm-pass")
                )
                token = signer.token(audience=AUDIENCE, now=time.time())
                pushed = await client.post(
                    f"{url}/google", content=push, headers={"Authorization": f"Bearer {token}"}
                )
            await wait_for(
                lambda: query(
                    dirs.journal,
                    "SELECT state FROM jobs WHERE kind = 'google.sync' AND key LIKE '%push:push-1'"
                    " AND state = 'succeeded'",
                ),
                timeout=60,
                what="the pushed google.sync job to succeed",
            )
            await wait_for(
                lambda: query(dirs.journal, "SELECT address FROM suppressions"),
                timeout=60,
                what="the hard bounce to suppress its address",
            )
            overview = ctl(dirs, "--json", "inbound")
        finally:
            exit_code = await stop_daemon(process)
        nursery.cancel_scope.cancel()

    assert bounce.status_code == 200
    assert pushed.status_code == 200
    assert exit_code == 0
    assert overview.returncode == 0, overview.stderr
    counts = {(row["provider"], row["state"]) for row in json.loads(overview.stdout)["counts"]}
    assert counts == {("postmark", "processed"), ("google", "processed")}
    states = query(dirs.journal, "SELECT provider, state FROM inbound_events ORDER BY id")
    assert states == [("postmark", "processed"), ("google", "processed")]
    assert query(dirs.journal, "SELECT address, reason FROM suppressions") == [
        ("couple@example.com", "hard_bounce")
    ]
