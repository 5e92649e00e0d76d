"""Storefront (vendor) pages of the marketplaces.

The schema.org JSON-LD of the page is read first: a ``LocalBusiness`` with
its ``AggregateRating`` and ``Review`` items.  On the WeddingWire family's
sites a page without JSON-LD falls back to the markup selectors below.  On
Zola, Bridebook and Easy Weddings (``page_source`` "json-ld") such a page
raises MarkupDriftError naming the missing JSON-LD object.  A URL that now
lands on a listing page (the site redirects a removed vendor to search
results) raises NotAStorefrontError instead of reporting a vendor without
reviews.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import msgspec

from plaudit.connectors.marketplace.errors import MarkupDriftError, NotAStorefrontError
from plaudit.connectors.marketplace.listing import CARD, aggregate_rating
from plaudit.connectors.marketplace.models import (
    PageReview,
    Storefront,
    VendorCard,
    derived_review_id,
)
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
from plaudit.connectors.marketplace.sites import Site, page_support, parse_site_date

if TYPE_CHECKING:
    from selectolax.lexbor import LexborHTMLParser, LexborNode

# NOTE: these storefront selectors follow the block__element naming of the
# family's listing cards.  No saved storefront page was available to check
# them, so trust the JSON-LD path until one is.
VENDOR_NAME: Final = "h1.storefrontHeading__title"
VENDOR_RATING: Final = ".storefrontHeading__rating"
VENDOR_REVIEW_COUNT: Final = ".storefrontHeading__reviewCount"
CANONICAL: Final = 'link[rel="canonical"]'
REVIEW: Final = "li.storefrontReviewsTile"
REVIEW_AUTHOR: Final = ".storefrontReviewsTile__author"
REVIEW_DATE: Final = ".storefrontReviewsTile__date"
REVIEW_RATING: Final = ".storefrontReviewsTile__rating"
REVIEW_TEXT: Final = ".storefrontReviewsTile__description"
REVIEW_REPLY: Final = ".storefrontReviewsTile__reply"
# The standard next-page link of a paginated review list, in the head or the body.
NEXT_PAGE: Final = 'link[rel="next"], a[rel="next"]'
# The JSON-LD object that names a vendor on sites read from JSON-LD alone.
JSON_LD_VENDOR: Final = "JSON-LD object with aggregateRating or review, such as a LocalBusiness"


def parse_storefront(html: str, *, site: Site, profile: str) -> Storefront:
    """Return the vendor and the reviews shown on a storefront page.

    Raises BlockedPageError for a challenge page, NotAStorefrontError for a
    listing page, and MarkupDriftError naming the selector or JSON-LD field
    when neither the JSON-LD nor the markup yields the vendor.
    """
    tree = parse_html(html)
    check_not_blocked(tree, html, site=site, profile=profile)
    page = _parse_vendor_page(tree, site=site, profile=profile)
    link = tree.css_first(NEXT_PAGE)
    href = (link.attributes.get("href") or "").strip() if link is not None else ""
    return msgspec.structs.replace(page, next_page=href or None) if href else page


def _parse_vendor_page(tree: LexborHTMLParser, *, site: Site, profile: str) -> Storefront:
    businesses = [item for item in json_ld_objects(tree) if _is_vendor(item)]
    if site.page_source == "json-ld":
        return _from_json_ld_only(businesses, tree, site=site, profile=profile)

    tiles = len(tree.css(CARD))
    if len(businesses) > 1 or tiles > 1:
        raise NotAStorefrontError(
            site=site.display_name, profile=profile, vendors=max(len(businesses), tiles)
        )

    if businesses:
        page = _from_json_ld(businesses[0], tree, site=site, profile=profile)
        if page.reviews or not tree.css(REVIEW):
            return page

        # Some storefronts put only the rating into JSON-LD and list the
        # reviews in the markup.
        reviews = [_markup_review(node, site=site, profile=profile) for node in tree.css(REVIEW)]
        return msgspec.structs.replace(page, reviews=reviews, source="json-ld+markup")

    return _from_markup(tree, site=site, profile=profile)


def _from_json_ld_only(
    businesses: list[dict[str, Any]], tree: LexborHTMLParser, *, site: Site, profile: str
) -> Storefront:
    if len(businesses) > 1:
        raise NotAStorefrontError(site=site.display_name, profile=profile, vendors=len(businesses))

    if not businesses:
        raise MarkupDriftError(
            site=site.display_name,
            profile=profile,
            selector=JSON_LD_VENDOR,
            problem=f"the page has no vendor in its JSON-LD. {page_support(site)}",
        )

    return _from_json_ld(businesses[0], tree, site=site, profile=profile)


def _is_vendor(item: dict[str, Any]) -> bool:
    if type_names(item) & {"BreadcrumbList", "WebSite", "WebPage", "ItemList"}:
        return False

    return "aggregateRating" in item or "review" in item


def _from_json_ld(
    item: dict[str, Any], tree: LexborHTMLParser, *, site: Site, profile: str
) -> Storefront:
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise MarkupDriftError(
            site=site.display_name,
            profile=profile,
            selector="JSON-LD LocalBusiness.name",
            problem="the vendor's JSON-LD has no name",
        )

    aggregate = item.get("aggregateRating")
    rating, count = aggregate_rating(aggregate) if isinstance(aggregate, dict) else (None, 0)
    raw_reviews = item.get("review", [])
    if isinstance(raw_reviews, dict):
        raw_reviews = [raw_reviews]
    reviews = [
        _json_ld_review(entry, site=site, profile=profile)
        for entry in raw_reviews
        if isinstance(entry, dict)
    ]
    vendor = VendorCard(
        name=name.strip(), rating=rating, review_count=count, url=_page_url(item, tree)
    )
    return Storefront(vendor=vendor, reviews=reviews, source="json-ld")


def _json_ld_review(entry: dict[str, Any], *, site: Site, profile: str) -> PageReview:
    author = entry.get("author")
    if isinstance(author, dict):
        author = author.get("name")
    author_name = author.strip() if isinstance(author, str) else ""
    text = entry.get("reviewBody") or entry.get("description") or ""
    text = " ".join(str(text).split())
    rating_block = entry.get("reviewRating")
    rating = None
    if isinstance(rating_block, dict):
        rating = parse_decimal(scalar_text(rating_block.get("ratingValue")))

    published = entry.get("datePublished")
    date = None
    if isinstance(published, str) and published.strip():
        try:
            date = parse_site_date(site, published).isoformat()
        except ValueError as error:
            raise MarkupDriftError(
                site=site.display_name,
                profile=profile,
                selector="JSON-LD Review.datePublished",
                problem=str(error),
            ) from error

    review_id = entry.get("@id") or entry.get("identifier")
    if not isinstance(review_id, str) or not review_id:
        review_id = derived_review_id(profile, author_name, text)
    return PageReview(review_id=review_id, author=author_name, rating=rating, text=text, date=date)


def _page_url(item: dict[str, Any], tree: LexborHTMLParser) -> str:
    url = item.get("url")
    if isinstance(url, str) and url:
        return url

    canonical = tree.css_first(CANONICAL)
    return (canonical.attributes.get("href") or "") if canonical is not None else ""


def _from_markup(tree: LexborHTMLParser, *, site: Site, profile: str) -> Storefront:
    name = node_text(tree.css_first(VENDOR_NAME))
    if not name:
        raise MarkupDriftError(
            site=site.display_name,
            profile=profile,
            selector=VENDOR_NAME,
            problem="the page has neither JSON-LD with the vendor nor the vendor heading",
        )

    rating = parse_decimal(node_text(tree.css_first(VENDOR_RATING)))
    count = parse_count(node_text(tree.css_first(VENDOR_REVIEW_COUNT))) or 0
    reviews = [_markup_review(node, site=site, profile=profile) for node in tree.css(REVIEW)]
    if count and not reviews:
        raise MarkupDriftError(
            site=site.display_name,
            profile=profile,
            selector=REVIEW,
            problem=f"the header counts {count} reviews but no review element matched",
        )

    canonical = tree.css_first(CANONICAL)
    url = (canonical.attributes.get("href") or "") if canonical is not None else ""
    vendor = VendorCard(name=name, rating=rating, review_count=count, url=url)
    return Storefront(vendor=vendor, reviews=reviews, source="markup")


def _markup_review(node: LexborNode, *, site: Site, profile: str) -> PageReview:
    author = node_text(node.css_first(REVIEW_AUTHOR))
    text = node_text(node.css_first(REVIEW_TEXT))
    if not text and not author:
        raise MarkupDriftError(
            site=site.display_name,
            profile=profile,
            selector=f"{REVIEW} {REVIEW_TEXT}",
            problem="a review element has neither author nor text",
        )

    date_text = node_text(node.css_first(REVIEW_DATE))
    try:
        date = parse_site_date(site, date_text).isoformat() if date_text else None
    except ValueError as error:
        raise MarkupDriftError(
            site=site.display_name, profile=profile, selector=REVIEW_DATE, problem=str(error)
        ) from error

    rating_node = node.css_first(REVIEW_RATING)
    rating_text = (rating_node.attributes.get("data-rating") or "") if rating_node else ""
    rating = parse_decimal(rating_text or node_text(rating_node))
    reply = node_text(node.css_first(REVIEW_REPLY)) or None
    review_id = node.attributes.get("data-review-id") or derived_review_id(profile, author, text)
    return PageReview(
        review_id=review_id, author=author, rating=rating, text=text, date=date, reply=reply
    )
