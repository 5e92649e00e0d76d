"""The sandbox's Facebook Graph API stand-in: Page ratings and comment replies.

Routes, under the sandbox's base URL (``{v}`` is a Graph version such as v19.0):

- ``GET /facebook/{v}/{page-id}/ratings``: ratings newest first, cursor
  paging with ``limit`` and ``after``.  From v22.0 on, the edge returns Graph
  error code 12, as Facebook does since the edge was deprecated.
- ``POST /facebook/{v}/{story-id}/comments``: the Page's reply (form field
  ``message``).
- ``GET /facebook/{v}/{story-id}/comments``: the story's comments, which is
  the Page's reply when it has one.
- ``GET|POST /_sandbox/facebook/faults``: read or change this stand-in's
  faults; ``cursor_loop`` (bool) makes every page return the same cursor,
  and ``call_budget`` (int) sets the calls a day that count as 100 % in
  the usage headers.
- ``GET /_sandbox/facebook/requests``: the ``after`` cursor of each ratings
  request, oldest first ("" for a first page), up to the last 1,000, and
  the number of comments posted on each story (``comments``).

Every ratings response carries ``X-App-Usage`` and
``X-Business-Use-Case-Usage`` in Graph's JSON format, from the calls of the
last day of sandbox time against ``call_budget``.

Every API route takes the Page token as ``Authorization: Bearer``.  Ratings
with an odd serial also carry the legacy 1 to 5 ``rating``.

Cursors are opaque, as Graph's are: ``after`` encodes the creation time and
id of the page's last rating, and the next page starts after that key, so a
rating deleted between two page requests shifts nothing.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import math
import re
import time
import urllib.parse
from typing import Any, ClassVar, Final, Unpack, final

from plaudit.sandbox.app import Request, Response, json_response
from plaudit.sandbox.faults import Fault, FaultInjector
from plaudit.sandbox.standin import Route, StandInOptions, StandInReview
from plaudit.sandbox.standin_base import (
    StandInBase,
    change_budget,
    decide_fault,
    fault_response,
    fault_routes,
    query_int,
    request_log,
    requests_route,
)
from plaudit.sandbox.usage import CallMeter, graph_usage_headers

SANDBOX_PAGE_TOKEN: Final = "sandbox-facebook-page-token"
SANDBOX_APP_SECRET: Final = "sandbox-facebook-app-secret"
PAGE_IDS: Final = ("301001", "301002")
# The first Graph version that no longer serves /{page-id}/ratings.
DEPRECATED_FROM: Final = (22, 0)
_VERSION = r"v(\d+)\.(\d+)"
# Ratings calls a rolling day that the usage headers report as 100 %, by
# default: Graph's Page budget of 4,800 times the engaged users, for one user.
CALL_BUDGET: Final = 4800


def graph_error(status: int, code: int, message: str, kind: str = "OAuthException") -> Response:
    """Return an error in the Graph API's shape."""
    body = {"error": {"message": message, "type": kind, "code": code, "fbtrace_id": "Sandbox"}}
    return json_response(status, body)


