"""``plaudit ctl personalisation``: argument parsing, the daemon-side command and rendering."""

from __future__ import annotations

import zoneinfo
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import trio

from plaudit.config.model import CampaignConfig, CampaignStep, Config, VendorConfig
from plaudit.daemon.control_wire import InvalidArgument
from plaudit.daemon.ctl import build_parser, render, request_args
from plaudit.journal import AsyncJournal, Journal, Tx
from plaudit.messaging.couples import Couple, store_couples
from plaudit.personalisation import store
from plaudit.personalisation.control import personalisation_commands
from plaudit.personalisation.sendtime import fixed_time

NOW = 1_780_000_000.0


@dataclass
class FakeDaemon:
    """The two attributes the personalisation command reads from the daemon."""

    journal: AsyncJournal | None
    config: Config


def make_config() -> Config:
    step = CampaignStep(delay_days=10, subject="Thanks", text="Hello {{ couple_names }}")
    return Config(
        vendor=VendorConfig(
            name="Willow Studio",
            postal_address="12 Elm Street",
            from_address="hello@willow.example",
            review_links={"google": "https://reviews.invalid/g", "theknot": "https://k.invalid"},
        ),
        campaigns=[CampaignConfig(name="after-wedding", steps=[step])],
    )


def seed(tx: Tx) -> None:
    couple = Couple(
        names=["Ana Pires"],
        emails=["ana@example.com"],
        phone=None,
        wedding_date="2026-05-02",
        venue="Orchard Barn",
        timezone="America/Chicago",
        consent_email=True,
        consent_sms=False,
    )
    store_couples(tx, [couple], vendor="Willow Studio")
    tx.execute(
        "INSERT INTO requests (couple_id, campaign, step, channel, state, scheduled_at,"
        " updated_at) VALUES (1, 'after-wedding', 0, 'email', 'sent', ?, ?)",
        (NOW, NOW),
    )
    choice = fixed_time(
        due_at=NOW, now=NOW, zone=zoneinfo.ZoneInfo("America/Chicago"), reason="holdout group"
    )
    store.insert_assignment(
        tx,
        store.Assignment(
            request_id=1,
            couple_id=1,
            campaign="after-wedding",
            step=0,
            arm="holdout",
            variant="base",
            due_at=NOW,
            planned_at=NOW,
            explanation=choice,
            draft_state="off",
        ),
    )


@pytest.fixture
async def command(tmp_path: Path) -> AsyncIterator[Any]:
    journal = Journal.open(tmp_path / "journal.sqlite3", clock=lambda: NOW + 3600)
    facade = AsyncJournal(journal)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(facade.run)
            await facade.transaction(seed)
            daemon = FakeDaemon(journal=facade, config=make_config())
            yield personalisation_commands(cast(Any, daemon))["personalisation"]
            nursery.cancel_scope.cancel()
    finally:
        journal.close()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["personalisation", "lift"], {"action": "lift"}),
        (
            ["personalisation", "lift", "--campaign", "after-wedding"],
            {"action": "lift", "campaign": "after-wedding"},
        ),
        (["personalisation", "explain", "7"], {"action": "explain", "request": 7}),
        (
            ["personalisation", "profile", "3", "--found-on", "google", "--notes", "Barn"],
            {"action": "profile", "couple": 3, "found_on": "google", "notes": "Barn"},
        ),
    ],
)
def test_parser_builds_request(argv: list[str], expected: dict[str, Any]) -> None:
    options = build_parser().parse_args(argv)

    assert request_args(options) == expected


async def test_explain_shows_reason(command: Any) -> None:
    result = await command({"action": "explain", "request": 1})
    text = render("personalisation", result)

    assert result["arm"] == "holdout"
    assert result["reason"] == "holdout group"
    assert result["timezone"] == "America/Chicago"
    assert "holdout group, variant base" in text
    assert "why      holdout group" in text


async def test_explain_unplanned_request_rejected(command: Any) -> None:
    with pytest.raises(InvalidArgument, match="no personalisation record yet"):
        await command({"action": "explain", "request": 99})


async def test_lift_without_treatment_explains(command: Any) -> None:
    result = await command({"action": "lift"})
    text = render("personalisation", result)

    assert result["holdout"]["couples"] == 0
    assert result["pending_couples"] == 0
    assert "note:" in text


async def test_profile_stored_and_checked(command: Any) -> None:
    result = await command(
        {"action": "profile", "couple": 1, "found_on": "theknot", "notes": " Barn dance "}
    )

    assert result["found_on"] == "theknot"
    with pytest.raises(InvalidArgument, match="not a \\[vendor\\] review_links platform"):
        await command({"action": "profile", "couple": 1, "found_on": "myspace"})
    with pytest.raises(InvalidArgument, match="no couple with id 5"):
        await command({"action": "profile", "couple": 5})
    with pytest.raises(InvalidArgument, match="more than 2000"):
        await command({"action": "profile", "couple": 1, "notes": "x" * 2001})


async def test_unknown_action_rejected(command: Any) -> None:
    with pytest.raises(InvalidArgument, match="must be lift, explain or profile"):
        await command({"action": "delete"})
