"""The Prometheus endpoint: ``GET /metrics`` and ``GET /healthz`` over HTTP/1.1.

A small h11 server on Trio rather than a full ASGI stack, because the idle
daemon's memory stays smaller that way.  HEAD gets the GET response without
its body.  Other paths get 404 and other methods 405.
"""

from __future__ import annotations

import contextlib
import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import final

import h11
import trio
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

from plaudit.errors import PlauditError
from plaudit.metrics import REGISTRY

logger = logging.getLogger(__name__)

COLLECT_ERRORS = Counter(
    "plaudit_metrics_collect_errors_total",
    "Scrapes whose refresh of journal-derived gauges failed; those gauges kept older values.",
    registry=REGISTRY,
)

RECEIVE_SIZE = 16 * 1024
# A scrape request is a few hundred bytes of headers and no body.
MAX_REQUEST_HEAD = 16 * 1024
MAX_REQUEST_BODY = 16 * 1024
TEXT_PLAIN = "text/plain; charset=utf-8"


class ListenAddressError(PlauditError):
    """A listener (the metrics endpoint or the inbound webhooks) could not bind its address."""


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    body: bytes
    content_type: str = TEXT_PLAIN
    allow: str | None = None


@dataclass(frozen=True, slots=True)
class MetricsServerStatistics:
    """Counters of a `MetricsServer` since it started."""

    address: tuple[str, int] | None
    connections_open: int
    requests_total: int
    connections_rejected: int


