"""The HTTP plumbing shared by the Facebook, Trustpilot and Yelp connectors.

:class:`ApiClient` sends one JSON API call with the shared retry policy of
:mod:`plaudit.reliability.retry`, translates httpx errors into
:class:`~plaudit.errors.PlatformError` and records the request metrics.  The
platform's own error shape and any refusal that must not be retried are
decided by a per-platform ``inspect`` hook, called before the generic status
classification.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar, final

import httpx
import msgspec
import trio

from plaudit.config.model import ApiLimitsConfig, RetryConfig
from plaudit.connectors.retry_causes import count_retry
from plaudit.connectors.tls import shared_ssl_context
from plaudit.errors import PlatformError
from plaudit.metrics import PLATFORM_REQUEST_DURATION, PLATFORM_REQUESTS
from plaudit.reliability.limiter import QuotaLimiter, parse_usage_headers
from plaudit.reliability.retry import Verdict, call_with_retry, classify_status, parse_retry_after

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# Characters of a non-JSON error body quoted in a message.
_BODY_EXCERPT: Final = 200
# A page of reviews is at most a few hundred kilobytes (an estimate), so a
# longer body is a fault, and it is cut off rather than read into memory whole.
MAX_RESPONSE_BYTES: Final = 8 * 1024 * 1024

Headers = Callable[[], Awaitable[dict[str, str]]]
"""Returns the authorisation headers of the next attempt (and refreshes a token when needed)."""

Inspect = Callable[[httpx.Response, str], None]
"""Raises a platform-specific error for a response, or returns to let the status decide."""


def decode_json(data: bytes | dict[str, Any], kind: type[_T], what: str, platform: str) -> _T:
    """Decode JSON bytes or an already decoded dict into ``kind``.

    A malformed body raises a retryable PlatformError naming the platform and
    the JSON path, because a proxy or an overloaded upstream can garble a body.
    """
    try:
        if isinstance(data, dict):
            return msgspec.convert(data, kind)

        return msgspec.json.decode(data, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise PlatformError(f"malformed {what} from {platform}: {error}", retryable=True) from error


def body_excerpt(response: httpx.Response) -> str:
    """Return the start of a response body for an error message."""
    return response.text[:_BODY_EXCERPT].strip() or "(empty body)"


@final
class ApiClientStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of one API client since it was created."""

    requests: int
    retries: int
    last_status: int | None


