"""Listing (search and category) pages of the WeddingWire family.

Each vendor is an ``li.vendorTile`` card: the title link gives the name and
the storefront URL, ``.vendorTile__rating`` the average and the text after it
"(116)" the review count.  The page's JSON-LD repeats every vendor as a
``LocalBusiness`` with an ``AggregateRating``.  Where a card's URL matches one,
the JSON-LD figures win because they carry no formatting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from plaudit.connectors.marketplace.errors import MarkupDriftError
from plaudit.connectors.marketplace.models import VendorCard
from plaudit.connectors.marketplace.page import (
    check_not_blocked,
    json_ld_objects,
    node_text,
    parse_count,
    parse_decimal,
    parse_html,
    scalar_text,
    type_names,
)
from plaudit.connectors.marketplace.sites import Site

if TYPE_CHECKING:
    from selectolax.lexbor import LexborHTMLParser, LexborNode

CARD: Final = "li.vendorTile"
TITLE: Final = "a.vendorTile__title"
RATING_BLOCK: Final = ".vendorTile__contentRating"
RATING: Final = ".vendorTile__rating"


def parse_listing(html: str, *, site: Site, profile: str) -> list[VendorCard]:
    """Return every vendor card of a listing page, in page order.

    Raises BlockedPageError for a challenge page and MarkupDriftError, naming
    the selector, when the page has no cards or a card lacks its title link.
    """
    tree = parse_html(html)
    check_not_blocked(tree, html, site=site, profile=profile)
    return vendor_cards(tree, site=site, profile=profile)


def vendor_cards(tree: LexborHTMLParser, *, site: Site, profile: str) -> list[VendorCard]:
    """Read the cards of an already parsed page; see :func:`parse_listing`."""
    tiles = tree.css(CARD)
    if not tiles:
        raise MarkupDriftError(
            site=site.display_name, profile=profile, selector=CARD, problem="no vendor cards"
        )

    ratings = _json_ld_ratings(tree)
    cards = [_card(tile, ratings, site=site, profile=profile) for tile in tiles]
    if all(tile.css_first(RATING_BLOCK) is None for tile in tiles) and not ratings:
        # Some vendors have no reviews yet, but a page where none has a
        # rating means the rating markup changed.
        raise MarkupDriftError(
            site=site.display_name,
            profile=profile,
            selector=RATING_BLOCK,
            problem=f"none of {len(tiles)} vendor cards has a rating",
        )

    return cards


def _card(
    tile: LexborNode,
    ratings: dict[str, tuple[float | None, int]],
    *,
    site: Site,
    profile: str,
) -> VendorCard:
    title = tile.css_first(TITLE)
    url = title.attributes.get("href") if title is not None else None
    name = node_text(title) or (tile.attributes.get("data-ec-name") or "")
    if title is None or not url or not name:
        position = tile.attributes.get("data-overall-position") or "?"
        raise MarkupDriftError(
            site=site.display_name,
            profile=profile,
            selector=f"{CARD} {TITLE}",
            problem=f"vendor card at position {position} has no title link with a name and href",
        )

    if url in ratings:
        rating, count = ratings[url]
    else:
        rating, count = _markup_rating(tile)
    return VendorCard(name=name, rating=rating, review_count=count, url=url)


def _markup_rating(tile: LexborNode) -> tuple[float | None, int]:
    block = tile.css_first(RATING_BLOCK)
    if block is None:
        return None, 0

    rating = parse_decimal(node_text(block.css_first(RATING)))
    # The count is the "(116)" text that follows the rating span.
    rating_text = node_text(block.css_first(RATING))
    rest = node_text(block).replace(rating_text, "", 1)
    count = parse_count(rest)
    return rating, count or 0


def _json_ld_ratings(tree: LexborHTMLParser) -> dict[str, tuple[float | None, int]]:
    ratings: dict[str, tuple[float | None, int]] = {}
    for item in json_ld_objects(tree):
        aggregate = item.get("aggregateRating")
        url = item.get("url")
        if isinstance(aggregate, dict) and isinstance(url, str) and _is_business(item):
            ratings[url] = aggregate_rating(aggregate)

    return ratings


def _is_business(item: dict[str, Any]) -> bool:
    return not type_names(item) & {"BreadcrumbList", "WebSite", "WebPage", "ItemList"}


def aggregate_rating(aggregate: dict[str, Any]) -> tuple[float | None, int]:
    """Return (average out of 5, review count) from a schema.org AggregateRating."""
    value = parse_decimal(scalar_text(aggregate.get("ratingValue")))
    count = parse_count(scalar_text(aggregate.get("reviewCount", aggregate.get("ratingCount"))))
    best = parse_decimal(scalar_text(aggregate.get("bestRating", 5))) or 5.0
    if value is not None and best != 5.0:
        value = round(value * 5.0 / best, 2)
    return value, count or 0
