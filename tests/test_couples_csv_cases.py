"""More CSV shapes from wedding CRMs: separators, date forms, encodings, row numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from plaudit.messaging.couple_commands import read_couples_file
from plaudit.messaging.couples import parse_couples_csv

HONEYBOOK = "Client Name,Client Email,Client Phone,Project Date,Project Location\n"


@pytest.mark.parametrize(
    ("cell", "names"),
    [
        ("Maya Ortiz & Jonah Reed", ["Maya Ortiz", "Jonah Reed"]),
        ("Maya Ortiz and Jonah Reed", ["Maya Ortiz", "Jonah Reed"]),
        ("Maya Ortiz + Jonah Reed", ["Maya Ortiz", "Jonah Reed"]),
        ("Maya Ortiz / Jonah Reed", ["Maya Ortiz", "Jonah Reed"]),
        ("Alexander Brandt", ["Alexander Brandt"]),
    ],
)
def test_names_cell_split(cell: str, names: list[str]) -> None:
    result = parse_couples_csv(f'{HONEYBOOK}"{cell}",maya@example.com,,2026-06-13,Barn\n')

    assert result.errors == []
    assert result.couples[0].names == names


@pytest.mark.parametrize(
    "cell",
    [
        "maya@example.com; jonah@example.org",
        "maya@example.com, jonah@example.org",
        "maya@example.com jonah@example.org",
    ],
)
def test_addresses_cell_split(cell: str) -> None:
    result = parse_couples_csv(f'{HONEYBOOK}Maya & Jonah,"{cell}",,2026-06-13,Barn\n')

    assert result.errors == []
    assert result.couples[0].emails == ["maya@example.com", "jonah@example.org"]


@pytest.mark.parametrize(
    "cell", ["06/13/2026", "13.06.2026", "Jun 13, 2026", "June 13, 2026", "2026-06-13T15:30:00"]
)
def test_date_forms_accepted(cell: str) -> None:
    result = parse_couples_csv(f'{HONEYBOOK}Maya,maya@example.com,,"{cell}",Barn\n')

    assert result.errors == []
    assert result.couples[0].wedding_date == "2026-06-13"


def test_headers_matched_loosely() -> None:
    header = "CLIENT  NAME,client-email,Project Date,Time Zone\n"
    result = parse_couples_csv(header + "Maya,maya@example.com,2026-06-13,Europe/Lisbon\n")

    assert result.errors == []
    assert result.couples[0].timezone == "Europe/Lisbon"


def test_row_numbers_count_blank_lines() -> None:
    rows = (
        "Maya,maya@example.com,,2026-06-13,Barn\n"
        "\n"
        ",,,,\n"
        "Jonah,jonah@@example.org,,2026-06-13,Barn\n"
        "Lena,lena@example.net,,2026-13-40,Barn\n"
    )
    result = parse_couples_csv(HONEYBOOK + rows)

    assert [(error.row, error.column) for error in result.errors] == [
        (5, "Client Email"),
        (6, "Project Date"),
    ]
    assert result.rows == 3


def test_empty_file_rejected() -> None:
    result = parse_couples_csv("")

    assert [(error.row, error.message) for error in result.errors] == [
        (1, "the file is empty; export again")
    ]


def test_windows_export_decoded(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    row = "Zoë Müller & José Peña,zoe@example.com,,2026-06-13,Château Lumière\r\n"
    path.write_bytes((HONEYBOOK + row).encode("cp1252"))

    result = read_couples_file(path)

    assert result.errors == []
    assert result.couples[0].names == ["Zoë Müller", "José Peña"]
    assert result.couples[0].venue == "Château Lumière"


def test_utf8_bom_ignored() -> None:
    result = parse_couples_csv("\ufeff" + HONEYBOOK + "Maya,maya@example.com,,2026-06-13,Barn\n")

    assert result.errors == []
    assert len(result.couples) == 1
