"""The review platform of a clicked link.

A request's e-mail links the vendor's public review pages from ``[vendor]
review_links``.  Providers that track clicks report the original URL, which
starts with the configured one (tracking may append parameters), so a prefix
match finds the platform.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping


def platform_of(url: str | None, review_links: Mapping[str, str]) -> str | None:
    """Return the platform whose review link ``url`` starts with, or None for other links.

    The scheme and host compare case-insensitively, the rest exactly.  When
    several links match, the longest wins, so a more specific link is not
    counted for a shorter one that prefixes it.
    """
    if not url:
        return None
    clicked = _normalized(url)
    best: tuple[int, str] | None = None
    for platform, link in review_links.items():
        prefix = _normalized(link)
        if prefix and clicked.startswith(prefix) and (best is None or len(prefix) > best[0]):
            best = (len(prefix), platform)
    return None if best is None else best[1]


def _normalized(url: str) -> str:
    parts = urllib.parse.urlsplit(url.strip())
    # NOTE: only the scheme and host are folded, so a link written with an
    # explicit default port (":443") does not match one without it.
    return urllib.parse.urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), parts.path, parts.query, parts.fragment)
    )
