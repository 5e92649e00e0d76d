"""OAuth 2.0 access tokens for the Google Business Profile API.

:class:`AccessToken` gets an access token with the refresh-token grant
(RFC 6749 section 6) and caches it until shortly before it expires.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final, final

import httpx
import msgspec
import trio

from plaudit.config.model import GoogleConfig
from plaudit.connectors.apiclient import decode_json
from plaudit.connectors.google_errors import raise_for_status
from plaudit.connectors.google_parse import PLATFORM_TITLE
from plaudit.errors import PlatformError, ReconnectRequiredError

# Logs under the name of the façade module, so log lines keep their logger name.
log = logging.getLogger("plaudit.connectors.google")

# A token is refreshed this many seconds before the expiry Google reports, so
# no request leaves with a token that expires in flight.
TOKEN_EXPIRY_MARGIN: Final = 60.0

PostForm = Callable[[str, dict[str, str]], Awaitable[httpx.Response]]
"""Sends a form-encoded POST to a URL and returns the response."""


class _TokenResponse(msgspec.Struct, kw_only=True):
    access_token: str
    expires_in: float = 3600.0
    token_type: str = "Bearer"


class _OAuthError(msgspec.Struct, kw_only=True):
    error: str = ""
    error_description: str = ""


@final
class AccessTokenStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Refresh count and validity of one cached access token."""

    refreshes: int
    # Seconds until the cached access token is refreshed; None without one.
    valid_for: float | None


@final
class AccessToken:
    """The cached access token of one Google account connection.

    Concurrent callers share the token, and one refresh runs at a time.
    """

    def __init__(
        self,
        config: GoogleConfig,
        *,
        client_secret: str,
        refresh_token: str,
        post_form: PostForm,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._client_secret = client_secret
        self._refresh_token = refresh_token
        self._post_form = post_form
        self._clock = clock
        self._wall_clock = wall_clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = trio.Lock()
        self._refreshes = 0

    def __repr__(self) -> str:
        return f"<AccessToken {self.state} refreshes={self._refreshes}>"

    @property
    def state(self) -> str:
        """``cached`` while a token is stored, else ``none``."""
        return "cached" if self._token else "none"

    def statistics(self) -> AccessTokenStatistics:
        """Return the refresh count and the seconds until the next refresh."""
        valid_for = self._refresh_at - self._clock() if self._token else None
        return AccessTokenStatistics(refreshes=self._refreshes, valid_for=valid_for)

    def forget(self) -> None:
        """Drop the cached token, so the next :meth:`get` refreshes it."""
        self._token = None

    async def get(self) -> str:
        """Return a valid access token, refreshing it when missing or close to expiry."""
        if self._token is not None and self._clock() < self._refresh_at:
            return self._token

        # One refresh at a time; callers that waited use the new token.
        async with self._lock:
            if self._token is not None and self._clock() < self._refresh_at:
                return self._token

            return await self._refresh()

    async def _refresh(self) -> str:
        """Exchange the refresh token for an access token (OAuth 2.0 refresh_token grant)."""
        form = {
            "grant_type": "refresh_token",
            "client_id": self._config.client_id,
            "client_secret": self._client_secret,
            "refresh_token": self._refresh_token,
        }
        response = await self._post_form(self._config.token_url, form)
        if response.status_code in (400, 401):
            _raise_oauth_error(response, self._config.token_url)

        raise_for_status(response, f"POST {self._config.token_url}", now=self._wall_clock())
        body = decode_json(response.content, _TokenResponse, "token response", PLATFORM_TITLE)
        self._token = body.access_token
        # Refresh well before expiry, but never sooner than half the lifetime.
        margin = min(TOKEN_EXPIRY_MARGIN, body.expires_in / 2)
        self._refresh_at = self._clock() + body.expires_in - margin
        self._refreshes += 1
        log.info("google.token_refreshed", extra={"expires_in": body.expires_in})
        return body.access_token


def _raise_oauth_error(response: httpx.Response, token_url: str) -> None:
    """Raise for an OAuth error response (RFC 6749 section 5.2) from the token endpoint.

    Returns for other errors, so the status decides.
    """
    try:
        body = msgspec.json.decode(response.content, type=_OAuthError)
    except msgspec.DecodeError:
        body = _OAuthError()

    if body.error == "invalid_grant":
        raise ReconnectRequiredError(
            f"POST {token_url}: Google rejected the refresh token (invalid_grant: "
            f"{body.error_description or 'revoked or expired'}); reconnect the Google account "
            "and store the new refresh token in platforms.google.refresh_token_file"
        )

    if body.error in ("invalid_client", "unauthorized_client"):
        raise PlatformError(
            f"POST {token_url}: Google rejected the OAuth client ({body.error}); "
            "check platforms.google.client_id and client_secret",
            retryable=False,
            status=response.status_code,
        )