@final
class ApiClient:
    """Sends a platform's JSON API calls with retries, error translation and metrics."""

    def __init__(
        self,
        platform: str,
        *,
        timeout: float,
        retry: RetryConfig,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = trio.sleep,
        clock: Callable[[], float] = trio.current_time,
        wall_clock: Callable[[], float] = time.time,
        limiter: QuotaLimiter | None = None,
    ) -> None:
        self.platform = platform
        self.limiter = limiter
        self.timeout = timeout
        self.retry = retry
        self.clock = clock
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            verify=shared_ssl_context(),
        )
        self._requests = 0
        self._retries = 0
        self._last_status: int | None = None

    def __repr__(self) -> str:
        return (
            f"<ApiClient {self.platform} requests={self._requests} retries={self._retries} "
            f"last_status={self._last_status}>"
        )

    def statistics(self) -> ApiClientStatistics:
        """Return the request counters."""
        return ApiClientStatistics(
            requests=self._requests, retries=self._retries, last_status=self._last_status
        )

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    async def call(
        self,
        method: str,
        url: str,
        parse: Callable[[bytes], _T],
        *,
        headers: Headers | None = None,
        inspect: Inspect | None = None,
        hint: str = "check the request and the configuration",
        params: dict[str, str | int] | None = None,
        json: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
        retries: bool = True,
    ) -> _T:
        """Send a call with in-call retries and return the parsed body.

        Each attempt first waits for the limiter, outside the attempt
        timeout.  ``what`` in messages is "METHOD url" without the query,
        which may carry credentials.  ``retries=False`` makes one attempt,
        for a request that must not be sent twice before the caller has
        checked whether the first one took effect.
        """
        what = f"{method} {url}"
        policy = self.retry if retries else msgspec.structs.replace(self.retry, max_attempts=1)

        async def attempt() -> _T:
            extra = await headers() if headers is not None else None
            response = await self.send(
                method, url, headers=extra, params=params, json=json, data=data
            )
            if inspect is not None:
                inspect(response, what)
            raise_for_status(
                response, what, platform=self.platform, hint=hint, now=self._wall_clock()
            )
            return parse(response.content)

        async def back_off(delay: float) -> None:
            # NOTE: a limiter wait here counts towards retry.deadline, so a long
            # usage pause ends the in-call retries and the job-level retry takes over.
            await self._sleep(delay)
            await self._wait_for_quota()

        await self._wait_for_quota()
        return await call_with_retry(
            attempt,
            policy=policy,
            what=what,
            rng=self._rng,
            sleep=back_off,
            clock=self.clock,
            on_retry=self._count_retry,
        )

    async def _wait_for_quota(self) -> None:
        if self.limiter is not None:
            await self.limiter.acquire()

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str | int] | None = None,
        json: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send one HTTP request, translating httpx errors and recording metrics.

        The usage headers of the response feed the limiter.  Waiting for the
        limiter is the caller's part (:meth:`call` does it), because a wait
        inside an attempt would count against the attempt timeout.
        """
        started = self.clock()
        self._requests += 1
        try:
            async with self._http.stream(
                method, url, headers=headers, params=params, json=json, data=data
            ) as streamed:
                response = await read_limited(streamed, f"{method} {url}", platform=self.platform)
        except httpx.HTTPError as error:
            PLATFORM_REQUESTS.labels(platform=self.platform, outcome=outcome_of_error(error)).inc()
            raise translate_http_error(
                error, method, url, platform=self.platform, timeout=self.timeout
            ) from error
        finally:
            PLATFORM_REQUEST_DURATION.labels(platform=self.platform).observe(self.clock() - started)

        self._last_status = response.status_code
        if self.limiter is not None:
            self.limiter.observe(parse_usage_headers(response.headers, now=self._wall_clock()))
        PLATFORM_REQUESTS.labels(
            platform=self.platform, outcome=outcome_of(response.status_code)
        ).inc()
        return response

    def _count_retry(self, error: PlatformError, attempt: int, delay: float) -> None:
        self._retries += 1
        count_retry(self.platform, error)


def outcome_of_error(error: httpx.HTTPError) -> str:
    """Return the metric outcome label of a request that raised ``error``: retried or not."""
    # httpx counts an unsupported scheme as a transport error, but no retry can help it.
    if isinstance(error, httpx.UnsupportedProtocol):
        return "error"

    return "retryable" if isinstance(error, httpx.TransportError) else "error"


def translate_http_error(
    error: httpx.HTTPError,
    method: str,
    url: str,
    *,
    platform: str,
    timeout: float,
    url_keys: tuple[str, ...] = ("api_base",),
) -> PlatformError:
    """Return the PlatformError for an httpx exception; transport failures are retryable.

    ``url_keys`` are the keys of ``[platforms.<platform>]`` that hold the
    request URLs, named when a URL has a scheme httpx cannot send.
    """
    if isinstance(error, httpx.UnsupportedProtocol):
        keys = " and ".join(f"platforms.{platform}.{key}" for key in url_keys)
        return PlatformError(
            f"{method} {url}: unsupported URL scheme; {keys} must be http(s) URLs",
            retryable=False,
        )

    if isinstance(error, httpx.TimeoutException):
        return PlatformError(
            f"{method} {url} timed out after {timeout} s ({type(error).__name__}); "
            f"the call will be retried, raise platforms.{platform}.request_timeout "
            "if this persists",
            retryable=True,
        )

    if isinstance(error, httpx.TransportError):
        return PlatformError(
            f"{method} {url} failed: {type(error).__name__}: {error}; the call will be retried",
            retryable=True,
        )

    return PlatformError(f"{method} {url} failed: {type(error).__name__}: {error}", retryable=False)


async def read_limited(streamed: httpx.Response, what: str, *, platform: str) -> httpx.Response:
    """Read a streamed response's body of at most MAX_RESPONSE_BYTES; return the read response.

    Raises a retryable PlatformError when the body is longer.
    """
    body = bytearray()
    async for chunk in streamed.aiter_bytes():
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            PLATFORM_REQUESTS.labels(platform=platform, outcome="retryable").inc()
            raise PlatformError(
                f"{what} returned a body over {MAX_RESPONSE_BYTES} bytes, far more than a "
                f"page of reviews; the call will be retried, check platforms.{platform}.api_base",
                retryable=True,
            )

    # aiter_bytes() has decoded the body, so the copy drops the encoding headers.
    headers = [
        (name, value)
        for name, value in streamed.headers.multi_items()
        if name.lower() not in ("content-encoding", "content-length")
    ]
    return httpx.Response(
        streamed.status_code, headers=headers, content=bytes(body), request=streamed.request
    )


def limited_client(
    platform: str, *, timeout: float, retry: RetryConfig, limits: ApiLimitsConfig, **options: Any
) -> ApiClient:
    """Build an ApiClient whose requests keep within ``limits``, on the client's clock.

    ``options`` go to :class:`ApiClient` (transport, rng, sleep, clocks).
    """
    clock = options.get("clock", trio.current_time)
    limiter = QuotaLimiter(platform, limits, clock=clock)
    return ApiClient(platform, timeout=timeout, retry=retry, limiter=limiter, **options)


def outcome_of(status: int) -> str:
    """Return the metric outcome label of an HTTP status: ok, retryable or error."""
    verdict = classify_status(status)
    if verdict is Verdict.SUCCESS:
        return "ok"

    return "retryable" if verdict is Verdict.RETRY else "error"


def raise_for_status(
    response: httpx.Response, what: str, *, platform: str, hint: str, now: float
) -> None:
    """Raise PlatformError unless the response is 2xx; 408, 429 and 5xx are retryable."""
    status = response.status_code
    verdict = classify_status(status)
    if verdict is Verdict.SUCCESS:
        return

    excerpt = body_excerpt(response)
    if verdict is Verdict.RETRY:
        raise PlatformError(
            f"{what} failed with HTTP {status} from {platform}: {excerpt}; "
            "the call will be retried",
            retryable=True,
            status=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After"), now=now),
        )

    raise PlatformError(
        f"{what} failed with HTTP {status} from {platform}: {excerpt}; {hint}",
        retryable=False,
        status=status,
    )
