"""Couple profiles from CRM exports: lead source and notes, stored with the couple import."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import trio

from plaudit.config.model import Config, VendorConfig
from plaudit.journal import AsyncJournal, Journal
from plaudit.messaging.couple_commands import import_couples
from plaudit.personalisation.profiles import normalise_platform, parse_profiles_csv
from plaudit.personalisation.store import Profile, load_profile, store_profile

HONEYBOOK = (
    "Client Name,Client Email,Project Date,Lead Source,Notes\n"
    'Ana & Ben,ana@example.com; ben@example.com,2026-05-02,The Knot,"Rainy day,\n first dance"\n'
    "Cleo Diaz,CLEO@example.com,2026-06-13,,\n"
    "Dev Rao,dev@example.com,2026-07-01,Google,\n"
)


@dataclass
class FakeDaemon:
    """The attributes the couple import reads from the daemon."""

    journal: AsyncJournal
    config: Config
    actors: dict[str, Any] = field(default_factory=dict)


def test_platform_names_normalised() -> None:
    assert normalise_platform("The Knot") == "theknot"
    assert normalise_platform("WeddingWire ") == "weddingwire"
    assert normalise_platform("Google") == "google"


def test_honeybook_columns_parsed() -> None:
    profiles = parse_profiles_csv(HONEYBOOK)

    assert profiles == {
        "ana@example.com": Profile(found_on="theknot", notes="Rainy day, first dance"),
        "dev@example.com": Profile(found_on="google", notes=""),
    }


def test_file_without_profile_columns_gives_none() -> None:
    text = "first_name,last_name,email,wedding_date\nAna,Pires,ana@example.com,2026-05-02\n"

    assert parse_profiles_csv(text) == {}
    assert parse_profiles_csv("") == {}


def test_long_notes_cut() -> None:
    text = "email,notes\nana@example.com," + "x" * 3000 + "\n"

    assert len(parse_profiles_csv(text)["ana@example.com"].notes) == 2000


async def test_import_stores_profiles(tmp_path: Path) -> None:
    export = tmp_path / "export.csv"
    export.write_text(HONEYBOOK, encoding="utf-8")
    journal = Journal.open(tmp_path / "journal.sqlite3")
    facade = AsyncJournal(journal)
    config = Config(
        vendor=VendorConfig(name="Willow", postal_address="1 Elm", from_address="a@willow.example")
    )
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(facade.run)
            daemon = cast(Any, FakeDaemon(journal=facade, config=config))
            result = await import_couples(daemon, {"kind": "couples", "path": str(export)})
            # A note stored earlier survives an import whose cell is empty.
            await facade.transaction(
                lambda tx: store_profile(tx, 3, Profile(found_on="google", notes="Garden party"))
            )
            again = await import_couples(daemon, {"kind": "couples", "path": str(export)})
            ana = await facade.transaction(lambda tx: load_profile(tx, 1))
            dev = await facade.transaction(lambda tx: load_profile(tx, 3))
            nursery.cancel_scope.cancel()
    finally:
        journal.close()

    assert result["created"] == 3
    assert again["updated"] == 3
    assert ana == Profile(found_on="theknot", notes="Rainy day, first dance")
    assert dev == Profile(found_on="google", notes="Garden party")
