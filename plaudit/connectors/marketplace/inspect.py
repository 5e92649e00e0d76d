"""``plaudit inspect storefront|notification``: parse one saved file and print one JSON object."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO
from urllib.parse import urlsplit

import msgspec

from plaudit.connectors.marketplace.errors import MarkupDriftError, NotAStorefrontError
from plaudit.connectors.marketplace.listing import CARD, vendor_cards
from plaudit.connectors.marketplace.notification import MAX_MESSAGE_BYTES, parse_notification
from plaudit.connectors.marketplace.page import check_not_blocked, parse_html
from plaudit.connectors.marketplace.sites import (
    SITES,
    Site,
    get_site,
    page_support,
    site_for_host,
)
from plaudit.connectors.marketplace.storefront import CANONICAL, JSON_LD_VENDOR, parse_storefront
from plaudit.errors import PlatformError, PlauditError

if TYPE_CHECKING:
    from selectolax.lexbor import LexborHTMLParser

# Saved pages of the family run to about 1 MB; this leaves room for more.
MAX_PAGE_BYTES: Final = 20 * 1024 * 1024


def inspect_storefront(path: str, platform: str) -> dict[str, Any]:
    """Parse a saved listing or storefront page of ``platform``.

    A page with more than one vendor card is a listing and yields
    ``{"vendors": [...]}``; any other page yields ``{"vendor": ..., "reviews": [...]}``.
    """
    try:
        site = get_site(platform)
    except ValueError as error:
        raise PlauditError(str(error)) from error

    html = _read(path, MAX_PAGE_BYTES).decode("utf-8", errors="replace")
    try:
        return _parse_page(html, site, path)
    except PlatformError as error:
        # The parsers name a configured profile, but here the page is a file.
        message = str(error).replace(f"page of profile {path!r}", f"saved page {path}")
        message = message.replace(f"profile {path!r}", f"the saved page {path}")
        raise PlauditError(message) from error


def _parse_page(html: str, site: Site, path: str) -> dict[str, Any]:
    tree = parse_html(html)
    check_not_blocked(tree, html, site=site, profile=path)
    _check_page_site(tree, site, path)
    cards = len(tree.css(CARD))
    if cards > 1 and not site.listing_pages:
        raise _unsupported(site, path, f"it looks like a listing page with {cards} vendor cards")

    if cards > 1:
        found = vendor_cards(tree, site=site, profile=path)
        return {"platform": site.name, "vendors": msgspec.to_builtins(found)}

    try:
        page = parse_storefront(html, site=site, profile=path)
    except MarkupDriftError as error:
        if site.page_source != "json-ld" or error.selector != JSON_LD_VENDOR:
            raise
        raise _unsupported(site, path, "its JSON-LD names no vendor") from error
    except NotAStorefrontError as error:
        if site.listing_pages:
            raise
        raise _unsupported(site, path, "its JSON-LD lists several vendors") from error

    result: dict[str, Any] = msgspec.to_builtins(page)
    return {"platform": site.name, **result}


def _check_page_site(tree: LexborHTMLParser, site: Site, path: str) -> None:
    # A page saved from another marketplace names that site in its canonical
    # URL, and parsing it with the wrong site's rules would only report drift.
    link = tree.css_first(CANONICAL)
    url = (link.attributes.get("href") or "").strip() if link is not None else ""
    other = site_for_host(urlsplit(url).hostname or "") if url else None
    if other is not None and other is not site:
        raise PlauditError(
            f"saved page {path} is a {other.display_name} page (canonical URL {url}), not a "
            f"{site.display_name} one. Run again with --platform {other.name}"
        )


def _unsupported(site: Site, path: str, reason: str) -> PlauditError:
    listing_sites = ", ".join(sorted(item.name for item in SITES.values() if item.listing_pages))
    return PlauditError(
        f"saved page {path} cannot be read as a {site.display_name} page because {reason}. "
        f"{page_support(site)}. Save the vendor's own page with its JSON-LD scripts, or read "
        f"listing pages with --platform set to one of: {listing_sites}"
    )


def inspect_notification(path: str) -> dict[str, Any]:
    """Parse a saved notification e-mail into the review it announces."""
    notice = parse_notification(_read(path, MAX_MESSAGE_BYTES), source=path)
    result: dict[str, Any] = msgspec.to_builtins(notice)
    return result


def inspect_main(kind: str, path: str, *, platform: str | None, out: TextIO = sys.stdout) -> int:
    """Run the parser named by ``kind`` on ``path`` and print its result as JSON."""
    if kind == "storefront":
        if platform is None:
            raise PlauditError("inspect storefront needs --platform NAME, for example hitched")
        result = inspect_storefront(path, platform)
    else:
        result = inspect_notification(path)

    out.write(msgspec.json.encode(result).decode("utf-8") + "\n")
    return 0


def _read(path: str, limit: int) -> bytes:
    try:
        with Path(path).open("rb") as stream:
            data = stream.read(limit + 1)
    except OSError as error:
        reason = error.strerror or error.__class__.__name__
        raise PlauditError(f"cannot read {path}: {reason}") from error

    if len(data) > limit:
        raise PlauditError(f"{path} is larger than {limit} bytes; pass a single page or e-mail")

    return data
