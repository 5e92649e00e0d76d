"""A real ``plaudit run``: a personalised request goes out, then ctl personalisation.

Real time, real processes: conditions are awaited with the limit stated at
each call.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from plaudit.sandbox.smtp import SmtpSink
from tests.support import DaemonDirs, ctl, open_daemon, start_sandbox, stop_daemon, wait_for

pytestmark = pytest.mark.slow


def personalisation_config(smtp_port: int) -> str:
    return f"""
[vendor]
name = "Willow Studio"
postal_address = "12 Elm Street, Springfield, IL 62701"
from_address = "hello@willow.example"
unsubscribe_url = "https://willow.example/unsubscribe"
unsubscribe_mailto = "unsubscribe@willow.example"
review_links = {{ google = "https://reviews.invalid/google", theknot = "https://k.invalid" }}

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
timeout = 10.0

[[campaigns]]
name = "after-wedding"

[[campaigns.steps]]
delay_days = 10
subject = "Base subject"
text = "{{{{ opening_line }}}} Dear {{{{ couple_names }}}}: {{{{ unsubscribe_link }}}}"

[[campaigns.steps.variants]]
name = "warm"
subject = "Warm subject"
text = "Dear {{{{ first_names[0] }}}}: {{{{ unsubscribe_link }}}}"

[campaigns.personalisation]
holdout = 0.0
conversion_days = 7
"""


def run_ctl(dirs: DaemonDirs, *args: str) -> tuple[int, str, str]:
    done = ctl(dirs, *args)
    return done.returncode, done.stdout, done.stderr


async def test_ctl_personalisation_on_daemon(tmp_path: Path) -> None:
    dirs = DaemonDirs(tmp_path)
    sink = SmtpSink()
    async with trio.open_nursery() as nursery:
        base_url = await start_sandbox(nursery, seed=3, script_seconds=2.0)
        smtp_port = await nursery.start(sink.serve)
        dirs.write_config(base_url, sync_interval=60.0, extra=personalisation_config(smtp_port))
        process = await open_daemon(dirs)
        try:
            await wait_for(dirs.socket.exists, timeout=30, what="the control socket")
            added = await trio.to_thread.run_sync(
                run_ctl,
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
            # A wedding in the past: the step's window has passed, so it goes at once.
            await wait_for(lambda: sink.messages, timeout=60, what="the request e-mail")
            explained = await trio.to_thread.run_sync(
                run_ctl, dirs, "personalisation", "explain", "1"
            )
            lift = await trio.to_thread.run_sync(run_ctl, dirs, "--json", "personalisation", "lift")
            profile = await trio.to_thread.run_sync(
                run_ctl, dirs, "personalisation", "profile", "1", "--found-on", "theknot"
            )
            wrong = await trio.to_thread.run_sync(
                run_ctl, dirs, "personalisation", "profile", "1", "--found-on", "myspace"
            )
        finally:
            code = await stop_daemon(process)
        nursery.cancel_scope.cancel()

    assert code == 0, dirs.log.read_text()
    assert added[0] == 0, added[2]
    assert explained[0] == 0, explained[2]
    assert "request 1: treatment group, variant" in explained[1]
    assert "window had passed" in explained[1]
    assert lift[0] == 0, lift[2]
    report = json.loads(lift[1])
    assert report["pending_couples"] == 1
    assert "no settled holdout couples" in report["note"]
    assert profile[0] == 0, profile[2]
    assert "found_on theknot" in profile[1]
    assert wrong[0] == 1
    assert "not a [vendor] review_links platform" in wrong[2]
    subject = sink.messages[0].parsed()["Subject"]
    assert subject in ("Base subject", "Warm subject")
