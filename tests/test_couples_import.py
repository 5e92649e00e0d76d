"""Couples CSV import: column mapping, per-row validation, all-or-nothing storage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plaudit.config.model import CampaignConfig, CampaignStep, Config, VendorConfig
from plaudit.journal import Journal
from plaudit.messaging.couples import parse_couples_csv
from tests.support import run_ctl_against

FIXTURES = Path(__file__).parent / "fixtures" / "couples"
GENERIC_HEADER = "first_name,last_name,email,phone,wedding_date,venue,timezone\n"


def demo_config() -> Config:
    step = CampaignStep(delay_days=10, subject="Thank you", text="Hi {{ couple_names }}")
    return Config(
        vendor=VendorConfig(
            name="Willow Studio",
            postal_address="12 Elm Street, Springfield, IL 62701",
            from_address="hello@willow.example",
        ),
        campaigns=[CampaignConfig(name="after-wedding", steps=[step])],
    )


async def run_ctl(journal: Journal, sock_path: Path, *argv: str) -> int:
    return await run_ctl_against(journal, sock_path, argv, config=demo_config())


def test_honeybook_export_maps_columns() -> None:
    result = parse_couples_csv((FIXTURES / "honeybook.csv").read_text())

    assert result.errors == []
    first, second = result.couples
    assert first.names == ["Maya Ortiz", "Jonah Reed"]
    assert first.emails == ["maya.ortiz@example.com", "jonah.reed@example.org"]
    assert first.phone == "+13125550142"
    assert first.wedding_date == "2026-06-13"
    assert first.venue == "Lakeside Pavilion"
    assert second.names == ["Priya Nair", "Sam Cole"]


def test_generic_export_maps_columns() -> None:
    result = parse_couples_csv((FIXTURES / "generic.csv").read_text())

    assert result.errors == []
    lena, tom = result.couples
    assert lena.names == ["Lena Vogel"]
    assert lena.timezone == "Europe/Berlin"
    assert lena.consent_sms is True
    assert tom.consent_sms is False
    assert tom.phone is None


def test_invalid_rows_named_by_number() -> None:
    result = parse_couples_csv((FIXTURES / "invalid.csv").read_text())

    problems = [(error.row, error.column, error.value) for error in result.errors]
    assert problems == [
        (3, "email", "bo.chen@@example.com"),
        (4, "phone", "555-0100"),
        (5, "wedding_date", "16th of May"),
        (6, "timezone", "Mars/Olympus"),
    ]
    assert "country code" in result.errors[1].message
    assert "YYYY-MM-DD" in result.errors[2].message


@pytest.mark.parametrize(
    ("row", "column", "fix"),
    [
        ("Ann,Lee,not-an-address,,2026-05-02,Barn,", "email", "invalid e-mail"),
        ("Ann,Lee,ann@example.com x@,,2026-05-02,Barn,", "email", "invalid e-mail"),
        ("Ann,Lee,,,2026-05-02,Barn,", "email", "no e-mail address"),
        ("Ann,Lee,ann@example.com,+1 555,2026-05-02,Barn,", "phone", "phone"),
        ("Ann,Lee,ann@example.com,,2026-02-30,Barn,", "wedding_date", "invalid date"),
        (",,ann@example.com,,2026-05-02,Barn,", "first_name", "no name"),
    ],
)
def test_row_rejected(row: str, column: str, fix: str) -> None:
    result = parse_couples_csv(GENERIC_HEADER + row + "\n")

    assert result.couples == []
    assert len(result.errors) == 1
    assert result.errors[0].row == 2
    assert result.errors[0].column == column
    assert fix in result.errors[0].message


def test_missing_email_column_rejected() -> None:
    result = parse_couples_csv("Client Name,Project Date\nAna,2026-01-01\n")

    assert [error.row for error in result.errors] == [1]
    assert "Client Email" in result.errors[0].message


def test_repeated_couple_rejected() -> None:
    rows = "Ann,Lee,ann@example.com,,2026-05-02,Barn,\nAnn,Lee,ANN@example.com,,2026-05-02,Barn,\n"
    result = parse_couples_csv(GENERIC_HEADER + rows)

    assert [error.row for error in result.errors] == [3]
    assert "row 2" in result.errors[0].message


async def test_ctl_import_stores_and_schedules(
    tmp_path: Path, sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = Journal.open(tmp_path / "journal.sqlite3")
    try:
        code = await run_ctl(
            journal, sock_path, "--json", "import", "couples", str(FIXTURES / "honeybook.csv")
        )
        couples = journal.query("SELECT email, vendor FROM couples ORDER BY id")
        requests = journal.query("SELECT campaign, step, state FROM requests ORDER BY id")
        jobs = journal.query("SELECT kind, owner FROM jobs")
    finally:
        journal.close()

    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["rows"], result["created"], result["scheduled"]) == (2, 2, 2)
    assert couples == [
        ("maya.ortiz@example.com", "Willow Studio"),
        ("priya@example.com", "Willow Studio"),
    ]
    assert requests == [("after-wedding", 0, "scheduled")] * 2
    assert jobs == [("request.send", "notifier")] * 2


async def test_ctl_import_all_or_nothing(
    tmp_path: Path, sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = Journal.open(tmp_path / "journal.sqlite3")
    try:
        code = await run_ctl(journal, sock_path, "import", "couples", str(FIXTURES / "invalid.csv"))
        stored = journal.query("SELECT count(*) FROM couples")
    finally:
        journal.close()

    assert code == 1
    captured = capsys.readouterr()
    output = captured.out
    assert "nothing stored" in output
    assert "rows are invalid, so no couple was stored" in captured.err
    assert "row 3 column 'email' value 'bo.chen@@example.com'" in output
    assert stored == [(0,)]


async def test_ctl_reimport_updates(
    tmp_path: Path, sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(FIXTURES / "generic.csv")
    journal = Journal.open(tmp_path / "journal.sqlite3")
    try:
        await run_ctl(journal, sock_path, "--json", "import", "couples", path)
        capsys.readouterr()
        await run_ctl(journal, sock_path, "--json", "import", "couples", path)
        requests = journal.query("SELECT count(*) FROM requests")
    finally:
        journal.close()

    result = json.loads(capsys.readouterr().out)
    assert (result["created"], result["updated"], result["scheduled"]) == (0, 2, 0)
    assert requests == [(2,)]
