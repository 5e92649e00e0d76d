"""The channel of a step with channel auto: the pure choice and its check-config rules."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from plaudit.config.loader import load_config
from plaudit.config.model import (
    CampaignConfig,
    CampaignStep,
    Config,
    SmtpConfig,
    VendorConfig,
)
from plaudit.errors import ConfigError
from plaudit.personalisation.channel_choice import choose_channel
from plaudit.personalisation.checks import check_personalisation
from plaudit.personalisation.variants import VariantStats

SMS_BETTER = [
    VariantStats(name="email", conversions=20, failures=180),
    VariantStats(name="sms", conversions=60, failures=140),
]


def test_choice_fixed_seed_repeats() -> None:
    first = [
        choose_channel(
            ["email", "sms"], {"email", "sms"}, arm="treatment", stats=[], rng=random.Random(7)
        ).channel
        for _ in range(3)
    ]
    again = choose_channel(
        ["email", "sms"], {"email", "sms"}, arm="treatment", stats=[], rng=random.Random(7)
    )

    assert len(set(first)) == 1
    assert again.channel == first[0]


def test_choice_favours_converting_channel() -> None:
    rng = random.Random(20261204)
    picks = Counter(
        choose_channel(
            ["email", "sms"], {"email", "sms"}, arm="treatment", stats=SMS_BETTER, rng=rng
        ).channel
        for _ in range(1000)
    )

    # Beta(61, 141) against Beta(21, 181): SMS wins almost every draw.
    assert picks["sms"] > 990
    assert picks["email"] < 10


def test_untried_channel_still_explored() -> None:
    rng = random.Random(3)
    stats = [VariantStats(name="email", conversions=30, failures=170)]
    picks = Counter(
        choose_channel(
            ["email", "sms"], {"email", "sms"}, arm="treatment", stats=stats, rng=rng
        ).channel
        for _ in range(1000)
    )

    # SMS has no outcomes, so its posterior is uniform and often beats email's 0.15.
    assert picks["sms"] > 500
    assert picks["email"] > 0


def test_holdout_gets_first_listed() -> None:
    choice = choose_channel(
        ["email", "sms"], {"email", "sms"}, arm="holdout", stats=SMS_BETTER, rng=random.Random(1)
    )

    assert choice.channel == "email"
    assert choice.arm == "holdout"
    assert choice.reason.startswith("holdout group")


def test_holdout_keeps_first_when_unreachable() -> None:
    choice = choose_channel(
        ["sms", "email"], {"email"}, arm="holdout", stats=[], rng=random.Random(1)
    )

    assert choice.channel == "sms"
    assert choice.receivable == ["email"]


def test_only_receivable_channel_chosen() -> None:
    choice = choose_channel(
        ["sms", "email"], {"email"}, arm="treatment", stats=SMS_BETTER, rng=random.Random(1)
    )

    assert choice.channel == "email"
    assert choice.receivable == ["email"]
    assert "only listed channel" in choice.reason


def test_nothing_receivable_uses_first() -> None:
    choice = choose_channel(
        ["sms", "push"], set(), arm="treatment", stats=SMS_BETTER, rng=random.Random(1)
    )

    assert choice.channel == "sms"
    assert choice.receivable == []
    assert "no listed channel" in choice.reason


def test_reason_lists_counts() -> None:
    choice = choose_channel(
        ["email", "sms"], {"email", "sms"}, arm="treatment", stats=SMS_BETTER, rng=random.Random(1)
    )

    assert "email 20/200" in choice.reason
    assert "sms 60/200" in choice.reason


def test_empty_allowed_rejected() -> None:
    with pytest.raises(ValueError, match="at least one entry in channels"):
        choose_channel([], {"email"}, arm="treatment", stats=[], rng=random.Random(1))


def email_only_config(*steps: CampaignStep) -> Config:
    return Config(
        vendor=VendorConfig(
            name="Willow Studio",
            postal_address="12 Elm Street, Springfield, IL 62701",
            from_address="hello@willow.example",
            timezone="America/Chicago",
            review_links={"google": "https://reviews.invalid/google"},
        ),
        smtp=SmtpConfig(host="127.0.0.1", port=2525, security="none"),
        campaigns=[CampaignConfig(name="after-wedding", steps=list(steps))],
    )


def problems(config: Config) -> dict[tuple[object, ...], str]:
    return {path: message for path, message in check_personalisation(config)}


def test_check_auto_without_channels() -> None:
    step = CampaignStep(channel="auto", delay_days=10, subject="Thanks", text="Hi")

    found = problems(email_only_config(step))

    assert "list the channels" in found[("campaigns", 0, "steps", 0, "channels")]


def test_check_auto_sms_needs_table() -> None:
    step = CampaignStep(
        channel="auto",
        channels=["email", "sms"],
        delay_days=10,
        subject="Thanks",
        text="Hi. Reply STOP to opt out.",
    )

    found = problems(email_only_config(step))

    assert "sms needs an [sms] table" in found[("campaigns", 0, "steps", 0, "channels")]


def test_check_auto_sms_needs_opt_out() -> None:
    step = CampaignStep(
        channel="auto", channels=["email", "sms"], delay_days=10, subject="Thanks", text="Hi"
    )

    found = problems(email_only_config(step))

    assert "Reply STOP" in found[("campaigns", 0, "steps", 0, "text")]


def test_check_auto_duplicate_channel() -> None:
    step = CampaignStep(
        channel="auto", channels=["email", "email"], delay_days=10, subject="Thanks", text="Hi"
    )

    found = problems(email_only_config(step))

    assert "listed twice" in found[("campaigns", 0, "steps", 0, "channels")]


def test_check_channels_without_auto() -> None:
    step = CampaignStep(
        channel="email", channels=["email"], delay_days=10, subject="Thanks", text="Hi"
    )

    found = problems(email_only_config(step))

    assert "used only with channel = 'auto'" in found[("campaigns", 0, "steps", 0, "channels")]


def test_check_auto_email_accepted() -> None:
    step = CampaignStep(
        channel="auto", channels=["email"], delay_days=10, subject="Thanks", text="Hi"
    )

    assert problems(email_only_config(step)) == {}


def write_auto_step(tmp_path: Path, channels: str) -> Path:
    path = tmp_path / "plaudit.toml"
    path.write_text(
        '[[campaigns]]\nname = "a"\n[[campaigns.steps]]\nchannel = "auto"\n'
        f'channels = {channels}\ndelay_days = 1\nsubject = "s"\ntext = "t"\n',
        encoding="utf-8",
    )
    return path


def test_load_unknown_channel_rejected(tmp_path: Path) -> None:
    path = write_auto_step(tmp_path, '["email", "fax"]')

    with pytest.raises(ConfigError, match="fax"):
        load_config(path)


def test_load_auto_sms_without_table(tmp_path: Path) -> None:
    path = write_auto_step(tmp_path, '["email", "sms"]')

    with pytest.raises(ConfigError) as raised:
        load_config(path)

    assert "sms needs an [sms] table" in str(raised.value)
    assert "Reply STOP" in str(raised.value)
