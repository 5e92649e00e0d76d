"""The sandbox's Google Business Profile world: locations, reviews and a script.

A seed fixes everything: the locations, the initial reviews and the script of
timed events (new reviews, edits, replies, deletions).  Sandbox time is
seconds since the sandbox started; :meth:`GoogleWorld.advance_to` applies the
events that are due, so tests can drive the world on a virtual clock.
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, final

import msgspec

from plaudit.reviews.model import format_timestamp
from plaudit.sandbox import phrases

STAR_NAMES: Final = ("ONE", "TWO", "THREE", "FOUR", "FIVE")
# Unix time of sandbox time 0 unless the options set another (2025-06-01T12:00:00Z).
# A fixed instant keeps the timestamps of one seed identical between runs.
DEFAULT_EPOCH: Final = 1_748_779_200.0
_DAY: Final = 86_400.0
# Initial reviews are spread over the three years before the epoch.
_HISTORY: Final = 3 * 365 * _DAY
_STAR_WEIGHTS: Final = (4, 3, 6, 17, 70)
_EVENT_KINDS: Final = ("create", "edit", "reply", "delete")
_EVENT_WEIGHTS: Final = (40, 25, 25, 10)
_MAX_DELETIONS: Final = 2

EventKind = Literal["create", "edit", "reply", "delete"]


@final
class ScriptedReview(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A review that the script creates at a set time, such as one by a demo couple.

    The random events never edit, reply to or delete it.
    """

    # Seconds of sandbox time.
    at: Annotated[float, msgspec.Meta(ge=0)]
    reviewer: str
    stars: Annotated[int, msgspec.Meta(ge=1, le=5)] = 5
    comment: str | None = None
    # Index of the location: 0 is locations/2001, 1 is locations/2002.
    location: Annotated[int, msgspec.Meta(ge=0)] = 0


@final
class WorldOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The world's contents; the same options always build the same world."""

    seed: int = 1
    # Locations after 2001 and 2002, numbered 2003 onwards.
    extra_locations: int = 0
    # Initial reviews of locations 2001, 2002, ... in order; locations past
    # the end of the tuple get extra_location_reviews.
    reviews_per_location: tuple[int, ...] = (120, 40)
    extra_location_reviews: int = 20
    # Scripted events come every 1 to 2 s from the start until this time (s).
    script_seconds: float = 20.0
    epoch: float = DEFAULT_EPOCH
    # Created on top of the random script, which they leave unchanged.
    scripted_reviews: tuple[ScriptedReview, ...] = ()


@dataclass(slots=True)
class SandboxReview:
    """One review as the fake platform stores it; times are Unix seconds."""

    review_id: str
    reviewer: str
    stars: int
    # None for a rating without a comment.
    comment: str | None
    create_time: float
    update_time: float
    reply: str | None = None
    reply_time: float | None = None
    delete_time: float | None = None

    def to_api(self, profile: str) -> dict[str, Any]:
        """Return the Review resource exactly as the v4 API shapes it."""
        body: dict[str, Any] = {
            "reviewId": self.review_id,
            "reviewer": {"displayName": self.reviewer},
            "starRating": STAR_NAMES[self.stars - 1],
        }
        if self.comment is not None:
            body["comment"] = self.comment

        body["createTime"] = format_timestamp(self.create_time)
        body["updateTime"] = format_timestamp(self.update_time)
        if self.reply is not None and self.reply_time is not None:
            body["reviewReply"] = {
                "comment": self.reply,
                "updateTime": format_timestamp(self.reply_time),
            }

        body["name"] = f"{profile}/reviews/{self.review_id}"
        return body

    def to_truth(self, profile: str) -> dict[str, Any]:
        """Return the API shape plus the deletion flag the API itself never shows."""
        body = self.to_api(profile)
        body["deleted"] = self.delete_time is not None
        body["deleteTime"] = format_timestamp(self.delete_time) if self.delete_time else None
        return body


@dataclass(slots=True)
class SandboxLocation:
    """One business location with its reviews, in creation order."""

    account: str
    location: str
    title: str
    reviews: dict[str, SandboxReview]

    @property
    def profile(self) -> str:
        """The resource name ``accounts/A/locations/L``."""
        return f"{self.account}/{self.location}"

    def live_reviews(self) -> list[SandboxReview]:
        """Return the reviews not deleted, newest update first as the API lists them."""
        live = [review for review in self.reviews.values() if review.delete_time is None]
        live.sort(key=lambda review: (review.update_time, review.review_id), reverse=True)
        return live

    def summary(self) -> dict[str, Any]:
        """Return averageRating and totalReviewCount over the live reviews."""
        live = self.live_reviews()
        average = round(sum(review.stars for review in live) / len(live), 1) if live else 0
        return {"averageRating": average, "totalReviewCount": len(live)}


