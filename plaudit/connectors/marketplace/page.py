"""Reading a fetched marketplace page: parsing, block detection and JSON-LD.

Both the listing and the storefront parser start here, so a bot challenge is
recognised the same way on every page and never reads as an empty page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

from plaudit.connectors.marketplace.errors import BlockedPageError
from plaudit.connectors.marketplace.sites import Site

if TYPE_CHECKING:
    from selectolax.lexbor import LexborHTMLParser, LexborNode

# Markers of the challenge and block pages that bot-protection services serve
# instead of the requested page: (where to look, pattern, name for the error).
_CLOUDFLARE: Final = r"challenges\.cloudflare\.com|cf-browser-verification|cf_chl_opt"
_BLOCK_TITLES: Final = (
    r"just a moment|attention required|access denied|are you a robot|pardon our interruption"
)
_BLOCK_MARKERS: Final = (
    ("html", re.compile(_CLOUDFLARE), "Cloudflare challenge"),
    ("html", re.compile(r"captcha-delivery\.com"), "DataDome captcha"),
    ("html", re.compile(r"px-captcha|_pxCaptcha|perimeterx", re.IGNORECASE), "PerimeterX captcha"),
    ("html", re.compile(r"g-recaptcha|h-captcha|hcaptcha\.com", re.IGNORECASE), "captcha form"),
    ("title", re.compile(_BLOCK_TITLES, re.IGNORECASE), "block page title"),
)

# Challenge pages are a few kilobytes, while real listing and storefront
# pages run to hundreds; body markers count only on pages below this size.
_SMALL_PAGE_BYTES: Final = 20_000
_MAX_JSON_LD_DEPTH: Final = 4


def parse_html(html: str) -> LexborHTMLParser:
    """Parse a page.  Lexbor repairs broken HTML the way browsers do, so no input is rejected."""
    # Imported on first parse: a daemon without marketplace pages never loads it.
    from selectolax.lexbor import LexborHTMLParser

    return LexborHTMLParser(html)


def check_not_blocked(tree: LexborHTMLParser, html: str, *, site: Site, profile: str) -> None:
    """Raise BlockedPageError when the page is a bot challenge or block page."""
    title_node = tree.css_first("title")
    title = title_node.text(strip=True) if title_node is not None else ""
    for where, pattern, signal in _BLOCK_MARKERS:
        # Only small pages count for body markers: a real page may embed a
        # captcha widget in a hidden contact form.
        if where == "title":
            haystack = title
        elif len(html) < _SMALL_PAGE_BYTES:
            haystack = html
        else:
            haystack = ""
        if haystack and pattern.search(haystack):
            raise BlockedPageError(site=site.display_name, profile=profile, signal=signal)


def json_ld_objects(tree: LexborHTMLParser) -> Iterator[dict[str, Any]]:
    """Yield every schema.org object in the page's JSON-LD blocks, ``@graph`` unwrapped.

    A block that is not valid JSON is skipped: sites sometimes ship broken
    tracking blocks next to the ones that matter.
    """
    for script in tree.css('script[type="application/ld+json"]'):
        try:
            data = json.loads(script.text(deep=True))
        except (ValueError, RecursionError):
            # RecursionError: nesting deeper than the interpreter's stack.
            continue
        yield from _unwrap(data, depth=0)


def _unwrap(data: Any, *, depth: int) -> Iterator[dict[str, Any]]:
    # Real pages nest a list in a @graph at most; deeper nesting is not schema.org data.
    if depth > _MAX_JSON_LD_DEPTH:
        return

    if isinstance(data, list):
        for item in data:
            yield from _unwrap(item, depth=depth + 1)
    elif isinstance(data, dict):
        if isinstance(data.get("@graph"), list):
            yield from _unwrap(data["@graph"], depth=depth + 1)
        else:
            yield data


def type_names(item: dict[str, Any]) -> set[str]:
    """Return the object's ``@type`` values as a set, whether it is one string or a list."""
    value = item.get("@type")
    if isinstance(value, str):
        return {value}

    if isinstance(value, list):
        return {entry for entry in value if isinstance(entry, str)}

    return set()


def scalar_text(value: Any) -> str:
    """Return a JSON-LD number or string as text, and "" for anything else."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return ""

    return str(value)


def parse_decimal(text: str) -> float | None:
    """Read a rating such as "4.8", "4,8" or "4.8/5"; return None when there is no number."""
    match = re.search(r"\d+(?:[.,]\d+)?", text)
    if match is None:
        return None

    return float(match[0].replace(",", "."))


def parse_count(text: str) -> int | None:
    """Read a count such as "(116)", "1.234 reviews" or "1,234"; return None without digits."""
    match = re.search(r"\d[\d.,\u00a0\u202f ]*", text)
    if match is None:
        return None

    digits = re.sub(r"\D", "", match[0])
    return int(digits) if digits else None


def node_text(node: LexborNode | None) -> str:
    """Return a node's text with runs of whitespace collapsed, or "" for no node."""
    if node is None:
        return ""

    return " ".join(node.text(deep=True, separator=" ").split())
