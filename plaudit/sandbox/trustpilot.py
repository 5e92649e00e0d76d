"""The sandbox's Trustpilot stand-in: client-credentials tokens, private reviews, replies.

Routes, under the sandbox's base URL:

- ``POST /trustpilot/v1/oauth/oauth-business-users-for-applications/accesstoken``:
  the client-credentials grant with HTTP Basic (API key and secret).
- ``GET /trustpilot/v1/private/business-units/{id}/reviews``: ``page`` and
  ``perPage``, newest first, with a ``next-page`` link.
- ``POST /trustpilot/v1/private/reviews/{id}/reply``: ``{"message": ...}``.
- ``GET|POST /_sandbox/trustpilot/faults``: this stand-in's faults;
  ``page_loop`` (bool) makes every page link back to page 1, and
  ``revoke_tokens`` (bool) revokes the access tokens issued so far.
- ``GET /_sandbox/trustpilot/requests``: the ``page`` of each reviews
  request, oldest first, up to the last 1,000.

Trustpilot documents no usage headers, so the stand-in sends none.
"""

from __future__ import annotations

import base64
import re
import secrets
import urllib.parse
from typing import Any, ClassVar, Final, Unpack, final

import msgspec

from plaudit.reviews.model import format_timestamp
from plaudit.sandbox.app import Request, Response, json_response
from plaudit.sandbox.faults import Fault, FaultInjector
from plaudit.sandbox.standin import Route, StandInOptions, StandInReview
from plaudit.sandbox.standin_base import (
    StandInBase,
    decide_fault,
    fault_response,
    fault_routes,
    page_slice,
    query_int,
    request_log,
    requests_route,
)

SANDBOX_API_KEY: Final = "sandbox-trustpilot-key"
SANDBOX_API_SECRET: Final = "sandbox-trustpilot-secret"
UNIT_IDS: Final = ("5e1f00000000000000000001", "5e1f00000000000000000002")
TOKEN_LIFETIME: Final = 3600
_PREFIX: Final = "/trustpilot/v1"


class _Reply(msgspec.Struct):
    message: str


def review_id(review: StandInReview) -> str:
    """Return the Trustpilot id of a stand-in review: 24 hexadecimal digits."""
    return "6" + review.review_id[2:].rjust(23, "0")


def _title(review: StandInReview) -> str:
    return review.text.split(".")[0][:60]


def _error(status: int, message: str) -> Response:
    return json_response(status, {"message": message, "errorCode": status})


