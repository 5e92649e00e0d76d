"""A real ``plaudit run`` announces a review request as signed ``request.*`` webhooks.

Real time, real processes: conditions are awaited with the limit stated at
each call.  The SMTP sink, the webhook receiver and the Mailgun stand-in
(a signed POST from the test) all run on loopback.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from plaudit.sandbox.receiver import Receiver, serve_receiver
from plaudit.webhooks.signing import Secret
from tests import support_mail as mail
from tests.support import wait_for

pytestmark = pytest.mark.slow

SECRET = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
MAILGUN_KEY = "key-request-events"


def request_config(folder: Path, *, smtp_port: int, inbound_port: int, receiver: str) -> str:
    key_file = mail.write_mailgun_key(folder, MAILGUN_KEY)
    unsubscribe_url = f"http://127.0.0.1:{inbound_port}/unsubscribe"
    webhooks = f"""
[[webhooks.endpoints]]
name = "crm"
url = "{receiver}/hooks/plaudit"
secrets = ["{SECRET}"]
events = ["request.*"]
retry_schedule = [0.5, 1.0]
timeout = 5.0
allow_private = true
"""
    return (
        mail.vendor_toml(unsubscribe_url=unsubscribe_url)
        + mail.smtp_toml(smtp_port)
        + mail.campaign_toml(mail.step_toml(subject="Thank you"))
        + mail.inbound_toml(inbound_port, mailgun_key_file=key_file)
        + webhooks
    )


def mailgun_delivered(message_id: str, recipient: str) -> bytes:
    return mail.signed_mailgun_event(
        MAILGUN_KEY,
        event_id="mg-delivered-1",
        event="delivered",
        message_id=message_id,
        recipient=recipient,
    )


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
    receiver = Receiver(secrets=[Secret.parse(SECRET)])
    inbound_port = mail.free_port()
    async with trio.open_nursery() as nursery:
        receiver_url = await nursery.start(serve_receiver, receiver)

        def config(smtp_port: int) -> str:
            return request_config(
                tmp_path, smtp_port=smtp_port, inbound_port=inbound_port, receiver=receiver_url
            )

        async with mail.campaign_daemon(tmp_path, config, script_seconds=1.0) as daemon:
            added = await daemon.ctl(*mail.request_add_args())
            await daemon.wait_for_messages(1, timeout=60, what="the request e-mail")
            message_id = str(daemon.sink.messages[0].parsed()["Message-ID"])
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
        nursery.cancel_scope.cancel()

    assert daemon.exit_code == 0
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
