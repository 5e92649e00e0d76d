"""The sandbox's marketplace stand-in: storefront pages in the WeddingWire family's markup.

Routes, under the sandbox's base URL:

- ``GET /robots.txt``: allows the storefronts, disallows ``/marketplace/private/``.
- ``GET /marketplace/{site}/search``: a listing page with one card per profile.
- ``GET /marketplace/{site}/{profile}.htm``: a storefront page.  ETag and
  Last-Modified are set, and a matching conditional request gets 304.
- ``GET /marketplace/{site}/paged/{profile}.htm?page=N``: the same
  storefront with its reviews over pages of :data:`PAGE_SIZE`, each linking
  the next with ``<link rel="next">``; the header still counts every review.

Each profile shows one page variant, so every parser path has a page.  The
variants are ``willow-barn`` (JSON-LD), ``finca-olivos`` (markup only,
Spanish month names), ``renamed-class`` (the review element's class
renamed), ``challenge`` (a bot-challenge page with status 403) and ``moved``
(a redirect to the listing page).

Under the sites read from JSON-LD alone (zola, bridebook, easyweddings) the
vendor pages carry that site's own invented markup and a JSON-LD block in
its own shape (see :func:`_schema_page`); ``finca-olivos`` has no JSON-LD
there, so it is the markup-drift case.

:func:`write_notifications` writes "new review" e-mails for reviews of the
world into a Maildir, for tests and demos of the mailbox ingestion.
"""

from __future__ import annotations

import hashlib
import html
import json
import mailbox
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any, ClassVar, Final, Unpack, final

from plaudit.sandbox.app import Request, Response
from plaudit.sandbox.standin import Route, StandInOptions, StandInReview
from plaudit.sandbox.standin_base import StandInBase, page_count, page_slice
from plaudit.sandbox.storefront_faults import StorefrontFaults

# Sites whose sandbox vendor pages follow :func:`_schema_page`.
JSON_LD_SITES: Final = frozenset({"zola", "bridebook", "easyweddings"})
PROFILES: Final = ("willow-barn", "finca-olivos", "renamed-class", "challenge", "moved")
NAMES: Final = {
    "willow-barn": "Willow Barn",
    "finca-olivos": "Finca Los Olivos",
    "renamed-class": "Lumen Photo Studio",
    "challenge": "Harbour View Venue",
    "moved": "Old Mill House",
}
_SPANISH_MONTHS: Final = (
    "enero", "febrero", "marzo", "abril", "mayo", "junio",
    "julio", "agosto", "septiembre", "octubre", "noviembre", "diciembre",
)  # fmt: skip
_ROBOTS: Final = b"User-agent: *\nDisallow: /marketplace/private/\n"
# Reviews per page of the paginated storefront variant.
PAGE_SIZE: Final = 2
_CHALLENGE: Final = (
    "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>"
    '<div id="challenge-running">Checking your browser.</div>'
    '<script src="https://challenges.cloudflare.com/turnstile/v0/api.js"></script>'
    "</body></html>"
)


def _html_response(status: int, body: str, *headers: tuple[str, str]) -> Response:
    return Response(status, body.encode("utf-8"), (("Content-Type", "text/html"), *headers))


