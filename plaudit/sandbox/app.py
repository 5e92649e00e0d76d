"""The sandbox's ASGI application: a Google Business Profile stand-in and control routes.

Routes, all under the sandbox's base URL:

- ``POST /google/oauth2/token``: the OAuth 2.0 refresh-token grant.
- ``GET /google/v4/accounts/{a}/locations/{l}/reviews``: ``reviews.list``,
  newest update first (``orderBy=updateTime desc``, the only order served),
  at most 50 a page, with opaque page tokens.
- ``GET .../reviews/{id}`` and ``PUT .../reviews/{id}/reply``.
- ``GET /_sandbox/truth``: every review, deleted ones flagged.
- ``POST /_sandbox/advance``: move sandbox time forward by ``seconds``.
- ``POST /_sandbox/script``: ``{"held": true}`` holds the Google world's
  script, so no scripted event happens; ``{"held": false}`` lets it go on,
  and the events due meanwhile happen at the next request.
- ``GET /_sandbox/stats``: requests served and faults injected.
- ``GET|POST /_sandbox/faults``: read or change the fault settings;
  ``page_token_loop`` (bool) makes every later page repeat its own token.
- ``POST /_sandbox/auth``: revoke access tokens or the refresh token.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import logging
import re
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any, Final, final

import msgspec
import trio

from plaudit.sandbox.faults import Fault, FaultInjector
from plaudit.sandbox.world import GoogleWorld, SandboxLocation, SandboxReview

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# The credentials the sandbox's token endpoint accepts.
SANDBOX_CLIENT_ID: Final = "plaudit-sandbox"
SANDBOX_CLIENT_SECRET: Final = "sandbox-secret"
SANDBOX_REFRESH_TOKEN: Final = "sandbox-refresh-token"
TOKEN_LIFETIME: Final = 3600.0
# Google serves at most 50 reviews a page.
MAX_PAGE_SIZE: Final = 50
MAX_BODY_BYTES: Final = 1 << 20
_REVIEWS = r"^/google/v4/accounts/([^/]+)/locations/([^/]+)/reviews"


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request, read in full."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Response:
    """One HTTP response with a JSON body."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    # Send the status line and part of the body, then close the connection.
    reset: bool = False


class ConnectionResetFault(Exception):
    """Raised after a partial response, so the server closes the connection mid-body."""


def json_response(status: int, content: Any, *headers: tuple[str, str]) -> Response:
    """Return a response whose body is ``content`` encoded as JSON."""
    return Response(status, msgspec.json.encode(content), headers)


def reset_response() -> Response:
    """Return a response that breaks off after the status line and the first body bytes."""
    return Response(200, b'{"reviews": [{"reviewId": "', reset=True)


def google_error(code: int, status: str, message: str) -> Response:
    """Return an error in the shape the Google APIs use."""
    return json_response(code, {"error": {"code": code, "message": message, "status": status}})


class _Advance(msgspec.Struct, forbid_unknown_fields=True):
    seconds: float = msgspec.field(default=0.0)


class _ScriptHold(msgspec.Struct, forbid_unknown_fields=True):
    held: bool


class _AuthChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    revoke_access_tokens: bool = False
    refresh_token_valid: bool | None = None


class _ReplyBody(msgspec.Struct):
    comment: str


Handler = Callable[[Request, "re.Match[str]"], Awaitable[Response]]


