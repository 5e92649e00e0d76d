"""Review contacts: storing Trustpilot's address and reference beside each review."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import trio

from plaudit.actors.listing import ListingActor
from plaudit.actors.sources import build_sources
from plaudit.config.model import (
    Config,
    PlatformsConfig,
    TrustpilotBusinessUnit,
    TrustpilotConfig,
)
from plaudit.connectors.platform_json import parse_platform_json
from plaudit.daemon.children import ChildContext
from plaudit.journal import AsyncJournal, Journal
from plaudit.reviews.contacts import (
    find_by_email,
    find_by_reference,
    load_contacts,
    store_contacts,
)
from plaudit.reviews.model import Contact
from plaudit.sandbox import SandboxOptions, serve_sandbox
from plaudit.sandbox import trustpilot as tp_sandbox
from tests.support import query, wait_for


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal.open(tmp_path / "journal.sqlite3", instance="contacts-1")
    yield opened
    opened.close()


def write(journal: Journal, contacts: dict[str, Contact]) -> int:
    with journal.transaction() as tx:
        return store_contacts(tx, "trustpilot", contacts)


def stored(journal: Journal) -> dict[str, Contact]:
    with journal.transaction() as tx:
        return load_contacts(tx, "trustpilot")


def by_email(journal: Journal, email: str) -> list[tuple[str, str]]:
    with journal.transaction() as tx:
        return find_by_email(tx, email)


def by_reference(journal: Journal, reference: str) -> list[tuple[str, str]]:
    with journal.transaction() as tx:
        return find_by_reference(tx, reference)


def test_contacts_round_trip(journal: Journal) -> None:
    contact = Contact(email="Ines@Example.com", reference="booking-17")
    assert write(journal, {"r1": contact}) == 1
    assert stored(journal) == {"r1": contact}


def test_repeat_writes_nothing(journal: Journal) -> None:
    contact = Contact(email="ines@example.com", reference="booking-17")
    write(journal, {"r1": contact})
    assert write(journal, {"r1": contact}) == 0


def test_changed_reference_replaces_row(journal: Journal) -> None:
    write(journal, {"r1": Contact(email="ines@example.com", reference="booking-17")})
    write(journal, {"r1": Contact(email="ines@example.com", reference="booking-18")})
    assert stored(journal)["r1"].reference == "booking-18"


def test_empty_contact_keeps_earlier_row(journal: Journal) -> None:
    write(journal, {"r1": Contact(email="ines@example.com", reference=None)})
    assert write(journal, {"r1": Contact(email=None, reference="  ")}) == 0
    assert stored(journal)["r1"].email == "ines@example.com"


def test_find_by_email_ignores_case(journal: Journal) -> None:
    write(journal, {"r1": Contact(email="Ines@Example.com", reference=None)})
    assert by_email(journal, " ines@example.COM ") == [("trustpilot", "r1")]
    assert by_email(journal, "other@example.com") == []


def test_find_by_reference_is_exact(journal: Journal) -> None:
    write(journal, {"r1": Contact(email=None, reference="booking-17")})
    assert by_reference(journal, "booking-17") == [("trustpilot", "r1")]
    assert by_reference(journal, "BOOKING-17") == []


def test_failed_transaction_stores_no_contact(journal: Journal) -> None:
    with pytest.raises(RuntimeError, match="rolled back"), journal.transaction() as tx:
        store_contacts(tx, "trustpilot", {"r1": Contact(email="a@example.com", reference="b")})
        raise RuntimeError("rolled back")
    assert stored(journal) == {}


def test_inspect_adds_contact_keys() -> None:
    body = {
        "reviews": [
            {
                "id": "60aa01",
                "stars": 5,
                "createdAt": "2024-05-01T10:00:00Z",
                "referenceId": "booking-9",
                "referralEmail": "mia@example.com",
            },
            {"id": "60aa02", "stars": 4, "createdAt": "2024-05-02T10:00:00Z"},
        ]
    }
    with_contact, without = parse_platform_json("trustpilot", json.dumps(body).encode())
    assert with_contact["email"] == "mia@example.com"
    assert with_contact["reference"] == "booking-9"
    assert without["email"] is None
    assert without["reference"] is None
    assert {"platform", "platform_review_id", "rating", "reply"} <= with_contact.keys()


# Against the sandbox.


@pytest.fixture
async def base_url(nursery: trio.Nursery) -> AsyncIterator[str]:
    url: str = await nursery.start(serve_sandbox, SandboxOptions(seed=4, script_seconds=0))
    yield url


def trustpilot_config(base_url: str) -> Config:
    trustpilot = TrustpilotConfig(
        api_base=f"{base_url}/trustpilot/v1",
        token_url=f"{base_url}/trustpilot/v1/oauth/oauth-business-users-for-applications/accesstoken",
        api_key=tp_sandbox.SANDBOX_API_KEY,
        api_secret=tp_sandbox.SANDBOX_API_SECRET,
        business_units=[TrustpilotBusinessUnit(business_unit_id=u) for u in tp_sandbox.UNIT_IDS],
    )
    return Config(platforms=PlatformsConfig(trustpilot=trustpilot))


def succeeded_syncs(path: Path) -> int:
    rows = query(
        path, "SELECT count(*) FROM jobs WHERE kind = 'trustpilot.sync' AND state = 'succeeded'"
    )
    return int(rows[0][0]) if rows else 0


async def test_sync_stores_sandbox_contacts(base_url: str, tmp_path: Path) -> None:
    opened = Journal.open(tmp_path / "journal.sqlite3", instance="contacts-2")
    source, interval, breaker = build_sources(trustpilot_config(base_url))["trustpilot"]
    async with trio.open_nursery() as nursery:
        writer = AsyncJournal(opened)
        await nursery.start(writer.run)
        actor = ListingActor(
            writer, source, sync_interval=interval, breaker=breaker, lease_seconds=30.0
        )
        context = ChildContext("test")
        nursery.start_soon(actor.start, context)
        # Real time, because the journal's worker thread rules out the autojump clock.
        await wait_for(
            lambda: succeeded_syncs(tmp_path / "journal.sqlite3") >= len(tp_sandbox.UNIT_IDS),
            timeout=60,
            what="one sync of every business unit",
        )
        context.stop_requested.set()
        await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
    opened.close()

    async with httpx.AsyncClient() as http:
        truth = (await http.get(f"{base_url}/_sandbox/truth")).json()
    expected = {
        review["review_id"]: Contact(email=review["email"], reference=review["reference"])
        for profile in truth["trustpilot"]["profiles"]
        for review in profile["reviews"]
    }
    with sqlite3.connect(tmp_path / "journal.sqlite3") as connection:
        contacts = load_contacts(connection, "trustpilot")
        orphans = connection.execute(
            "SELECT count(*) FROM review_contacts c LEFT JOIN reviews r "
            "ON r.platform = c.platform AND r.review_id = c.review_id WHERE r.review_id IS NULL"
        ).fetchone()
    assert contacts == expected
    assert orphans == (0,)
