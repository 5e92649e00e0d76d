"""A real ``plaudit run``: ctl request add, one-click unsubscribe over HTTP, and reload.

Real time, real processes: conditions are awaited with the limit stated at
each call.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx
import pytest
import trio

from plaudit.sandbox.smtp import SmtpSink
from tests.support import DaemonDirs, ctl, open_daemon, query, start_sandbox, stop_daemon, wait_for

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def messaging_config(smtp_port: int, inbound_port: int, subject: str) -> str:
    return f"""
[vendor]
name = "Willow Studio"
postal_address = "12 Elm Street, Springfield, IL 62701"
from_address = "hello@willow.example"
unsubscribe_url = "http://127.0.0.1:{inbound_port}/unsubscribe"
review_links = {{ google = "https://reviews.invalid/google" }}

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
timeout = 10.0

[[campaigns]]
name = "after-wedding"

[[campaigns.steps]]
delay_days = 10
subject = "{subject}"
text = "Dear {{{{ couple_names }}}}, unsubscribe: {{{{ unsubscribe_link }}}}"

[inbound]
host = "127.0.0.1"
port = {inbound_port}
"""


def add_couple(dirs: DaemonDirs, name: str, address: str) -> dict[str, object]:
    done = ctl(
        dirs,
        "--json",
        "request",
        "add",
        "--name",
        name,
        "--email",
        address,
        "--wedding-date",
        "2026-01-10",
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


async def test_request_unsubscribe_and_reload(tmp_path: Path) -> None:
    dirs = DaemonDirs(tmp_path)
    sink = SmtpSink()
    inbound_port = free_port()
    async with trio.open_nursery() as nursery:
        base_url = await start_sandbox(nursery, seed=3, script_seconds=2.0)
        smtp_port = await nursery.start(sink.serve)
        dirs.write_config(
            base_url,
            sync_interval=60.0,
            extra=messaging_config(smtp_port, inbound_port, "First subject"),
        )
        process = await open_daemon(dirs)
        try:
            await wait_for(dirs.socket.exists, timeout=30, what="the control socket")
            first = await trio.to_thread.run_sync(add_couple, dirs, "Ana Pires", "ana@example.com")
            # A wedding in the past: the first step is due at once.
            await wait_for(lambda: sink.messages, timeout=60, what="the first request e-mail")

            header = str(sink.messages[0].parsed()["List-Unsubscribe"])
            url = header.split(",", maxsplit=1)[0].strip().strip("<>")
            async with httpx.AsyncClient(timeout=30) as client:
                page = await client.get(url)
                done = await client.post(
                    url,
                    content=b"List-Unsubscribe=One-Click",
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
            suppressed = query(dirs.journal, "SELECT address, reason FROM suppressions")

            dirs.write_config(
                base_url,
                sync_interval=60.0,
                extra=messaging_config(smtp_port, inbound_port, "Second subject"),
            )
            reload = await trio.to_thread.run_sync(ctl, dirs, "reload")
            await trio.to_thread.run_sync(add_couple, dirs, "Lena Vogel", "lena@example.net")
            await wait_for(
                lambda: len(sink.messages) >= 2, timeout=60, what="the second request e-mail"
            )
            shown = await trio.to_thread.run_sync(ctl, dirs, "request", "show", "1")
        finally:
            code = await stop_daemon(process)
        nursery.cancel_scope.cancel()

    assert code == 0
    assert first["couple_created"] is True
    assert url.startswith(f"http://127.0.0.1:{inbound_port}/unsubscribe/1.")
    assert page.status_code == 200
    assert done.status_code == 200
    assert suppressed == [("ana@example.com", "unsubscribe")]
    assert reload.returncode == 0, reload.stderr
    subjects = [message.parsed()["Subject"] for message in sink.messages]
    assert subjects == ["First subject", "Second subject"]
    assert shown.returncode == 0, shown.stderr
    assert "campaign after-wedding step 1 (email), sent" in shown.stdout
