"""Following a storefront's further review pages within the profile's request budget.

A storefront with many reviews shows them over several pages, each linking
the next with ``rel="next"``.  After the first page, up to ``max_pages - 1``
further pages are requested, ``page_delay`` seconds apart, each checked
against robots.txt and only on the first page's scheme and host.  The
reviews of every page read are merged, so a vendor whose pages were all
read yields a complete snapshot, and deletions can be detected.  When the
budget runs out or a further page fails, the pages read so far are kept
and the snapshot stays partial, so nothing is marked deleted.
"""

from __future__ import annotations

import logging
from typing import Final, final
from urllib.parse import urljoin, urlsplit

import msgspec
import trio

from plaudit.connectors.marketplace.fetch import StorefrontFetcher
from plaudit.connectors.marketplace.models import PageReview, Storefront
from plaudit.connectors.marketplace.sites import Site
from plaudit.connectors.marketplace.storefront import parse_storefront
from plaudit.errors import PlatformError

log = logging.getLogger(__name__)

DEFAULT_MAX_PAGES: Final = 10
DEFAULT_PAGE_DELAY: Final = 5.0


@final
class PagedStorefront(msgspec.Struct, frozen=True, kw_only=True):
    """The merged storefront of every page read, and why reading stopped early."""

    page: Storefront
    pages: int
    # None when the last page had no next link; otherwise the reason more
    # pages exist but were not read.
    stopped: str | None = None


def resolve_link(page_url: str, href: str) -> str:
    """Return the absolute URL of a link on ``page_url``, without its fragment."""
    return urljoin(page_url, href).partition("#")[0]


def next_page_url(page_url: str, href: str | None, *, visited: set[str]) -> str | None:
    """Resolve the next-page link; None when there is none, it leaves the host, or loops."""
    if not href:
        return None

    url = resolve_link(page_url, href)
    page_parts, link_parts = urlsplit(page_url), urlsplit(url)
    same_origin = (link_parts.scheme, link_parts.netloc) == (page_parts.scheme, page_parts.netloc)
    if not same_origin or url in visited:
        return None
    return url


def merge_reviews(pages: list[list[PageReview]]) -> list[PageReview]:
    """Join the pages' reviews in page order, keeping the first of any repeated review id."""
    merged: dict[str, PageReview] = {}
    for reviews in pages:
        for review in reviews:
            merged.setdefault(review.review_id, review)
    return list(merged.values())


async def read_further_pages(
    fetcher: StorefrontFetcher,
    first: Storefront,
    first_url: str,
    *,
    site: Site,
    profile: str,
    max_pages: int = DEFAULT_MAX_PAGES,
    page_delay: float = DEFAULT_PAGE_DELAY,
) -> PagedStorefront:
    """Read the pages after ``first`` (fetched from ``first_url``) and merge their reviews."""
    visited = {first_url}
    pages = [first.reviews]
    current, current_url = first, first_url
    stopped: str | None = None
    while True:
        url = next_page_url(current_url, current.next_page, visited=visited)
        if url is None:
            # A link back to a page already read ends the list; one off the host stops it.
            if current.next_page and resolve_link(current_url, current.next_page) not in visited:
                stopped = f"next-page link {current.next_page!r} leaves the host of {first_url}"
            break
        if len(pages) >= max_pages:
            stopped = f"page budget of {max_pages} reached"
            break

        await trio.sleep(page_delay)
        visited.add(url)
        try:
            current = await _read_page(fetcher, url, site=site, profile=profile)
        except PlatformError as error:
            stopped = f"page {len(pages) + 1} failed: {error}"
            break
        current_url = url
        pages.append(current.reviews)

    if stopped is not None:
        log.warning(
            "marketplace.pages_stopped",
            extra={"site": site.name, "profile": profile, "pages": len(pages), "reason": stopped},
        )
    merged = msgspec.structs.replace(first, reviews=merge_reviews(pages), next_page=None)
    return PagedStorefront(page=merged, pages=len(pages), stopped=stopped)


async def _read_page(
    fetcher: StorefrontFetcher, url: str, *, site: Site, profile: str
) -> Storefront:
    result = await fetcher.fetch_page(url, site=site, profile=profile)
    if result.html is None:
        raise PlatformError(
            f"robots.txt disallows {url}; the pages before it are kept", retryable=False
        )
    html = result.html
    return await trio.to_thread.run_sync(lambda: parse_storefront(html, site=site, profile=profile))