@final
class MarketplaceStandIn(StandInBase):
    """Serves storefront and listing pages of one seeded world."""

    name: ClassVar[str] = "marketplace"

    def __init__(self, **options: Unpack[StandInOptions]) -> None:
        super().__init__("hitched", PROFILES, reviews_per_profile=6, **options)
        self._pages = 0
        self._not_modified = 0
        # 5xx, challenge and slow storefront pages, set through /_sandbox/marketplace/faults.
        self.faults = StorefrontFaults(seed=self.seed)

    def __repr__(self) -> str:
        return f"<MarketplaceStandIn {self.world!r} pages={self._pages}>"

    def statistics(self) -> dict[str, Any]:
        """Return the world's counts, pages served and 304 responses."""
        return {
            "world": self.world.statistics(),
            "pages": self._pages,
            "not_modified": self._not_modified,
            "faults": self.faults.statistics(),
        }

    def routes(self) -> list[Route]:
        """Return the routes to mount in the sandbox application."""
        return [
            ("GET", re.compile(r"^/robots\.txt$"), "robots", self._robots),
            ("GET", re.compile(r"^/marketplace/(\w+)/search$"), "marketplace.search", self._search),
            (
                "GET",
                re.compile(r"^/marketplace/(\w+)/([\w-]+)\.htm$"),
                "marketplace.storefront",
                self._storefront,
            ),
            (
                "GET",
                re.compile(r"^/marketplace/(\w+)/paged/([\w-]+)\.htm$"),
                "marketplace.paged",
                self._paged,
            ),
            *self.faults.routes(),
        ]

    async def _robots(self, request: Request, match: re.Match[str]) -> Response:
        return Response(200, _ROBOTS, (("Content-Type", "text/plain"),))

    async def _search(self, request: Request, match: re.Match[str]) -> Response:
        self.advance()
        self._pages += 1
        return _html_response(200, self._listing(match[1]))

    async def _storefront(self, request: Request, match: re.Match[str]) -> Response:
        self.advance()
        site, profile = match[1], match[2]
        if profile not in self.world.profiles:
            return _html_response(404, "<html><body><h1>Page not found</h1></body></html>")

        if profile == "challenge":
            return _html_response(403, _CHALLENGE)

        if profile == "moved":
            return Response(302, b"", (("Location", f"/marketplace/{site}/search"),))

        faulted = await self.faults.respond()
        if faulted is not None:
            return faulted

        body = self._storefront_page(site, profile)
        etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:20] + '"'
        modified = self._last_modified(profile)
        # RFC 9110, 13.2.2: If-None-Match decides when present, and
        # If-Modified-Since counts only without it.
        if_none_match = request.headers.get("if-none-match")
        if if_none_match == etag or (
            if_none_match is None
            and _not_modified_since(request.headers.get("if-modified-since"), modified)
        ):
            self._not_modified += 1
            return Response(304, b"", (("ETag", etag),))

        self._pages += 1
        last_modified = format_datetime(modified, usegmt=True)
        return _html_response(200, body, ("ETag", etag), ("Last-Modified", last_modified))

    async def _paged(self, request: Request, match: re.Match[str]) -> Response:
        self.advance()
        site, profile = match[1], match[2]
        number = request.query.get("page", "1")
        live = self.world.live(profile)
        last = page_count(len(live), PAGE_SIZE)
        if (
            profile not in self.world.profiles
            or not number.isdigit()
            or not 1 <= int(number) <= last
        ):
            return _html_response(404, "<html><body><h1>Page not found</h1></body></html>")
        if profile in ("challenge", "moved"):
            return await self._storefront(request, match)

        page = int(number)
        shown = page_slice(live, page, PAGE_SIZE)
        link = ""
        if page < last:
            link = (
                f'<link rel="next" href="/marketplace/{site}/paged/{profile}.htm?page={page + 1}">'
            )
        self._pages += 1
        return _html_response(200, self._storefront_page(site, profile, shown=shown, head=link))

    def _last_modified(self, profile: str) -> datetime:
        reviews = self.world.profiles[profile]
        # A new reply changes the page as much as an edit does.
        latest = max(
            (max(r.updated, r.reply_time or 0.0, r.deleted or 0.0) for r in reviews),
            default=self.world.epoch,
        )
        return datetime.fromtimestamp(int(latest), tz=UTC)

    def _storefront_page(
        self, site: str, profile: str, *, shown: list[StandInReview] | None = None, head: str = ""
    ) -> str:
        """Render the storefront with every review, or with only ``shown`` (one page of them)."""
        live = self.world.live(profile)
        shown = live if shown is None else shown
        name = NAMES[profile]
        average = sum(review.stars for review in live) / len(live) if live else 0.0
        canonical = f"/marketplace/{site}/{profile}.htm"
        if site in JSON_LD_SITES:
            return _schema_page(site, profile, live, shown, canonical=canonical, head=head)

        head += f'<title>{html.escape(name)}</title><link rel="canonical" href="{canonical}">'
        if profile == "willow-barn":
            head += _json_ld(name, canonical, average, shown, count=len(live))
        tile = "reviewCard" if profile == "renamed-class" else "storefrontReviewsTile"
        spanish = profile == "finca-olivos"
        items = "".join(_review_markup(review, tile, spanish=spanish) for review in shown)
        return (
            f"<!DOCTYPE html><html><head>{head}</head><body>"
            f'<h1 class="storefrontHeading__title">{html.escape(name)}</h1>'
            f'<div class="storefrontHeading__rating">{average:.1f}</div>'
            f'<div class="storefrontHeading__reviewCount">({len(live)})</div>'
            f"<ul>{items}</ul></body></html>"
        )

    def _listing(self, site: str) -> str:
        cards = []
        for position, profile in enumerate(PROFILES, start=1):
            live = self.world.live(profile)
            average = sum(review.stars for review in live) / len(live) if live else 0.0
            name = html.escape(NAMES[profile])
            cards.append(
                f'<li class="vendorTile app-vendor-tile" data-overall-position="{position}">'
                f'<div class="vendorTile__content"><h2><a class="vendorTile__title" '
                f'href="/marketplace/{site}/{profile}.htm">{name}</a></h2>'
                f'<div class="vendorTile__contentRating"><span class="vendorTile__rating">'
                f"{average:.1f}</span>({len(live)})</div></div></li>"
            )
        return (
            "<!DOCTYPE html><html><head><title>Wedding venues</title></head><body>"
            f"<ul>{''.join(cards)}</ul></body></html>"
        )


