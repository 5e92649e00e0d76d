"""Couples CSV files separated by semicolons, tabs or pipes, as review imports accept."""

from __future__ import annotations

import pytest

from plaudit.messaging.couples import parse_couples_csv

ROWS = [
    ["first_name", "last_name", "email", "wedding_date", "venue"],
    ["Maya", "Ortiz", "maya@example.com", "2026-06-13", "Barn, North Field"],
    ["Priya", "Shah", "priya@example.com", "2026-07-04", "Lakeside"],
]


def joined(delimiter: str) -> str:
    def cell(text: str) -> str:
        return f'"{text}"' if delimiter in text or "," in text else text

    return "".join(delimiter.join(cell(text) for text in row) + "\n" for row in ROWS)


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_detected(delimiter: str) -> None:
    result = parse_couples_csv(joined(delimiter))

    assert result.errors == []
    assert [couple.emails for couple in result.couples] == [
        ["maya@example.com"],
        ["priya@example.com"],
    ]
    assert result.couples[0].venue == "Barn, North Field"


def test_semicolon_file_keeps_row_numbers() -> None:
    text = joined(";").replace("priya@example.com", "not-an-email")

    result = parse_couples_csv(text)

    assert len(result.errors) == 1
    assert result.errors[0].row == 3
    assert result.errors[0].column == "email"


def test_byte_order_mark_before_semicolon_header() -> None:
    result = parse_couples_csv("\ufeff" + joined(";"))

    assert result.errors == []
    assert len(result.couples) == 2
