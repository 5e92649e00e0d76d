"""``plaudit ctl import reviews FILE`` through a real control socket into a real journal."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from plaudit.config.model import Config, MarketplaceConfig, MarketplaceProfile, PlatformsConfig
from plaudit.daemon.commands import CommandHandler
from plaudit.daemon.control_wire import InvalidArgument
from plaudit.journal import AsyncJournal, Journal
from tests.support import run_ctl_against

CSV = (
    "venue,text,rating,author\nWillow Barn,Magical day,5,Ana P.\nWillow Barn,Magical day,5,Ana P.\n"
)

# The venue column names the profile by its configured vendor_name.
CONFIG = Config(
    platforms=PlatformsConfig(
        marketplace=MarketplaceConfig(
            profiles=[
                MarketplaceProfile(
                    site="hitched", profile_id="willow-barn", vendor_name="Willow Barn"
                )
            ]
        )
    )
)


async def run_ctl(journal: Journal, sock_path: Path, *argv: str) -> int:
    return await run_ctl_against(journal, sock_path, argv, config=CONFIG)


async def test_ctl_import_reports_counts(
    tmp_path: Path, sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text(CSV, encoding="utf-8")
    journal = Journal.open(tmp_path / "journal.sqlite3")
    try:
        code = await run_ctl(
            journal, sock_path, "--json", "import", "reviews", str(path), "--platform", "hitched"
        )
        stored = journal.query("SELECT platform, profile, author FROM reviews")
    finally:
        journal.close()

    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["rows"], result["accepted"], result["created"]) == (2, 1, 1)
    assert result["duplicates"] == [{"location": "line 3", "first": "line 2"}]
    assert stored == [("hitched", "willow-barn", "Ana P.")]


async def test_ctl_import_text_output(
    tmp_path: Path, sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text(CSV + "Willow Barn,,9,Bo\n", encoding="utf-8")
    journal = Journal.open(tmp_path / "journal.sqlite3")
    try:
        code = await run_ctl(
            journal, sock_path, "import", "reviews", str(path), "--platform", "hitched"
        )
    finally:
        journal.close()

    captured = capsys.readouterr()
    out = captured.out
    assert code == 1
    assert "1 of 3 rows were not stored" in captured.err
    assert "rows 3, accepted 1, duplicates 1, errors 1" in out
    assert "error line 4: invalid rating '9'" in out


async def test_ctl_import_missing_file_fails(
    tmp_path: Path, sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = Journal.open(tmp_path / "journal.sqlite3")
    try:
        code = await run_ctl(
            journal,
            sock_path,
            "import",
            "reviews",
            str(tmp_path / "absent.csv"),
            "--platform",
            "hitched",
        )
    finally:
        journal.close()

    assert code == 1
    assert "cannot read" in capsys.readouterr().err


async def test_import_rejects_relative_path(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "journal.sqlite3")
    facade = AsyncJournal(journal)
    handler = CommandHandler(cast(Any, SimpleNamespace(journal=facade, actors={}, config=CONFIG)))
    try:
        with pytest.raises(InvalidArgument, match="absolute file path"):
            await handler("import", {"kind": "reviews", "path": "r.csv", "platform": "hitched"})
        with pytest.raises(InvalidArgument, match="unknown import kind"):
            await handler("import", {"kind": "vendors", "path": "/r.csv", "platform": "hitched"})
    finally:
        journal.close()
