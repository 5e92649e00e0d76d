"""The HTTP side of webhook attempts: keep-alive clients, TLS trust, sending, errors.

Each endpoint gets its own :class:`EndpointClients`: a set of httpx clients
with one keep-alive connection each, one per attempt in flight.  A single
client with a pool of N connections would do the same job.  But httpcore
1.0 scans every pooled connection, polling each idle socket, whenever a
request starts or ends.  In one cProfile run of ``bench/webhooks.py`` with
eight attempts in flight, that scan took about a tenth of the CPU time.
Separate clients per endpoint also keep apart connections that share an
address but were opened for different TLS names.  Each client costs about
40 KB before it connects (measured with httpx 0.29 and the shared TLS
context), and clients are made only when attempts need them.
"""

from __future__ import annotations

import ssl
from typing import Final, NamedTuple, final

import httpx
import trio

from plaudit.connectors.tls import shared_ssl_context
from plaudit.webhooks.delivery import AttemptResult
from plaudit.webhooks.endpoints import Endpoint

# A receiver's response body is read up to this size and otherwise ignored;
# reading it lets the connection be reused.
MAX_RESPONSE_BYTES: Final = 64 * 1024


class ClientKey(NamedTuple):
    """The endpoint settings that a set of clients was built from."""

    url: str
    ca_file: str
    max_in_flight: int

    @classmethod
    def of(cls, endpoint: Endpoint) -> ClientKey:
        return cls(endpoint.url, endpoint.ca_file, endpoint.max_in_flight)


@final
class EndpointClients:
    """Single-connection keep-alive clients of one endpoint, handed out one per attempt."""

    def __init__(self, key: ClientKey, context: ssl.SSLContext) -> None:
        self.key = key
        self._context = context
        self._idle: list[httpx.AsyncClient] = []
        self._every: list[httpx.AsyncClient] = []

    def __repr__(self) -> str:
        return (
            f"<EndpointClients url={self.key.url!r} open={len(self._every)} idle={len(self._idle)}>"
        )

    def checkout(self) -> httpx.AsyncClient:
        """Return an idle client, or a new one when every client is busy."""
        if self._idle:
            return self._idle.pop()
        client = httpx.AsyncClient(
            verify=self._context,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )
        self._every.append(client)
        return client

    def checkin(self, client: httpx.AsyncClient) -> None:
        """Take back a client after its attempt, keeping its connection open for the next."""
        self._idle.append(client)

    async def aclose(self) -> None:
        """Close every client.  Call it only while no attempt uses one."""
        self._idle.clear()
        while self._every:
            await self._every.pop().aclose()


def build_clients(endpoint: Endpoint) -> EndpointClients:
    """Return the clients of ``endpoint``, or raise ssl.SSLError or OSError for a bad ca_file."""
    return EndpointClients(ClientKey.of(endpoint), endpoint_ssl_context(endpoint.ca_file))


def endpoint_ssl_context(ca_file: str) -> ssl.SSLContext:
    """Return the TLS context that checks an endpoint's certificate.

    With ``ca_file`` empty it is the daemon's shared context, which trusts
    certifi's bundle.  Otherwise it trusts only the CAs in that PEM file.
    Raises ssl.SSLError or OSError when the file cannot be loaded.
    """
    if not ca_file:
        return shared_ssl_context()
    return ssl.create_default_context(cafile=ca_file)


def transport_error(error: httpx.HTTPError, request: httpx.Request) -> str:
    """Return the attempt's error text for a request that got no response."""
    if isinstance(error, httpx.TimeoutException):
        return f"timed out ({type(error).__name__})"
    certificate = _certificate_error(error)
    if certificate is not None:
        name = request.extensions.get("sni_hostname") or request.url.host
        return (
            f"TLS certificate of {name} rejected ({certificate}); the receiver must present "
            "a valid certificate for this name, signed by a CA in the endpoint's ca_file "
            "(or the system bundle when ca_file is not set)"
        )
    return f"{type(error).__name__}: {error}".rstrip(": ")


def _certificate_error(error: BaseException) -> str | None:
    """Return the verification message when ``error`` comes from a rejected certificate."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen.verify_message or str(seen)
        seen = seen.__cause__ or seen.__context__
    # httpcore re-raises the ssl error as a ConnectError with the text only.
    text = str(error)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return text
    return None


async def post_attempt(
    client: httpx.AsyncClient, request: httpx.Request, *, limit: float, began: float
) -> AttemptResult:
    """Send one attempt and return its status, or its error, within ``limit`` seconds.

    ``began`` is the Trio time the attempt started, for its latency.
    """
    status: int | None = None
    # One deadline for the whole attempt, so a receiver that sends its response
    # a byte at a time cannot stretch it past ``timeout``.
    with trio.move_on_after(limit):
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as error:
            return AttemptResult(None, ms_since(began), transport_error(error, request))
        try:
            status = response.status_code
            await _read_some(response)
        except httpx.HTTPError:
            # The status line arrived; a broken body does not change it.
            pass
        finally:
            with trio.CancelScope(shield=True):
                await response.aclose()
        return AttemptResult(status, ms_since(began))
    if status is not None:
        return AttemptResult(status, ms_since(began))
    return AttemptResult(None, ms_since(began), f"timed out after {limit:g} s")


async def _read_some(response: httpx.Response) -> None:
    received = 0
    async for chunk in response.aiter_raw():
        received += len(chunk)
        if received >= MAX_RESPONSE_BYTES:
            return


def ms_since(began: float) -> float:
    """Return the milliseconds since the Trio time ``began``."""
    return (trio.current_time() - began) * 1000