def _json_ld(
    name: str, url: str, average: float, reviews: list[StandInReview], *, count: int
) -> str:
    return _script(_vendor_document(name, url, average, reviews, count=count))


def _vendor_document(
    name: str, url: str, average: float, reviews: list[StandInReview], *, count: int
) -> dict[str, Any]:
    return {
        "@context": "https://schema.org",
        "@type": "LocalBusiness",
        "name": name,
        "url": url,
        "aggregateRating": {
            "@type": "AggregateRating",
            "ratingValue": f"{average:.1f}",
            "reviewCount": count,
        },
        "review": [
            {
                "@type": "Review",
                "@id": review.review_id,
                "author": {"@type": "Person", "name": review.author},
                "datePublished": _day(review.created).isoformat(),
                "reviewBody": review.text,
                "reviewRating": {"@type": "Rating", "ratingValue": str(review.stars)},
            }
            for review in reviews
        ],
    }


def _schema_page(
    site: str,
    profile: str,
    live: list[StandInReview],
    shown: list[StandInReview],
    *,
    canonical: str,
    head: str,
) -> str:
    """Render a vendor page of a site read from JSON-LD alone, in that site's JSON-LD shape.

    The zola page has a top-level LocalBusiness.  The bridebook page nests an
    Organization in an ``@graph`` beside a WebPage and a BreadcrumbList.  The
    easyweddings page gives plain-string authors, and dates with a time and a
    +10:00 offset.
    """
    name = NAMES[profile]
    average = sum(review.stars for review in live) / len(live) if live else 0.0
    head += f'<title>{html.escape(name)} reviews</title><link rel="canonical" href="{canonical}">'
    if profile != "finca-olivos":
        vendor = _vendor_document(name, canonical, average, shown, count=len(live))
        head += _script(_site_shape(site, vendor, canonical))
    items = "".join(
        f'<article class="review-card"><h3>{html.escape(review.author)}</h3>'
        f"<p>{html.escape(review.text)}</p></article>"
        for review in shown
    )
    return (
        f"<!DOCTYPE html><html><head>{head}</head><body>"
        f'<main class="vendor-profile"><h1 class="vendor-profile__name">{html.escape(name)}</h1>'
        f'<span class="vendor-profile__score">{average:.1f} ({len(live)})</span>'
        f"{items}</main></body></html>"
    )


def _site_shape(site: str, vendor: dict[str, Any], canonical: str) -> dict[str, Any]:
    if site == "bridebook":
        vendor["@type"] = "Organization"
        graph = [
            {"@type": "WebPage", "url": canonical, "name": vendor["name"]},
            {"@type": "BreadcrumbList", "itemListElement": []},
            vendor,
        ]
        return {"@context": "https://schema.org", "@graph": graph}

    if site == "easyweddings":
        for review in vendor["review"]:
            review["author"] = review["author"]["name"]
            review["datePublished"] += "T09:30:00+10:00"
    return vendor