@final
class MetricsServer:
    """Serves the metrics endpoint on one TCP address; see the module docstring."""

    def __init__(
        self,
        *,
        collect: Callable[[], None] | None = None,
        max_connections: int = 16,
        idle_timeout: float = 30.0,
    ) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        if idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive seconds, got {idle_timeout}")

        self._collect = collect
        self._slots = trio.CapacityLimiter(max_connections)
        self._idle_timeout = idle_timeout
        self._address: tuple[str, int] | None = None
        self._requests_total = 0
        self._connections_rejected = 0

    def __repr__(self) -> str:
        return (
            f"<MetricsServer address={self._address} "
            f"connections={self._slots.borrowed_tokens}/{int(self._slots.total_tokens)}>"
        )

    def statistics(self) -> MetricsServerStatistics:
        return MetricsServerStatistics(
            address=self._address,
            connections_open=self._slots.borrowed_tokens,
            requests_total=self._requests_total,
            connections_rejected=self._connections_rejected,
        )

    async def serve(
        self,
        host: str,
        port: int,
        *,
        task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host:port``, report the bound address, and serve until cancelled."""
        listeners = await open_listeners(host, port)
        bound = listeners[0].socket.getsockname()
        self._address = (str(bound[0]), int(bound[1]))
        logger.info("metrics.listening", extra={"host": self._address[0], "port": self._address[1]})
        task_status.started(self._address)
        await trio.serve_listeners(self._run_connection, listeners)

    async def _run_connection(self, stream: trio.SocketStream) -> None:
        async with stream:
            try:
                self._slots.acquire_nowait()
            except trio.WouldBlock:
                self._connections_rejected += 1
                await _reject_busy(stream)
                return

            try:
                await self._serve_connection(stream)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                logger.debug("metrics.connection_lost", extra={"error": repr(exc)})
            finally:
                self._slots.release()

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_HEAD)
        while True:
            try:
                request = await self._receive_within_timeout(connection, stream)
            except h11.RemoteProtocolError as exc:
                await _send_protocol_error(connection, stream, exc)
                return
            if request is None:
                return

            self._requests_total += 1
            # A client that stops reading must not hold a connection slot forever.
            with trio.move_on_after(self._idle_timeout):
                await _send(connection, stream, request, self._route(request))
            if connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
                return
            connection.start_next_cycle()

    async def _receive_within_timeout(
        self, connection: h11.Connection, stream: trio.SocketStream
    ) -> h11.Request | None:
        with trio.move_on_after(self._idle_timeout):
            return await _receive_request(connection, stream)

        logger.debug("metrics.connection_idle", extra={"timeout_seconds": self._idle_timeout})
        return None

    def _route(self, request: h11.Request) -> _Response:
        path = request.target.split(b"?", 1)[0]
        if path not in (b"/metrics", b"/healthz"):
            return _Response(404, b"not found; this server serves /metrics and /healthz\n")
        if request.method not in (b"GET", b"HEAD"):
            return _Response(405, b"method not allowed; use GET\n", allow="GET, HEAD")
        if path == b"/healthz":
            return _Response(200, b"ok\n")

        self._refresh()
        return _Response(200, generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)

    def _refresh(self) -> None:
        if self._collect is None:
            return
        try:
            self._collect()
        except Exception:
            # Serve the other metrics anyway: a failed scrape would hide them all.
            COLLECT_ERRORS.inc()
            logger.exception("metrics.collect_failed")


async def _receive_request(
    connection: h11.Connection, stream: trio.SocketStream
) -> h11.Request | None:
    """Read one whole request, discarding any body; None when the client closed."""
    request: h11.Request | None = None
    body_size = 0
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(await stream.receive_some(RECEIVE_SIZE))
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body_size += len(event.data)
            if body_size > MAX_REQUEST_BODY:
                raise h11.RemoteProtocolError("request body too large", error_status_hint=413)
        elif isinstance(event, h11.EndOfMessage):
            return request
        else:
            # ConnectionClosed, or PAUSED after a complete request.
            return None


async def _send(
    connection: h11.Connection,
    stream: trio.SocketStream,
    request: h11.Request,
    response: _Response,
) -> None:
    headers = [
        ("Content-Type", response.content_type),
        ("Content-Length", str(len(response.body))),
    ]
    if response.allow is not None:
        headers.append(("Allow", response.allow))

    data = connection.send(h11.Response(status_code=response.status, headers=headers))
    if request.method != b"HEAD":
        data += connection.send(h11.Data(data=response.body)) or b""
    data += connection.send(h11.EndOfMessage()) or b""
    await stream.send_all(data or b"")


async def _send_protocol_error(
    connection: h11.Connection, stream: trio.SocketStream, exc: h11.RemoteProtocolError
) -> None:
    logger.debug("metrics.bad_request", extra={"error": str(exc)})
    if connection.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return

    body = f"bad request: {exc}\n".encode()
    headers = [("Content-Type", TEXT_PLAIN), ("Content-Length", str(len(body)))]
    data = connection.send(h11.Response(status_code=exc.error_status_hint, headers=headers)) or b""
    data += connection.send(h11.Data(data=body)) or b""
    data += connection.send(h11.EndOfMessage()) or b""
    await stream.send_all(data)


async def _reject_busy(stream: trio.SocketStream) -> None:
    body = b"too many connections; retry later\n"
    head = f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: {TEXT_PLAIN}\r\n"
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    # The client may already be gone; nothing else is owed to it.
    with trio.move_on_after(1.0), contextlib.suppress(trio.BrokenResourceError):
        await stream.send_all(head.encode() + body)


async def open_listeners(
    host: str, port: int, *, table: str = "metrics"
) -> list[trio.SocketListener]:
    """Open TCP listeners on ``host:port``, translating bind errors into ListenAddressError.

    ``table`` is the config table that sets the address, named in the messages.
    """
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        return await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            message = (
                f"{table} address {shown} is already in use; "
                f"set [{table}] port to a free port or stop the other process"
            )
        elif exc.errno == errno.EADDRNOTAVAIL:
            message = (
                f"{table} address {shown} is not an address of this host; "
                f"set [{table}] host to a local address such as 127.0.0.1"
            )
        elif exc.errno == errno.EACCES:
            message = (
                f"permission denied listening on {table} address {shown}; "
                f"set [{table}] port to 1024 or above"
            )
        else:
            message = f"cannot listen on {table} address {shown}: {exc.strerror or exc}"
        raise ListenAddressError(message) from exc


async def serve_metrics(
    host: str,
    port: int,
    *,
    collect: Callable[[], None] | None = None,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the metrics endpoint until cancelled; started() reports the bound (host, port).

    ``collect`` runs before each ``/metrics`` response to refresh gauges.
    """
    server = MetricsServer(collect=collect)
    await server.serve(host, port, task_status=task_status)
