"""Importing review files (CSV or JSON) exported from platforms without an API.

The file is read whole, rows are checked one by one, and every accepted
review is written through :func:`plaudit.reviews.store.apply_snapshot` in one
journal transaction, so the reviews and their ``review.created`` events
commit together.  A bad row never stops the import: it is reported with the
file and line, and the good rows are kept.

Duplicates: rows with the same text and author for the same profile are one
review, whatever their ids or dates are.  The first row wins and the others
are counted.  A file without review ids gets ids derived from profile,
author and text, so importing the same file again changes nothing.  Imports
are partial listings: a review missing from a later file is not deleted.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, final

import msgspec

from plaudit.connectors.marketplace.models import PageReview, derived_review_id, to_review
from plaudit.connectors.marketplace.sites import SITES, parse_site_date
from plaudit.errors import PlauditError
from plaudit.reviews.model import Review, normalize_timestamp
from plaudit.reviews.store import apply_snapshot, load_reviews

if TYPE_CHECKING:
    from plaudit.journal.store import Journal
    from plaudit.journal.tx import Tx

# Larger files are exports of a whole platform, not of one vendor.
MAX_FILE_BYTES: Final = 50 * 1024 * 1024
_DELIMITERS: Final = ",;\t|"
# The key of a record that stands for a row that could not be read at all.
_ROW_ERROR: Final = "\x00error"

# Accepted column names (lower case, spaces and hyphens as underscores) for
# each field, in order of preference.
COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "platform": ("platform", "site", "source"),
    # Not "venue_no": scrapers use it for a row counter that gives one venue
    # several numbers, so the venue name identifies the venue better.
    "profile": ("profile", "profile_id", "venue_id", "vendor_id", "storefront_id"),
    "venue": ("venue", "venue_name", "vendor", "vendor_name", "business", "business_name"),
    "review_id": ("review_id", "reviewid", "id"),
    "rating": ("rating", "stars", "score", "review_rating"),
    "text": ("text", "review_text", "review", "comment", "body", "review_body", "content"),
    "author": ("author", "reviewer", "reviewer_name", "author_name", "couple", "name"),
    "date": ("date", "created_at", "review_date", "date_published", "published", "created"),
}


class ImportFileError(PlauditError):
    """The whole file cannot be imported: unreadable, too large, or of an unknown shape."""


@final
class RowError(msgspec.Struct, frozen=True, kw_only=True):
    """One row that was not imported, and why."""

    file: str
    # "line 12" for CSV (the line where the row starts), "item 3" for JSON.
    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}, {self.location}: {self.message}"


@final
class Duplicate(msgspec.Struct, frozen=True, kw_only=True):
    """A row dropped because an earlier row contains the same review."""

    location: str
    first: str


@final
class ImportReport(msgspec.Struct, kw_only=True):
    """Counts of one import: rows read, kept, skipped, and journal changes."""

    file: str
    format: str
    encoding: str
    # The CSV delimiter that was detected; None for JSON.
    delimiter: str | None = None
    rows: int = 0
    accepted: int = 0
    duplicates: list[Duplicate] = msgspec.field(default_factory=list)
    errors: list[RowError] = msgspec.field(default_factory=list)
    profiles: list[str] = msgspec.field(default_factory=list)
    created: int = 0
    updated: int = 0
    unchanged: int = 0


def import_reviews(
    journal: Journal,
    path: str | Path,
    *,
    platform: str,
    profile: str | None = None,
    now: float | None = None,
) -> ImportReport:
    """Import a CSV or JSON review file into the journal and report what happened.

    ``profile`` puts every row under that profile; without it each row's
    profile or venue column decides.  ``now`` (Unix seconds) dates reviews
    whose row has no date.  Raises ImportFileError when the file as a whole
    cannot be read; row problems are listed in the report instead.
    """
    parsed = read_review_file(
        path, platform=platform, profile=profile, now=time.time() if now is None else now
    )
    with journal.transaction() as tx:
        return store_review_file(tx, parsed, platform=platform)


def store_review_file(tx: Tx, parsed: ParsedFile, *, platform: str) -> ImportReport:
    """Write the reviews of a parsed file inside ``tx`` and return the completed report.

    Separate from reading, so the daemon can read a file in a worker thread
    and pass this function to its journal.  The parsed report is copied, so
    running this again after a rollback counts from zero.
    """
    report = msgspec.structs.replace(parsed.report)
    by_profile: dict[str, list[Review]] = {}
    for review in parsed.reviews:
        by_profile.setdefault(review.profile, []).append(review)

    for name, group in by_profile.items():
        stored = load_reviews(tx, platform, name, include_deleted=True)
        kept = _keep_stored_dates(stored, group, parsed.undated)
        outcome = apply_snapshot(tx, platform=platform, profile=name, reviews=kept, complete=False)
        report.created += outcome.created + outcome.restored
        report.updated += outcome.updated + outcome.replied
        report.unchanged += outcome.unchanged

    report.profiles = sorted(by_profile)
    return report


def _keep_stored_dates(
    stored: list[Review], reviews: list[Review], undated: set[str]
) -> list[Review]:
    # An undated row is dated at import time; importing it again must not
    # move the date of the review already stored.
    known = {review.review_id: review for review in stored}
    kept = []
    for review in reviews:
        previous = known.get(review.review_id)
        if review.review_id in undated and previous is not None:
            kept.append(
                msgspec.structs.replace(
                    review, created_at=previous.created_at, updated_at=previous.updated_at
                )
            )
        else:
            kept.append(review)

    return kept


@final
class ParsedFile(msgspec.Struct, frozen=True, kw_only=True):
    """The accepted reviews of a file, before they reach the journal."""

    reviews: list[Review]
    # Ids of reviews whose row had no date, so created_at is the import time.
    undated: set[str]
    report: ImportReport


def read_review_file(
    path: str | Path,
    *,
    platform: str,
    profile: str | None,
    now: float,
    resolve_profile: Callable[[str], str] | None = None,
) -> ParsedFile:
    """Read and check a review file without touching the journal, as :func:`import_reviews` does.

    ``resolve_profile`` maps each row's profile to the id stored, or raises
    ValueError, which makes the row a row error.
    """
    name = str(path)
    data = _read_bytes(Path(path))
    text, encoding = decode_text(data)
    if _looks_like_json(name, text):
        report = ImportReport(file=name, format="json", encoding=encoding)
        records = _json_records(text, name)
    else:
        delimiter = sniff_delimiter(text)
        report = ImportReport(file=name, format="csv", encoding=encoding, delimiter=delimiter)
        records = _csv_records(text, name, delimiter)

    reviews, undated = _accept_rows(
        records, report, platform=platform, profile=profile, now=now, resolve=resolve_profile
    )
    return ParsedFile(reviews=reviews, undated=undated, report=report)


def _read_bytes(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ImportFileError(
                f"{path} is {size} bytes, more than the {MAX_FILE_BYTES}-byte limit; "
                "split it into smaller files"
            )
        return path.read_bytes()
    except OSError as error:
        reason = error.strerror or error.__class__.__name__
        raise ImportFileError(f"cannot read {path}: {reason}") from error


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode a file as UTF-8 (with or without BOM) or UTF-16 with BOM, else Windows-1252.

    Returns the text and the encoding used.  Windows-1252 is the usual
    encoding of spreadsheet exports on Windows; Latin-1 takes any byte the
    former leaves undefined.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "utf-16"

    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            return data.decode(encoding), encoding.removesuffix("-sig")
        except UnicodeDecodeError:
            continue

    raise AssertionError("latin-1 decodes any byte string")  # pragma: no cover


def sniff_delimiter(text: str) -> str:
    """Return the delimiter that splits the header line into the most columns (comma on ties)."""
    header = text.lstrip("\ufeff").split("\n", 1)[0]
    counts = {delimiter: header.count(delimiter) for delimiter in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda delimiter: counts[delimiter])
    return best if counts[best] > 0 else ","


def _looks_like_json(name: str, text: str) -> bool:
    return name.lower().endswith(".json") or text.lstrip()[:1] in ("[", "{")


def _json_records(text: str, name: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise ImportFileError(
            f"{name} is not valid JSON: {error}; fix the file or export CSV"
        ) from error

    items = data.get("reviews") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ImportFileError(
            f'{name}: expected a JSON list of review objects or an object with a "reviews" list'
        )

    for index, item in enumerate(items, start=1):
        if isinstance(item, dict):
            yield f"item {index}", item
        else:
            yield f"item {index}", {_ROW_ERROR: "expected a JSON object with review fields"}


def _csv_records(text: str, name: str, delimiter: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    fields = [_column_key(field) for field in reader.fieldnames or []]
    if not any(field in COLUMNS["text"] or field in COLUMNS["rating"] for field in fields):
        raise ImportFileError(
            f"{name}, line 1: no review text or rating column among {fields!r} "
            f"(delimiter {delimiter!r}); name a column 'text' or 'rating', or check "
            "the delimiter"
        )

    line = reader.line_num + 1
    try:
        for row in reader:
            yield f"line {line}", row
            line = reader.line_num + 1
    except csv.Error as error:
        # The reader cannot resynchronise after broken quoting, so the rows
        # read so far are kept and the rest is reported as one error.
        message = (
            f"invalid CSV: {error}; the rows from here on were not read, so fix the "
            "quoting and import the file again"
        )
        yield f"line {line}", {_ROW_ERROR: message}


def _column_key(name: str) -> str:
    return re.sub(r"[\s-]+", "_", name.strip().lstrip("\ufeff").lower())


def _accept_rows(
    records: Iterator[tuple[str, Mapping[str, Any]]],
    report: ImportReport,
    *,
    platform: str,
    profile: str | None,
    now: float,
    resolve: Callable[[str], str] | None = None,
) -> tuple[list[Review], set[str]]:
    accepted: dict[tuple[str, str, str], tuple[str, Review]] = {}
    by_id: dict[str, str] = {}
    undated: set[str] = set()
    for location, raw in records:
        report.rows += 1
        try:
            review, dated = _row_review(
                raw, platform=platform, profile=profile, now=now, resolve=resolve
            )
        except ValueError as error:
            report.errors.append(RowError(file=report.file, location=location, message=str(error)))
            continue

        key = (review.profile, _fold(review.text), _fold(review.author))
        if key in accepted:
            report.duplicates.append(Duplicate(location=location, first=accepted[key][0]))
            continue

        if review.review_id in by_id:
            message = (
                f"review id {review.review_id!r} was already used by {by_id[review.review_id]} "
                "with different content; give each review its own id"
            )
            report.errors.append(RowError(file=report.file, location=location, message=message))
            continue

        accepted[key] = (location, review)
        by_id[review.review_id] = location
        if not dated:
            undated.add(review.review_id)

    report.accepted = len(accepted)
    return [review for _, review in accepted.values()], undated


def _row_review(
    raw: Mapping[str, Any],
    *,
    platform: str,
    profile: str | None,
    now: float,
    resolve: Callable[[str], str] | None = None,
) -> tuple[Review, bool]:
    if _ROW_ERROR in raw:
        raise ValueError(str(raw[_ROW_ERROR]))

    row = {_column_key(str(key)): value for key, value in raw.items() if key is not None}
    _check_platform(_field(row, "platform"), platform)
    row_profile = profile or _field(row, "profile") or _field(row, "venue")
    if not row_profile:
        raise ValueError(
            "no profile: the row has no profile or venue column value; add one or "
            "import with a profile"
        )
    if resolve is not None:
        row_profile = resolve(row_profile)

    text = " ".join(_field(row, "text").split())
    author = " ".join(_field(row, "author").split())
    rating = _rating(_field(row, "rating"))
    if not text and rating is None:
        raise ValueError("the row has neither review text nor a rating")

    review_id = _field(row, "review_id") or derived_review_id(row_profile, author, text)
    item = PageReview(
        review_id=review_id,
        author=author,
        rating=rating,
        text=text,
        date=_date(_field(row, "date"), platform),
    )
    review = to_review(item, platform=platform, profile=row_profile, fallback_time=now)
    return review, item.date is not None


def _field(row: Mapping[str, Any], name: str) -> str:
    for column in COLUMNS[name]:
        value = row.get(column)
        if value is not None and str(value).strip():
            return str(value).strip()

    return ""


def _check_platform(value: str, platform: str) -> None:
    if not value:
        return

    site = SITES.get(platform)
    names = {platform.lower()}
    if site is not None:
        names |= {site.display_name.lower(), site.domain.lower().removeprefix("www.")}
    if value.lower() not in names:
        raise ValueError(
            f"the row belongs to platform {value!r}, not {platform!r}; import it with that "
            "platform or remove the row"
        )


def _rating(value: str) -> float | None:
    if not value:
        return None

    match = re.fullmatch(r"(\d+(?:[.,]\d+)?)\s*(?:/\s*(\d+))?(?:\s*stars?)?", value.lower())
    if match is None:
        raise ValueError(
            f"invalid rating {value!r}: expected a number from 1 to 5, such as 4 or 4.5"
        )

    rating = float(match[1].replace(",", "."))
    scale = float(match[2]) if match[2] else 5.0
    if scale <= 0 or not 1.0 <= rating * 5.0 / scale <= 5.0:
        raise ValueError(f"invalid rating {value!r}: expected a number from 1 to 5")

    return rating * 5.0 / scale


def _date(value: str, platform: str) -> str | None:
    if not value:
        return None

    try:
        return normalize_timestamp(value.replace(" ", "T", 1))[:10]
    except ValueError:
        pass

    site = SITES.get(platform)
    if site is None:
        raise ValueError(f"invalid date {value!r}: expected YYYY-MM-DD")

    return parse_site_date(site, value).isoformat()


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()
