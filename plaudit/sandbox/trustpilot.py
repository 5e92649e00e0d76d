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
import collections
import dataclasses
import re
import secrets
import urllib.parse
from collections.abc import Callable
from typing import Any, Final, final

import msgspec
import trio

from plaudit.reviews.model import format_timestamp
from plaudit.sandbox.app import Handler, Request, Response, json_response, reset_response
from plaudit.sandbox.faults import Fault, FaultInjector
from plaudit.sandbox.standin import StandInReview, StandInWorld
from plaudit.sandbox.world import DEFAULT_EPOCH

SANDBOX_API_KEY: Final = "sandbox-trustpilot-key"
SANDBOX_API_SECRET: Final = "sandbox-trustpilot-secret"
UNIT_IDS: Final = ("5e1f00000000000000000001", "5e1f00000000000000000002")
TOKEN_LIFETIME: Final = 3600
_PREFIX: Final = "/trustpilot/v1"
_LOGGED_REQUESTS: Final = 1000


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
class TrustpilotStandIn:
    """Serves the Trustpilot routes from a seeded world."""

    name: Final = "trustpilot"

    def __init__(
        self,
        *,
        seed: int,
        elapsed: Callable[[], float],
        script_seconds: float = 20.0,
        epoch: float = DEFAULT_EPOCH,
    ) -> None:
        self.world = StandInWorld(
            "trustpilot", list(UNIT_IDS), seed=seed, script_seconds=script_seconds, epoch=epoch
        )
        self.faults = FaultInjector(seed=seed)
        # Reviews the API has served at least once.
        self.listed: set[str] = set()
        self.page_loop = False
        self.tokens: set[str] = set()
        self._elapsed = elapsed
        # The ``page`` parameter of each reviews request.
        self.page_requests: collections.deque[str] = collections.deque(maxlen=_LOGGED_REQUESTS)

    def __repr__(self) -> str:
        return f"<TrustpilotStandIn {self.world!r} tokens={len(self.tokens)}>"

    def statistics(self) -> dict[str, Any]:
        """Return the world's counts and the faults injected."""
        return {"world": self.world.statistics(), "faults": self.faults.statistics()}

    def routes(self) -> list[tuple[str, re.Pattern[str], str, Handler]]:
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
            ("GET", re.compile(r"^/_sandbox/trustpilot/faults$"), "tp.faults", self._get_faults),
            ("POST", re.compile(r"^/_sandbox/trustpilot/faults$"), "tp.faults", self._set_faults),
            (
                "GET",
                re.compile(r"^/_sandbox/trustpilot/requests$"),
                "tp.requests",
                self._get_requests,
            ),
        ]

    def truth(self) -> dict[str, Any]:
        """Return every review in the truth shape, with the ids and text the connector reports."""
        self.world.advance_to(self._elapsed())
        profiles = []
        for unit, reviews in self.world.profiles.items():
            entries = []
            for review in reviews:
                entry = review.truth()
                entry["review_id"] = review_id(review)
                entry["text"] = f"{_title(review)}\n\n{review.text}"
                entry["email"] = review.email
                entry["reference"] = review.reference
                # A review deleted before any listing served it is unknowable.
                entry["listed"] = review.deleted is None or review.review_id in self.listed
                entries.append(entry)
            profiles.append({"profile": unit, "reviews": entries})
        return {"profiles": profiles}

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
        self.world.advance_to(self._elapsed())
        fault = self.faults.decide(listing=listing, route=route)
        if fault.latency > 0:
            await trio.sleep(fault.latency)

        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or token not in self.tokens:
            return fault, _error(401, "Unauthorized")

        if fault.reset:
            return fault, reset_response()
        if fault.status is not None:
            response = _error(fault.status, "Service unavailable")
            if fault.status == 429:
                retry_after = str(-int(-(fault.retry_after or 0.0) // 1))
                response = dataclasses.replace(response, headers=(("Retry-After", retry_after),))
            return fault, response

        return fault, None

    async def _reviews(self, request: Request, match: re.Match[str]) -> Response:
        self.page_requests.append(request.query.get("page", "1"))
        fault, early = await self._preamble(request, route="tp.reviews", listing=True)
        if early is not None:
            return early

        unit = match[1]
        if unit not in self.world.profiles:
            return _error(404, f"Business unit {unit} not found")

        try:
            page = max(1, int(request.query.get("page", "1")))
            per_page = max(1, min(100, int(request.query.get("perPage", "20"))))
        except ValueError:
            return _error(400, "page and perPage must be integers")

        live = self.world.live(unit)
        chunk = live[(page - 1) * per_page : page * per_page]
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

    async def _get_requests(self, request: Request, match: re.Match[str]) -> Response:
        return json_response(200, {"page": list(self.page_requests)})

    async def _get_faults(self, request: Request, match: re.Match[str]) -> Response:
        settings = msgspec.to_builtins(self.faults.settings)
        return json_response(200, {**settings, "page_loop": self.page_loop})

    async def _set_faults(self, request: Request, match: re.Match[str]) -> Response:
        try:
            changes = msgspec.json.decode(request.body, type=dict[str, Any])
            self.page_loop = bool(changes.pop("page_loop", self.page_loop))
            if changes.pop("revoke_tokens", False):
                self.tokens.clear()
            self.faults.update(changes)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            return json_response(400, {"error": f"invalid fault settings: {error}"})
        return await self._get_faults(request, match)


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
