"""Faults on the sandbox's marketplace storefront pages: 5xx, 429, bot challenges, slow pages.

The marketplace stand-in calls :meth:`StorefrontFaults.respond` before
serving a storefront page.  The settings are those of
:class:`~plaudit.sandbox.faults.FaultSettings` (``error_rate``,
``rate_limit_rate``, ``latency``, queued ``next_statuses``), plus
``challenge_rate``: the share of page requests that get a bot-challenge
page (HTTP 503) in place of the storefront.  A storefront is HTML, so
the settings for JSON bodies (malformed, missing fields, duplicates) and
connection resets do nothing here.

- ``GET|POST /_sandbox/marketplace/faults``: read or change the settings.
"""

from __future__ import annotations

import random
import re
from typing import Any, Final, final

import msgspec
import trio

from plaudit.sandbox.app import Handler, Request, Response, json_response
from plaudit.sandbox.faults import FaultInjector

# A challenge page as Cloudflare-style bot protection serves it; the
# connector recognises it by the title and the challenge element.
CHALLENGE_PAGE: Final = (
    "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>"
    '<div id="challenge-running">Checking your browser.</div>'
    "</body></html>"
)
ERROR_PAGE: Final = "<!DOCTYPE html><html><body><h1>Service unavailable</h1></body></html>"


def _html(status: int, body: str, *headers: tuple[str, str]) -> Response:
    return Response(status, body.encode("utf-8"), (("Content-Type", "text/html"), *headers))


@final
class StorefrontFaults:
    """The fault settings of the marketplace stand-in's storefront pages."""

    def __init__(self, *, seed: int) -> None:
        self.injector = FaultInjector(seed=seed)
        self.challenge_rate = 0.0
        self.challenges = 0
        # Separate from the injector's, so its seeded sequence stays as it is.
        self._rng = random.Random(seed + 1)

    def __repr__(self) -> str:
        return f"<StorefrontFaults challenge_rate={self.challenge_rate} {self.injector!r}>"

    def statistics(self) -> dict[str, Any]:
        """Return the injector's counts and the challenge pages served."""
        return {**self.injector.statistics(), "challenges": self.challenges}

    def routes(self) -> list[tuple[str, re.Pattern[str], str, Handler]]:
        """Return the routes that read and change the settings."""
        path = re.compile(r"^/_sandbox/marketplace/faults$")
        return [
            ("GET", path, "marketplace.faults", self._get),
            ("POST", path, "marketplace.faults", self._set),
        ]

    async def respond(self) -> Response | None:
        """Wait out the latency and return the fault's response, or None to serve the page."""
        fault = self.injector.decide(listing=False)
        if fault.latency > 0:
            await trio.sleep(fault.latency)

        if fault.status == 429:
            # Whole seconds, rounded up, as Retry-After allows no fraction.
            seconds = str(-int(-(fault.retry_after or 0.0) // 1))
            return _html(429, ERROR_PAGE, ("Retry-After", seconds))
        if fault.status is not None:
            return _html(fault.status, ERROR_PAGE)

        if self.challenge_rate > 0 and self._rng.random() < self.challenge_rate:
            self.challenges += 1
            return _html(503, CHALLENGE_PAGE)
        return None

    async def _get(self, request: Request, match: re.Match[str]) -> Response:
        settings = msgspec.to_builtins(self.injector.settings)
        return json_response(200, {**settings, "challenge_rate": self.challenge_rate})

    async def _set(self, request: Request, match: re.Match[str]) -> Response:
        try:
            changes = msgspec.json.decode(request.body, type=dict[str, Any])
            rate = msgspec.convert(changes.pop("challenge_rate", self.challenge_rate), float)
            if not 0.0 <= rate <= 1.0:
                return json_response(
                    400, {"error": f"invalid challenge_rate {rate!r}: expected 0 to 1"}
                )
            self.injector.update(changes)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            return json_response(400, {"error": f"invalid fault settings: {error}"})
        self.challenge_rate = rate
        return await self._get(request, match)
