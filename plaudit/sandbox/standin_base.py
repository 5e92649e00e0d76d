"""Shared parts of the sandbox's platform stand-ins.

:class:`StandInBase` gives a stand-in its seeded :class:`StandInWorld`, advanced
to the sandbox time, and its truth document.  The Facebook, Trustpilot, Yelp and
marketplace stand-ins extend it.  Most functions serve the API stand-ins
(Facebook, Trustpilot and Yelp), whose faults come from a
:class:`~plaudit.sandbox.faults.FaultInjector`:

- :func:`fault_routes` and :func:`change_budget`: ``GET|POST /_sandbox/{platform}/faults``.
- :func:`requests_route` and :func:`request_log`: ``GET /_sandbox/{platform}/requests``.
- :func:`decide_fault` and :func:`fault_response`: the faults of one API
  request and the error response that replaces the real one.
- :func:`query_int`, :func:`page_slice` and :func:`page_count`: numbered
  pages, which the marketplace's paged storefront uses too.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import re
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Final, TypeVar

import msgspec
import trio

from plaudit.sandbox.app import Request, Response, json_response, reset_response
from plaudit.sandbox.faults import Fault, FaultInjector
from plaudit.sandbox.standin import EVENT_KINDS, EventKind, Route, StandInReview, StandInWorld
from plaudit.sandbox.usage import CallMeter
from plaudit.sandbox.world import DEFAULT_EPOCH

# A request log keeps the parameters of the newest requests, up to this many.
LOGGED_REQUESTS: Final = 1000

_Item = TypeVar("_Item")


class StandInBase:
    """A platform stand-in's seeded world, advanced to the sandbox time before each use.

    A subclass sets ``name``, its key in the truth document and the
    statistics.  ``platform`` seeds the world's generator and starts every
    review id.
    """

    name: ClassVar[str]

    def __init__(
        self,
        platform: str,
        profiles: Sequence[str],
        *,
        seed: int,
        elapsed: Callable[[], float],
        script_seconds: float = 20.0,
        epoch: float = DEFAULT_EPOCH,
        reviews_per_profile: int = 30,
        event_kinds: tuple[EventKind, ...] = EVENT_KINDS,
    ) -> None:
        self.seed = seed
        self.world = StandInWorld(
            platform,
            list(profiles),
            seed=seed,
            reviews_per_profile=reviews_per_profile,
            script_seconds=script_seconds,
            epoch=epoch,
            event_kinds=event_kinds,
        )
        self._elapsed = elapsed

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.world!r}>"

    def advance(self) -> None:
        """Apply the world's scripted events that are due by the sandbox time now."""
        self.world.advance_to(self._elapsed())

    def truth(self) -> dict[str, Any]:
        """Return every profile's reviews, each as :meth:`truth_entry` renders it."""
        self.advance()
        return self.world.truth(self.truth_entry)

    def truth_entry(self, profile: str, review: StandInReview) -> dict[str, Any]:
        """Render one review in the truth shape, which API stand-ins give their own ids."""
        return review.truth()


def request_log() -> collections.deque[str]:
    """Return an empty log of request parameters that keeps the newest :data:`LOGGED_REQUESTS`."""
    return collections.deque(maxlen=LOGGED_REQUESTS)


def requests_route(platform: str, route_name: str, body: Callable[[], dict[str, Any]]) -> Route:
    """Return the ``GET /_sandbox/{platform}/requests`` route, which serves ``body()`` as JSON."""

    async def read(request: Request, match: re.Match[str]) -> Response:
        return json_response(200, body())

    return ("GET", re.compile(rf"^/_sandbox/{platform}/requests$"), route_name, read)


def fault_routes(
    platform: str,
    route_name: str,
    faults: FaultInjector,
    *,
    settings: Callable[[], dict[str, Any]],
    change: Callable[[dict[str, Any]], str | None],
) -> list[Route]:
    """Return ``GET|POST /_sandbox/{platform}/faults`` for the injector and the own settings.

    Both routes respond with the injector's settings followed by
    ``settings()``.  A POST body is a JSON object of changes: ``change``
    removes and applies the stand-in's own keys, and returns an error message
    for an invalid value, which makes the response a 400.  The injector then
    takes the remaining keys.
    """

    async def read(request: Request, match: re.Match[str]) -> Response:
        return json_response(200, {**msgspec.to_builtins(faults.settings), **settings()})

    async def update(request: Request, match: re.Match[str]) -> Response:
        try:
            changes = msgspec.json.decode(request.body, type=dict[str, Any])
            invalid = change(changes)
            if invalid is not None:
                return json_response(400, {"error": invalid})
            faults.update(changes)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            return json_response(400, {"error": f"invalid fault settings: {error}"})
        return await read(request, match)

    path = re.compile(rf"^/_sandbox/{platform}/faults$")
    return [("GET", path, route_name, read), ("POST", path, route_name, update)]


def change_budget(meter: CallMeter, changes: dict[str, Any], key: str) -> str | None:
    """Move ``changes[key]``, when present, into the meter's budget.

    Returns an error message, and keeps the budget, when the value is not a
    whole number of 1 or more.
    """
    budget = changes.pop(key, meter.budget)
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        return f"invalid {key} {budget!r}: use 1 or more"
    meter.budget = budget
    return None


async def decide_fault(faults: FaultInjector, *, route: str, listing: bool = False) -> Fault:
    """Decide the faults of one API request and wait out their latency."""
    fault = faults.decide(listing=listing, route=route)
    if fault.latency > 0:
        await trio.sleep(fault.latency)
    return fault


def fault_response(fault: Fault, error: Callable[[int], Response]) -> Response | None:
    """Return the response that replaces the real one under ``fault``, or None when none does.

    ``error(status)`` is the platform's error response for a fault status.  A
    429 also gets ``Retry-After`` in whole seconds, rounded up, because the
    header allows no fraction.
    """
    if fault.reset:
        return reset_response()
    if fault.status is None:
        return None

    response = error(fault.status)
    if fault.status == 429:
        seconds = math.ceil(fault.retry_after or 0.0)
        response = dataclasses.replace(response, headers=(("Retry-After", str(seconds)),))
    return response


def query_int(request: Request, name: str, *, default: int, maximum: int | None = None) -> int:
    """Return the query parameter ``name`` as an integer, raised to 1 and cut to ``maximum``.

    Raises ValueError, from :class:`int`, when the parameter is not an integer.
    """
    value = max(1, int(request.query.get(name, str(default))))
    return value if maximum is None else min(maximum, value)


def page_slice(items: Sequence[_Item], page: int, size: int) -> list[_Item]:
    """Return page ``page`` (from 1) of ``items`` in pages of ``size``."""
    return list(items[(page - 1) * size : page * size])


def page_count(total: int, size: int) -> int:
    """Return the pages that ``total`` items fill in pages of ``size``, at least one."""
    return max(1, -(-total // size))
