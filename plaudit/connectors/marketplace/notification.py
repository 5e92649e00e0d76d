"""The marketplaces' "you have a new review" e-mails, read into reviews.

None of these platforms has a review API, but each e-mails the vendor when a
couple writes a review.  The e-mails arrive as sent, forwarded by the vendor
(inline or as an attachment), quoted in a reply, or HTML-only.  Each is
reduced to plain text, which is then searched for labelled fields.

NOTE: the patterns below match the common English phrasing of such notices
("left you a review", "Rating: 4 out of 5", "Review:") and labelled fields in
Spanish, French, Italian and Portuguese.  A platform that rewords its
e-mails needs its phrases added here.
"""

from __future__ import annotations

import re
from datetime import date
from email import policy
from email.message import EmailMessage, MIMEPart
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from typing import Final, final
from urllib.parse import parse_qs, urlsplit

import msgspec

from plaudit.connectors.marketplace.models import PageReview, derived_review_id
from plaudit.connectors.marketplace.page import parse_html
from plaudit.connectors.marketplace.sites import SITES, Site, parse_site_date, site_for_host
from plaudit.errors import PlauditError

# E-mails larger than this are not notifications; reading stops here.
MAX_MESSAGE_BYTES: Final = 5 * 1024 * 1024

_URL: Final = re.compile(r"https?://[^\s<>\"'\])]+")
_FORWARD_MARKERS: Final = re.compile(
    r"^-{2,}\s*(?:Forwarded message|Original Message)\s*-{2,}\s*$|^Begin forwarded message:\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_QUOTE_PREFIX: Final = re.compile(r"^(?:>[ \t]?)+", re.MULTILINE)
_ATTRIBUTION: Final = re.compile(r"^On (.+?) wrote:\s*$", re.MULTILINE)
# Up to five words; lazy, so "Ellie Carter has left" yields "Ellie Carter".
_NAME: Final = r"[^\W\d_][\w'.\-]*(?:[ \t]+(?:&|and|[^\W\d_][\w'.\-]*)){0,4}?"
_REVIEWER_PATTERNS: Final = (
    # English, Spanish, French, Italian and Portuguese labels.
    re.compile(
        r"^(?:Reviewer|Reviewed by|Couple|Autor|Auteur|Autore|Pareja)[ \t]*:[ \t]*(.+)$",
        re.IGNORECASE | re.MULTILINE,
    ),
    re.compile(
        rf"({_NAME})[ \t]+(?:has[ \t]+)?(?:left you a(?: new)? review|wrote (?:you )?a review"
        r"|just reviewed you|reviewed you)"
    ),
    # The lookahead ends the lazy name at punctuation, " on <site>" or the line's end,
    # so "a new review from Sophie & James." yields both names.
    re.compile(
        rf"new review from[ \t]+({_NAME})(?=[ \t]*(?:[.!,:;]|$)|[ \t]+on[ \t])",
        re.IGNORECASE | re.MULTILINE,
    ),
)
# "4/5", "4 out of 5", "4 de 5" (es, pt), "4 sur 5" (fr), "4 su 5" (it).
_RATING: Final = re.compile(r"(\d(?:[.,]\d)?)\s*(?:/|out of|of|de|sur|su)\s*5\b", re.IGNORECASE)
_STARS: Final = re.compile(r"★{1,5}")
_REVIEW_LABEL: Final = re.compile(
    r"^(?:Review|Opinión|Opinion|Avis|Recensione|Opinião|Comentario)[ \t]*:[ \t]*(.*)$",
    re.IGNORECASE | re.MULTILINE,
)
_QUOTED_TEXT: Final = re.compile(r"[\"“]([^\"“”]{10,}?)[\"”]", re.DOTALL)
_DATE_LABEL: Final = re.compile(
    r"^(?:Reviewed on|Submitted(?: on)?|Posted(?: on)?|Review date|Fecha|Date de l'avis"
    r"|Data)[ \t]*:?[ \t]*(.+)$",
    re.IGNORECASE | re.MULTILINE,
)
_VENDOR: Final = re.compile(r"review (?:of|for)[ \t]+(.+?)(?:[.!]?$|\.[ \t])", re.MULTILINE)
_ID_PARAMETERS: Final = ("reviewid", "review_id", "review", "id")


class NotificationError(PlauditError):
    """An e-mail is not a review notification, or its review cannot be read."""


@final
class Notification(msgspec.Struct, frozen=True, kw_only=True):
    """The review announced by one notification e-mail."""

    platform: str
    vendor: str | None
    reviewer: str
    # Stars out of 5; None when the e-mail shows none.
    rating: float | None
    text: str
    # ISO date of the review, or of the original e-mail when the review has none.
    date: str
    link: str | None
    review_id: str
    message_id: str | None
    forwarded: bool
    quoted: bool

    def to_page_review(self) -> PageReview:
        """Return the review in the shape the storefront parser produces."""
        return PageReview(
            review_id=self.review_id,
            author=self.reviewer,
            rating=self.rating,
            text=self.text,
            date=self.date,
            url=self.link,
        )


def parse_notification(data: bytes, *, source: str = "the message") -> Notification:
    """Read the review from a notification e-mail.

    ``source`` names the file or mailbox entry in error messages.  Raises
    NotificationError when the e-mail comes from no known marketplace or contains
    neither a rating nor a review text.
    """
    if len(data) > MAX_MESSAGE_BYTES:
        raise NotificationError(
            f"{source} is larger than {MAX_MESSAGE_BYTES} bytes; a review notification is "
            "far smaller, so this is not one"
        )

    message = BytesParser(policy=policy.default).parsebytes(data)
    if not isinstance(message, EmailMessage):
        raise NotificationError(f"{source} could not be parsed as an e-mail message")
    outer_id = message.get("Message-ID")
    message, attached = _unwrap_attached(message)
    text, links = _body(message)
    quoted = bool(_QUOTE_PREFIX.search(text))
    text = _QUOTE_PREFIX.sub("", text)
    forwarded_headers, text = _split_forward(text)
    forwarded = attached or bool(forwarded_headers)

    subject = forwarded_headers.get("subject") or str(message.get("Subject", ""))
    sender = forwarded_headers.get("from") or str(message.get("From", ""))
    links += _URL.findall(text)
    site = _find_site(links, " ".join((sender, subject, text)))
    if site is None:
        known = ", ".join(sorted(item.display_name for item in SITES.values()))
        raise NotificationError(
            f"{source} names no known marketplace in its sender, subject or links; "
            f"expected one of: {known}"
        )

    return _notification(
        site,
        text=text,
        subject=subject,
        links=links,
        sent=_sent_date(site, message, forwarded_headers, text),
        message_id=str(outer_id) if outer_id else None,
        forwarded=forwarded,
        quoted=quoted,
        source=source,
    )


def _notification(
    site: Site,
    *,
    text: str,
    subject: str,
    links: list[str],
    sent: date | None,
    message_id: str | None,
    forwarded: bool,
    quoted: bool,
    source: str,
) -> Notification:
    rating = _rating(text)
    review_text = _review_text(text)
    if rating is None and not review_text:
        raise NotificationError(
            f"{source} is from {site.display_name} but shows neither a rating nor a review "
            "text, so it is not a new-review notification; leave it out of the review mailbox"
        )

    reviewer = _first_match(_REVIEWER_PATTERNS, subject) or _first_match(_REVIEWER_PATTERNS, text)
    review_date = _review_date(site, text) or sent
    if review_date is None:
        raise NotificationError(
            f"{source} has no review date and no valid Date header; the e-mail was damaged "
            "in transit, so import the review from a file instead"
        )

    link = _review_link(site, links)
    vendor_match = _VENDOR.search(subject) or _VENDOR.search(text)
    return Notification(
        platform=site.name,
        vendor=vendor_match[1].strip() if vendor_match else None,
        reviewer=reviewer,
        rating=rating,
        text=review_text,
        date=review_date.isoformat(),
        link=link,
        review_id=_review_id(link) or derived_review_id(site.name, reviewer, review_text),
        message_id=message_id,
        forwarded=forwarded,
        quoted=quoted,
    )


def _unwrap_attached(message: EmailMessage) -> tuple[EmailMessage, bool]:
    # A vendor who forwards "as attachment" sends the notice as a
    # message/rfc822 part; the notice itself is what matters.
    for part in message.walk():
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], EmailMessage):
                return inner[0], True
    return message, False


