"""A real ``plaudit run`` announces a review request as signed ``request.*`` webhooks.

Real time, real processes: conditions are awaited with the limit stated at
each call.  The SMTP sink, the webhook receiver and the Mailgun stand-in
(a signed POST from the test) all run on loopback.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from plaudit.inbound.testing import mailgun_signature
from plaudit.sandbox.receiver import Receiver, serve_receiver
from plaudit.sandbox.smtp import SmtpSink
from plaudit.webhooks.signing import Secret
from tests.support import DaemonDirs, ctl, open_daemon, start_sandbox, stop_daemon, wait_for

pytestmark = pytest.mark.slow

SECRET = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
MAILGUN_KEY = "key-request-events"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def request_config(folder: Path, *, smtp_port: int, inbound_port: int, receiver: str) -> str:
    (folder / "mailgun.key").write_text(MAILGUN_KEY + "\n")
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
subject = "Thank you"
text = "Dear {{{{ couple_names }}}}, unsubscribe: {{{{ unsubscribe_link }}}}"

[inbound]
host = "127.0.0.1"
port = {inbound_port}

[inbound.mailgun]
signing_key_file = "{folder / "mailgun.key"}"

[[webhooks.endpoints]]
name = "crm"
url = "{receiver}/hooks/plaudit"
secrets = ["{SECRET}"]
events = ["request.*"]
retry_schedule = [0.5, 1.0]
timeout = 5.0
allow_private = true
"""


def mailgun_delivered(message_id: str, recipient: str) -> bytes:
    now = int(time.time())
    event = {
        "id": "mg-delivered-1",
        "event": "delivered",
        "timestamp": float(now),
        "recipient": recipient,
        "message": {"headers": {"message-id": message_id.strip("<>")}},
    }
    signature = mailgun_signature(MAILGUN_KEY, now, "token-delivered-1")
    return json.dumps({"signature": signature, "event-data": event}).encode()


def bodies_of(receiver: Receiver) -> dict[str, dict[str, Any]]:
    """Return event type -> body of each delivery that verified and got a 2xx."""
    accepted = receiver.accepted_ids()
    found: dict[str, dict[str, Any]] = {}
    for item in receiver.received:
        if item.webhook_id in accepted:
            body = json.loads(item.body)
            found[body["type"]] = body
    return found


async def test_sent_and_delivered_reach_receiver(tmp_path: Path) -> None:
    dirs = DaemonDirs(tmp_path)
    sink = SmtpSink()
    receiver = Receiver(secrets=[Secret.parse(SECRET)])
    inbound_port = free_port()
    async with trio.open_nursery() as nursery:
        base_url = await start_sandbox(nursery, seed=3, script_seconds=1.0)
        smtp_port = await nursery.start(sink.serve)
        receiver_url = await nursery.start(serve_receiver, receiver)
        extra = request_config(
            tmp_path, smtp_port=smtp_port, inbound_port=inbound_port, receiver=receiver_url
        )
        dirs.write_config(base_url, sync_interval=60.0, extra=extra)
        process = await open_daemon(dirs)
        try:
            await wait_for(dirs.socket.exists, timeout=30, what="the control socket")
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
            await wait_for(lambda: sink.messages, timeout=60, what="the request e-mail")
            message_id = str(sink.messages[0].parsed()["Message-ID"])
            await wait_for(
                lambda: "request.sent" in bodies_of(receiver),
                timeout=60,
                interval=0.2,
                what="request.sent at the receiver",
            )
            async with httpx.AsyncClient(timeout=30) as client:
                posted = await client.post(
                    f"http://127.0.0.1:{inbound_port}/inbound/mailgun",
                    content=mailgun_delivered(message_id, "ana@example.com"),
                    headers={"Content-Type": "application/json"},
                )
            await wait_for(
                lambda: "request.delivered" in bodies_of(receiver),
                timeout=60,
                interval=0.2,
                what="request.delivered at the receiver",
            )
        finally:
            code = await stop_daemon(process)
        nursery.cancel_scope.cancel()

    assert code == 0
    assert added.returncode == 0, added.stderr
    assert posted.status_code == 200
    assert all(item.verify_error is None for item in receiver.received)
    bodies = bodies_of(receiver)
    assert set(bodies) == {"request.sent", "request.delivered"}
    sent = bodies["request.sent"]["data"]
    delivered = bodies["request.delivered"]["data"]
    assert sent["message_id"] == message_id
    assert sent["recipient_domains"] == ["example.com"]
    assert delivered["request"] == sent["request"]
    assert delivered["provider"] == "mailgun"
    assert delivered["recipient_domain"] == "example.com"
    types = [json.loads(item.body)["type"] for item in receiver.received]
    assert types.count("request.sent") == 1
    assert types.count("request.delivered") == 1