@final
@dataclass(frozen=True, slots=True)
class ScriptEvent:
    """One scripted change, due at ``at`` seconds of sandbox time."""

    at: float
    kind: EventKind
    profile: str
    review_id: str
    # New content for create and edit, the reply text for reply.
    reviewer: str = ""
    stars: int = 0
    comment: str | None = None
    reply: str | None = None

    def describe(self) -> dict[str, Any]:
        """Return the event as JSON for the truth endpoint."""
        return {"at": self.at, "kind": self.kind, "profile": self.profile, "review": self.review_id}


@final
class GoogleWorld:
    """The deterministic state behind the sandbox's Google API."""

    def __init__(self, options: WorldOptions | None = None) -> None:
        self.options = options or WorldOptions()
        self._rng = random.Random(self.options.seed)
        self.locations = _build_locations(self._rng, self.options)
        self.script = _build_script(self._rng, self.locations, self.options)
        self.elapsed = 0.0
        self._applied = 0

    def __repr__(self) -> str:
        return (
            f"<GoogleWorld seed={self.options.seed} locations={len(self.locations)} "
            f"elapsed={self.elapsed:.1f} events={self._applied}/{len(self.script)}>"
        )

    def statistics(self) -> dict[str, Any]:
        """Return counts of locations, reviews and applied events."""
        reviews = [r for location in self.locations.values() for r in location.reviews.values()]
        return {
            "elapsed": self.elapsed,
            "locations": len(self.locations),
            "reviews": len(reviews),
            "deleted": sum(review.delete_time is not None for review in reviews),
            "events_applied": self._applied,
            "events_total": len(self.script),
        }

    def now(self) -> float:
        """Return the Unix time that the current sandbox time stands for."""
        return self.options.epoch + self.elapsed

    def location(self, account: str, location: str) -> SandboxLocation | None:
        """Return the location with these resource names, or None."""
        return self.locations.get(f"{account}/{location}")

    def advance_to(self, elapsed: float) -> list[ScriptEvent]:
        """Apply the scripted events due by ``elapsed`` seconds and return them.

        Time never goes back: an earlier ``elapsed`` changes nothing.
        """
        self.elapsed = max(self.elapsed, elapsed)
        applied: list[ScriptEvent] = []
        while self._applied < len(self.script) and self.script[self._applied].at <= self.elapsed:
            event = self.script[self._applied]
            self._apply(event)
            applied.append(event)
            self._applied += 1

        return applied

    def post_reply(self, profile: str, review_id: str, text: str) -> SandboxReview | None:
        """Set the vendor reply of a live review, as ``PUT .../reply`` does; None if not found.

        The review's updateTime stays as it was, as for a scripted reply.
        """
        review = self._live_review(profile, review_id)
        if review is None:
            return None

        review.reply = text
        review.reply_time = self.now()
        return review

    def find_review(self, profile: str, review_id: str) -> SandboxReview | None:
        """Return a live review, or None when it is unknown or deleted."""
        return self._live_review(profile, review_id)

    def truth(self) -> dict[str, Any]:
        """Return every location's reviews, deleted ones flagged, and the script's progress."""
        return {
            "elapsed": self.elapsed,
            "now": format_timestamp(self.now()),
            "events_applied": [event.describe() for event in self.script[: self._applied]],
            "events_pending": len(self.script) - self._applied,
            "locations": [_location_truth(location) for location in self.locations.values()],
        }

    def _live_review(self, profile: str, review_id: str) -> SandboxReview | None:
        location = self.locations.get(profile)
        review = location.reviews.get(review_id) if location else None
        if review is None or review.delete_time is not None:
            return None

        return review

    def _apply(self, event: ScriptEvent) -> None:
        location = self.locations[event.profile]
        moment = self.options.epoch + event.at
        if event.kind == "create":
            location.reviews[event.review_id] = SandboxReview(
                review_id=event.review_id,
                reviewer=event.reviewer,
                stars=event.stars,
                comment=event.comment,
                create_time=moment,
                update_time=moment,
            )
            return

        review = location.reviews[event.review_id]
        if event.kind == "edit":
            review.stars = event.stars
            review.comment = event.comment
            review.update_time = moment
        elif event.kind == "reply":
            # A reply sets reviewReply.updateTime and leaves the review's
            # updateTime as it was.  Google's Business Profile API v4 reference
            # (accounts.locations.reviews) defines Review.updateTime as the time
            # the review was last modified and gives the reply its own
            # updateTime.  It does not say that a reply modifies the review, so
            # the sandbox takes the reading that is harder on a client: no sync
            # may rely on a reply moving the review up the listing.
            review.reply = event.reply
            review.reply_time = moment
        else:
            review.delete_time = moment


