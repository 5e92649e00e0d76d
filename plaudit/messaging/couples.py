"""Couples: validation of wedding-CRM CSV exports and their rows in the journal.

A CSV file is read whole and checked row by row first.  When any row is
invalid nothing is stored, and the report lists every problem with its row
number, column, value and fix, so the operator corrects the file and imports
it again.  Valid files are stored in one transaction.

Headers are matched by name, case and spacing ignored, so both HoneyBook-style
exports (``Client Name``, ``Client Email``, ``Project Date``) and a generic
layout (``first_name,last_name,email,phone,wedding_date,venue,timezone``)
import without a mapping file.  A cell may hold several names
(``Ana & Ben``) or several addresses (``ana@example.com; ben@example.com``).
"""

from __future__ import annotations

import csv
import io
import re
import zoneinfo
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Final, final

import msgspec

from plaudit.journal.tx import Tx
from plaudit.messaging.consent import ConsentSource, record_consent
from plaudit.reviews.importer import sniff_delimiter

# Normalised header -> field.  The first matching column wins.
COLUMN_ALIASES: Final[dict[str, str]] = {
    "client_name": "names",
    "name": "names",
    "names": "names",
    "couple": "names",
    "couple_names": "names",
    "first_name": "first_name",
    "last_name": "last_name",
    "client_email": "emails",
    "email": "emails",
    "emails": "emails",
    "email_address": "emails",
    "client_phone": "phone",
    "phone": "phone",
    "phone_number": "phone",
    "mobile": "phone",
    "project_date": "wedding_date",
    "wedding_date": "wedding_date",
    "event_date": "wedding_date",
    "venue": "venue",
    "project_location": "venue",
    "location": "venue",
    "timezone": "timezone",
    "time_zone": "timezone",
    "email_consent": "consent_email",
    "consent_email": "consent_email",
    "sms_consent": "consent_sms",
    "consent_sms": "consent_sms",
}
# Larger files are split by the operator; one import is one transaction.
MAX_ROWS: Final = 10_000
MAX_CELL_CHARS: Final = 500
_NAME_SEPARATORS = re.compile(r"\s*(?:&|\+|/|;|\band\b)\s*", re.IGNORECASE)
_ADDRESS_SEPARATORS = re.compile(r"[;,\s]+")
_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%d.%m.%Y", "%b %d, %Y", "%B %d, %Y")
_TRUE = frozenset({"yes", "y", "true", "1", "x"})
_FALSE = frozenset({"no", "n", "false", "0", ""})


@final
class Couple(msgspec.Struct, frozen=True, kw_only=True):
    """One couple to ask for a review, as validated from an import row."""

    names: list[str]
    emails: list[str]
    # E.164, or None when the export has no phone number.
    phone: str | None
    wedding_date: str
    venue: str
    # IANA zone name, or None to use the vendor's.
    timezone: str | None
    consent_email: bool
    consent_sms: bool
    # The import file's row number (the header is row 1); 0 when not imported.
    source_row: int = 0


@final
class RowError(msgspec.Struct, frozen=True, kw_only=True):
    """One invalid cell: where it is, what it contains and how to fix it."""

    row: int
    column: str
    value: str
    message: str


