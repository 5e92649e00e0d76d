"""A real ``plaudit run``: a personalised request goes out, then ctl personalisation.

Real time, real processes: conditions are awaited with the limit stated at
each call.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import support_mail as mail

pytestmark = pytest.mark.slow

VARIANT = """
[[campaigns.steps.variants]]
name = "warm"
subject = "Warm subject"
text = "Dear {{ first_names[0] }}: {{ unsubscribe_link }}"

[campaigns.personalisation]
holdout = 0.0
conversion_days = 7
"""


def personalisation_config(smtp_port: int) -> str:
    vendor = mail.vendor_toml(
        unsubscribe_url="https://willow.example/unsubscribe",
        review_links='{ google = "https://reviews.invalid/google", theknot = "https://k.invalid" }',
        extra='unsubscribe_mailto = "unsubscribe@willow.example"\n',
    )
    text = "{{ opening_line }} Dear {{ couple_names }}: {{ unsubscribe_link }}"
    step = mail.step_toml(subject="Base subject", text=text)
    return vendor + mail.smtp_toml(smtp_port) + mail.campaign_toml(step) + VARIANT


async def test_ctl_personalisation_on_daemon(tmp_path: Path) -> None:
    async with mail.campaign_daemon(tmp_path, personalisation_config, script_seconds=2.0) as daemon:
        added = await daemon.ctl(*mail.request_add_args())
        # A wedding in the past: the step's window has passed, so it goes at once.
        await daemon.wait_for_messages(1, timeout=60, what="the request e-mail")
        explained = await daemon.ctl("personalisation", "explain", "1")
        lift = await daemon.ctl("--json", "personalisation", "lift")
        profile = await daemon.ctl("personalisation", "profile", "1", "--found-on", "theknot")
        wrong = await daemon.ctl("personalisation", "profile", "1", "--found-on", "myspace")

    assert daemon.exit_code == 0, daemon.dirs.log.read_text()
    assert added.returncode == 0, added.stderr
    assert explained.returncode == 0, explained.stderr
    assert "request 1: treatment group, variant" in explained.stdout
    assert "window had passed" in explained.stdout
    assert lift.returncode == 0, lift.stderr
    report = json.loads(lift.stdout)
    assert report["pending_couples"] == 1
    assert "no settled holdout couples" in report["note"]
    assert profile.returncode == 0, profile.stderr
    assert "found_on theknot" in profile.stdout
    assert wrong.returncode == 1
    assert "not a [vendor] review_links platform" in wrong.stderr
    subject = daemon.sink.messages[0].parsed()["Subject"]
    assert subject in ("Base subject", "Warm subject")
