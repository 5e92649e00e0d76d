"""A real ``plaudit run``: a complaint stops the reminder at once; a click names its platform.

Real time, real processes: conditions are awaited with the limit stated at
each call.  The SMTP sink and the Mailgun stand-in (a signed POST from the
test) run on loopback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import support_mail as mail
from tests.support import query, wait_for

pytestmark = pytest.mark.slow

MAILGUN_KEY = "key-stop-events"
# Never fetched: the link only appears in the e-mail and in the click event.
GOOGLE_LINK = "http://127.0.0.1:9/google/review"


def campaign_config(folder: Path, *, smtp_port: int, inbound_port: int) -> str:
    key_file = mail.write_mailgun_key(folder, MAILGUN_KEY)
    vendor = mail.vendor_toml(
        unsubscribe_url=f"http://127.0.0.1:{inbound_port}/unsubscribe",
        review_links=f'{{ google = "{GOOGLE_LINK}" }}',
    )
    campaign = mail.campaign_toml(
        mail.step_toml(subject="Thank you"),
        mail.step_toml(subject="A reminder", delay_days=30),
        stop_on=["review", "unsubscribe", "complaint"],
    )
    return (
        vendor
        + mail.smtp_toml(smtp_port)
        + campaign
        + mail.inbound_toml(inbound_port, mailgun_key_file=key_file)
    )


def mailgun_event(event_id: str, name: str, message_id: str, **extra: Any) -> bytes:
    return mail.signed_mailgun_event(
        MAILGUN_KEY,
        event_id=event_id,
        event=name,
        message_id=message_id,
        recipient="ana@example.com",
        **extra,
    )


async def test_complaint_stops_reminder_at_once(tmp_path: Path) -> None:
    inbound_port = mail.free_port()
    url = f"http://127.0.0.1:{inbound_port}/inbound/mailgun"

    def config(smtp_port: int) -> str:
        return campaign_config(tmp_path, smtp_port=smtp_port, inbound_port=inbound_port)

    async with mail.campaign_daemon(
        tmp_path, config, script_seconds=1.0, socket_timeout=60
    ) as daemon:
        dirs = daemon.dirs
        added = await daemon.ctl(*mail.request_add_args())
        await daemon.wait_for_messages(1, timeout=90, what="the request e-mail")
        message_id = str(daemon.sink.messages[0].parsed()["Message-ID"])
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
        request_view = await daemon.ctl("--json", "request", "show", str(reminder[0][0]))

    assert daemon.exit_code == 0
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
    assert len(daemon.sink.messages) == 1
