"""Review files imported into a real journal: sniffing, row errors, duplicates, stable ids."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from plaudit.journal import AsyncJournal, Journal
from plaudit.reviews.dropfolder import import_dropped_files
from plaudit.reviews.importer import (
    ImportFileError,
    decode_text,
    import_reviews,
    read_review_file,
    sniff_delimiter,
    store_review_file,
)
from plaudit.reviews.store import load_reviews

# 2026-01-01T00:00:00Z.
NOW = 1_767_225_600.0


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal.open(tmp_path / "journal.sqlite3")
    yield opened
    opened.close()


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


CSV = """\
platform,venue,review_id,rating,text,author,date
hitched,Willow Barn,,5,"The barn was magical.

Staff were lovely.",Priya and Tom,2025-06-15
hitched,Willow Barn,,4,Good food,Sam B.,15/03/2025
hitched,Willow Barn,,5,"The  barn was magical.
Staff were lovely.",priya and tom,2025-06-16
hitched,Willow Barn,,9,Too many stars,Ann C.,2025-01-01
hitched,Willow Barn,,,,,2025-01-01
bodas,Willow Barn,,5,Wrong platform,Luz M.,2025-01-01
hitched,Oak Hall,,4.5,Lovely,Dee E.,not a date
"""


def test_csv_import_counts_rows(journal: Journal, tmp_path: Path) -> None:
    report = import_reviews(journal, write(tmp_path, "r.csv", CSV), platform="hitched", now=NOW)

    assert report.format == "csv"
    assert report.delimiter == ","
    assert report.rows == 7
    assert report.accepted == 2
    assert report.created == 2
    assert report.profiles == ["Willow Barn"]


def test_csv_duplicate_row_reported(journal: Journal, tmp_path: Path) -> None:
    report = import_reviews(journal, write(tmp_path, "r.csv", CSV), platform="hitched", now=NOW)

    assert [(item.location, item.first) for item in report.duplicates] == [("line 6", "line 2")]


def test_csv_row_errors_name_file_and_line(journal: Journal, tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", CSV)

    report = import_reviews(journal, path, platform="hitched", now=NOW)

    locations = [error.location for error in report.errors]
    assert locations == ["line 8", "line 9", "line 10", "line 11"]
    messages = [str(error) for error in report.errors]
    assert messages[0].startswith(f"{path}, line 8: invalid rating '9'")
    assert "neither review text nor a rating" in messages[1]
    assert "platform 'bodas'" in messages[2]
    assert "invalid Hitched date 'not a date'" in messages[3]


def test_csv_rows_stored_with_events(journal: Journal, tmp_path: Path) -> None:
    import_reviews(journal, write(tmp_path, "r.csv", CSV), platform="hitched", now=NOW)

    with journal.transaction() as tx:
        stored = {review.author: review for review in load_reviews(tx, "hitched")}
    assert stored["Priya and Tom"].stars == 5
    assert stored["Priya and Tom"].text == "The barn was magical. Staff were lovely."
    assert stored["Priya and Tom"].created_at == "2025-06-15T00:00:00.000Z"
    assert stored["Sam B."].created_at == "2025-03-15T00:00:00.000Z"
    events = journal.events()
    assert [event.type for event in events] == ["review.created", "review.created"]


def test_reimport_changes_nothing(journal: Journal, tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", CSV)
    import_reviews(journal, path, platform="hitched", now=NOW)

    again = import_reviews(journal, path, platform="hitched", now=NOW + 86_400)

    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    assert len(journal.events()) == 2


def test_undated_row_keeps_first_date(journal: Journal, tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", "venue,text\nWillow Barn,No date here\n")
    import_reviews(journal, path, platform="hitched", now=NOW)

    import_reviews(journal, path, platform="hitched", now=NOW + 86_400)

    rows = journal.query("SELECT created_at FROM reviews")
    assert rows == [("2026-01-01T00:00:00.000Z",)]


def test_semicolon_cp1252_file(journal: Journal, tmp_path: Path) -> None:
    text = "venue;text;rating;author\r\nChâteau Blanc;Très belle soirée;5;Zoé F.\r\n"
    path = write(tmp_path, "r.csv", text, encoding="cp1252")

    report = import_reviews(journal, path, platform="mariages", now=NOW)

    assert (report.encoding, report.delimiter, report.accepted) == ("cp1252", ";", 1)
    assert journal.query("SELECT profile, author, text FROM reviews") == [
        ("Château Blanc", "Zoé F.", "Très belle soirée")
    ]


def test_utf16_tab_file(journal: Journal, tmp_path: Path) -> None:
    text = "\ufeffvenue\ttext\tstars\nOak Hall\tSuperb\t4\n"
    path = write(tmp_path, "r.tsv", text, encoding="utf-16-le")
    path.write_bytes(b"\xff\xfe" + path.read_bytes().removeprefix(b"\xff\xfe"))

    report = import_reviews(journal, path, platform="hitched", now=NOW)

    assert (report.encoding, report.delimiter, report.accepted) == ("utf-16", "\t", 1)


def test_wrong_delimiter_rejected(journal: Journal, tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", "venue:text:rating\nOak Hall:Superb:4\n")

    with pytest.raises(ImportFileError, match=r"line 1: no review text or rating column"):
        import_reviews(journal, path, platform="hitched", now=NOW)

    assert journal.query("SELECT count(*) FROM reviews") == [(0,)]


def test_profile_argument_overrides_rows(journal: Journal, tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", "venue,text\nA,One\nB,Two\n")

    report = import_reviews(journal, path, platform="hitched", profile="willow", now=NOW)

    assert report.profiles == ["willow"]


def test_row_without_profile_is_error(journal: Journal, tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", "text,rating\nGreat,5\n")

    report = import_reviews(journal, path, platform="hitched", now=NOW)

    assert report.accepted == 0
    assert "no profile" in report.errors[0].message


def test_json_import_with_ids(journal: Journal, tmp_path: Path) -> None:
    items = [
        {"id": "z-1", "profile": "v-9", "rating": "5/5", "review": "Perfect", "reviewer": "Al"},
        {"id": "z-2", "profile": "v-9", "rating": 3, "review": "Fine", "reviewer": "Bo"},
        {"id": "z-1", "profile": "v-9", "rating": 2, "review": "Other", "reviewer": "Cy"},
        "not an object",
    ]
    path = write(tmp_path, "r.json", json.dumps({"reviews": items}))

    report = import_reviews(journal, path, platform="zola", now=NOW)

    assert report.format == "json"
    assert report.accepted == 2
    assert [error.location for error in report.errors] == ["item 3", "item 4"]
    assert "already used by item 1" in report.errors[0].message
    assert journal.query("SELECT review_id, stars FROM reviews ORDER BY review_id") == [
        ("z-1", 5),
        ("z-2", 3),
    ]


def test_invalid_json_rejected(journal: Journal, tmp_path: Path) -> None:
    path = write(tmp_path, "r.json", '[{"text": "x"')

    with pytest.raises(ImportFileError, match="is not valid JSON"):
        import_reviews(journal, path, platform="zola", now=NOW)


def test_missing_file_rejected(journal: Journal, tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="cannot read"):
        import_reviews(journal, tmp_path / "absent.csv", platform="zola", now=NOW)


def test_sniffing_helpers() -> None:
    assert sniff_delimiter("a|b|c\n1|2|3") == "|"
    assert sniff_delimiter("single\nvalue") == ","
    assert decode_text("é".encode()) == ("é", "utf-8")
    assert decode_text(b"\xef\xbb\xbfa") == ("a", "utf-8")
    assert decode_text(b"\x81\xe9") == ("\x81é", "latin-1")


async def test_store_through_async_journal(journal: Journal, tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", CSV)
    parsed = await trio.to_thread.run_sync(
        lambda: read_review_file(path, platform="hitched", profile=None, now=NOW)
    )

    async with trio.open_nursery() as nursery:
        async_journal = AsyncJournal(journal)
        await nursery.start(async_journal.run)
        report = await async_journal.transaction(
            lambda tx: store_review_file(tx, parsed, platform="hitched")
        )
        nursery.cancel_scope.cancel()

    assert (report.accepted, report.created) == (2, 2)
    assert parsed.report.created == 0
    assert journal.query("SELECT count(*) FROM reviews") == [(2,)]


def test_broken_csv_keeps_earlier_rows(journal: Journal, tmp_path: Path) -> None:
    # A field beyond the csv module's 131072-character limit stops the reader.
    huge = "x" * 140_000
    text = f"venue,text\nWillow Barn,First\nWillow Barn,{huge}\nWillow Barn,Third\n"
    path = write(tmp_path, "r.csv", text)

    report = import_reviews(journal, path, platform="hitched", now=NOW)

    assert report.accepted == 1
    assert [error.location for error in report.errors] == ["line 3"]
    assert "were not read" in report.errors[0].message
    assert journal.query("SELECT text FROM reviews") == [("First",)]


def test_deeply_nested_json_rejected(journal: Journal, tmp_path: Path) -> None:
    path = write(tmp_path, "r.json", "[" * 100_000 + "]" * 100_000)

    with pytest.raises(ImportFileError, match="is not valid JSON"):
        import_reviews(journal, path, platform="zola", now=NOW)


def drop(folder: Path, name: str, text: str, *, age: float) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    os.utime(path, (NOW - age, NOW - age))
    return path


def test_drop_folder_imports_and_moves(journal: Journal, tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    drop(folder, "a.csv", "venue,text\nWillow Barn,First\n", age=60)
    drop(folder, "b.json", "[{", age=30)
    drop(folder, "c.csv", "venue,text\nWillow Barn,Still copying\n", age=1)
    drop(folder, ".d.csv", "venue,text\nWillow Barn,Partial\n", age=60)
    drop(folder, "notes.md", "not a review file", age=60)

    outcomes = import_dropped_files(journal, folder, platform="hitched", now=NOW)

    assert [outcome.name for outcome in outcomes] == ["a.csv", "b.json"]
    assert outcomes[0].report is not None
    assert outcomes[0].report.created == 1
    assert outcomes[1].error is not None
    assert "is not valid JSON" in outcomes[1].error
    assert (folder / "imported" / "a.csv").is_file()
    assert (folder / "rejected" / "b.json").is_file()
    error_text = (folder / "rejected" / "b.json.error").read_text(encoding="utf-8")
    assert "is not valid JSON" in error_text
    assert sorted(path.name for path in folder.iterdir() if path.is_file()) == [
        ".d.csv",
        "c.csv",
        "notes.md",
    ]


def test_drop_folder_keeps_same_names(journal: Journal, tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    drop(folder, "a.csv", "venue,text\nWillow Barn,First\n", age=60)
    import_dropped_files(journal, folder, platform="hitched", now=NOW)
    drop(folder, "a.csv", "venue,text\nWillow Barn,Second\n", age=60)

    outcomes = import_dropped_files(journal, folder, platform="hitched", now=NOW)

    assert outcomes[0].moved_to.endswith("imported/a.1.csv")
    assert (folder / "imported" / "a.csv").read_text(encoding="utf-8").endswith("First\n")
    assert journal.query("SELECT count(*) FROM reviews") == [(2,)]
