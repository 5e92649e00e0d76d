"""A real ``plaudit run``: ctl request add, one-click unsubscribe over HTTP, and reload.

Real time, real processes: conditions are awaited with the limit stated at
each call.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import trio

from tests import support_mail as mail
from tests.support import DaemonDirs, ctl, query

pytestmark = pytest.mark.slow


def messaging_config(smtp_port: int, inbound_port: int, subject: str) -> str:
    vendor = mail.vendor_toml(unsubscribe_url=f"http://127.0.0.1:{inbound_port}/unsubscribe")
    return (
        vendor
        + mail.smtp_toml(smtp_port)
        + mail.campaign_toml(mail.step_toml(subject=subject))
        + mail.inbound_toml(inbound_port)
    )


def add_couple(dirs: DaemonDirs, name: str, address: str) -> dict[str, object]:
    done = ctl(dirs, *mail.request_add_args(name=name, email=address, json_output=True))
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


async def test_request_unsubscribe_and_reload(tmp_path: Path) -> None:
    inbound_port = mail.free_port()

    def config(smtp_port: int) -> str:
        return messaging_config(smtp_port, inbound_port, "First subject")

    async with mail.campaign_daemon(tmp_path, config, script_seconds=2.0) as daemon:
        dirs = daemon.dirs
        first = await trio.to_thread.run_sync(add_couple, dirs, "Ana Pires", "ana@example.com")
        await daemon.wait_for_messages(1, timeout=60, what="the first request e-mail")

        header = str(daemon.sink.messages[0].parsed()["List-Unsubscribe"])
        url = header.split(",", maxsplit=1)[0].strip().strip("<>")
        async with httpx.AsyncClient(timeout=30) as client:
            page = await client.get(url)
            done = await client.post(
                url,
                content=b"List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        suppressed = query(dirs.journal, "SELECT address, reason FROM suppressions")

        daemon.write_config(messaging_config(daemon.smtp_port, inbound_port, "Second subject"))
        reload = await daemon.ctl("reload")
        await trio.to_thread.run_sync(add_couple, dirs, "Lena Vogel", "lena@example.net")
        await daemon.wait_for_messages(2, timeout=60, what="the second request e-mail")
        shown = await daemon.ctl("request", "show", "1")

    assert daemon.exit_code == 0
    assert first["couple_created"] is True
    assert url.startswith(f"http://127.0.0.1:{inbound_port}/unsubscribe/1.")
    assert page.status_code == 200
    assert done.status_code == 200
    assert suppressed == [("ana@example.com", "unsubscribe")]
    assert reload.returncode == 0, reload.stderr
    subjects = [message.parsed()["Subject"] for message in daemon.sink.messages]
    assert subjects == ["First subject", "Second subject"]
    assert shown.returncode == 0, shown.stderr
    assert "campaign after-wedding step 1 (email), sent" in shown.stdout
