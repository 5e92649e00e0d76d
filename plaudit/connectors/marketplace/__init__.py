"""Marketplaces without a review API: the WeddingWire family, Zola, Bridebook, Easy Weddings.

Parsing and decisions are pure.  ``fetch`` and ``mailbox`` perform I/O
(HTTP and a Maildir), and journal writes live in ``plaudit.reviews.importer``.

- ``sites``: per-site settings (domain, language, date order, review
  window, review link) and the date parser for their month names.
- ``page``: HTML parsing, bot-challenge detection and JSON-LD extraction.
- ``listing``: vendor cards of listing pages.
- ``storefront``: a vendor's storefront page, JSON-LD first, markup second.
- ``notification``: the "you have a new review" e-mails.
- ``verify``: profile verification with a fuzzy vendor-name match.
- ``errors``: markup drift, blocked pages, storefronts that became listings.
- ``mailbox``: notification e-mails from a Maildir's ``new/`` folder.
- ``fetch``: the polite storefront fetch (rate, robots.txt, conditional GET).
- ``sync``: the snapshot decision for a fetched storefront, review window included.
- ``connector``: each site's capabilities and ingestion modes.
- ``inspect``: the ``plaudit inspect storefront|notification`` commands.
"""

from plaudit.connectors.marketplace.errors import (
    BlockedPageError,
    MarkupDriftError,
    NotAStorefrontError,
)
from plaudit.connectors.marketplace.listing import parse_listing
from plaudit.connectors.marketplace.models import PageReview, Storefront, VendorCard
from plaudit.connectors.marketplace.notification import Notification, parse_notification
from plaudit.connectors.marketplace.sites import SITES, Site, get_site, review_link
from plaudit.connectors.marketplace.storefront import parse_storefront
from plaudit.connectors.marketplace.verify import Verification, verify_storefront

__all__ = [
    "SITES",
    "BlockedPageError",
    "MarkupDriftError",
    "NotAStorefrontError",
    "Notification",
    "PageReview",
    "Site",
    "Storefront",
    "VendorCard",
    "Verification",
    "get_site",
    "parse_listing",
    "parse_notification",
    "parse_storefront",
    "review_link",
    "verify_storefront",
]
