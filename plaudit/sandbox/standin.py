"""A seeded review world shared by the Facebook, Trustpilot and Yelp stand-ins.

Each stand-in renders the same kind of world in its platform's wire format:
profiles with reviews, and a script of timed events (new reviews, edits,
replies, deletions) applied by :meth:`StandInWorld.advance_to`.  Times are
Unix seconds; sandbox time is seconds since the sandbox started.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Callable
from typing import (
    TYPE_CHECKING,
    Any,
    Final,
    Literal,
    NotRequired,
    Protocol,
    TypeAlias,
    TypedDict,
    Unpack,
    final,
)

from plaudit.reviews.model import Review, format_timestamp
from plaudit.sandbox import phrases
from plaudit.sandbox.world import DEFAULT_EPOCH

if TYPE_CHECKING:
    from plaudit.sandbox.app import Handler

EventKind = Literal["create", "edit", "reply", "delete"]
# Method, path pattern, route name (as the sandbox's request statistics name it), handler.
Route: TypeAlias = "tuple[str, re.Pattern[str], str, Handler]"

_DAY: Final = 86_400.0
_HISTORY: Final = 2 * 365 * _DAY
_STAR_WEIGHTS: Final = (4, 3, 6, 17, 70)
EVENT_KINDS: Final[tuple[EventKind, ...]] = ("create", "edit", "reply", "delete")
_EVENT_WEIGHTS: Final = (45, 25, 20, 10)


@dataclasses.dataclass(slots=True)
class StandInReview:
    """One review as a stand-in platform stores it; times are Unix seconds."""

    review_id: str
    author: str
    stars: int
    text: str
    created: float
    updated: float
    reply: str | None = None
    reply_time: float | None = None
    deleted: float | None = None
    # Trustpilot private-review fields, so invitations can be matched exactly.
    email: str = ""
    reference: str = ""

    def truth(self) -> dict[str, Any]:
        """Return the review in the platform-neutral truth shape."""
        return {
            "review_id": self.review_id,
            "author": self.author,
            "stars": self.stars,
            "text": self.text,
            "created_at": format_timestamp(self.created),
            "updated_at": format_timestamp(self.updated),
            "reply_text": self.reply,
            "reply_updated_at": format_timestamp(self.reply_time) if self.reply_time else None,
            "deleted_at": format_timestamp(self.deleted) if self.deleted else None,
        }


# Renders one review of a profile in a truth document.
TruthEntry = Callable[[str, StandInReview], dict[str, Any]]


def _neutral_entry(profile: str, review: StandInReview) -> dict[str, Any]:
    return review.truth()


@dataclasses.dataclass(frozen=True, slots=True)
class StandInEvent:
    """One scripted change, due at sandbox time ``at`` (seconds)."""

    at: float
    kind: EventKind
    profile: str
    review_id: str


@final
class StandInWorld:
    """Profiles, their reviews and the script of one stand-in platform."""

    def __init__(
        self,
        platform: str,
        profiles: list[str],
        *,
        seed: int,
        reviews_per_profile: int = 30,
        script_seconds: float = 20.0,
        epoch: float = DEFAULT_EPOCH,
        event_kinds: tuple[EventKind, ...] = EVENT_KINDS,
    ) -> None:
        self.platform = platform
        self.epoch = epoch
        self._rng = random.Random(f"{platform}:{seed}")
        self._serial = 0
        self.profiles: dict[str, list[StandInReview]] = {
            profile: [self._new_review(self._past_time()) for _ in range(reviews_per_profile)]
            for profile in profiles
        }
        for reviews in self.profiles.values():
            reviews.sort(key=lambda review: review.created)
        self._event_kinds = event_kinds
        self._script = self._build_script(script_seconds)
        self._applied = 0
        self._elapsed = 0.0

    def __repr__(self) -> str:
        return (
            f"<StandInWorld {self.platform} profiles={len(self.profiles)} "
            f"events={self._applied}/{len(self._script)}>"
        )

    def statistics(self) -> dict[str, Any]:
        """Return review counts and script progress."""
        live = sum(len(self.live(profile)) for profile in self.profiles)
        return {"live_reviews": live, "events_applied": self._applied, "events": len(self._script)}

    def now(self) -> float:
        """Return the world's current Unix time in whole seconds, as every platform reports it."""
        return float(int(self.epoch + self._elapsed))

    def live(self, profile: str) -> list[StandInReview]:
        """Return the profile's reviews that are not deleted, newest first."""
        reviews = self.profiles.get(profile, [])
        return sorted(
            (review for review in reviews if review.deleted is None),
            key=lambda review: (-review.created, review.review_id),
        )

    def find(self, profile: str, review_id: str) -> StandInReview | None:
        """Return a live review by id, or None."""
        for review in self.profiles.get(profile, []):
            if review.review_id == review_id and review.deleted is None:
                return review
        return None

    def post_reply(self, profile: str, review_id: str, text: str) -> StandInReview | None:
        """Store the vendor's reply; return the review, or None when it is not found."""
        review = self.find(profile, review_id)
        if review is not None:
            review.reply = text
            review.reply_time = self.now()
        return review

    def advance_to(self, elapsed: float) -> list[StandInEvent]:
        """Apply the scripted events due by sandbox time ``elapsed``; return them."""
        self._elapsed = max(self._elapsed, elapsed)
        applied: list[StandInEvent] = []
        while self._applied < len(self._script) and self._script[self._applied].at <= elapsed:
            event = self._script[self._applied]
            self._apply(event)
            applied.append(event)
            self._applied += 1
        return applied

    def truth(self, entry: TruthEntry = _neutral_entry) -> dict[str, Any]:
        """Return every profile's reviews, deleted ones with ``deleted_at`` set.

        ``entry`` renders one review of a profile, by default as the
        platform-neutral :meth:`StandInReview.truth`.
        """
        return {
            "profiles": [
                {"profile": profile, "reviews": [entry(profile, review) for review in reviews]}
                for profile, reviews in self.profiles.items()
            ]
        }

    def _past_time(self) -> float:
        return float(int(self.epoch - self._rng.uniform(_DAY, _HISTORY)))

    def _new_review(self, created: float) -> StandInReview:
        self._serial += 1
        stars = self._rng.choices(range(1, 6), weights=_STAR_WEIGHTS)[0]
        author = phrases.reviewer_name(self._rng)
        return StandInReview(
            review_id=f"{self.platform[:2]}{self._serial:06d}",
            author=author,
            stars=stars,
            text=phrases.review_text(self._rng, stars),
            created=created,
            updated=created,
            email=f"couple{self._serial}@example.com",
            reference=f"booking-{self._serial:05d}",
        )

    def _build_script(self, duration: float) -> list[StandInEvent]:
        events: list[StandInEvent] = []
        at = 1.0
        profiles = list(self.profiles)
        while profiles and at < duration:
            weights = [_EVENT_WEIGHTS[EVENT_KINDS.index(kind)] for kind in self._event_kinds]
            kind = self._rng.choices(self._event_kinds, weights=weights)[0]
            profile = self._rng.choice(profiles)
            events.append(StandInEvent(at=at, kind=kind, profile=profile, review_id=""))
            at += self._rng.uniform(1.0, 2.0)
        return events

    def _apply(self, event: StandInEvent) -> None:
        now = self.now()
        reviews = self.profiles[event.profile]
        live = [review for review in reviews if review.deleted is None]
        if event.kind == "create" or not live:
            reviews.append(self._new_review(now))
            return

        target = self._rng.choice(live)
        if event.kind == "edit":
            target.stars = self._rng.choices(range(1, 6), weights=_STAR_WEIGHTS)[0]
            target.text = phrases.review_text(self._rng, target.stars)
            target.updated = now
        elif event.kind == "reply":
            target.reply = phrases.vendor_reply(
                self._rng, reviewer=target.author, stars=target.stars
            )
            target.reply_time = now
        else:
            target.deleted = now