def _location_truth(location: SandboxLocation) -> dict[str, Any]:
    return {
        "account": location.account,
        "location": location.location,
        "name": location.profile,
        "title": location.title,
        **location.summary(),
        "reviews": [review.to_truth(location.profile) for review in location.reviews.values()],
    }


def _review_id(rng: random.Random) -> str:
    # The shape of real ids: about 80 URL-safe base64 characters.
    return "Ab" + base64.urlsafe_b64encode(rng.randbytes(57)).decode().rstrip("=")


def _stars(rng: random.Random) -> int:
    return rng.choices(range(1, 6), weights=_STAR_WEIGHTS)[0]


def _location_title(index: int) -> str:
    if index == 0:
        return "Willow & Vine Photography"

    if index == 1:
        return "Willow & Vine Photography (Studio)"

    return f"Willow & Vine Photography (Branch {index - 1})"


def _build_locations(rng: random.Random, options: WorldOptions) -> dict[str, SandboxLocation]:
    locations: dict[str, SandboxLocation] = {}
    for index in range(2 + options.extra_locations):
        counts = options.reviews_per_location
        count = counts[index] if index < len(counts) else options.extra_location_reviews
        location = SandboxLocation(
            account="accounts/1001",
            location=f"locations/{2001 + index}",
            title=_location_title(index),
            reviews={},
        )
        for review in _initial_reviews(rng, count, options.epoch):
            location.reviews[review.review_id] = review
        locations[location.profile] = location

    return locations


def _initial_reviews(rng: random.Random, count: int, epoch: float) -> list[SandboxReview]:
    created = sorted(epoch - rng.uniform(_DAY, _HISTORY) for _ in range(count))
    return [_initial_review(rng, moment, epoch) for moment in created]


def _initial_review(rng: random.Random, created: float, epoch: float) -> SandboxReview:
    stars = _stars(rng)
    reviewer = phrases.reviewer_name(rng)
    # About one review in seven is a rating without a comment.
    comment = None if rng.random() < 0.15 else phrases.review_text(rng, stars)
    review = SandboxReview(
        review_id=_review_id(rng),
        reviewer=reviewer,
        stars=stars,
        comment=comment,
        create_time=created,
        update_time=created,
    )
    if rng.random() < 0.35:
        review.reply = phrases.vendor_reply(rng, reviewer=reviewer, stars=stars)
        review.reply_time = min(created + rng.uniform(3600, 10 * _DAY), epoch - 60)

    return review


@dataclass(slots=True)
class _ScriptState:
    """The state the script generator tracks while it plans events in order."""

    live: dict[str, list[str]]
    replied: set[str]
    stars: dict[str, int]
    comments: dict[str, str | None]
    reviewers: dict[str, str]


def _build_script(
    rng: random.Random, locations: dict[str, SandboxLocation], options: WorldOptions
) -> list[ScriptEvent]:
    everything = [review for location in locations.values() for review in location.reviews.values()]
    state = _ScriptState(
        live={profile: list(location.reviews) for profile, location in locations.items()},
        replied={review.review_id for review in everything if review.reply is not None},
        stars={review.review_id: review.stars for review in everything},
        comments={review.review_id: review.comment for review in everything},
        reviewers={review.review_id: review.reviewer for review in everything},
    )
    times = _event_times(rng, options.script_seconds)
    kinds = _event_kinds(rng, len(times))
    script = [_plan_event(rng, state, at, kind) for at, kind in zip(times, kinds, strict=True)]
    scripted = [
        _scripted_create(options, index, review, list(locations))
        for index, review in enumerate(options.scripted_reviews)
    ]
    # A stable sort keeps the random events in their order at equal times.
    return sorted(script + scripted, key=lambda event: event.at)


