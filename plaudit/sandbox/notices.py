"""Scripted "you have a new review" e-mails written into a Maildir over time.

A marketplace without an API notifies the vendor of each new review by e-mail.
:class:`NoticeScript` plays that part for the mailbox ingestion mode: from a
seeded world of one profile it writes the first notices at once and the
rest one by one, each at its scripted second after the start.  Its ground
truth is the reviews written so far, as the journal should store them.

``plaudit sandbox --maildir PATH`` runs one beside the stand-ins, and
``plaudit demo`` runs one for its mailbox-mode profile.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any, Final, final

import trio

from plaudit.connectors.marketplace.sites import get_site
from plaudit.reviews.model import Review, format_timestamp
from plaudit.sandbox.marketplace import write_notifications
from plaudit.sandbox.standin import StandInReview, StandInWorld
from plaudit.sandbox.world import DEFAULT_EPOCH

DEFAULT_SITE: Final = "zola"
DEFAULT_PROFILE: Final = "lakeside-loft"
DEFAULT_VENDOR: Final = "Lakeside Loft"
# Notices written at start, before the first scripted arrival.
INITIAL_NOTICES: Final = 2


@final
class NoticeScript:
    """Writes one profile's review notices into a Maildir on a seeded schedule."""

    def __init__(
        self,
        maildir: Path,
        *,
        seed: int,
        script_seconds: float,
        reviews: int = 6,
        site: str = DEFAULT_SITE,
        profile: str = DEFAULT_PROFILE,
        vendor: str = DEFAULT_VENDOR,
        epoch: float = DEFAULT_EPOCH,
    ) -> None:
        if reviews < 1 or script_seconds < 0 or not math.isfinite(script_seconds):
            raise ValueError(
                f"invalid notice script ({reviews} reviews over {script_seconds} s): "
                "use at least 1 review and 0 or more seconds"
            )
        self.maildir = maildir
        self.site = get_site(site)
        self.profile = profile
        self.vendor = vendor
        world = StandInWorld(
            site, [profile], seed=seed, reviews_per_profile=reviews, script_seconds=0.0, epoch=epoch
        )
        # Oldest first, so the notices arrive in the order the reviews were written.
        pending = sorted(world.live(profile), key=lambda review: review.created)
        rng = random.Random(f"notices:{site}:{seed}")
        arrivals = sorted(rng.uniform(0.0, script_seconds) for _ in pending[INITIAL_NOTICES:])
        self.schedule: list[tuple[float, StandInReview]] = [
            (0.0, review) for review in pending[:INITIAL_NOTICES]
        ] + list(zip(arrivals, pending[INITIAL_NOTICES:], strict=True))
        self._written: list[StandInReview] = []

    def __repr__(self) -> str:
        return (
            f"<NoticeScript {self.site.name}/{self.profile} {self.maildir} "
            f"written={len(self._written)}/{len(self.schedule)}>"
        )

    def statistics(self) -> dict[str, Any]:
        """Return the notices written and scheduled."""
        return {"written": len(self._written), "scheduled": len(self.schedule)}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Create the Maildir, then write each notice at its second after the start."""
        await trio.to_thread.run_sync(self._write, [])
        task_status.started()
        began = trio.current_time()
        for at, review in self.schedule:
            await trio.sleep_until(began + at)
            await trio.to_thread.run_sync(self._write, [review])
            self._written.append(review)

    def _write(self, reviews: list[StandInReview]) -> None:
        write_notifications(self.maildir, reviews, vendor=self.vendor, domain=self.site.domain)

    def truth_reviews(self) -> list[Review]:
        """Return the reviews written so far as the mailbox ingestion stores them.

        Notices give the review's day, not its time, so a review is dated at
        midnight UTC of its day.
        """
        return [self._as_review(review) for review in self._written]

    def _as_review(self, review: StandInReview) -> Review:
        day = midnight_utc(review.created)
        return Review(
            platform=self.site.name,
            profile=self.profile,
            review_id=review.review_id,
            stars=review.stars,
            text=" ".join(review.text.split()),
            author=review.author,
            created_at=day,
            updated_at=day,
        )


def midnight_utc(moment: float) -> str:
    """Return midnight UTC of the day of ``moment`` (Unix seconds) as a journal timestamp."""
    return format_timestamp(math.floor(moment / 86400.0) * 86400.0)