def _body(message: EmailMessage) -> tuple[str, list[str]]:
    # The plain-text alternative is preferred, unless it lacks the rating
    # that the HTML one shows: some senders put only "view in browser" there.
    plain = _part_text(message.get_body(preferencelist=("plain",))).replace("\r\n", "\n")
    html_part = message.get_body(preferencelist=("html",))
    if html_part is None or _has_rating(plain):
        return plain, []

    html_text, links = html_to_text(_part_text(html_part))
    if plain.strip() and not _has_rating(html_text):
        return plain, []

    return html_text, links


def _part_text(part: MIMEPart | None) -> str:
    if part is None:
        return ""

    try:
        content = part.get_content()
    except (LookupError, ValueError):
        # An unknown charset: decode as Latin-1, which keeps every byte.
        payload = part.get_payload(decode=True)
        content = payload.decode("latin-1") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else ""


def _has_rating(text: str) -> bool:
    return bool(_RATING.search(text) or _STARS.search(text))


def html_to_text(html: str) -> tuple[str, list[str]]:
    """Return an HTML e-mail's text, one block per line, and the targets of its links.

    Block quotes are wrapped in quotation marks, which is how the review text
    of an HTML notice is found.
    """
    tree = parse_html(html)
    links = [node.attributes.get("href") or "" for node in tree.css("a[href]")]
    for node in tree.css("blockquote"):
        node.insert_before("\n“")
        node.insert_after("”\n")
    # Paragraph-like blocks end with a blank line, as paragraphs do in plain text.
    for node in tree.css("p, h1, h2, h3, table"):
        node.insert_after("\n\n")
    for node in tree.css("br, div, tr, li"):
        node.insert_after("\n")
    body = tree.body
    raw = body.text(deep=True) if body is not None else ""
    lines = [" ".join(line.split()) for line in raw.splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return text, [link for link in links if link.startswith("http")]


def _split_forward(text: str) -> tuple[dict[str, str], str]:
    marker = _FORWARD_MARKERS.search(text)
    if marker is None:
        return {}, text

    rest = text[marker.end() :].lstrip("\n")
    headers: dict[str, str] = {}
    lines = rest.split("\n")
    index = 0
    while index < len(lines) and (match := re.match(r"^([A-Za-z-]+):\s*(.*)$", lines[index])):
        headers[match[1].lower()] = match[2].strip()
        index += 1
    return headers, "\n".join(lines[index:])


def _find_site(links: list[str], words: str) -> Site | None:
    for link in links:
        site = site_for_host(urlsplit(link).hostname or "")
        if site is not None:
            return site

    # Longest names first, so "WeddingWire India" wins over "WeddingWire".
    for site in sorted(SITES.values(), key=lambda item: -len(item.display_name)):
        if re.search(rf"\b{re.escape(site.display_name)}\b", words, re.IGNORECASE):
            return site
    return None


def _rating(text: str) -> float | None:
    match = _RATING.search(text)
    if match is not None:
        value = float(match[1].replace(",", "."))
        return value if 0 < value <= 5 else None

    stars = _STARS.search(text)
    return float(len(stars[0])) if stars else None


def _review_text(text: str) -> str:
    label = _REVIEW_LABEL.search(text)
    if label is not None:
        block = [label[1]] if label[1].strip() else []
        for line in text[label.end() :].lstrip("\n").split("\n"):
            if not line.strip() or _URL.search(line) or _DATE_LABEL.match(line):
                break
            block.append(line)
        return " ".join(" ".join(block).split())

    quoted = _QUOTED_TEXT.search(text)
    return " ".join(quoted[1].split()) if quoted else ""


def _first_match(patterns: tuple[re.Pattern[str], ...], text: str) -> str:
    for pattern in patterns:
        match = pattern.search(text)
        if match is not None:
            name = " ".join(match[1].split()).rstrip(",")
            # A sentence's full stop after a name goes, but an initial keeps its dot ("Marta G.").
            return re.sub(r"(\w\w)\.$", r"\1", name)
    return ""


def _review_date(site: Site, text: str) -> date | None:
    label = _DATE_LABEL.search(text)
    if label is None:
        return None

    try:
        return parse_site_date(site, label[1])
    except ValueError:
        return None


def _sent_date(
    site: Site, message: EmailMessage, forwarded: dict[str, str], text: str
) -> date | None:
    # The original notice's date, not the date it was forwarded or quoted.
    # Outlook writes the forwarded notice's date as "Sent:".
    candidates = [forwarded.get("date", ""), forwarded.get("sent", "")]
    attribution = _ATTRIBUTION.search(text)
    if attribution is not None:
        candidates.append(attribution[1])
    for candidate in candidates:
        if candidate:
            try:
                return parse_site_date(site, candidate)
            except ValueError:
                continue

    header = message.get("Date")
    if header is None:
        return None
    try:
        return parsedate_to_datetime(str(header)).date()
    except (TypeError, ValueError):
        return None


def _review_link(site: Site, links: list[str]) -> str | None:
    on_site = [link for link in links if site_for_host(urlsplit(link).hostname or "") is site]
    for link in on_site:
        if "review" in link.lower():
            return link.rstrip(".,;")
    return on_site[0].rstrip(".,;") if on_site else None


def _review_id(link: str | None) -> str | None:
    if link is None:
        return None

    parts = urlsplit(link)
    query = {key.lower(): values for key, values in parse_qs(parts.query).items()}
    for name in _ID_PARAMETERS:
        if query.get(name):
            return query[name][0]

    last = parts.path.rstrip("/").rsplit("/", 1)[-1]
    return last if re.fullmatch(r"[\w-]*\d[\w-]*", last) and "_" not in last else None
