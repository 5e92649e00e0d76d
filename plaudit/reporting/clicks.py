"""Couples who clicked each review platform's link, for the report's funnel.

A click counts for a platform when its URL starts with that platform's
``[vendor] review_links`` URL (see plaudit.messaging.click_links).  Two
records hold the platform of a click: the ``platform`` of a
``request.clicked`` outbox event, decided with the links configured when
the click arrived, and the ``url`` of a click message event, matched
against the links configured now.  A couple counts once per platform.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec

from plaudit.messaging.click_links import platform_of
from plaudit.reviews.store import SupportsExecute

NO_LINKS_NOTE: Final = (
    "clicks are not counted per platform: the configuration has no [vendor] review_links"
)
NO_URL_NOTE: Final = (
    "no click names a review link: the e-mail provider reported no clicked URL, or the "
    "URLs match no [vendor] review_links"
)

_CLICK_EVENTS = "SELECT payload FROM events WHERE type = 'request.clicked'"
_CLICKED_URLS = """
SELECT r.couple_id, e.url FROM message_events e
JOIN requests r ON r.message_id = e.message_id
WHERE e.kind = 'clicked' AND e.url IS NOT NULL AND r.channel = 'email'
"""


class _ClickPayload(msgspec.Struct):
    couple: int | None = None
    platform: str | None = None


def clicks_per_platform(source: SupportsExecute, review_links: Mapping[str, str]) -> dict[str, int]:
    """Return the number of couples who clicked each platform's review link, by platform."""
    clicked: set[tuple[int, str]] = set()
    for (payload,) in source.execute(_CLICK_EVENTS, ()).fetchall():
        try:
            event = msgspec.json.decode(payload, type=_ClickPayload)
        except msgspec.DecodeError:
            # Plaudit writes these payloads, but one damaged row must not break the report.
            continue
        if event.couple is not None and event.platform:
            clicked.add((event.couple, event.platform))
    if _has_column(source, "message_events", "url"):
        for couple, url in source.execute(_CLICKED_URLS, ()).fetchall():
            platform = platform_of(url, review_links)
            if platform is not None:
                clicked.add((int(couple), platform))

    counts: dict[str, int] = {}
    for _, platform in sorted(clicked):
        counts[platform] = counts.get(platform, 0) + 1
    return dict(sorted(counts.items()))


def click_notes(clicked: int, per_platform: Mapping[str, int], *, links: bool) -> list[str]:
    """Return the note that explains why clicks per platform are missing, if they are."""
    if not clicked or per_platform:
        return []
    return [NO_URL_NOTE if links else NO_LINKS_NOTE]


def _has_column(source: SupportsExecute, table: str, column: str) -> bool:
    # Journals older than the url column are still readable.
    rows = source.execute(f"SELECT name FROM pragma_table_info('{table}')", ()).fetchall()
    return any(row[0] == column for row in rows)
