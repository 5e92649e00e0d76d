"""The sandbox's Yelp Fusion stand-in: three review excerpts per business.

Routes, under the sandbox's base URL:

- ``GET /yelp/v3/businesses/{id}/reviews``: the three newest reviews, with
  ``Authorization: Bearer`` and the API key.
- ``GET|POST /_sandbox/yelp/faults``: this stand-in's faults; ``daily_limit``
  (int) sets the calls a UTC day before 429 ``ACCESS_LIMIT_REACHED``.

Every reviews response carries ``RateLimit-DailyLimit``,
``RateLimit-Remaining`` and ``RateLimit-ResetTime`` (the next midnight UTC),
counted on the wall clock as Yelp counts them.

The truth lists every review of the world, but only the three newest live
ones are visible through the API, and ``visible`` marks those.  ``listed``
also marks the reviews the API served at some earlier time, so a comparison
with a journal uses it.
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any, ClassVar, Final, Unpack, final

from plaudit.sandbox.app import Request, Response, json_response
from plaudit.sandbox.faults import FaultInjector
from plaudit.sandbox.standin import Route, StandInOptions, StandInReview
from plaudit.sandbox.standin_base import (
    StandInBase,
    change_budget,
    decide_fault,
    fault_response,
    fault_routes,
)
from plaudit.sandbox.usage import CallMeter, yelp_usage_headers

SANDBOX_API_KEY: Final = "sandbox-yelp-key"
BUSINESS_IDS: Final = ("blush-and-bloom-florist", "harbour-view-venue")
EXCERPTS: Final = 3
# Yelp Fusion's free tier: 5,000 calls a day.
DAILY_LIMIT: Final = 5000


def _error(status: int, code: str, description: str) -> Response:
    return json_response(status, {"error": {"code": code, "description": description}})


def _fault_error(status: int) -> Response:
    if status == 429:
        return _error(429, "TOO_MANY_REQUESTS_PER_SECOND", "Too many requests.")
    return _error(status, "INTERNAL_ERROR", "Something went wrong.")


def _local_time(moment: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(moment))


@final
class YelpStandIn(StandInBase):
    """Serves the Yelp reviews route from a seeded world."""

    name: ClassVar[str] = "yelp"

    def __init__(self, **options: Unpack[StandInOptions]) -> None:
        # Only arrivals: excerpts show neither edits of older reviews nor deletions.
        super().__init__(
            "yelp", BUSINESS_IDS, reviews_per_profile=8, event_kinds=("create",), **options
        )
        # Reviews the API has listed at least once.
        self.listed: set[str] = set()
        self.faults = FaultInjector(seed=self.seed)
        self.usage = CallMeter(
            budget=DAILY_LIMIT, window_seconds=86_400.0, clock=time.time, fixed=True
        )

    def statistics(self) -> dict[str, Any]:
        """Return the world's counts and the faults injected."""
        return {"world": self.world.statistics(), "faults": self.faults.statistics()}

    def routes(self) -> list[Route]:
        """Return the routes to mount in the sandbox application."""
        return [
            (
                "GET",
                re.compile(r"^/yelp/v3/businesses/([\w-]+)/reviews$"),
                "yelp.reviews",
                self._reviews,
            ),
            *fault_routes(
                "yelp",
                "yelp.faults",
                self.faults,
                settings=lambda: {"daily_limit": self.usage.budget},
                change=lambda changes: change_budget(self.usage, changes, "daily_limit"),
            ),
        ]

    def truth_entry(self, profile: str, review: StandInReview) -> dict[str, Any]:
        """Render a review as its excerpt, marked ``visible`` when the API lists it now."""
        visible = {live.review_id for live in self.world.live(profile)[:EXCERPTS]}
        entry = review.truth()
        # Excerpts are cut to 160 characters and carry no edit time or reply.
        entry["text"] = review.text[:160]
        entry["updated_at"] = entry["created_at"]
        entry["reply_text"] = entry["reply_updated_at"] = None
        entry["visible"] = review.review_id in visible
        entry["listed"] = review.review_id in visible | self.listed
        return entry

    async def _reviews(self, request: Request, match: re.Match[str]) -> Response:
        if self.usage.used() >= self.usage.budget:
            response = _error(429, "ACCESS_LIMIT_REACHED", "You've reached the access limit.")
        else:
            self.usage.record()
            response = await self._reviews_page(request, match)
        headers = yelp_usage_headers(self.usage, now=time.time())
        return dataclasses.replace(response, headers=response.headers + headers)

    async def _reviews_page(self, request: Request, match: re.Match[str]) -> Response:
        self.advance()
        fault = await decide_fault(self.faults, route="yelp.reviews", listing=True)
        if request.headers.get("authorization") != f"Bearer {SANDBOX_API_KEY}":
            return _error(401, "TOKEN_INVALID", "Invalid access token or authorization header.")

        faulted = fault_response(fault, _fault_error)
        if faulted is not None:
            return faulted

        business = match[1]
        if business not in self.world.profiles:
            return _error(404, "BUSINESS_NOT_FOUND", "The requested business could not be found.")

        live = self.world.live(business)
        # A client reads no excerpt from a garbled body or one sent after it
        # gave up, so only an intact, timely response counts as listed.
        if not (fault.malformed or fault.missing_fields or fault.timeout):
            self.listed.update(review.review_id for review in live[:EXCERPTS])
        body: dict[str, Any] = {
            "reviews": [_api_review(business, review) for review in live[:EXCERPTS]],
            "total": len(live),
            "possible_languages": ["en"],
        }
        if fault.missing_fields and body["reviews"]:
            del body["reviews"][0]["rating"]
        if fault.malformed and body["reviews"]:
            body["reviews"][0]["rating"] = "five"
        return json_response(200, body)


def _api_review(business: str, review: StandInReview) -> dict[str, Any]:
    return {
        "id": review.review_id,
        "url": f"https://www.yelp.com/biz/{business}?hrid={review.review_id}",
        "text": review.text[:160],
        "rating": review.stars,
        "time_created": _local_time(review.created),
        "user": {"id": "u" + review.review_id, "name": review.author},
    }