def _scripted_create(
    options: WorldOptions, index: int, review: ScriptedReview, profiles: list[str]
) -> ScriptEvent:
    if review.location >= len(profiles):
        raise ValueError(
            f"scripted review {index} names location index {review.location}, but the world "
            f"has {len(profiles)} locations; use 0 to {len(profiles) - 1} or add extra_locations"
        )
    # Its own generator, so the ids of the random script stay as they were.
    review_id = _review_id(random.Random(f"scripted:{options.seed}:{index}"))
    return ScriptEvent(
        at=review.at,
        kind="create",
        profile=profiles[review.location],
        review_id=review_id,
        reviewer=review.reviewer,
        stars=review.stars,
        comment=review.comment,
    )


def _event_times(rng: random.Random, duration: float) -> list[float]:
    times: list[float] = []
    at = rng.uniform(1.0, 2.0)
    while at <= duration:
        times.append(round(at, 3))
        at += rng.uniform(1.0, 2.0)

    return times


def _event_kinds(rng: random.Random, count: int) -> list[EventKind]:
    kinds: list[EventKind] = list(rng.choices(_EVENT_KINDS, weights=_EVENT_WEIGHTS, k=count))
    # At most two deletions, and at least one when the script is long enough.
    deletions = [index for index, kind in enumerate(kinds) if kind == "delete"]
    for index in deletions[_MAX_DELETIONS:]:
        kinds[index] = "edit"
    if not deletions and count >= 4:
        kinds[count // 2] = "delete"

    return kinds


def _plan_event(rng: random.Random, state: _ScriptState, at: float, kind: EventKind) -> ScriptEvent:
    profile = rng.choice(sorted(state.live))
    live = state.live[profile]
    if kind == "create" or not live:
        return _plan_create(rng, state, at, profile)

    if kind == "reply":
        # Prefer a review without a reply; replacing a reply is rarer.
        unanswered = [review_id for review_id in live if review_id not in state.replied]
        return _plan_reply(rng, state, at, profile, rng.choice(unanswered or live))

    review_id = rng.choice(live)
    if kind == "edit":
        return _plan_edit(rng, state, at, profile, review_id)

    live.remove(review_id)
    return ScriptEvent(at=at, kind="delete", profile=profile, review_id=review_id)


def _plan_create(rng: random.Random, state: _ScriptState, at: float, profile: str) -> ScriptEvent:
    review_id = _review_id(rng)
    stars = _stars(rng)
    reviewer = phrases.reviewer_name(rng)
    comment = None if rng.random() < 0.15 else phrases.review_text(rng, stars)
    state.live[profile].append(review_id)
    state.stars[review_id] = stars
    state.comments[review_id] = comment
    state.reviewers[review_id] = reviewer
    return ScriptEvent(
        at=at,
        kind="create",
        profile=profile,
        review_id=review_id,
        reviewer=reviewer,
        stars=stars,
        comment=comment,
    )


def _plan_edit(
    rng: random.Random, state: _ScriptState, at: float, profile: str, review_id: str
) -> ScriptEvent:
    better = rng.random() < 0.6
    old_stars = state.stars[review_id]
    stars = min(5, old_stars + 1) if better else max(1, old_stars - 1)
    note = phrases.edit_note(rng, better=better)
    old_comment = state.comments[review_id]
    comment = f"{old_comment} {note}" if old_comment else note
    state.stars[review_id] = stars
    state.comments[review_id] = comment
    return ScriptEvent(
        at=at, kind="edit", profile=profile, review_id=review_id, stars=stars, comment=comment
    )


def _plan_reply(
    rng: random.Random, state: _ScriptState, at: float, profile: str, review_id: str
) -> ScriptEvent:
    reviewer = state.reviewers[review_id]
    reply = phrases.vendor_reply(rng, reviewer=reviewer, stars=state.stars[review_id])
    state.replied.add(review_id)
    return ScriptEvent(at=at, kind="reply", profile=profile, review_id=review_id, reply=reply)


def hour_epoch(now: float) -> float:
    """Return the start of the UTC hour that contains ``now``, in Unix seconds.

    One seed then gives the same reviews and timestamps for every run within
    that hour, and the newest reviews are at most an hour old.
    """
    return now - now % 3600.0