def graph_time(moment: float) -> str:
    """Format Unix seconds as Graph does: ``2025-06-01T12:00:00+0000``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(moment))


def story_id(page_id: str, review: StandInReview) -> str:
    """Return the open_graph_story id of a rating, which is its review id."""
    return f"{page_id}_{review.review_id[2:]}"


def _legacy(review: StandInReview) -> bool:
    return int(review.review_id[2:]) % 2 == 1


def _recommendation(review: StandInReview) -> str:
    return "positive" if review.stars >= 3 else "negative"


def _fault_error(status: int) -> Response:
    if status == 429:
        return graph_error(400, 32, "Page request limit reached")
    return graph_error(status, 2, "Service temporarily unavailable")


@final
class FacebookStandIn(StandInBase):
    """Serves the Graph ratings routes from a seeded world."""

    name: ClassVar[str] = "facebook"

    def __init__(self, **options: Unpack[StandInOptions]) -> None:
        super().__init__("facebook", PAGE_IDS, **options)
        self.faults = FaultInjector(seed=self.seed)
        # Reviews the API has served at least once.
        self.listed: set[str] = set()
        self.cursor_loop = False
        self.usage = CallMeter(budget=CALL_BUDGET, window_seconds=86_400.0, clock=self._elapsed)
        # The ``after`` cursor of each ratings request.
        self.page_requests = request_log()
        # Comments posted, by story id; the world keeps only the latest one.
        self.comment_posts: collections.Counter[str] = collections.Counter()

    def __repr__(self) -> str:
        return f"<FacebookStandIn {self.world!r} faults={self.faults!r}>"

    def statistics(self) -> dict[str, Any]:
        """Return the world's counts and the faults injected."""
        return {"world": self.world.statistics(), "faults": self.faults.statistics()}

    def routes(self) -> list[Route]:
        """Return the routes to mount in the sandbox application."""
        return [
            (
                "GET",
                re.compile(rf"^/facebook/{_VERSION}/(\d+)/ratings$"),
                "fb.ratings",
                self._ratings,
            ),
            (
                "POST",
                re.compile(rf"^/facebook/{_VERSION}/(\w+)/comments$"),
                "fb.comment",
                self._comment,
            ),
            (
                "GET",
                re.compile(rf"^/facebook/{_VERSION}/(\w+)/comments$"),
                "fb.comments",
                self._comments,
            ),
            *fault_routes(
                "facebook",
                "fb.faults",
                self.faults,
                settings=self._own_settings,
                change=self._change_own_settings,
            ),
            requests_route("facebook", "fb.requests", self._request_log),
        ]

    def truth_entry(self, profile: str, review: StandInReview) -> dict[str, Any]:
        """Render a rating with the ids and values the connector reports."""
        entry = review.truth()
        entry["review_id"] = story_id(profile, review)
        entry["stars"] = review.stars if _legacy(review) else None
        entry["recommendation"] = _recommendation(review)
        # A review deleted before any listing served it is unknowable.
        entry["listed"] = review.deleted is None or review.review_id in self.listed
        return entry

    async def _preamble(
        self, request: Request, *, route: str, listing: bool = False
    ) -> tuple[Fault, Response | None]:
        self.advance()
        fault = await decide_fault(self.faults, route=route, listing=listing)
        if request.headers.get("authorization") != f"Bearer {SANDBOX_PAGE_TOKEN}":
            return fault, graph_error(
                400, 190, "Error validating access token: Session has expired."
            )

        return fault, fault_response(fault, _fault_error)

    async def _ratings(self, request: Request, match: re.Match[str]) -> Response:
        if (int(match[1]), int(match[2])) >= DEPRECATED_FROM:
            return graph_error(
                400,
                12,
                "(#12) ratings is deprecated for versions v22.0 and higher",
                "OAuthException",
            )

        self.usage.record()
        self.page_requests.append(request.query.get("after", ""))
        response = await self._ratings_page(request, match)
        return dataclasses.replace(
            response, headers=response.headers + graph_usage_headers(self.usage, match[3])
        )

    async def _ratings_page(self, request: Request, match: re.Match[str]) -> Response:
        fault, early = await self._preamble(request, route="fb.ratings", listing=True)
        if early is not None:
            return early

        page_id = match[3]
        if page_id not in self.world.profiles:
            return graph_error(
                404, 100, f"Unsupported get request. Object with ID '{page_id}' does not exist"
            )

        try:
            limit = query_int(request, "limit", default=25, maximum=100)
            start = _decode_cursor(request.query.get("after"))
        except ValueError as error:
            return graph_error(400, 100, f"Invalid parameter: {error}")

        remaining = [
            review
            for review in self.world.live(page_id)
            if start is None or _sort_key(review) > start
        ]
        chunk = remaining[:limit]
        self.listed.update(review.review_id for review in chunk)
        body: dict[str, Any] = {"data": [self._rating(page_id, review) for review in chunk]}
        if chunk:
            if self.cursor_loop:
                # The cursor of this very page, so the listing never ends.
                after = request.query.get("after") or _encode_cursor((-math.inf, ""))
                self.faults.counts["page_loop"] += 1
            else:
                after = _encode_cursor(_sort_key(chunk[-1]))
            before = _encode_cursor(_sort_key(chunk[0]))
            body["paging"] = {"cursors": {"before": before, "after": after}}
            if len(remaining) > limit or self.cursor_loop:
                body["paging"]["next"] = f"/facebook/{page_id}/ratings?after={after}"
        if fault.missing_fields and body["data"]:
            del body["data"][0]["created_time"]
        if fault.malformed:
            body["data"] = "unavailable"
        return json_response(200, body)

    def _rating(self, page_id: str, review: StandInReview) -> dict[str, Any]:
        story: dict[str, Any] = {
            "id": story_id(page_id, review),
            "updated_time": graph_time(review.updated),
        }
        if review.reply is not None and review.reply_time is not None:
            comment = {
                "id": f"{story['id']}_c1",
                "from": {"id": page_id, "name": f"Page {page_id}"},
                "message": review.reply,
                "created_time": graph_time(review.reply_time),
            }
            story["comments"] = {"data": [comment]}
        rating: dict[str, Any] = {
            "created_time": graph_time(review.created),
            "recommendation_type": _recommendation(review),
            "review_text": review.text,
            "reviewer": {"id": f"9{review.review_id[2:]}", "name": review.author},
            "open_graph_story": story,
        }
        if _legacy(review):
            rating["rating"] = review.stars
        return rating

    async def _comment(self, request: Request, match: re.Match[str]) -> Response:
        _, early = await self._preamble(request, route="fb.comment")
        if early is not None:
            return early

        form = urllib.parse.parse_qs(request.body.decode("utf-8", "replace"))
        message = form.get("message", [""])[0]
        if not message:
            return graph_error(400, 100, "(#100) Missing message")

        page_id, _, serial = match[3].partition("_")
        review = self.world.post_reply(page_id, f"fa{serial}", message)
        if review is None:
            return graph_error(404, 100, f"Object with ID '{match[3]}' does not exist")
        self.comment_posts[match[3]] += 1
        return json_response(200, {"id": f"{match[3]}_c1"})

    async def _comments(self, request: Request, match: re.Match[str]) -> Response:
        _, early = await self._preamble(request, route="fb.comments")
        if early is not None:
            return early

        page_id, _, serial = match[3].partition("_")
        review = self.world.find(page_id, f"fa{serial}")
        if review is None:
            return graph_error(404, 100, f"Object with ID '{match[3]}' does not exist")
        story = self._rating(page_id, review)["open_graph_story"]
        return json_response(200, story.get("comments", {"data": []}))

    def _own_settings(self) -> dict[str, Any]:
        return {"cursor_loop": self.cursor_loop, "call_budget": self.usage.budget}

    def _change_own_settings(self, changes: dict[str, Any]) -> str | None:
        self.cursor_loop = bool(changes.pop("cursor_loop", self.cursor_loop))
        return change_budget(self.usage, changes, "call_budget")

    def _request_log(self) -> dict[str, Any]:
        return {"after": list(self.page_requests), "comments": dict(self.comment_posts)}


def _sort_key(review: StandInReview) -> tuple[float, str]:
    # The order of StandInWorld.live: newest first, then by id.
    return (-review.created, review.review_id)


def _encode_cursor(key: tuple[float, str]) -> str:
    created, review_id = key
    return base64.urlsafe_b64encode(f"{created!r}|{review_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> tuple[float, str] | None:
    """Return the sort key that the next page starts after, or None for the first page."""
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, review_id = text.split("|", 1)
        return float(created), review_id
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"invalid after cursor {cursor!r}") from error
