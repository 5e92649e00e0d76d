"""Zola, Bridebook and Easy Weddings: vendor pages read from JSON-LD, their notices and errors."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from plaudit.config import load_config
from plaudit.connectors.marketplace.errors import (
    BlockedPageError,
    MarkupDriftError,
    NotAStorefrontError,
)
from plaudit.connectors.marketplace.fetch import StorefrontFetcher
from plaudit.connectors.marketplace.inspect import inspect_main, inspect_storefront
from plaudit.connectors.marketplace.notification import parse_notification
from plaudit.connectors.marketplace.sites import SITES, get_site, review_link
from plaudit.connectors.marketplace.storefront import JSON_LD_VENDOR, parse_storefront
from plaudit.connectors.marketplace.verify import verify_storefront
from plaudit.errors import ConfigError, PlauditError
from plaudit.journal import Journal
from plaudit.reviews.notifications import import_notifications
from plaudit.reviews.replies import dashboard_of
from plaudit.reviews.store import load_reviews
from plaudit.sandbox import SandboxOptions, serve_sandbox
from plaudit.sandbox.marketplace import write_notifications
from plaudit.sandbox.standin import StandInReview

FIXTURES = Path(__file__).parent / "fixtures" / "marketplace"
JSON_LD_SITES = ("zola", "bridebook", "easyweddings")


def page(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def notice(name: str) -> dict[str, object]:
    parsed = parse_notification((FIXTURES / name).read_bytes(), source=name)
    return {field: getattr(parsed, field) for field in parsed.__struct_fields__}


# Site settings


@pytest.mark.parametrize("name", JSON_LD_SITES)
def test_site_reads_json_ld_only(name: str) -> None:
    site = get_site(name)

    assert site.page_source == "json-ld"
    assert not site.listing_pages
    assert site.dashboard_url.startswith(f"https://{site.domain}/")
    assert dashboard_of(name) == site.dashboard_url


def test_family_sites_keep_markup_and_listings() -> None:
    family = [site for site in SITES.values() if site.family == "weddingwire"]

    assert len(family) == 8
    assert all(site.page_source == "markup" for site in family)
    assert all(site.listing_pages for site in family)


def test_zola_dates_are_month_first() -> None:
    assert not get_site("zola").day_first
    assert get_site("bridebook").day_first
    assert get_site("easyweddings").day_first


def test_review_link_defaults_to_reviews_section() -> None:
    url = "https://bridebook.com/uk/wedding-venues/the-granary-at-fenwick-x7Qp2"

    assert review_link(get_site("bridebook"), url) == url + "#reviews"


# Vendor pages


def test_zola_vendor_page() -> None:
    result = parse_storefront(page("storefront_zola.html"), site=get_site("zola"), profile="mh")

    assert result.source == "json-ld"
    assert result.vendor.name == "Maple Hollow Strings"
    assert result.vendor.rating == 4.9
    assert result.vendor.review_count == 27
    assert result.vendor.url.endswith("/wedding-bands-djs/maple-hollow-strings")
    assert [review.author for review in result.reviews] == ["Dana R.", "Luis & Kim"]
    assert [review.rating for review in result.reviews] == [5.0, 4.0]
    assert [review.date for review in result.reviews] == ["2024-05-18", "2024-04-02"]


def test_bridebook_vendor_in_graph() -> None:
    site = get_site("bridebook")

    result = parse_storefront(page("storefront_bridebook.html"), site=site, profile="granary")

    assert result.vendor.name == "The Granary at Fenwick"
    assert result.vendor.rating == 4.8
    # ratingCount is read when reviewCount is missing.
    assert result.vendor.review_count == 112
    assert len(result.reviews) == 1
    assert result.reviews[0].review_id == "bb-55120"
    assert result.reviews[0].author == "Sophie & James"


def test_easyweddings_string_authors_and_offsets() -> None:
    site = get_site("easyweddings")

    result = parse_storefront(page("storefront_easyweddings.html"), site=site, profile="cb")

    assert result.vendor.review_count == 3
    assert [review.author for review in result.reviews] == ["Hannah & Lachlan", "Zoe P.", "Ben"]
    assert [review.date for review in result.reviews] == ["2025-03-02", "2025-01-19", "2024-12-07"]
    assert result.reviews[0].text == "The bouquets were even prettier than the mock-up."
    assert result.reviews[0].rating == 4.5


def test_page_without_json_ld_names_field() -> None:
    with pytest.raises(MarkupDriftError) as caught:
        parse_storefront(
            page("storefront_zola_no_jsonld.html"), site=get_site("zola"), profile="mh"
        )

    message = str(caught.value)
    assert caught.value.selector == JSON_LD_VENDOR
    assert caught.value.site == "Zola"
    assert "profile 'mh'" in message
    assert "schema.org JSON-LD only" in message


def test_markup_alone_is_not_read() -> None:
    # The family's markup selectors do not apply to the other sites.
    html = page("storefront_markup_es.html")

    with pytest.raises(MarkupDriftError) as caught:
        parse_storefront(html, site=get_site("easyweddings"), profile="finca")

    assert caught.value.selector == JSON_LD_VENDOR


def test_several_vendors_is_not_a_storefront() -> None:
    with pytest.raises(NotAStorefrontError) as caught:
        parse_storefront(page("listing_zola_search.html"), site=get_site("zola"), profile="mh")

    assert "3 vendors" in str(caught.value)


def test_challenge_page_is_blocked() -> None:
    with pytest.raises(BlockedPageError):
        parse_storefront(page("challenge.html"), site=get_site("bridebook"), profile="granary")


def test_invalid_review_date_names_field() -> None:
    html = page("storefront_zola.html").replace('"2024-05-18"', '"sometime in spring"')

    with pytest.raises(MarkupDriftError) as caught:
        parse_storefront(html, site=get_site("zola"), profile="mh")

    assert caught.value.selector == "JSON-LD Review.datePublished"
    assert "sometime in spring" in str(caught.value)


# Verification


def test_verify_bridebook_vendor() -> None:
    result = verify_storefront(
        page("storefront_bridebook.html"),
        site=get_site("bridebook"),
        profile="granary",
        expected_name="Granary at Fenwick",
        final_url="https://bridebook.com/uk/wedding-venues/the-granary-at-fenwick-x7Qp2",
    )

    assert result.state == "verified"
    assert result.problems == []


def test_verify_reports_other_vendor() -> None:
    result = verify_storefront(
        page("storefront_easyweddings.html"),
        site=get_site("easyweddings"),
        profile="cb",
        expected_name="Bellbird Photography",
    )

    assert result.state == "mismatch"
    assert "Coastal Blooms Floristry" in result.problems[0]


def test_verify_page_without_json_ld_is_drift() -> None:
    result = verify_storefront(
        page("storefront_zola_no_jsonld.html"),
        site=get_site("zola"),
        profile="mh",
        expected_name="Maple Hollow Strings",
    )

    assert result.state == "drift"
    assert JSON_LD_VENDOR in result.problems[0]


def test_verify_redirect_off_site() -> None:
    result = verify_storefront(
        page("storefront_zola.html"),
        site=get_site("zola"),
        profile="mh",
        expected_name="Maple Hollow Strings",
        final_url="https://www.theknot.com/marketplace/search",
    )

    assert result.state == "not_a_storefront"
    assert "off www.zola.com" in result.problems[0]


# plaudit inspect storefront


def test_inspect_zola_page_prints_json() -> None:
    out = io.StringIO()

    code = inspect_main(
        "storefront", str(FIXTURES / "storefront_zola.html"), platform="zola", out=out
    )

    result = json.loads(out.getvalue())
    assert code == 0
    assert result["platform"] == "zola"
    assert result["vendor"]["name"] == "Maple Hollow Strings"
    assert len(result["reviews"]) == 2


def test_inspect_without_json_ld_says_supported() -> None:
    path = str(FIXTURES / "storefront_zola_no_jsonld.html")

    with pytest.raises(PlauditError) as caught:
        inspect_storefront(path, "zola")

    message = str(caught.value)
    assert f"saved page {path} cannot be read as a Zola page" in message
    assert "schema.org JSON-LD only" in message
    assert "changed its markup" not in message
    assert "storefrontHeading" not in message


def test_inspect_family_listing_as_bridebook() -> None:
    with pytest.raises(PlauditError) as caught:
        inspect_storefront(str(FIXTURES / "listing_hitched.html"), "bridebook")

    message = str(caught.value)
    assert "listing page with 3 vendor cards" in message
    assert "listing pages are not read" in message
    assert "hitched" in message
    assert "vendorTile" not in message


def test_inspect_json_ld_listing_as_zola() -> None:
    with pytest.raises(PlauditError) as caught:
        inspect_storefront(str(FIXTURES / "listing_zola_search.html"), "zola")

    assert "its JSON-LD lists several vendors" in str(caught.value)
    assert "not to one storefront" not in str(caught.value)


def test_inspect_family_page_keeps_drift_error() -> None:
    # A WeddingWire family page still blames the markup and names the selector.
    html = page("storefront_markup_es.html").replace("storefrontHeading__title", "heading")

    with pytest.raises(MarkupDriftError) as caught:
        parse_storefront(html, site=get_site("bodas"), profile="finca")

    assert caught.value.selector == "h1.storefrontHeading__title"


# Notification e-mails


def test_bridebook_plain_notice() -> None:
    found = notice("notify_bridebook_plain.eml")

    assert found["platform"] == "bridebook"
    assert found["reviewer"] == "Sophie & James"
    assert found["rating"] == 5.0
    assert str(found["text"]).startswith("We could not have asked for a better venue.")
    # "Reviewed on: 01/07/2024" is day first in the UK.
    assert found["date"] == "2024-07-01"
    assert found["review_id"] == "bb-55120"
    assert found["forwarded"] is False


def test_bridebook_html_only_notice() -> None:
    found = notice("notify_bridebook_html.eml")

    assert found["reviewer"] == "Priya and Tom"
    # Four filled stars and one empty star.
    assert found["rating"] == 4.0
    assert "timing of the speeches" in str(found["text"])
    assert found["date"] == "2024-09-19"
    assert found["link"] == "https://bridebook.com/uk/business/reviews/bb-57004"
    assert found["review_id"] == "bb-57004"


def test_bridebook_quoted_notice() -> None:
    found = notice("notify_bridebook_quoted.eml")

    assert found["quoted"] is True
    assert found["reviewer"] == "Megan Price"
    assert found["rating"] == 4.0
    # The date of the quoted notice, not of the reply.
    assert found["date"] == "2024-10-13"
    assert found["review_id"] == "bb-58812"


def test_easyweddings_plain_notice() -> None:
    found = notice("notify_easyweddings_plain.eml")

    assert found["platform"] == "easyweddings"
    assert found["vendor"] == "Coastal Blooms Floristry"
    assert found["reviewer"] == "Hannah & Lachlan"
    assert found["rating"] == 4.5
    assert str(found["text"]).endswith("twenty minutes late.")
    assert found["date"] == "2025-03-02"
    assert found["review_id"] == "ew-88213"


def test_easyweddings_outlook_forward_uses_sent() -> None:
    found = notice("notify_easyweddings_outlook_forward.eml")

    assert found["forwarded"] is True
    assert found["reviewer"] == "Noah & Grace"
    # "Sent: Monday, 7 April 2025", not the forward's own Date header.
    assert found["date"] == "2025-04-07"
    assert found["review_id"] == "ew-90177"


def test_easyweddings_attached_html_notice() -> None:
    found = notice("notify_easyweddings_attached.eml")

    assert found["forwarded"] is True
    assert found["reviewer"] == "Amelia Ross"
    assert found["rating"] == 3.0
    assert "eleven weeks" in str(found["text"])
    assert found["date"] == "2025-05-17"


def test_inspect_notification_bridebook() -> None:
    out = io.StringIO()

    inspect_main(
        "notification", str(FIXTURES / "notify_bridebook_plain.eml"), platform=None, out=out
    )

    assert json.loads(out.getvalue())["platform"] == "bridebook"


def test_reviewer_initial_keeps_dot() -> None:
    text = (FIXTURES / "notify_bridebook_plain.eml").read_bytes()
    text = text.replace(b"from Sophie & James.", b"from Sophie P.")

    found = parse_notification(text)

    assert found.reviewer == "Sophie P."


# Sandbox pages over loopback HTTP


@pytest.fixture
async def sandbox_url() -> AsyncIterator[str]:
    async with trio.open_nursery() as nursery:
        base_url = await nursery.start(serve_sandbox, SandboxOptions(script_seconds=0))
        yield base_url
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("name", JSON_LD_SITES)
async def test_sandbox_vendor_page_parses(sandbox_url: str, name: str) -> None:
    site = get_site(name)
    async with httpx.AsyncClient(timeout=30.0) as client:
        fetcher = StorefrontFetcher(client, contact="ops@example.com", clock=lambda: 1000.0)
        url = f"{sandbox_url}/marketplace/{name}/willow-barn.htm"
        fetched = await fetcher.fetch(url, site=site, profile="willow-barn")

    assert fetched.outcome == "fetched"
    assert fetched.html is not None
    result = parse_storefront(fetched.html, site=site, profile="willow-barn")
    assert result.source == "json-ld"
    assert result.vendor.name == "Willow Barn"
    assert result.vendor.review_count == len(result.reviews)
    assert all(review.date for review in result.reviews)
    assert all(review.author for review in result.reviews)


async def test_sandbox_page_without_json_ld(sandbox_url: str) -> None:
    async with httpx.AsyncClient(timeout=30.0) as client:
        response = await client.get(f"{sandbox_url}/marketplace/bridebook/finca-olivos.htm")

    with pytest.raises(MarkupDriftError) as caught:
        parse_storefront(response.text, site=get_site("bridebook"), profile="finca-olivos")

    assert "Bridebook page of profile 'finca-olivos'" in str(caught.value)


async def test_sandbox_challenge_for_zola(sandbox_url: str) -> None:
    site = get_site("zola")
    async with httpx.AsyncClient(timeout=30.0) as client:
        fetcher = StorefrontFetcher(client, contact="ops@example.com", clock=lambda: 1000.0)
        url = f"{sandbox_url}/marketplace/zola/challenge.htm"
        with pytest.raises(BlockedPageError):
            await fetcher.fetch(url, site=site, profile="challenge")


def test_config_keeps_bridebook_to_mail_and_import(tmp_path: Path) -> None:
    path = tmp_path / "plaudit.toml"
    path.write_text(
        "[platforms.marketplace]\n[[platforms.marketplace.profiles]]\n"
        'site = "bridebook"\nprofile_id = "granary"\nvendor_name = "The Granary"\n'
        'modes = ["storefront"]\n'
        'storefront_url = "https://bridebook.com/uk/wedding-venues/the-granary-x7Qp2"\n',
        encoding="utf-8",
    )

    with pytest.raises(ConfigError, match="Bridebook reaches Plaudit by its notification e-mails"):
        load_config(path)


def test_inspect_names_page_site() -> None:
    path = str(FIXTURES / "storefront_zola.html")

    with pytest.raises(PlauditError) as caught:
        inspect_storefront(path, "hitched")

    message = str(caught.value)
    assert "is a Zola page" in message
    assert "--platform zola" in message
    assert "no longer matches" not in message


COUPLES = ("Ava & Sam", "Chloe Martin", "Leo and Ruby")


@pytest.mark.parametrize("name", ["bridebook", "easyweddings"])
def test_sandbox_notices_import_per_site(tmp_path: Path, name: str) -> None:
    site = get_site(name)
    reviews = [
        StandInReview(
            review_id=f"{name}-{index}",
            author=couple,
            stars=4 + index % 2,
            text=f"A lovely day, thank you {index}.",
            created=1_740_000_000.0 + index * 86_400,
            updated=1_740_000_000.0 + index * 86_400,
        )
        for index, couple in enumerate(COUPLES)
    ]
    write_notifications(tmp_path / "mail", reviews, vendor="Granary", domain=site.domain)
    journal = Journal.open(tmp_path / "journal.sqlite3")

    report = import_notifications(journal, tmp_path / "mail", profiles={name: "granary"})
    with journal.transaction() as tx:
        stored = load_reviews(tx, name, "granary")
    journal.close()

    # Plain, HTML-only and forwarded notices, one of each.
    assert report.messages == 3
    assert report.skipped == []
    assert report.created == 3
    assert sorted(review.author for review in stored) == sorted(COUPLES)
