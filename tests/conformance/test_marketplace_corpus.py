"""Real marketplace input from the corpus: a Hitched listing page and a venue-review export."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from plaudit.connectors.marketplace.listing import parse_listing
from plaudit.connectors.marketplace.sites import get_site
from plaudit.journal import Journal
from plaudit.reviews.importer import import_reviews

pytestmark = pytest.mark.conformance

# A vendorTile card is an element whose class list has the bare word vendorTile.
_CARD_CLASS = re.compile(r'class="[^"]*(?<![\w-])vendorTile(?![\w-])[^"]*"')


def corpus_file(corpus_dir: Path, folder: str, name: str) -> Path:
    path = corpus_dir / folder / name
    if not path.is_file():
        pytest.skip(f"corpus file {path} is absent")

    return path


def test_listing_yields_every_card(
    corpus_dir: Path, conformance_summary: dict[str, list[str]]
) -> None:
    path = corpus_file(corpus_dir, "marketplace-html", "hitched_debug_hitched.html")
    html = path.read_text(encoding="utf-8")

    cards = parse_listing(html, site=get_site("hitched"), profile="london-venues")

    assert len(cards) == len(_CARD_CLASS.findall(html))
    for card in cards:
        assert card.name, card
        assert card.url.startswith("https://www.hitched.co.uk/wedding-venues/"), card
        assert card.review_count >= 0, card
        # A vendor without reviews shows no rating; every other one shows both.
        assert (card.rating is None) == (card.review_count == 0), card
        if card.rating is not None:
            assert 1.0 <= card.rating <= 5.0, card

    rated = [card for card in cards if card.rating is not None]
    conformance_summary.setdefault("marketplace corpus", []).append(
        f"{path.name}: {len(cards)} vendor cards, {len(rated)} with rating and review count, "
        f"{sum(card.review_count for card in cards)} reviews in total"
    )


def test_listing_matches_page_json_ld(corpus_dir: Path) -> None:
    path = corpus_file(corpus_dir, "marketplace-html", "hitched_debug_hitched.html")
    html = path.read_text(encoding="utf-8")

    cards = parse_listing(html, site=get_site("hitched"), profile="london-venues")
    markup_only = parse_listing(
        html.replace("application/ld+json", "text/plain"),
        site=get_site("hitched"),
        profile="london-venues",
    )

    # The card markup and the JSON-LD agree, so either source gives the same cards.
    assert markup_only == cards


def test_review_export_imports_with_duplicates(
    corpus_dir: Path, tmp_path: Path, conformance_summary: dict[str, list[str]]
) -> None:
    path = corpus_file(corpus_dir, "review-datasets", "hitched_venue_reviews.csv")
    with path.open(encoding="utf-8", newline="") as stream:
        rows = list(csv.DictReader(stream))
    distinct = {
        (row["venue_name"], " ".join(row["review_text"].split()).casefold()) for row in rows
    }
    journal = Journal.open(tmp_path / "journal.sqlite3")
    try:
        report = import_reviews(journal, path, platform="hitched", now=1_767_225_600.0)
        again = import_reviews(journal, path, platform="hitched", now=1_767_312_000.0)
        stored = journal.query("SELECT count(*) FROM reviews WHERE platform = 'hitched'")
        events = journal.query("SELECT count(*) FROM events WHERE type = 'review.created'")
    finally:
        journal.close()

    assert report.rows == len(rows)
    assert report.errors == []
    assert report.accepted == len(distinct)
    assert len(report.duplicates) == len(rows) - len(distinct)
    assert len(report.duplicates) > 0
    assert report.created == len(distinct)
    assert stored == [(len(distinct),)]
    assert events == [(len(distinct),)]
    assert (again.created, again.updated, again.unchanged) == (0, 0, len(distinct))
    conformance_summary.setdefault("marketplace corpus", []).append(
        f"{path.name}: {report.rows} rows, {report.accepted} reviews imported for "
        f"{len(report.profiles)} venues, {len(report.duplicates)} duplicate rows detected, "
        f"{len(report.errors)} row errors"
    )
