"""Recorded consent: its source and time, and ``ctl request show`` printing it."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plaudit.journal import Journal
from plaudit.messaging.consent import ConsentSource, consent_history, latest_consent
from plaudit.messaging.couples import parse_couples_csv, store_couples
from plaudit.messaging.request_ctl import render_request
from tests.test_request_commands import ANA, run_ctl
from tests.test_unsubscribe import post, site

CSV = (
    "first_name,last_name,email,phone,wedding_date,sms_consent\n"
    "Ana,Pires,ana@example.com,+1 312 555 0142,2026-05-02,{ana}\n"
    "Lea,Moss,lea@example.com,,2026-06-13,no\n"
)
IMPORT = ConsentSource(kind="import", detail="clients.csv")


@pytest.fixture
def socket_path() -> Iterator[Path]:
    # AF_UNIX paths are limited to 107 bytes, which pytest's tmp_path can exceed.
    directory = Path(tempfile.mkdtemp(prefix="consent-", dir="/tmp"))
    yield directory / "control.sock"
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal.open(tmp_path / "journal.sqlite3")
    yield opened
    opened.close()


def import_csv(journal: Journal, *, ana: str = "yes", source: ConsentSource = IMPORT) -> None:
    parsed = parse_couples_csv(CSV.format(ana=ana))
    assert parsed.errors == []
    with journal.transaction() as tx:
        store_couples(tx, parsed.couples, vendor="Willow Studio", source=source)


def history(journal: Journal, couple_id: int) -> list[tuple[str, bool, str, str]]:
    with journal.transaction() as tx:
        records = consent_history(tx, couple_id)
    return [(record.channel, record.granted, record.source, record.detail) for record in records]


def test_import_records_file_and_row(journal: Journal) -> None:
    import_csv(journal)

    assert history(journal, 1) == [
        ("email", True, "import", "clients.csv row 2"),
        ("sms", True, "import", "clients.csv row 2"),
    ]
    # Lea gave e-mail consent by default and no SMS consent, so SMS has no record.
    assert history(journal, 2) == [("email", True, "import", "clients.csv row 3")]


def test_reimport_unchanged_adds_nothing(journal: Journal) -> None:
    import_csv(journal)
    import_csv(journal, source=ConsentSource(kind="import", detail="again.csv"))

    assert [record[3] for record in history(journal, 1)] == ["clients.csv row 2"] * 2


def test_withdrawn_consent_recorded(journal: Journal) -> None:
    import_csv(journal)
    import_csv(journal, ana="no", source=ConsentSource(kind="import", detail="update.csv"))

    with journal.transaction() as tx:
        latest = latest_consent(tx, 1)
    stored = journal.query("SELECT consent_sms FROM couples WHERE id = 1")

    assert latest["sms"].granted is False
    assert latest["sms"].detail == "update.csv row 2"
    assert latest["email"].detail == "clients.csv row 2"
    assert stored == [(0,)]


def test_import_without_source_records_nothing(journal: Journal) -> None:
    parsed = parse_couples_csv(CSV.format(ana="yes"))
    with journal.transaction() as tx:
        store_couples(tx, parsed.couples, vendor="Willow Studio")

    assert journal.query("SELECT COUNT(*) FROM consent_records") == [(0,)]


async def test_ctl_add_consent_shown(
    journal: Journal, socket_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await run_ctl(journal, socket_path, *ANA, "--phone", "+13125550142", "--sms-consent")
    capsys.readouterr()
    assert await run_ctl(journal, socket_path, "--json", "request", "show", "1") == 0
    detail = json.loads(capsys.readouterr().out)
    assert await run_ctl(journal, socket_path, "request", "show", "1") == 0
    shown = capsys.readouterr().out

    sources = [
        (record["channel"], record["granted"], record["detail"]) for record in detail["consent"]
    ]
    assert sources == [
        ("email", True, "plaudit ctl request add"),
        ("sms", True, "plaudit ctl request add"),
    ]
    assert isinstance(detail["consent"][0]["recorded_at"], float)
    assert "CONSENT" in shown
    assert "plaudit ctl request add" in shown
    assert "send time: not chosen yet" in shown


def show_result(**changes: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "action": "show",
        "request": {"id": 1, "campaign": "after-wedding", "step": 0, "state": "scheduled"},
        "couple": {"names": ["Ana Pires"], "emails": ["ana@example.com"]},
        "steps": [],
        "messages": [],
        "consent": [],
        "personalisation": None,
    }
    result.update(changes)
    return result


def test_show_prints_send_time_reason() -> None:
    explanation = {
        "request": 1,
        "arm": "personalised",
        "variant": "warm",
        "due_at": "2026-05-12T15:00:00Z",
        "send_at": "2026-05-12T23:00:00Z",
        "window_end": "2026-05-13T15:00:00Z",
        "local_time": "18:00",
        "timezone": "America/Chicago",
        "reason": "the couple opened e-mail most often in the early evening",
        "evidence": {},
        "draft": {"state": "none"},
        "outcome": None,
    }

    shown = render_request(show_result(personalisation=explanation))

    assert "send at  2026-05-12T23:00:00Z (18:00 America/Chicago)" in shown
    assert "why      the couple opened e-mail most often in the early evening" in shown
    assert "variant warm" in shown


def test_show_without_consent_says_so() -> None:
    shown = render_request(show_result())

    assert "consent: none recorded for this couple" in shown


async def test_ctl_import_records_file_name(
    journal: Journal, socket_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "honeybook-export.csv"
    export.write_text(CSV.format(ana="yes"))

    code = await run_ctl(journal, socket_path, "import", "couples", str(export))
    output = capsys.readouterr()

    assert code == 0, output.err
    assert history(journal, 1)[1] == ("sms", True, "import", "honeybook-export.csv row 2")


async def test_unsubscribe_link_records_withdrawal(tmp_path: Path) -> None:
    async with site(tmp_path) as web:
        await web.send_next()
        url = f"{web.url}/unsubscribe/{web.token_in_last_message()}"
        await post(url, b"List-Unsubscribe=One-Click")
        await post(url, b"List-Unsubscribe=One-Click")
        records = history(web.journal, 1)

    # The couple came from a file stored without a consent source, so the
    # withdrawal is the only record, and a repeated POST adds none.
    assert records == [("email", False, "web_form", "unsubscribe link of request 1")]