@final
class CoupleImport(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of an import: stored only when ``errors`` is empty."""

    rows: int
    couples: list[Couple]
    errors: list[RowError]


@final
class StoreReport(msgspec.Struct, frozen=True, kw_only=True):
    """How many couples an import created and how many it updated."""

    created: int
    updated: int


class _RowProblem(Exception):
    def __init__(self, column: str, value: str, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.value = value
        self.message = message


def normalize_header(header: str) -> str:
    """Return ``header`` lower-cased with runs of spaces and dashes as one underscore."""
    return re.sub(r"[\s\-]+", "_", header.strip().lower())


def parse_couples_csv(text: str) -> CoupleImport:
    """Validate every row of a CSV export; row numbers count the header as row 1."""
    # Spreadsheets in locales with a decimal comma export ";"-separated files.
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=sniff_delimiter(text))
    header = next(reader, None)
    if header is None:
        error = RowError(row=1, column="", value="", message="the file is empty; export again")
        return CoupleImport(rows=0, couples=[], errors=[error])

    columns, header_errors = _map_columns(header)
    if header_errors:
        return CoupleImport(rows=0, couples=[], errors=header_errors)

    couples: list[Couple] = []
    errors: list[RowError] = []
    # Lower-cased first address -> the row that first used it.
    seen: dict[str, int] = {}
    count = 0
    for number, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        count += 1
        if count > MAX_ROWS:
            message = f"the file has more than {MAX_ROWS} couples; split it into smaller files"
            errors.append(RowError(row=number, column="", value="", message=message))
            break
        try:
            couple = msgspec.structs.replace(_parse_row(columns, header, cells), source_row=number)
            _check_repeat(seen, couple, number, header[columns["emails"]])
            couples.append(couple)
        except _RowProblem as problem:
            errors.append(
                RowError(
                    row=number,
                    column=problem.column,
                    value=problem.value[:MAX_CELL_CHARS],
                    message=problem.message,
                )
            )
    return CoupleImport(rows=count, couples=couples, errors=errors)


def _check_repeat(seen: dict[str, int], couple: Couple, row: int, column: str) -> None:
    key = couple.emails[0].lower()
    first = seen.setdefault(key, row)
    if first != row:
        raise _RowProblem(
            column, couple.emails[0], f"the same couple as row {first}; merge the two rows"
        )


def _map_columns(header: Sequence[str]) -> tuple[dict[str, int], list[RowError]]:
    columns: dict[str, int] = {}
    for index, name in enumerate(header):
        field = COLUMN_ALIASES.get(normalize_header(name))
        if field is not None and field not in columns:
            columns[field] = index

    errors = []
    if "emails" not in columns:
        errors.append(
            RowError(
                row=1,
                column="",
                value=",".join(header),
                message="no e-mail column; name one 'email' or 'Client Email'",
            )
        )
    if "wedding_date" not in columns:
        errors.append(
            RowError(
                row=1,
                column="",
                value=",".join(header),
                message="no wedding date column; name one 'wedding_date' or 'Project Date'",
            )
        )
    if "names" not in columns and "first_name" not in columns:
        errors.append(
            RowError(
                row=1,
                column="",
                value=",".join(header),
                message="no name column; name one 'first_name' or 'Client Name'",
            )
        )
    return columns, errors


def _cell(columns: dict[str, int], header: Sequence[str], cells: Sequence[str], field: str) -> str:
    index = columns.get(field)
    if index is None or index >= len(cells):
        return ""
    value = cells[index].strip()
    if len(value) > MAX_CELL_CHARS:
        raise _RowProblem(
            header[index], value, f"longer than {MAX_CELL_CHARS} characters; shorten it"
        )
    return value


def _parse_row(columns: dict[str, int], header: Sequence[str], cells: Sequence[str]) -> Couple:
    def column(field: str) -> str:
        index = columns.get(field)
        return header[index] if index is not None else field

    def cell(field: str) -> str:
        return _cell(columns, header, cells, field)

    names = _parse_names(cell("names"), cell("first_name"), cell("last_name"))
    if not names:
        raise _RowProblem(column("names" if "names" in columns else "first_name"), "", "no name")

    return Couple(
        names=names,
        emails=parse_addresses(column("emails"), cell("emails")),
        phone=parse_phone(column("phone"), cell("phone")),
        wedding_date=parse_wedding_date(column("wedding_date"), cell("wedding_date")),
        venue=cell("venue"),
        timezone=parse_timezone(column("timezone"), cell("timezone")),
        consent_email=_parse_flag(column("consent_email"), cell("consent_email"), default=True),
        consent_sms=_parse_flag(column("consent_sms"), cell("consent_sms"), default=False),
    )


def _parse_names(names: str, first: str, last: str) -> list[str]:
    if names:
        return [part for part in _NAME_SEPARATORS.split(names) if part]
    full = f"{first} {last}".strip()
    return [full] if full else []


def parse_addresses(column: str, value: str) -> list[str]:
    """Return the normalised addresses of one cell; raises on any invalid one."""
    parts = [part for part in _ADDRESS_SEPARATORS.split(value) if part]
    if not parts:
        raise _RowProblem(column, value, "no e-mail address; add one")

    # Imported on use, like phonenumbers below: the daemon loads them only
    # when couples are imported.
    import email_validator

    addresses = []
    for part in parts:
        try:
            valid = email_validator.validate_email(part, check_deliverability=False)
        except email_validator.EmailNotValidError as error:
            raise _RowProblem(
                column, part, f"invalid e-mail address ({error}); correct it"
            ) from error
        addresses.append(valid.normalized)
    return addresses


def parse_phone(column: str, value: str) -> str | None:
    """Return the number in E.164 form, or None for an empty cell.

    Numbers need a country code (``+1 ...``): exports mix countries, so no
    default region is guessed.
    """
    if not value:
        return None
    import phonenumbers

    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as error:
        raise _RowProblem(
            column, value, "invalid phone number; write it with its country code, like +1 ..."
        ) from error
    if not phonenumbers.is_valid_number(number):
        raise _RowProblem(column, value, "invalid phone number; check its digits")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_wedding_date(column: str, value: str) -> str:
    """Return the date as ISO ``YYYY-MM-DD``; accepts ISO, US and European forms."""
    for form in _DATE_FORMATS:
        try:
            return datetime.strptime(value, form).date().isoformat()
        except ValueError:
            continue
    try:
        # HoneyBook exports may carry a time after the date.
        return datetime.fromisoformat(value).date().isoformat()
    except ValueError:
        raise _RowProblem(
            column, value, "invalid date; write it as YYYY-MM-DD, like 2026-06-13"
        ) from None


def parse_timezone(column: str, value: str) -> str | None:
    """Return the IANA zone name, or None for an empty cell."""
    if not value:
        return None
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise _RowProblem(
            column, value, "unknown time zone; use an IANA name like America/Chicago"
        ) from None
    return value


def _parse_flag(column: str, value: str, *, default: bool) -> bool:
    lowered = value.lower()
    if not value:
        return default
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _RowProblem(column, value, "not a yes/no value; write yes or no")


_UPSERT = """
INSERT INTO couples (email, names, emails, phone, wedding_date, venue, timezone, vendor,
                     consent_email, consent_sms, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (email) DO UPDATE SET
    names = excluded.names, emails = excluded.emails, phone = excluded.phone,
    wedding_date = excluded.wedding_date, venue = excluded.venue,
    timezone = excluded.timezone, vendor = excluded.vendor,
    consent_email = excluded.consent_email, consent_sms = excluded.consent_sms,
    updated_at = excluded.updated_at
RETURNING id, created_at = updated_at
"""


def store_couples(
    tx: Tx, couples: Iterable[Couple], *, vendor: str, source: ConsentSource | None = None
) -> StoreReport:
    """Insert or update each couple, keyed by its first e-mail address.

    With ``source``, each change of a couple's e-mail or SMS consent is
    recorded with it (and the couple's import row).
    """
    created = 0
    updated = 0
    for couple in couples:
        row = tx.execute(
            _UPSERT,
            (
                couple.emails[0].lower(),
                msgspec.json.encode(couple.names).decode(),
                msgspec.json.encode(couple.emails).decode(),
                couple.phone,
                couple.wedding_date,
                couple.venue,
                couple.timezone,
                vendor,
                int(couple.consent_email),
                int(couple.consent_sms),
                tx.now,
                tx.now,
            ),
        ).fetchone()
        if source is not None:
            _record_consents(tx, int(row[0]), couple, source.for_row(couple.source_row))
        if row[1]:
            created += 1
        else:
            updated += 1
    return StoreReport(created=created, updated=updated)


def _record_consents(tx: Tx, couple_id: int, couple: Couple, source: ConsentSource) -> None:
    record_consent(tx, couple_id, "email", granted=couple.consent_email, source=source)
    record_consent(tx, couple_id, "sms", granted=couple.consent_sms, source=source)


def load_couple(tx: Tx, couple_id: int) -> Couple | None:
    """Return the stored couple, or None when no couple has this id."""
    row = tx.execute(
        "SELECT names, emails, phone, wedding_date, venue, timezone, consent_email, consent_sms"
        " FROM couples WHERE id = ?",
        (couple_id,),
    ).fetchone()
    if row is None:
        return None
    return Couple(
        names=msgspec.json.decode(row[0], type=list[str]),
        emails=msgspec.json.decode(row[1], type=list[str]),
        phone=row[2],
        wedding_date=row[3],
        venue=row[4],
        timezone=row[5],
        consent_email=bool(row[6]),
        consent_sms=bool(row[7]),
    )


def wedding_day(couple: Couple) -> date:
    """Return the couple's wedding date as a ``date``."""
    return date.fromisoformat(couple.wedding_date)
