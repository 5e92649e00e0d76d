"""The SMS and web push part of ``plaudit demo``: the Twilio and push stand-ins.

The demo adds two one-step campaigns, one by SMS and one by push, due
after the e-mail campaign's first step.  All steps are overdue, so they go
out at once.  One couple,
Priya and Sam, is re-imported with SMS consent and a time zone where it is
daytime now, so quiet hours do not hold the text back, and gets a push
subscription from the push stand-in.  The other couples have no phone
number or no subscription, so their SMS and push steps show up as
suppressed.  Twilio's status callbacks reach the daemon's inbound listener.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import time
import zoneinfo
from datetime import datetime
from pathlib import Path
from typing import Final, final

from plaudit.daemon.control_client import request
from plaudit.errors import ControlError
from plaudit.sandbox.demo_mail import DemoMail
from plaudit.sandbox.twilio import ACCOUNT_SID, AUTH_TOKEN, TwilioStandIn
from plaudit.sandbox.webpush import PushStandIn, write_vapid_key

SMS_COUPLE_EMAIL: Final = "priya.nair@example.com"
SMS_COUPLE_CSV: Final = """\
Client Name,Client Email,Client Phone,Project Date,Project Location,SMS Consent,Time Zone
Priya Nair and Sam Cole,priya.nair@example.com,+1 312 555 0142,2026-01-17,The Old Mill,yes,{zone}
"""
# Zones spread around the clock, so one of them is always inside 09:00-19:00.
DAYTIME_ZONES: Final = (
    "Pacific/Honolulu",
    "America/Los_Angeles",
    "America/Chicago",
    "America/New_York",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
)
SMS_TEXT: Final = (
    "Hi {{ couple_names }}, thank you for {{ wedding_date }}! "
    "A review helps other couples: {{ review_links[0].url }} Reply STOP to opt out."
)


def daytime_zone(now: float) -> str:
    """Return the first of DAYTIME_ZONES where the local hour at ``now`` is 9 to 18."""
    for name in DAYTIME_ZONES:
        if 9 <= datetime.fromtimestamp(now, tz=zoneinfo.ZoneInfo(name)).hour < 19:
            return name
    return "UTC"


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago, for the inbound listener."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@final
class DemoChannels:
    """The stand-ins, the ``[sms]``, ``[push]`` and ``[inbound]`` tables, and Priya's setup."""

    def __init__(self) -> None:
        self.twilio = TwilioStandIn()
        self.push = PushStandIn()
        self.zone = daytime_zone(time.time())
        self.prepared = False

    def __repr__(self) -> str:
        return (
            f"<DemoChannels zone={self.zone} prepared={self.prepared} "
            f"{self.twilio!r} {self.push!r}>"
        )

    def config(self, *, twilio_url: str, inbound_port: int, state_dir: Path) -> str:
        """Write the demo's credentials and return the tables that use them."""
        token = state_dir / "twilio-auth-token"
        token.write_text(AUTH_TOKEN, encoding="utf-8")
        token.chmod(0o600)
        key = state_dir / "vapid.pem"
        write_vapid_key(key)
        listener = f"http://127.0.0.1:{inbound_port}"
        return f"""
[sms]
account_sid = "{ACCOUNT_SID}"
auth_token_file = "{token}"
from_number = "+13125550100"
base_url = "{twilio_url}"
status_callback_url = "{listener}/inbound/twilio"
help_text = "Willow & Vine Photography: hello@willow-vine.example. Reply STOP to opt out."
timeout = 10.0

[push]
vapid_private_key_file = "{key}"
subject = "mailto:hello@willow-vine.example"
allow_private_endpoints = true
timeout = 10.0

[inbound]
host = "127.0.0.1"
port = {inbound_port}

[inbound.twilio]
auth_token_file = "{token}"
public_url = "{listener}"

[[campaigns]]
name = "thank-you-text"

[[campaigns.steps]]
channel = "sms"
delay_days = 11
subject = "Thank you"
text = "{SMS_TEXT}"

[[campaigns]]
name = "thank-you-push"

[[campaigns.steps]]
channel = "push"
delay_days = 12
subject = "A review from you would mean a lot"
text = "{SMS_TEXT}"
"""

    async def import_couples(self, mail: DemoMail, socket_path: Path, state_dir: Path) -> None:
        """Import the demo's couples with the notifier paused, then give Priya SMS and push.

        Pausing keeps the notifier from sending Priya's steps before her
        consent, zone and subscription are stored.
        """
        if self.prepared:
            return
        try:
            await request(socket_path, "pause", {"actor": "notifier"})
        except (ControlError, OSError):
            return
        try:
            await mail.import_couples(socket_path, state_dir)
            if mail.imported:
                await self._update_priya(socket_path, state_dir)
                self.prepared = True
        finally:
            # A failed resume leaves the notifier paused and the demo reports requests unsent.
            with contextlib.suppress(ControlError, OSError):
                await request(socket_path, "resume", {"actor": "notifier"})

    async def _update_priya(self, socket_path: Path, state_dir: Path) -> None:
        path = state_dir / "sms-couple.csv"
        path.write_text(SMS_COUPLE_CSV.format(zone=self.zone), encoding="utf-8")
        await request(socket_path, "import", {"kind": "couples", "path": str(path)})
        subscription = self.push.subscribe()
        browser_json = {
            "endpoint": subscription.endpoint,
            "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth},
        }
        await request(
            socket_path,
            "push-subscribe",
            {"email": SMS_COUPLE_EMAIL, "subscription": browser_json},
        )

    def pending(self, journal: Path) -> int:
        """Return how many SMS and push requests are not finished yet."""
        if not self.prepared or not journal.exists():
            return 2
        connection = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
        try:
            rows = connection.execute(
                "SELECT count(*) FROM requests WHERE channel IN ('sms', 'push')"
                " AND state IN ('scheduled', 'sending')"
            ).fetchone()
            sent = connection.execute(
                "SELECT count(DISTINCT channel) FROM requests WHERE channel IN ('sms', 'push')"
                " AND state = 'sent'"
            ).fetchone()
        except sqlite3.OperationalError:
            return 2
        finally:
            connection.close()
        return int(rows[0]) + (2 - int(sent[0]))

    def summary(self) -> dict[str, object]:
        """Return what the stand-ins received."""
        return {
            "sms_messages_received": len(self.twilio.messages),
            "sms_status_callbacks": len(self.twilio.callbacks),
            "push_messages_received": len(self.push.received),
        }
