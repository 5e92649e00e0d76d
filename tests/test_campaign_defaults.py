"""Per-vendor campaign defaults from the config file, and stopping by campaign."""

from __future__ import annotations

from pathlib import Path

import pytest

from plaudit.config.loader import load_config
from plaudit.errors import ConfigError
from plaudit.journal import Journal
from plaudit.messaging.campaigns import (
    DEFAULT_CAMPAIGN,
    campaigns_stopping_on,
    default_campaign,
    schedule_step,
    stop_couple,
)
from plaudit.messaging.compliance import check_compliance
from plaudit.messaging.couples import parse_couples_csv, store_couples
from plaudit.messaging.preview import preview_step

VENDOR_AND_SMTP = """
[vendor]
name = "Willow Studio"
postal_address = "12 Elm Street, Springfield, IL 62701"
from_address = "hello@willow.example"
review_links = { google = "https://reviews.invalid/google" }
unsubscribe_mailto = "unsubscribe@willow.example"

[smtp]
host = "127.0.0.1"
port = 2525
security = "none"
"""
STEPS_WITHOUT_DELAYS = """
[[campaigns]]
name = "short"
stop_on = ["unsubscribe"]

[[campaigns.steps]]
subject = "Thank you"
text = "Dear {{ couple_names }}. {{ unsubscribe_link }}"

[[campaigns.steps]]
subject = "A reminder"
text = "Dear {{ couple_names }}. {{ unsubscribe_link }}"
"""


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plaudit.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_vendor_without_campaigns_gets_default(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, VENDOR_AND_SMTP))

    (campaign,) = config.campaigns
    assert campaign.name == DEFAULT_CAMPAIGN
    assert [step.delay_days for step in campaign.steps] == [10.0, 7.0]
    assert [step.channel for step in campaign.steps] == ["email", "email"]
    assert set(campaign.stop_on) == {"review", "unsubscribe", "hard_bounce", "complaint"}


def test_empty_campaigns_key_turns_default_off(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, "campaigns = []\n" + VENDOR_AND_SMTP))

    assert config.campaigns == []


def test_no_smtp_no_default(tmp_path: Path) -> None:
    vendor_only = VENDOR_AND_SMTP.split("[smtp]", maxsplit=1)[0]
    config = load_config(write_config(tmp_path, vendor_only))

    assert config.campaigns == []


def test_missing_delays_filled(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, VENDOR_AND_SMTP + STEPS_WITHOUT_DELAYS))

    (campaign,) = config.campaigns
    assert campaign.name == "short"
    assert [step.delay_days for step in campaign.steps] == [10.0, 7.0]


def test_bad_delay_still_rejected(tmp_path: Path) -> None:
    text = STEPS_WITHOUT_DELAYS.replace('subject = "A reminder"', 'delay_days = -1\nsubject = "A"')

    with pytest.raises(ConfigError, match="delay_days"):
        load_config(write_config(tmp_path, VENDOR_AND_SMTP + text))


def test_default_templates_compliant(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, VENDOR_AND_SMTP))

    assert list(check_compliance(config)) == []
    for number in (1, 2):
        preview = preview_step(config, DEFAULT_CAMPAIGN, number, None)
        assert "error" not in preview
        assert "https://reviews.invalid/google" in preview["text"]
        assert "12 Elm Street" in preview["text"]
        assert "mailto:unsubscribe@willow.example" in preview["text"]


def test_campaigns_stopping_on_reads_stop_on(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, VENDOR_AND_SMTP + STEPS_WITHOUT_DELAYS))

    assert campaigns_stopping_on(config, "unsubscribe") == {"short"}
    assert campaigns_stopping_on(config, "review") == set()


def test_stop_couple_only_named_campaigns(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "journal.sqlite3")
    first = default_campaign()
    second = type(first)(name="second", steps=first.steps)
    couples = parse_couples_csv(
        "first_name,last_name,email,phone,wedding_date,venue,timezone\n"
        "Ana,Pires,ana@example.com,,2026-05-02,Orchard Barn,UTC\n"
    )

    try:
        with journal.transaction() as tx:
            store_couples(tx, couples.couples, vendor="Willow Studio")
            for campaign in (first, second):
                schedule_step(tx, couple_id=1, campaign=campaign, step=0, run_at=tx.now + 86400)
            stopped = stop_couple(tx, 1, reason="review", campaigns={"second"})
        rows = journal.query("SELECT campaign, state, last_error FROM requests ORDER BY campaign")
    finally:
        journal.close()

    assert stopped == 1
    assert rows == [("default", "scheduled", None), ("second", "stopped", "stopped: review")]