class StandInOptions(TypedDict):
    """The keyword arguments of every stand-in's constructor."""

    seed: int
    # Returns the sandbox time in seconds.
    elapsed: Callable[[], float]
    # Seconds from the start during which scripted events fall due.
    script_seconds: NotRequired[float]
    # Unix time at which sandbox time starts.
    epoch: NotRequired[float]


class StandIn(Protocol):
    """A platform stand-in that the sandbox application mounts."""

    @property
    def name(self) -> str: ...

    def routes(self) -> list[Route]: ...

    def truth(self) -> dict[str, Any]: ...

    def statistics(self) -> dict[str, Any]: ...


def build_stand_ins(**options: Unpack[StandInOptions]) -> list[StandIn]:
    """Return the Facebook, Trustpilot and Yelp stand-ins for one sandbox."""
    # Imported here: the stand-ins import plaudit.sandbox.app, which calls this.
    from plaudit.sandbox.facebook import FacebookStandIn
    from plaudit.sandbox.trustpilot import TrustpilotStandIn
    from plaudit.sandbox.yelp import YelpStandIn

    return [FacebookStandIn(**options), TrustpilotStandIn(**options), YelpStandIn(**options)]


def stand_in_truth_reviews(truth: dict[str, Any], platform: str) -> list[Review]:
    """Return the reviews of one stand-in in the sandbox truth document as Review records.

    Like :func:`plaudit.sandbox.truth.truth_reviews`, ``deleted_at`` is the
    sandbox's deletion time; compare whether it is set, not its value.
    """
    section = truth.get(platform, {"profiles": []})
    # Yelp marks the excerpts its API never listed, which no sync can know.
    return [
        Review(
            platform=platform,
            profile=entry["profile"],
            review_id=review["review_id"],
            stars=review["stars"],
            recommendation=review.get("recommendation"),
            text=review["text"],
            author=review["author"],
            created_at=review["created_at"],
            updated_at=review["updated_at"],
            reply_text=review["reply_text"],
            reply_updated_at=review["reply_updated_at"],
            deleted_at=review["deleted_at"],
        )
        for entry in section["profiles"]
        for review in entry["reviews"]
        if review.get("listed", True)
    ]


def stand_ins_truth_reviews(truth: dict[str, Any]) -> list[Review]:
    """Return the Facebook, Trustpilot and Yelp reviews of the truth document."""
    return [
        review
        for platform in ("facebook", "trustpilot", "yelp")
        for review in stand_in_truth_reviews(truth, platform)
    ]
