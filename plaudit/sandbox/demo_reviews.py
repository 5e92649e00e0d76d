"""The couples' own reviews in ``plaudit demo``, and the matches they should produce.

The demo's sandbox starts at the current UTC hour, so its reviews are
recent and the report's trends name recent months.  Its Google script also
writes one review by each couple that receives the first e-mail step, at
the end of the script, by which time their requests have normally gone out.
The daemon's matcher should confirm each of them automatically: the
reviewer's name is a partner's full name, the review follows the request,
and the couple was sent the Google link.  A confirmed match stops the
couple's follow-ups and emits ``request.converted``.

NOTE: a request sent after the daemon first saw the review does not count
as converted, so on a machine that slow the demo shows matches without
conversions.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Final, final

from plaudit.daemon.control_client import request
from plaudit.errors import ControlError
from plaudit.sandbox.world import ScriptedReview
from plaudit.webhooks.router import webhook_id

# (reviewer display name, stars, comment) for the couples with e-mail consent
# in plaudit.sandbox.demo_mail.COUPLES_CSV.  Tom Baker & Eli Moss declined
# e-mail, receive no request and so write no review.
COUPLE_REVIEWS: Final = (
    ("Maya Ortiz", 5, "Our photos from the Lakeside Pavilion are beautiful. Thank you both!"),
    ("Priya Nair & Sam Cole", 5, "Calm, kind and quick. The album arrived within three weeks."),
    ("Lena Vogel", 4, "Lovely pictures of our day at Gut Sonnenhof, delivered on time."),
)


def couple_reviews(at: float) -> tuple[ScriptedReview, ...]:
    """Return the couples' Google reviews, all written ``at`` seconds into the script."""
    return tuple(
        ScriptedReview(at=at, reviewer=reviewer, stars=stars, comment=comment)
        for reviewer, stars, comment in COUPLE_REVIEWS
    )


@final
class DemoMatches:
    """The demo's rescan requests, and its counts of confirmed matches and conversions."""

    def __init__(self) -> None:
        self.expected = len(COUPLE_REVIEWS)
        self.rescans = 0

    def __repr__(self) -> str:
        return f"<DemoMatches expected={self.expected} rescans={self.rescans}>"

    def statistics(self) -> dict[str, int]:
        """Return the expected match count and how many rescans were requested."""
        return {"expected": self.expected, "rescans": self.rescans}

    async def rescan(self, socket_path: Path) -> None:
        """Ask the daemon's matcher to score every review again, as ``ctl review match`` does.

        The daemon refreshes matches once a minute, which is longer than the
        demo, so the demo requests a rescan once the script is over.  A failed
        request is repeated on the demo's next progress tick.
        """
        try:
            await request(
                socket_path, "review", {"subcommand": "match", "action": "rescan"}, timeout=10.0
            )
        except (ControlError, OSError):
            return
        self.rescans += 1

    def pending(self, journal: Path) -> int:
        """Return how many of the couples' reviews are not confirmed yet."""
        return max(0, self.expected - confirmed_matches(journal))

    def undelivered(self, journal: Path, *, endpoint: str, accepted: set[str]) -> int:
        """Return how many ``request.converted`` events ``endpoint`` has not accepted yet.

        ``accepted`` contains the webhook ids that the demo's receiver accepted.
        """
        return len(_conversion_webhook_ids(journal, endpoint) - accepted)

    def summary(self, journal: Path, *, endpoint: str, accepted: set[str]) -> dict[str, int]:
        """Return the matched reviews, converted requests and their delivered webhooks."""
        return {
            "reviews_matched": confirmed_matches(journal),
            "requests_converted": _converted_requests(journal),
            "conversion_webhooks_delivered": len(
                _conversion_webhook_ids(journal, endpoint) & accepted
            ),
        }


def confirmed_matches(journal: Path) -> int:
    """Return how many review matches in the journal are confirmed."""
    rows = _query(journal, "SELECT count(*) FROM review_matches WHERE state = 'confirmed'")
    return int(rows[0][0]) if rows else 0


def _converted_requests(journal: Path) -> int:
    # Keys are request.converted:<request>:<platform>:<review id>, one per
    # request and review, so a request converted by two reviews counts once.
    keys = _event_keys(journal, "request.converted")
    return len({key.split(":")[1] for key in keys if key.count(":") >= 3})


def _conversion_webhook_ids(journal: Path, endpoint: str) -> set[str]:
    return {webhook_id(endpoint, key) for key in _event_keys(journal, "request.converted")}


def _event_keys(journal: Path, event_type: str) -> list[str]:
    rows = _query(journal, "SELECT key FROM events WHERE type = ?", (event_type,))
    return [str(row[0]) for row in rows]


def _query(journal: Path, sql: str, parameters: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
    if not journal.exists():
        return []
    connection = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        return list(connection.execute(sql, parameters).fetchall())
    except sqlite3.OperationalError:
        # The daemon has not created the tables yet.
        return []
    finally:
        connection.close()
