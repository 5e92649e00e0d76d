"""Profile verification of a storefront page against the configured vendor name."""

from __future__ import annotations

from pathlib import Path

import pytest

from plaudit.connectors.marketplace.sites import get_site
from plaudit.connectors.marketplace.verify import names_match, normalize_name, verify_storefront

FIXTURES = Path(__file__).parent / "fixtures" / "marketplace"
HITCHED = get_site("hitched")


def read(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("expected", "found"),
    [
        ("Oak & Ivy Hall", "oak and ivy hall"),
        ("Château Blanc", "Chateau Blanc"),
        ("The Willow Barn", "Willow Barn"),
        ("Willow Barn", "Willow Barn Weddings Ltd."),
        ("Lumen Photo-Studio", "Lumen Photo Studio!"),
        ("Merchant Taylor's Hall", "Merchant Taylors Hall"),
    ],
)
def test_names_match(expected: str, found: str) -> None:
    assert names_match(expected, found)


@pytest.mark.parametrize(
    ("expected", "found"),
    [("Willow Barn", "Oak Barn"), ("Lumen Photo", "Sunrise Films"), ("The", "The")],
)
def test_names_differ(expected: str, found: str) -> None:
    assert not names_match(expected, found)


def test_normalize_name() -> None:
    assert normalize_name("  The Oak & Ivy  Hall, Ltd. ") == "oak and ivy hall"


def test_verified_storefront() -> None:
    result = verify_storefront(
        read("storefront_jsonld.html"), site=HITCHED, profile="willow", expected_name="willow barn"
    )

    assert result.state == "verified"
    assert result.problems == []
    assert result.vendor is not None
    assert (result.vendor.rating, result.vendor.review_count) == (4.9, 2)


def test_other_vendor_is_mismatch() -> None:
    result = verify_storefront(
        read("storefront_jsonld.html"), site=HITCHED, profile="willow", expected_name="Oak Hall"
    )

    assert result.state == "mismatch"
    assert "names 'Willow Barn', not the configured vendor 'Oak Hall'" in result.problems[0]


def test_redirect_to_listing_fails() -> None:
    result = verify_storefront(
        read("listing_hitched.html"), site=HITCHED, profile="willow", expected_name="Willow Barn"
    )

    assert result.state == "not_a_storefront"
    assert result.vendor is None


def test_redirect_off_site_fails() -> None:
    result = verify_storefront(
        read("storefront_jsonld.html"),
        site=HITCHED,
        profile="willow",
        expected_name="Willow Barn",
        final_url="https://www.example.com/search",
    )

    assert result.state == "not_a_storefront"
    assert "off www.hitched.co.uk" in result.problems[0]


def test_blocked_page_is_reported() -> None:
    result = verify_storefront(
        read("challenge.html"), site=HITCHED, profile="willow", expected_name="Willow Barn"
    )

    assert result.state == "blocked"


def test_storefront_without_reviews_is_mismatch() -> None:
    html = read("storefront_markup_es.html")
    html = html.replace("(2 opiniones)", "(0 opiniones)").replace("4,7", "")

    result = verify_storefront(
        html, site=get_site("bodas"), profile="finca", expected_name="Finca Los Olivos"
    )

    assert result.state == "mismatch"
    assert "no rating or review count" in result.problems[0]
