"""Seeded fault injection for the sandbox's platform API routes.

Each API request calls :meth:`FaultInjector.decide` for its faults.  Queued
statuses come first, in order, then queued connection resets, then the other
queued faults (malformed body, missing fields, timeout), so a test or the demo
can script an exact failure sequence.  After them, the seeded rates decide.
Faults never apply to the token endpoint or to the ``/_sandbox`` control
routes.  A reset sends the status line and part of the body, then closes the
connection: the ASGI server gives no way to close it before the status line.
"""

from __future__ import annotations

import collections
import random
from typing import Annotated, Any, Final, Literal, final

import msgspec

Rate = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0.0)]
FaultStatus = Annotated[int, msgspec.Meta(ge=400, le=599)]
FaultKind = Literal[
    "error",
    "rate_limit",
    "status",
    "malformed",
    "duplicate",
    "latency",
    "reset",
    "missing_fields",
    "timeout",
    "page_loop",
]
FAULT_KINDS: Final[tuple[FaultKind, ...]] = (
    "error",
    "rate_limit",
    "status",
    "malformed",
    "duplicate",
    "latency",
    "reset",
    "missing_fields",
    "timeout",
    # Pages whose next-page token or link led back to a page already served;
    # the stand-ins count these, because a paging flag turns them on.
    "page_loop",
)
# The faults that ``next_faults`` can queue, one request each.
QueuedFault = Literal["malformed", "missing_fields", "timeout"]


class FaultSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Fault rates and delays; all zero means a well-behaved platform."""

    # Share of API requests that get a 500 response.
    error_rate: Rate = 0.0
    # Share of API requests that get a 429 response with a Retry-After header.
    rate_limit_rate: Rate = 0.0
    # Seconds sent in Retry-After with every 429 (rounded up to whole seconds).
    retry_after: NonNegative = 1.0
    # Seconds added before every API response.
    latency: NonNegative = 0.0
    # Share of API responses whose JSON has a field of the wrong type.
    malformed_rate: Rate = 0.0
    # Share of review list pages that also carry a stale copy of one review.
    duplicate_rate: Rate = 0.0
    # Share of API requests whose connection closes after the status line and
    # part of the body, as a crashed proxy or a reset connection does.
    reset_rate: Rate = 0.0
    # Statuses for the next API requests, one each, before the rates apply.
    next_statuses: tuple[FaultStatus, ...] = ()
    # API requests after the queued statuses whose connections are reset, one
    # each, before the rates apply.
    next_resets: Annotated[int, msgspec.Meta(ge=0)] = 0
    # Faults for the API requests after the queued statuses and resets, one
    # each, before the rates apply: a body with a field of the wrong type, a
    # review without a required field, or a response held back for
    # ``timeout_delay`` seconds.
    next_faults: tuple[QueuedFault, ...] = ()
    # Seconds a queued timeout delays its response, which must exceed the
    # request timeout of the client under test.
    timeout_delay: NonNegative = 30.0
    # The route names that the faults apply to, as the sandbox's request
    # statistics name them ("reviews.list", "fb.comment").  Empty means every
    # API route of the stand-in.
    routes: tuple[str, ...] = ()


NO_FAULTS: Final = FaultSettings()


def fault_settings_of(settings: FaultSettings) -> FaultSettings:
    """Return just the FaultSettings fields of ``settings``, which may be a subclass."""
    fields = {name: getattr(settings, name) for name in FaultSettings.__struct_fields__}
    return FaultSettings(**fields)


@final
class Fault(msgspec.Struct, frozen=True, kw_only=True):
    """The faults decided for one API request."""

    latency: float = 0.0
    # An error status to respond with instead of the real response.
    status: int | None = None
    retry_after: float | None = None
    malformed: bool = False
    # Leave a required field out of the first review of the response.
    missing_fields: bool = False
    # A queued timeout: ``latency`` includes ``timeout_delay``, so the client
    # has given up before the response is sent.
    timeout: bool = False
    duplicate: bool = False
    # Close the connection partway through the response body.
    reset: bool = False


@final
class FaultInjector:
    """Decides the faults of each API request from the settings and a seeded RNG."""

    def __init__(self, settings: FaultSettings = NO_FAULTS, *, seed: int = 1) -> None:
        self._rng = random.Random(seed)
        self._settings = fault_settings_of(settings)
        self._queue: collections.deque[int] = collections.deque(settings.next_statuses)
        self._resets_left = settings.next_resets
        self._faults: collections.deque[QueuedFault] = collections.deque(settings.next_faults)
        self.counts: dict[FaultKind, int] = dict.fromkeys(FAULT_KINDS, 0)

    def __repr__(self) -> str:
        injected = sum(self.counts.values())
        return f"<FaultInjector {self._settings!r} queued={len(self._queue)} injected={injected}>"

    @property
    def settings(self) -> FaultSettings:
        """The settings in force."""
        return self._settings

    def update(self, changes: dict[str, Any]) -> FaultSettings:
        """Change some settings and return the result; ``next_statuses`` replaces the queue.

        Raises msgspec.ValidationError naming the field when a value is invalid
        or unknown.
        """
        merged = msgspec.structs.asdict(self._settings) | changes
        settings = msgspec.convert(merged, FaultSettings)
        self._settings = settings
        if "next_statuses" in changes:
            self._queue = collections.deque(settings.next_statuses)
        if "next_resets" in changes:
            self._resets_left = settings.next_resets
        if "next_faults" in changes:
            self._faults = collections.deque(settings.next_faults)

        return settings

    def statistics(self) -> dict[str, Any]:
        """Return injected faults by kind and the statuses still queued."""
        return {
            "injected": dict(self.counts),
            "queued_statuses": list(self._queue),
            "queued_resets": self._resets_left,
            "queued_faults": list(self._faults),
        }

    def decide(self, *, listing: bool, route: str = "") -> Fault:
        """Return the faults for the next API request; ``listing`` allows a duplicate.

        A request to a route outside ``routes`` gets no fault, and it takes
        no queued status or reset and no random draw.
        """
        settings = self._settings
        if settings.routes and route not in settings.routes:
            return Fault()

        latency = settings.latency
        if latency > 0:
            self.counts["latency"] += 1

        if self._queue:
            status = self._queue.popleft()
            self.counts["status"] += 1
            retry_after = settings.retry_after if status == 429 else None
            return Fault(latency=latency, status=status, retry_after=retry_after)

        if self._resets_left > 0:
            self._resets_left -= 1
            self.counts["reset"] += 1
            return Fault(latency=latency, reset=True)

        if self._faults:
            return self._queued_fault(self._faults.popleft(), settings, latency)

        return self._decide_by_rate(settings, latency, listing=listing)

    def _queued_fault(self, kind: QueuedFault, settings: FaultSettings, latency: float) -> Fault:
        self.counts[kind] += 1
        if kind == "timeout":
            return Fault(latency=latency + settings.timeout_delay, timeout=True)
        if kind == "missing_fields":
            return Fault(latency=latency, missing_fields=True)
        return Fault(latency=latency, malformed=True)

    def _decide_by_rate(self, settings: FaultSettings, latency: float, *, listing: bool) -> Fault:
        # One draw per rate in a fixed order keeps a seed's sequence stable.
        draws = [self._rng.random() for _ in range(4)]
        if draws[0] < settings.error_rate:
            self.counts["error"] += 1
            return Fault(latency=latency, status=500)

        if draws[1] < settings.rate_limit_rate:
            self.counts["rate_limit"] += 1
            return Fault(latency=latency, status=429, retry_after=settings.retry_after)

        # Drawn only when set, so the sequences of seeds chosen before this
        # fault existed stay as they were.
        if settings.reset_rate > 0 and self._rng.random() < settings.reset_rate:
            self.counts["reset"] += 1
            return Fault(latency=latency, reset=True)

        malformed = draws[2] < settings.malformed_rate
        duplicate = listing and draws[3] < settings.duplicate_rate
        self.counts["malformed"] += malformed
        self.counts["duplicate"] += duplicate
        return Fault(latency=latency, malformed=malformed, duplicate=duplicate)
