"""check-config on an https unsubscribe link that no [inbound] listener serves."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from plaudit.config.check import check_config

VENDOR = """
[vendor]
name = "Willow Studio"
postal_address = "12 Elm Street, Springfield, IL 62701"
from_address = "hello@willow.example"
unsubscribe_url = "https://willow.example/unsubscribe"
review_links = { google = "https://reviews.invalid/google" }
"""
MAILTO = 'unsubscribe_mailto = "unsubscribe@willow.example"\n'
SMTP = """
[smtp]
host = "127.0.0.1"
port = 2525
security = "none"
"""
EMAIL_CAMPAIGN = """
[[campaigns]]
name = "after-wedding"

[[campaigns.steps]]
delay_days = 10
subject = "Thank you"
text = "Hi {{ couple_names }}: {{ unsubscribe_link }}"
"""
INBOUND = """
[inbound]
port = 8465
"""


def run_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], *parts: str
) -> tuple[int, str, str]:
    path = tmp_path / "plaudit.toml"
    path.write_text("".join(parts))
    code = check_config(str(path), out=sys.stdout, err=sys.stderr)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_only_link_unserved_is_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_check(tmp_path, capsys, VENDOR, SMTP, EMAIL_CAMPAIGN)

    assert code == 1
    assert "vendor.unsubscribe_url" in err
    assert "without an [inbound] table nothing serves it" in err
    assert "set unsubscribe_mailto" in err


def test_unserved_link_beside_mailto_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_check(tmp_path, capsys, VENDOR, MAILTO, SMTP, EMAIL_CAMPAIGN)

    assert code == 0, err
    assert ": OK" in out
    assert ": warning: vendor.unsubscribe_url:" in err
    assert "only unsubscribe_mailto works" in err


def test_served_link_passes_quietly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_check(tmp_path, capsys, VENDOR, MAILTO, SMTP, EMAIL_CAMPAIGN, INBOUND)

    assert code == 0, err
    assert err == ""


def test_push_only_campaign_needs_no_route(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    push_campaign = EMAIL_CAMPAIGN.replace("delay_days = 10", 'channel = "push"\ndelay_days = 10')

    code, _, err = run_check(tmp_path, capsys, VENDOR, push_campaign)

    assert "vendor.unsubscribe_url" not in err
    # The push step still needs its [push] table, so the check fails on that alone.
    assert code == 1
    assert "push steps need a [push] table" in err