@final
class SandboxApp:
    """The ASGI application; one instance owns one world and one fault injector.

    Sandbox time is ``clock() - start + advanced`` seconds, where ``start`` is
    the clock reading when the app was created.
    """

    def __init__(
        self,
        world: GoogleWorld,
        faults: FaultInjector,
        *,
        clock: Callable[[], float] = trio.current_time,
        script_held: bool = False,
    ) -> None:
        self.world = world
        self.faults = faults
        # While True, the Google world's scripted events wait (POST /_sandbox/script).
        self.script_held = script_held
        self._clock = clock
        self._start = clock()
        self._advanced = 0.0
        self._access_tokens: dict[str, float] = {}
        self._refresh_token_valid = True
        self.page_token_loop = False
        self._tokens_issued = 0
        self._requests: collections.Counter[str] = collections.Counter()
        self._routes: list[tuple[str, re.Pattern[str], str, Handler]] = [
            ("POST", re.compile(r"^/google/oauth2/token$"), "token", self._token),
            ("GET", re.compile(_REVIEWS + "$"), "reviews.list", self._list_reviews),
            ("GET", re.compile(_REVIEWS + r"/([^/]+)$"), "reviews.get", self._get_review),
            ("PUT", re.compile(_REVIEWS + r"/([^/]+)/reply$"), "reviews.reply", self._put_reply),
            ("GET", re.compile(r"^/_sandbox/truth$"), "truth", self._truth),
            ("POST", re.compile(r"^/_sandbox/advance$"), "advance", self._advance),
            ("POST", re.compile(r"^/_sandbox/script$"), "script", self._hold_script),
            ("GET", re.compile(r"^/_sandbox/stats$"), "stats", self._stats),
            ("GET", re.compile(r"^/_sandbox/faults$"), "faults", self._get_faults),
            ("POST", re.compile(r"^/_sandbox/faults$"), "faults", self._set_faults),
            ("POST", re.compile(r"^/_sandbox/auth$"), "auth", self._change_auth),
        ]
        # Imported here because the stand-ins build on this module's Request and Response.
        from plaudit.sandbox.standin import build_stand_ins

        # The Facebook, Trustpilot and Yelp stand-ins: own worlds, faults and routes.
        self.stand_ins = build_stand_ins(
            seed=world.options.seed,
            elapsed=self.elapsed,
            script_seconds=world.options.script_seconds,
            epoch=world.options.epoch,
        )
        # Storefront and listing pages in the WeddingWire family's markup.
        from plaudit.sandbox.marketplace import MarketplaceStandIn

        self.stand_ins.append(
            MarketplaceStandIn(
                seed=world.options.seed,
                elapsed=self.elapsed,
                script_seconds=world.options.script_seconds,
                epoch=world.options.epoch,
            )
        )
        for stand_in in self.stand_ins:
            self._routes.extend(stand_in.routes())

    def __repr__(self) -> str:
        return (
            f"<SandboxApp elapsed={self.elapsed():.1f} requests={self._requests.total()} "
            f"tokens={len(self._access_tokens)}>"
        )

    def elapsed(self) -> float:
        """Return the sandbox time in seconds."""
        return self._clock() - self._start + self._advanced

    def statistics(self) -> dict[str, Any]:
        """Return requests by route, faults injected, tokens issued and the world's counts."""
        return {
            "elapsed": self.elapsed(),
            "script_held": self.script_held,
            "requests_total": self._requests.total(),
            "requests": dict(self._requests),
            "faults": self.faults.statistics(),
            "tokens_issued": self._tokens_issued,
            "world": self.world.statistics(),
            "stand_ins": {stand_in.name: stand_in.statistics() for stand_in in self.stand_ins},
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _run_lifespan(receive, send)
        elif scope["type"] == "http":
            request = await _read_request(scope, receive)
            response = await self.handle(request) if request else _too_large()
            await _send_response(send, response)

    async def handle(self, request: Request) -> Response:
        """Route one request, after applying the scripted events due by now."""
        if not self.script_held:
            self.world.advance_to(self.elapsed())
        allowed: list[str] = []
        for method, pattern, name, handler in self._routes:
            match = pattern.match(request.path)
            if match is None:
                continue

            if method != request.method:
                allowed.append(method)
                continue

            self._requests[name] += 1
            response = await handler(request, match)
            log.debug(
                "sandbox.request",
                extra={"method": request.method, "path": request.path, "status": response.status},
            )
            return response

        if allowed:
            return google_error(405, "METHOD_NOT_ALLOWED", f"use {' or '.join(allowed)}")

        return google_error(404, "NOT_FOUND", f"no sandbox route for {request.path}")

    # OAuth.

    async def _token(self, request: Request, match: re.Match[str]) -> Response:
        fields = urllib.parse.parse_qs(request.body.decode("utf-8", "replace"))
        form = {key: values[0] for key, values in fields.items()}
        if form.get("grant_type") != "refresh_token":
            return json_response(400, {"error": "unsupported_grant_type"})

        client_ok = form.get("client_id") == SANDBOX_CLIENT_ID
        if not client_ok or form.get("client_secret") != SANDBOX_CLIENT_SECRET:
            return json_response(401, {"error": "invalid_client"})

        if form.get("refresh_token") != SANDBOX_REFRESH_TOKEN or not self._refresh_token_valid:
            description = "Token has been expired or revoked."
            return json_response(400, {"error": "invalid_grant", "error_description": description})

        token = "sandbox-" + secrets.token_urlsafe(24)
        self._access_tokens[token] = self.elapsed() + TOKEN_LIFETIME
        self._tokens_issued += 1
        body = {"access_token": token, "expires_in": int(TOKEN_LIFETIME), "token_type": "Bearer"}
        return json_response(200, body)

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        expires = self._access_tokens.get(token)
        return scheme.lower() == "bearer" and expires is not None and self.elapsed() < expires

    # Google Business Profile API v4.

    async def _api_preamble(
        self, request: Request, *, route: str, listing: bool = False
    ) -> tuple[Fault, Response | None]:
        """Apply latency, check the token and decide the faults; return an early response if any."""
        fault = self.faults.decide(listing=listing, route=route)
        if fault.latency > 0:
            await trio.sleep(fault.latency)

        if not self._authorized(request):
            error = google_error(
                401, "UNAUTHENTICATED", "Request had invalid authentication credentials."
            )
            challenge = ("WWW-Authenticate", 'Bearer realm="sandbox", error="invalid_token"')
            return fault, dataclasses.replace(error, headers=(challenge,))

        return fault, _fault_response(fault)

    def _find_location(self, match: re.Match[str]) -> SandboxLocation | None:
        return self.world.location(f"accounts/{match[1]}", f"locations/{match[2]}")

    async def _list_reviews(self, request: Request, match: re.Match[str]) -> Response:
        fault, early = await self._api_preamble(request, route="reviews.list", listing=True)
        if early is not None:
            return early

        location = self._find_location(match)
        if location is None:
            return _not_found()

        token = request.query.get("pageToken")
        try:
            _check_order(request.query.get("orderBy"))
            page_size = _page_size(request.query.get("pageSize"))
            after = _decode_page_token(token, location.profile)
        except ValueError as error:
            return google_error(400, "INVALID_ARGUMENT", str(error))

        body = _review_page(location, page_size, after, fault)
        if self.page_token_loop and token and "nextPageToken" in body:
            body["nextPageToken"] = token
            self.faults.counts["page_loop"] += 1
        if fault.missing_fields and body["reviews"]:
            del body["reviews"][0]["createTime"]
        if fault.malformed:
            _corrupt_list(body)
        return json_response(200, body)

    async def _get_review(self, request: Request, match: re.Match[str]) -> Response:
        fault, early = await self._api_preamble(request, route="reviews.get")
        if early is not None:
            return early

        location = self._find_location(match)
        review = self.world.find_review(location.profile, match[3]) if location else None
        if location is None or review is None:
            return _not_found()

        body = review.to_api(location.profile)
        if fault.malformed:
            body["reviewId"] = 12345
        return json_response(200, body)

    async def _put_reply(self, request: Request, match: re.Match[str]) -> Response:
        fault, early = await self._api_preamble(request, route="reviews.reply")
        if early is not None:
            return early

        try:
            reply = msgspec.json.decode(request.body, type=_ReplyBody)
        except msgspec.DecodeError as error:
            return google_error(400, "INVALID_ARGUMENT", f"invalid reply body: {error}")

        location = self._find_location(match)
        if location is None:
            return _not_found()

        review = self.world.post_reply(location.profile, match[3], reply.comment)
        if review is None:
            return _not_found()

        body = review.to_api(location.profile)["reviewReply"]
        if fault.malformed:
            body["updateTime"] = 12345
        return json_response(200, body)

    # Control routes.

    async def _truth(self, request: Request, match: re.Match[str]) -> Response:
        truth = self.world.truth()
        for stand_in in self.stand_ins:
            truth[stand_in.name] = stand_in.truth()
        return json_response(200, truth)

    async def _advance(self, request: Request, match: re.Match[str]) -> Response:
        try:
            advance = msgspec.json.decode(request.body or b"{}", type=_Advance)
        except msgspec.DecodeError as error:
            return json_response(400, {"error": f"invalid advance request: {error}"})

        if advance.seconds < 0:
            message = f"invalid seconds {advance.seconds}: sandbox time only moves forward"
            return json_response(400, {"error": message})

        self._advanced += advance.seconds
        applied = [] if self.script_held else self.world.advance_to(self.elapsed())
        return json_response(
            200, {"elapsed": self.elapsed(), "applied": [event.describe() for event in applied]}
        )

    async def _hold_script(self, request: Request, match: re.Match[str]) -> Response:
        try:
            hold = msgspec.json.decode(request.body or b"{}", type=_ScriptHold)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            message = f'invalid script request: {error}; send {{"held": true}} or {{"held": false}}'
            return json_response(400, {"error": message})

        self.script_held = hold.held
        applied = [] if hold.held else self.world.advance_to(self.elapsed())
        return json_response(
            200, {"held": hold.held, "applied": [event.describe() for event in applied]}
        )

    async def _stats(self, request: Request, match: re.Match[str]) -> Response:
        return json_response(200, self.statistics())

    async def _get_faults(self, request: Request, match: re.Match[str]) -> Response:
        return json_response(200, self._fault_state())

    async def _set_faults(self, request: Request, match: re.Match[str]) -> Response:
        try:
            changes = msgspec.json.decode(request.body, type=dict[str, Any])
            loop = bool(changes.pop("page_token_loop", self.page_token_loop))
            self.faults.update(changes)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            return json_response(400, {"error": f"invalid fault settings: {error}"})

        self.page_token_loop = loop
        return json_response(200, self._fault_state())

    def _fault_state(self) -> dict[str, Any]:
        return {
            **msgspec.structs.asdict(self.faults.settings),
            **self.faults.statistics(),
            "page_token_loop": self.page_token_loop,
        }

    async def _change_auth(self, request: Request, match: re.Match[str]) -> Response:
        try:
            change = msgspec.json.decode(request.body or b"{}", type=_AuthChange)
        except msgspec.DecodeError as error:
            return json_response(400, {"error": f"invalid auth change: {error}"})

        if change.revoke_access_tokens:
            self._access_tokens.clear()
        if change.refresh_token_valid is not None:
            self._refresh_token_valid = change.refresh_token_valid

        return json_response(200, {"refresh_token_valid": self._refresh_token_valid})


def _not_found() -> Response:
    return google_error(404, "NOT_FOUND", "Requested entity was not found.")


def _too_large() -> Response:
    return json_response(413, {"error": f"request body over {MAX_BODY_BYTES} bytes"})


def _fault_response(fault: Fault) -> Response | None:
    if fault.reset:
        return reset_response()

    if fault.status is None:
        return None

    if fault.status == 429:
        # Retry-After carries whole seconds.
        retry_after = str(-int(-(fault.retry_after or 0.0) // 1))
        error = google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for this project.")
        return dataclasses.replace(error, headers=(("Retry-After", retry_after),))

    return google_error(fault.status, "INTERNAL", "Internal error encountered.")


def _check_order(raw: str | None) -> None:
    # Google also offers rating orders; the sandbox serves update time only.
    if raw is not None and " ".join(raw.split()) != "updateTime desc":
        raise ValueError(f"orderBy {raw!r} is not served by the sandbox; use 'updateTime desc'")


def _page_size(raw: str | None) -> int:
    if raw is None:
        return MAX_PAGE_SIZE

    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise ValueError(f"pageSize must be an integer from 1 to {MAX_PAGE_SIZE}, got {raw!r}")

    return int(raw)


def _encode_page_token(profile: str, review: SandboxReview) -> str:
    raw = msgspec.json.encode([profile, review.update_time, review.review_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_page_token(token: str | None, profile: str) -> tuple[float, str] | None:
    """Return the (update time, review id) key that the next page starts after."""
    if not token:
        return None

    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        owner, update_time, review_id = msgspec.json.decode(raw, type=tuple[str, float, str])
    except (ValueError, msgspec.DecodeError) as error:
        raise ValueError(f"invalid pageToken {token!r}") from error

    if owner != profile:
        raise ValueError(f"pageToken {token!r} belongs to another location")

    return update_time, review_id


def _review_page(
    location: SandboxLocation, page_size: int, after: tuple[float, str] | None, fault: Fault
) -> dict[str, Any]:
    # Keyset paging over (updateTime, reviewId) descending: a review edited
    # during paging moves to the front and is missed by that listing, as
    # with any listing ordered by update time.
    remaining = [
        review
        for review in location.live_reviews()
        if after is None or (review.update_time, review.review_id) < after
    ]
    page = remaining[:page_size]
    if fault.duplicate and page:
        page = _with_stale_copy(page)

    body: dict[str, Any] = {
        "reviews": [review.to_api(location.profile) for review in page],
        **location.summary(),
    }
    if len(remaining) > page_size:
        body["nextPageToken"] = _encode_page_token(location.profile, remaining[page_size - 1])

    return body


def _with_stale_copy(page: list[SandboxReview]) -> list[SandboxReview]:
    """Put an older copy of the page's first review in front of it.

    Google's listings can repeat a reviewId.  The copy here has an earlier
    updateTime, so only a client that keeps the latest copy gets the page right.
    """
    original = page[0]
    stale_time = original.update_time - 1.0
    stale = dataclasses.replace(
        original, update_time=stale_time, create_time=min(original.create_time, stale_time)
    )
    return [stale, *page]


def _corrupt_list(body: dict[str, Any]) -> None:
    if body["reviews"]:
        body["reviews"][0]["reviewId"] = 12345
    else:
        body["totalReviewCount"] = "many"


async def _run_lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_request(scope: Scope, receive: Receive) -> Request | None:
    """Read the request body; return None when it exceeds MAX_BODY_BYTES."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None

        chunks.append(chunk)
        more = message.get("more_body", False)

    query = urllib.parse.parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    headers = {
        name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]
    }
    return Request(
        method=scope["method"],
        path=scope["path"],
        query={key: values[0] for key, values in query.items()},
        headers=headers,
        body=b"".join(chunks),
    )


async def _send_response(send: Send, response: Response) -> None:
    # A reset response announces twice the bytes it sends before it breaks off.
    length = len(response.body) * (2 if response.reset else 1)
    headers = [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(length).encode()),
        *((name.lower().encode(), value.encode()) for name, value in response.headers),
    ]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    if response.reset:
        await send({"type": "http.response.body", "body": response.body, "more_body": True})
        # Hypercorn closes a connection whose application fails mid-response.
        raise ConnectionResetFault("sandbox fault: connection closed mid-response")

    await send({"type": "http.response.body", "body": response.body})
