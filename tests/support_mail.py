"""Shared pieces for tests that run a real ``plaudit run`` with a campaign and an SMTP sink.

The ``*_toml`` helpers return TOML tables, which a test joins into the
config it appends to the sandbox's.  :func:`campaign_daemon` starts the
sandbox, the sink and the daemon, all on loopback.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from plaudit.inbound.testing import mailgun_event_body
from plaudit.sandbox.smtp import SmtpSink
from tests.support import DaemonDirs, ctl, open_daemon, start_sandbox, stop_daemon, wait_for

# Never fetched by the daemon: review links only appear in e-mails and click events.
GOOGLE_REVIEW_LINKS = '{ google = "https://reviews.invalid/google" }'
STEP_TEXT = "Dear {{ couple_names }}, unsubscribe: {{ unsubscribe_link }}"
# A wedding in the past: a campaign's first step is due at once.
PAST_WEDDING_DATE = "2026-01-10"


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago, for a listener the daemon opens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def vendor_toml(
    *, unsubscribe_url: str, review_links: str = GOOGLE_REVIEW_LINKS, extra: str = ""
) -> str:
    """Return the ``[vendor]`` table of Willow Studio; ``extra`` contains further key lines."""
    return f"""
[vendor]
name = "Willow Studio"
postal_address = "12 Elm Street, Springfield, IL 62701"
from_address = "hello@willow.example"
unsubscribe_url = "{unsubscribe_url}"
review_links = {review_links}
{extra}"""


def smtp_toml(port: int) -> str:
    """Return an ``[smtp]`` table for a plain-text sink on ``port``."""
    return f"""
[smtp]
host = "127.0.0.1"
port = {port}
security = "none"
timeout = 10.0
"""


def campaign_toml(*steps: str, stop_on: Sequence[str] = ()) -> str:
    """Return the ``after-wedding`` campaign with ``steps`` from :func:`step_toml`."""
    keys = "" if not stop_on else f"stop_on = {json.dumps(list(stop_on))}\n"
    return '\n[[campaigns]]\nname = "after-wedding"\n' + keys + "".join(steps)


def step_toml(*, subject: str, text: str = STEP_TEXT, delay_days: int = 10) -> str:
    """Return one ``[[campaigns.steps]]`` table."""
    return f"""
[[campaigns.steps]]
delay_days = {delay_days}
subject = "{subject}"
text = "{text}"
"""


def inbound_toml(port: int, *, mailgun_key_file: Path | None = None) -> str:
    """Return an ``[inbound]`` table on ``port``, with Mailgun events when a key file is given."""
    table = f"""
[inbound]
host = "127.0.0.1"
port = {port}
"""
    if mailgun_key_file is None:
        return table
    return table + f'\n[inbound.mailgun]\nsigning_key_file = "{mailgun_key_file}"\n'


def write_mailgun_key(folder: Path, key: str) -> Path:
    """Write a Mailgun signing key file in ``folder`` and return its path."""
    path = folder / "mailgun.key"
    path.write_text(key + "\n")
    return path


def signed_mailgun_event(
    key: str, *, event_id: str, event: str, message_id: str, recipient: str, **extra: Any
) -> bytes:
    """Return a Mailgun event body signed with ``key`` at the current time."""
    now = int(time.time())
    data = {
        "id": event_id,
        "event": event,
        "timestamp": float(now),
        "recipient": recipient,
        # Mailgun passes the Message-ID header without its angle brackets.
        "message": {"headers": {"message-id": message_id.strip("<>")}},
        **extra,
    }
    return mailgun_event_body(key, data, timestamp=now, token=f"token-{event_id}")


def request_add_args(
    *, name: str = "Ana Pires", email: str = "ana@example.com", json_output: bool = False
) -> list[str]:
    """Return ``plaudit ctl`` arguments that add a couple whose wedding was in the past."""
    options = ["--json"] if json_output else []
    return [
        *options,
        "request", "add",
        "--name", name,
        "--email", email,
        "--wedding-date", PAST_WEDDING_DATE,
    ]  # fmt: skip


@dataclass
class CampaignDaemon:
    """A running daemon, its directories and the SMTP sink it sends to.

    ``exit_code`` is set when :func:`campaign_daemon` has stopped the daemon.
    """

    dirs: DaemonDirs
    sink: SmtpSink
    base_url: str
    smtp_port: int
    exit_code: int | None = None

    async def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``plaudit ctl ARGS`` in a worker thread and return the completed process."""
        return await trio.to_thread.run_sync(ctl, self.dirs, *args)

    async def wait_for_messages(self, count: int, *, timeout: float, what: str) -> None:
        await wait_for(lambda: len(self.sink.messages) >= count, timeout=timeout, what=what)

    def write_config(self, extra: str) -> None:
        """Rewrite the config file as the sandbox's tables followed by ``extra``."""
        self.dirs.write_config(self.base_url, sync_interval=60.0, extra=extra)


@asynccontextmanager
async def campaign_daemon(
    tmp_path: Path,
    config: Callable[[int], str],
    *,
    script_seconds: float,
    socket_timeout: float = 30.0,
) -> AsyncIterator[CampaignDaemon]:
    """Run ``plaudit run`` against a fresh sandbox and SMTP sink until the block ends.

    ``config`` maps the sink's port to the tables added after the sandbox's
    config.  The block starts once the control socket exists; on leaving it,
    the daemon gets SIGTERM and its exit status lands in ``exit_code``.
    """
    dirs = DaemonDirs(tmp_path)
    sink = SmtpSink()
    async with trio.open_nursery() as nursery:
        base_url = await start_sandbox(nursery, seed=3, script_seconds=script_seconds)
        smtp_port: int = await nursery.start(sink.serve)
        run = CampaignDaemon(dirs=dirs, sink=sink, base_url=base_url, smtp_port=smtp_port)
        run.write_config(config(smtp_port))
        process = await open_daemon(dirs)
        try:
            await wait_for(dirs.socket.exists, timeout=socket_timeout, what="the control socket")
            yield run
        finally:
            run.exit_code = await stop_daemon(process)
        nursery.cancel_scope.cancel()


# A daemon that evaluates deliverability from the first attempt on and reads the
# "bounces" Maildir, both every 0.5 s, so a bounce shows within a test.
DELIVERABILITY_TOML = """\
[daemon]
shutdown_timeout = 10.0

[metrics]
port = 0

[deliverability]
min_attempts = 1
evaluate_interval = 0.5

[deliverability.mailbox]
maildir = "bounces"
poll_interval = 0.5
"""


def write_deliverability_config(dirs: DaemonDirs, extra: str = "") -> None:
    """Write :data:`DELIVERABILITY_TOML` and ``extra`` as the config, and create the Maildir."""
    dirs.config.write_text(DELIVERABILITY_TOML + extra, encoding="utf-8")
    for folder in ("new", "cur", "tmp"):
        (dirs.state / "bounces" / folder).mkdir(parents=True)