@final
class TrustpilotStandIn(StandInBase):
    """Serves the Trustpilot routes from a seeded world."""

    name: ClassVar[str] = "trustpilot"

    def __init__(self, **options: Unpack[StandInOptions]) -> None:
        super().__init__("trustpilot", UNIT_IDS, **options)
        self.faults = FaultInjector(seed=self.seed)
        # Reviews the API has served at least once.
        self.listed: set[str] = set()
        self.page_loop = False
        self.tokens: set[str] = set()
        # The ``page`` parameter of each reviews request.
        self.page_requests = request_log()

    def __repr__(self) -> str:
        return f"<TrustpilotStandIn {self.world!r} tokens={len(self.tokens)}>"

    def statistics(self) -> dict[str, Any]:
        """Return the world's counts and the faults injected."""
        return {"world": self.world.statistics(), "faults": self.faults.statistics()}

    def routes(self) -> list[Route]:
        """Return the routes to mount in the sandbox application."""
        token = rf"^{_PREFIX}/oauth/oauth-business-users-for-applications/accesstoken$"
        return [
            ("POST", re.compile(token), "tp.token", self._token),
            (
                "GET",
                re.compile(rf"^{_PREFIX}/private/business-units/(\w+)/reviews$"),
                "tp.reviews",
                self._reviews,
            ),
            (
                "POST",
                re.compile(rf"^{_PREFIX}/private/reviews/(\w+)/reply$"),
                "tp.reply",
                self._reply,
            ),
            *fault_routes(
                "trustpilot",
                "tp.faults",
                self.faults,
                settings=lambda: {"page_loop": self.page_loop},
                change=self._change_own_settings,
            ),
            requests_route("trustpilot", "tp.requests", lambda: {"page": list(self.page_requests)}),
        ]

    def truth_entry(self, profile: str, review: StandInReview) -> dict[str, Any]:
        """Render a review with the ids and text the connector reports."""
        entry = review.truth()
        entry["review_id"] = review_id(review)
        entry["text"] = f"{_title(review)}\n\n{review.text}"
        entry["email"] = review.email
        entry["reference"] = review.reference
        # A review deleted before any listing served it is unknowable.
        entry["listed"] = review.deleted is None or review.review_id in self.listed
        return entry

    async def _token(self, request: Request, match: re.Match[str]) -> Response:
        expected = base64.b64encode(f"{SANDBOX_API_KEY}:{SANDBOX_API_SECRET}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return _error(401, "Invalid client credentials")

        form = urllib.parse.parse_qs(request.body.decode("utf-8", "replace"))
        if form.get("grant_type") != ["client_credentials"]:
            return _error(400, "unsupported grant_type")

        token = "tp-" + secrets.token_urlsafe(18)
        self.tokens.add(token)
        body = {"access_token": token, "expires_in": str(TOKEN_LIFETIME), "token_type": "Bearer"}
        return json_response(200, body)

    async def _preamble(
        self, request: Request, *, route: str, listing: bool = False
    ) -> tuple[Fault, Response | None]:
        self.advance()
        fault = await decide_fault(self.faults, route=route, listing=listing)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or token not in self.tokens:
            return fault, _error(401, "Unauthorized")

        return fault, fault_response(fault, lambda status: _error(status, "Service unavailable"))

    async def _reviews(self, request: Request, match: re.Match[str]) -> Response:
        self.page_requests.append(request.query.get("page", "1"))
        fault, early = await self._preamble(request, route="tp.reviews", listing=True)
        if early is not None:
            return early

        unit = match[1]
        if unit not in self.world.profiles:
            return _error(404, f"Business unit {unit} not found")

        try:
            page = query_int(request, "page", default=1)
            per_page = query_int(request, "perPage", default=20, maximum=100)
        except ValueError:
            return _error(400, "page and perPage must be integers")

        live = self.world.live(unit)
        chunk = page_slice(live, page, per_page)
        self.listed.update(review.review_id for review in chunk)
        links = []
        if page * per_page < len(live) or (self.page_loop and chunk):
            following = 1 if self.page_loop else page + 1
            self.faults.counts["page_loop"] += self.page_loop
            query = urllib.parse.urlencode({"page": following, "perPage": per_page})
            href = f"{_PREFIX}/private/business-units/{unit}/reviews?{query}"
            links.append({"href": href, "method": "GET", "rel": "next-page"})
        body: dict[str, Any] = {"reviews": [_api_review(r) for r in chunk], "links": links}
        if fault.missing_fields and body["reviews"]:
            del body["reviews"][0]["createdAt"]
        if fault.malformed and body["reviews"]:
            body["reviews"][0]["stars"] = "five"
        return json_response(200, body)

    async def _reply(self, request: Request, match: re.Match[str]) -> Response:
        _, early = await self._preamble(request, route="tp.reply")
        if early is not None:
            return early

        try:
            reply = msgspec.json.decode(request.body, type=_Reply)
        except msgspec.DecodeError as error:
            return _error(400, f"invalid reply body: {error}")

        for unit, reviews in self.world.profiles.items():
            for review in reviews:
                if review_id(review) == match[1]:
                    self.world.post_reply(unit, review.review_id, reply.message)
                    return Response(201, b"")
        return _error(404, f"Review {match[1]} not found")

    def _change_own_settings(self, changes: dict[str, Any]) -> None:
        self.page_loop = bool(changes.pop("page_loop", self.page_loop))
        if changes.pop("revoke_tokens", False):
            self.tokens.clear()


def _api_review(review: StandInReview) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": review_id(review),
        "stars": review.stars,
        "title": _title(review),
        "text": review.text,
        "language": "en",
        "createdAt": format_timestamp(review.created),
        "updatedAt": format_timestamp(review.updated),
        "consumer": {"id": "c" + review.review_id, "displayName": review.author},
        "referenceId": review.reference,
        "referralEmail": review.email,
    }
    if review.reply is not None and review.reply_time is not None:
        reply_time = format_timestamp(review.reply_time)
        body["companyReply"] = {
            "text": review.reply,
            "createdAt": reply_time,
            "updatedAt": reply_time,
        }
    return body
