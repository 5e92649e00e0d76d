"""A real ``plaudit run``: a complaint stops the reminder at once; a click names its platform.

Real time, real processes: conditions are awaited with the limit stated at
each call.  The SMTP sink and the Mailgun stand-in (a signed POST from the
test) run on loopback.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from plaudit.inbound.testing import mailgun_signature
from plaudit.sandbox.smtp import SmtpSink
from tests.support import DaemonDirs, ctl, open_daemon, query, start_sandbox, stop_daemon, wait_for

pytestmark = pytest.mark.slow

MAILGUN_KEY = "key-stop-events"
# Never fetched: the link only appears in the e-mail and in the click event.
GOOGLE_LINK = "http://127.0.0.1:9/google/review"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def campaign_config(folder: Path, *, smtp_port: int, inbound_port: int) -> str:
    (folder / "mailgun.key").write_text(MAILGUN_KEY + "\n")
    return f"""
[vendor]
name = "Willow Studio"
postal_address = "12 Elm Street, Springfield, IL 62701"
from_address = "hello@willow.example"
unsubscribe_url = "http://127.0.0.1:{inbound_port}/unsubscribe"
review_links = {{ google = "{GOOGLE_LINK}" }}

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
timeout = 10.0

[[campaigns]]
name = "after-wedding"
stop_on = ["review", "unsubscribe", "complaint"]

[[campaigns.steps]]
delay_days = 10
subject = "Thank you"
text = "Dear {{{{ couple_names }}}}, unsubscribe: {{{{ unsubscribe_link }}}}"

[[campaigns.steps]]
delay_days = 30
subject = "A reminder"
text = "Dear {{{{ couple_names }}}}, unsubscribe: {{{{ unsubscribe_link }}}}"

[inbound]
host = "127.0.0.1"
port = {inbound_port}

[inbound.mailgun]
signing_key_file = "{folder / "mailgun.key"}"
"""


def mailgun_event(event_id: str, name: str, message_id: str, **extra: Any) -> bytes:
    now = int(time.time())
    event = {
        "id": event_id,
        "event": name,
        "timestamp": float(now),
        "recipient": "ana@example.com",
        "message": {"headers": {"message-id": message_id.strip("<>")}},
        **extra,
    }
    signature = mailgun_signature(MAILGUN_KEY, now, f"token-{event_id}")
    return json.dumps({"signature": signature, "event-data": event}).encode()


async def test_complaint_stops_reminder_at_once(tmp_path: Path) -> None:
    dirs = DaemonDirs(tmp_path)
    sink = SmtpSink()
    inbound_port = free_port()
    url = f"http://127.0.0.1:{inbound_port}/inbound/mailgun"
    async with trio.open_nursery() as nursery:
        base_url = await start_sandbox(nursery, seed=3, script_seconds=1.0)
        smtp_port = await nursery.start(sink.serve)
        extra = campaign_config(tmp_path, smtp_port=smtp_port, inbound_port=inbound_port)
        dirs.write_config(base_url, sync_interval=60.0, extra=extra)
        process = await open_daemon(dirs)
        try:
            await wait_for(dirs.socket.exists, timeout=60, what="the control socket")
            added = await trio.to_thread.run_sync(
                ctl,
                dirs,
                "request",
                "add",
                "--name",
                "Ana Pires",
                "--email",
                "ana@example.com",
                "--wedding-date",
                "2026-01-10",
            )
            # A wedding in the past: the first step is due at once.
            await wait_for(lambda: sink.messages, timeout=90, what="the request e-mail")
            message_id = str(sink.messages[0].parsed()["Message-ID"])
            reminder = await wait_for(
                lambda: query(
                    dirs.journal,
                    "SELECT id FROM requests WHERE step = 1 AND state = 'scheduled'",
                ),
                timeout=60,
                what="the reminder to be scheduled",
            )
            click = mailgun_event("mg-click", "clicked", message_id, url=GOOGLE_LINK + "?ref=1")
            complaint = mailgun_event("mg-complaint", "complained", message_id)
            async with httpx.AsyncClient(timeout=30) as client:
                clicked = await client.post(url, content=click)
                complained = await client.post(url, content=complaint)
            await wait_for(
                lambda: query(
                    dirs.journal, "SELECT id FROM requests WHERE step = 1 AND state = 'stopped'"
                ),
                timeout=60,
                what="the reminder to be stopped",
            )
            request_view = await trio.to_thread.run_sync(
                ctl, dirs, "--json", "request", "show", str(reminder[0][0])
            )
        finally:
            code = await stop_daemon(process)
        nursery.cancel_scope.cancel()

    assert code == 0
    assert added.returncode == 0, added.stderr
    assert clicked.status_code == 200
    assert complained.status_code == 200
    assert request_view.returncode == 0, request_view.stderr
    view = json.loads(request_view.stdout)
    assert view["request"]["state"] == "stopped"
    assert view["stop_reason"] == "stopped: complaint"
    payloads = query(dirs.journal, "SELECT payload FROM events WHERE type = 'request.clicked'")
    assert [json.loads(row[0])["platform"] for row in payloads] == ["google"]
    # Only the first step went out.
    assert len(sink.messages) == 1
