"""Listing and storefront pages of the WeddingWire family, read from local fixtures."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from plaudit.connectors.marketplace.errors import (
    BlockedPageError,
    MarkupDriftError,
    NotAStorefrontError,
)
from plaudit.connectors.marketplace.listing import parse_listing
from plaudit.connectors.marketplace.sites import (
    SITES,
    get_site,
    in_review_window,
    parse_site_date,
    review_link,
    site_for_host,
)
from plaudit.connectors.marketplace.storefront import parse_storefront

FIXTURES = Path(__file__).parent / "fixtures" / "marketplace"
HITCHED = get_site("hitched")


def read(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def test_listing_reads_every_card() -> None:
    cards = parse_listing(read("listing_hitched.html"), site=HITCHED, profile="testshire")

    assert [card.name for card in cards] == ["Willow Barn", "Oak & Ivy Hall", "The Old Mill"]
    assert cards[0].url == "https://www.hitched.co.uk/wedding-venues/willow-barn_1001.htm"
    assert (cards[0].rating, cards[0].review_count) == (4.9, 212)
    assert (cards[1].rating, cards[1].review_count) == (4.6, 1204)


def test_listing_card_without_reviews() -> None:
    cards = parse_listing(read("listing_hitched.html"), site=HITCHED, profile="testshire")

    assert cards[2].rating is None
    assert cards[2].review_count == 0


def test_listing_renamed_title_names_selector() -> None:
    with pytest.raises(MarkupDriftError) as caught:
        parse_listing(read("listing_renamed_title.html"), site=HITCHED, profile="testshire")

    message = str(caught.value)
    assert "Hitched" in message
    assert "'testshire'" in message
    assert "a.vendorTile__title" in message
    assert caught.value.retryable is False


def test_listing_without_cards_is_drift() -> None:
    html = "<html><head><title>Venues</title></head><body>" + "<p>x</p>" * 5000 + "</body></html>"

    with pytest.raises(MarkupDriftError, match=r"li\.vendorTile"):
        parse_listing(html, site=HITCHED, profile="testshire")


def test_listing_without_any_rating_is_drift() -> None:
    html = read("listing_hitched.html").replace("vendorTile__contentRating", "vendorTile__stars")
    html = html.replace('"aggregateRating"', '"rating"')

    with pytest.raises(MarkupDriftError, match=r"vendorTile__contentRating"):
        parse_listing(html, site=HITCHED, profile="testshire")


def test_challenge_page_is_blocked_not_empty() -> None:
    with pytest.raises(BlockedPageError) as caught:
        parse_listing(read("challenge.html"), site=HITCHED, profile="testshire")

    assert "Cloudflare" in str(caught.value)
    assert caught.value.retryable is True

    with pytest.raises(BlockedPageError):
        parse_storefront(read("challenge.html"), site=HITCHED, profile="willow-barn")


def test_storefront_json_ld() -> None:
    page = parse_storefront(read("storefront_jsonld.html"), site=HITCHED, profile="willow-barn")

    assert page.source == "json-ld"
    assert page.vendor.name == "Willow Barn"
    assert (page.vendor.rating, page.vendor.review_count) == (4.9, 2)
    assert len(page.reviews) == 2
    first, second = page.reviews
    assert (first.review_id, first.author, first.rating, first.date) == (
        "r-5501",
        "Priya and Tom",
        5.0,
        "2024-06-15",
    )
    assert second.author == "Sam B."
    assert second.review_id.startswith("c-")


def test_storefront_markup_in_spanish() -> None:
    page = parse_storefront(
        read("storefront_markup_es.html"), site=get_site("bodas"), profile="finca"
    )

    assert page.source == "markup"
    assert page.vendor.name == "Finca Los Olivos"
    assert (page.vendor.rating, page.vendor.review_count) == (4.7, 2)
    assert page.vendor.url == "https://www.bodas.net/fincas/finca-los-olivos--e2002"
    assert [review.date for review in page.reviews] == ["2024-03-12", "2023-09-03"]
    assert [review.rating for review in page.reviews] == [5.0, 4.4]
    assert page.reviews[0].reply == "¡Gracias, Lucía!"
    assert page.reviews[0].review_id == "88101"


def test_storefront_missing_reviews_is_drift() -> None:
    html = read("storefront_markup_es.html").replace("storefrontReviewsTile", "reviewCard")

    with pytest.raises(MarkupDriftError) as caught:
        parse_storefront(html, site=get_site("bodas"), profile="finca")

    assert "li.storefrontReviewsTile" in str(caught.value)
    assert "Bodas.net" in str(caught.value)


def test_storefront_redirected_to_listing() -> None:
    with pytest.raises(NotAStorefrontError, match="listing page with 3 vendors"):
        parse_storefront(read("listing_hitched.html"), site=HITCHED, profile="willow-barn")


def test_storefront_broken_html_is_drift() -> None:
    html = "<html><body><div><h2>Willow Barn<p>unclosed" * 3000

    with pytest.raises(MarkupDriftError, match=r"h1\.storefrontHeading__title"):
        parse_storefront(html, site=HITCHED, profile="willow-barn")


@pytest.mark.parametrize(
    ("site", "text", "expected"),
    [
        ("hitched", "03/04/2024", date(2024, 4, 3)),
        ("theknot", "03/04/2024", date(2024, 3, 4)),
        ("theknot", "March 12th, 2024", date(2024, 3, 12)),
        ("bodas", "12 de marzo de 2024", date(2024, 3, 12)),
        ("mariages", "3 févr. 2023", date(2023, 2, 3)),
        ("mariages", "12 août 2024", date(2024, 8, 12)),
        ("matrimonio", "1 agosto 2022", date(2022, 8, 1)),
        ("casamentos", "5 de março de 2021", date(2021, 3, 5)),
        ("weddingwire_india", "2024-01-02T10:00:00+05:30", date(2024, 1, 2)),
    ],
)
def test_site_dates(site: str, text: str, expected: date) -> None:
    assert parse_site_date(get_site(site), text) == expected


def test_site_date_invalid_names_language() -> None:
    with pytest.raises(ValueError, match="language 'fr'"):
        parse_site_date(get_site("mariages"), "hier")


def test_review_window_on_european_sites() -> None:
    today = date(2026, 6, 1)

    assert in_review_window(HITCHED, date(2024, 7, 1), today=today)
    assert not in_review_window(HITCHED, date(2024, 5, 1), today=today)
    assert in_review_window(get_site("theknot"), date(2015, 1, 1), today=today)


def test_sites_family_and_links() -> None:
    family = [site.name for site in SITES.values() if site.family == "weddingwire"]

    assert len(family) == 8
    assert site_for_host("WWW.Bodas.net") is get_site("bodas")
    assert site_for_host("example.com") is None
    assert review_link(HITCHED, "https://www.hitched.co.uk/v_1.htm") == (
        "https://www.hitched.co.uk/v_1.htm#reviews"
    )
    with pytest.raises(ValueError, match="unknown marketplace 'knot'"):
        get_site("knot")


def test_nested_json_ld_falls_back() -> None:
    html = read("storefront_markup_es.html").replace(
        "</head>",
        '<script type="application/ld+json">' + "[" * 50_000 + "]" * 50_000 + "</script></head>",
    )

    page = parse_storefront(html, site=get_site("bodas"), profile="finca")

    assert page.source == "markup"
    assert len(page.reviews) == 2


def test_odd_json_ld_types_tolerated() -> None:
    html = (
        '<html><head><script type="application/ld+json">'
        '{"@type": ["LocalBusiness"], "name": "Willow Barn", "review": "none",'
        ' "aggregateRating": {"ratingValue": {"x": 1}, "reviewCount": "many"}}'
        "</script></head><body></body></html>"
    )

    page = parse_storefront(html, site=HITCHED, profile="willow")

    assert page.vendor.name == "Willow Barn"
    assert (page.vendor.rating, page.vendor.review_count) == (None, 0)
    assert page.reviews == []


def test_json_ld_rating_with_markup_reviews() -> None:
    html = read("storefront_markup_es.html").replace(
        "</head>",
        '<script type="application/ld+json">{"@type": "LocalBusiness", "name": "Finca Los Olivos",'
        ' "aggregateRating": {"ratingValue": "4.7", "reviewCount": 2}}</script></head>',
    )

    page = parse_storefront(html, site=get_site("bodas"), profile="finca")

    assert page.source == "json-ld+markup"
    assert (page.vendor.rating, page.vendor.review_count) == (4.7, 2)
    assert [review.review_id for review in page.reviews] == ["88101", "88102"]