def _script(document: dict[str, Any]) -> str:
    # "</" must not end the script element early.
    text = json.dumps(document).replace("</", "<\\/")
    return f'<script type="application/ld+json">{text}</script>'


def _review_markup(review: StandInReview, tile: str, *, spanish: bool) -> str:
    day = _day(review.created)
    if spanish:
        written = f"{day.day} de {_SPANISH_MONTHS[day.month - 1]} de {day.year}"
    else:
        written = day.strftime("%d %B %Y")
    reply = (
        f'<div class="storefrontReviewsTile__reply">{html.escape(review.reply)}</div>'
        if review.reply
        else ""
    )
    return (
        f'<li class="{tile}" data-review-id="{review.review_id}">'
        f'<div class="storefrontReviewsTile__author">{html.escape(review.author)}</div>'
        f'<div class="storefrontReviewsTile__date">{written}</div>'
        f'<div class="storefrontReviewsTile__rating" data-rating="{review.stars}">'
        f"{review.stars}</div>"
        f'<div class="storefrontReviewsTile__description">{html.escape(review.text)}</div>'
        f"{reply}</li>"
    )


def _day(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, tz=UTC)


def _not_modified_since(header: str | None, modified: datetime) -> bool:
    if not header:
        return False

    try:
        since = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return False
    return since.tzinfo is not None and modified <= since


def write_notifications(
    maildir: Path, reviews: Sequence[StandInReview], *, vendor: str, domain: str
) -> int:
    """Write one "new review" e-mail per review into ``maildir``'s ``new/``; return the count.

    The styles rotate through plain text, HTML-only and forwarded by the
    vendor, so a mailbox pass meets each.  ``domain`` is the marketplace's,
    for the review links.
    """
    box = mailbox.Maildir(str(maildir), create=True)
    styles = (_plain_notice, _html_notice, _forwarded_notice)
    for index, review in enumerate(reviews):
        message = styles[index % len(styles)](review, vendor=vendor, domain=domain)
        box.add(message.as_bytes())
    return len(reviews)


def _notice_body(review: StandInReview, *, vendor: str, domain: str) -> str:
    day = _day(review.created)
    return (
        f"Hello {vendor},\n\n{review.author} left you a new review.\n\n"
        f"Rating: {review.stars}/5\n\nReview:\n{review.text}\n\n"
        f"Reviewed on: {day.strftime('%d %B %Y')}\n\n"
        f"Read it here: https://{domain}/reviews?reviewId={review.review_id}\n"
    )


def _headers(message: EmailMessage, review: StandInReview, subject: str) -> EmailMessage:
    message["From"] = "Marketplace Reviews <reviews@example.com>"
    message["To"] = "vendor@example.com"
    message["Subject"] = subject
    message["Date"] = format_datetime(_day(review.created), usegmt=True)
    message["Message-ID"] = f"<{review.review_id}@example.com>"
    return message


def _plain_notice(review: StandInReview, *, vendor: str, domain: str) -> EmailMessage:
    message = _headers(EmailMessage(), review, "You have a new review")
    message.set_content(_notice_body(review, vendor=vendor, domain=domain))
    return message


def _html_notice(review: StandInReview, *, vendor: str, domain: str) -> EmailMessage:
    message = _headers(EmailMessage(), review, "You have a new review")
    lines = _notice_body(review, vendor=vendor, domain=domain).split("\n")
    paragraphs = "".join(f"<p>{html.escape(line)}</p>" for line in lines if line)
    message.set_content(f"<html><body>{paragraphs}</body></html>", subtype="html")
    return message


def _forwarded_notice(review: StandInReview, *, vendor: str, domain: str) -> EmailMessage:
    message = _headers(EmailMessage(), review, "Fwd: You have a new review")
    message.replace_header("From", "Vendor Staff <staff@example.com>")
    original = format_datetime(_day(review.created), usegmt=True)
    message.set_content(
        "Forwarding this one.\n\n---------- Forwarded message ---------\n"
        f"From: Marketplace Reviews <reviews@example.com>\nDate: {original}\n"
        "Subject: You have a new review\n\n" + _notice_body(review, vendor=vendor, domain=domain)
    )
    return message
