"""The inbound listener: ``POST /inbound/{provider}`` over HTTP/1.1 with h11 on Trio.

Each request is verified on its raw body, stored in the journal's inbox and
only then acknowledged with a 2xx, so a provider never sees success for an event that
a crash could lose.  Answers:

- 200 for a stored request, and for a repeat of one stored before (the
  provider must stop retrying it; nothing is stored or processed twice);
- 400 malformed, 401 unsigned, 403 forged or stale, 404 unknown provider or
  path, 405 wrong method, 408 body not received in time, 413 body over the
  limit;
- 503 when the journal cannot store the request, so the provider retries.

Each connection runs in its own task, and an exception while handling a
request is logged and closes only that connection.  A connection idle for
``idle_timeout`` seconds before a request head is closed.  A body that
stalls for as long, or is not complete within ``body_timeout`` seconds
(a client trickling bytes), gets 408.  After an error response
sent before the body was read, the rest of the body is read and discarded
(at most ``DRAIN_BYTES`` within ``DRAIN_SECONDS``) before the close, so the
client reads the response instead of a connection reset.

``GET /inbound/facebook`` answers Facebook's subscription handshake, and
``/unsubscribe/{token}`` serves the one-click unsubscribe pages when given.
"""

from __future__ import annotations

import logging
import math
import time
import urllib.parse
from collections.abc import Callable
from typing import Final, final

import h11
import msgspec
import trio

from plaudit import metrics
from plaudit.daemon.metrics_http import open_listeners
from plaudit.errors import JournalError
from plaudit.inbound import inbox, verify
from plaudit.inbound.providers import KEPT_HEADERS, Request, Verifiers
from plaudit.journal import AsyncJournal
from plaudit.messaging import unsubscribe

log = logging.getLogger(__name__)

RECEIVE_SIZE: Final = 64 * 1024
MAX_HEAD_BYTES: Final = 32 * 1024
PATH_PREFIX: Final = "/inbound/"
TEXT_PLAIN: Final = "text/plain; charset=utf-8"
# Bounds of the discarded request body after an early error response.
DRAIN_BYTES: Final = 1024 * 1024
DRAIN_SECONDS: Final = 2.0


class _BodyTimeout(Exception):
    """The request body stopped arriving, or was too slow, before it was complete."""


@final
class _Timeouts(msgspec.Struct, frozen=True, kw_only=True):
    """Limits of reading one request body: seconds without data, and a ``trio`` deadline."""

    idle_seconds: float
    deadline: float


@final
class InboundStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of an :class:`InboundServer` since it started."""

    address: tuple[str, int] | None
    connections_open: int
    requests_total: int
    accepted: int
    duplicates: int
    rejected: int


@final
class _Answer(msgspec.Struct, frozen=True):
    status: int
    outcome: str
    text: str
    close: bool = False
    content_type: str = TEXT_PLAIN


@final
class InboundServer:
    """Serve the inbound routes on one TCP address; see the module docstring."""

    def __init__(
        self,
        journal: AsyncJournal,
        verifiers: Verifiers,
        *,
        max_body_bytes: int,
        clock: Callable[[], float] = time.time,
        max_connections: int = 256,
        idle_timeout: float = 30.0,
        body_timeout: float = 60.0,
        unsubscribe_pages: unsubscribe.UnsubscribePages | None = None,
    ) -> None:
        self._journal = journal
        self._unsubscribe = unsubscribe_pages
        self._verifiers = verifiers
        self._max_body = max_body_bytes
        self._clock = clock
        self._slots = trio.CapacityLimiter(max_connections)
        if not (idle_timeout > 0 and math.isfinite(idle_timeout)):
            raise ValueError(f"idle_timeout must be positive finite seconds, got {idle_timeout}")
        self._idle_timeout = idle_timeout
        if not (body_timeout > 0 and math.isfinite(body_timeout)):
            raise ValueError(f"body_timeout must be positive finite seconds, got {body_timeout}")
        self._body_timeout = body_timeout
        self._address: tuple[str, int] | None = None
        self._requests = 0
        self._accepted = 0
        self._duplicates = 0
        self._rejected = 0

    def __repr__(self) -> str:
        return (
            f"<InboundServer address={self._address} providers={sorted(self._verifiers.checks)} "
            f"accepted={self._accepted} rejected={self._rejected}>"
        )

    def statistics(self) -> InboundStatistics:
        return InboundStatistics(
            address=self._address,
            connections_open=self._slots.borrowed_tokens,
            requests_total=self._requests,
            accepted=self._accepted,
            duplicates=self._duplicates,
            rejected=self._rejected,
        )

    async def serve(
        self,
        host: str,
        port: int,
        *,
        task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host:port``, report the bound address, and serve until cancelled."""
        listeners = await open_listeners(host, port, table="inbound")
        bound = listeners[0].socket.getsockname()
        self._address = (str(bound[0]), int(bound[1]))
        log.info(
            "inbound.listening",
            extra={
                "host": self._address[0],
                "port": self._address[1],
                "providers": sorted(self._verifiers.checks),
            },
        )
        task_status.started(self._address)
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, stream: trio.SocketStream) -> None:
        async with stream, self._slots:
            try:
                await self._serve(stream)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
                log.debug("inbound.connection_lost", extra={"error": repr(error)})
            except Exception:
                # A bug in handling one request must not stop the listener.
                log.exception("inbound.connection_failed")

    async def _serve(self, stream: trio.SocketStream) -> None:
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        while True:
            head: h11.Request | _Answer | None = None
            with trio.move_on_after(self._idle_timeout):
                head = await _next_head(connection, stream)
            if head is None:
                # The client closed, or sent no complete request head in time.
                return
            try:
                answer = await self._answer(connection, stream, head)
            except _BodyTimeout:
                log.info(
                    "inbound.body_timeout",
                    extra={"provider": _provider_of(head), "body_timeout": self._body_timeout},
                )
                answer = _Answer(
                    408,
                    "timeout",
                    f"request body not received within {self._body_timeout:g} s, or idle "
                    f"for {self._idle_timeout:g} s; send the whole body at once\n",
                    close=True,
                )
                self._count(_provider_of(head), answer)
            with trio.move_on_after(self._idle_timeout) as sending:
                await _send(connection, stream, answer)
            if sending.cancelled_caught:
                return
            if answer.close or connection.our_state is not h11.DONE:
                await _drain(connection, stream)
                return
            if connection.their_state is not h11.DONE:
                return
            connection.start_next_cycle()

    async def _answer(
        self, connection: h11.Connection, stream: trio.SocketStream, head: h11.Request | _Answer
    ) -> _Answer:
        if isinstance(head, _Answer):
            return head
        self._requests += 1
        target = head.target.decode("ascii", errors="replace")
        path, _, query = target.partition("?")
        if self._unsubscribe is not None and path.startswith(unsubscribe.PATH_PREFIX):
            return await _unsubscribe_answer(
                self._unsubscribe, connection, stream, head, path, timeouts=self._timeouts()
            )
        provider = path.removeprefix(PATH_PREFIX) if path.startswith(PATH_PREFIX) else ""
        answer = self._route(head, provider, query)
        if answer is None:
            answer = await self._receive(connection, stream, head, provider)
        self._count(provider, answer)
        return answer

    def _timeouts(self) -> _Timeouts:
        """Start the clock of one request body: idle limit and absolute deadline."""
        deadline = trio.current_time() + self._body_timeout
        return _Timeouts(idle_seconds=self._idle_timeout, deadline=deadline)

    def _route(self, head: h11.Request, provider: str, query: str) -> _Answer | None:
        """Decide what needs no body: unknown routes, methods, oversized bodies, handshakes."""
        if provider not in self._verifiers.checks:
            return _Answer(
                404, "not_found", "not found; POST to /inbound/<configured provider>\n", close=True
            )
        if head.method == b"GET" and provider == "facebook":
            return self._handshake(query)
        if head.method != b"POST":
            return _Answer(405, "method_not_allowed", "method not allowed; use POST\n", close=True)
        length = _content_length(head)
        if length is not None and length > self._max_body:
            return _Answer(
                413, "oversized", f"body over the limit of {self._max_body} bytes\n", close=True
            )
        return None

    def _handshake(self, query: str) -> _Answer:
        fields = dict(urllib.parse.parse_qsl(query))
        try:
            challenge = verify.verify_facebook_handshake(fields, self._verifiers.verify_token)
        except verify.Rejected as error:
            return _Answer(error.status, "handshake_rejected", error.reason + "\n", close=True)
        return _Answer(200, "handshake", challenge)

    async def _receive(
        self,
        connection: h11.Connection,
        stream: trio.SocketStream,
        head: h11.Request,
        provider: str,
    ) -> _Answer:
        path, _, query = head.target.decode("ascii", errors="replace").partition("?")
        try:
            body = await _read_body(connection, stream, self._max_body, self._timeouts())
        except h11.RemoteProtocolError as error:
            return _Answer(400, "malformed", f"bad request body: {error}\n", close=True)
        if body is None:
            return _Answer(
                413, "oversized", f"body over the limit of {self._max_body} bytes\n", close=True
            )
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1") for name, value in head.headers
        }
        request = Request(method="POST", path=path, query=query, headers=headers, body=body)
        try:
            delivery_id = self._verifiers.checks[provider](request, self._clock())
        except verify.Rejected as error:
            log.info(
                "inbound.rejected",
                extra={"provider": provider, "status": error.status, "reason": error.reason},
            )
            return _Answer(error.status, error.outcome, error.reason + "\n")
        return await self._store(provider, delivery_id, headers, body)

    async def _store(
        self, provider: str, delivery_id: str, headers: dict[str, str], body: bytes
    ) -> _Answer:
        kept: dict[str, str] = {name: headers[name] for name in KEPT_HEADERS if name in headers}
        try:
            stored = await self._journal.transaction(
                lambda tx: inbox.accept(
                    tx, provider=provider, delivery_id=delivery_id, headers=kept, body=body
                )
            )
        except JournalError:
            log.exception("inbound.store_failed", extra={"provider": provider})
            return _Answer(503, "unavailable", "cannot store the event now; retry later\n")
        if stored is None:
            return _Answer(200, "duplicate", "duplicate; stored before\n")
        return _Answer(200, "accepted", "accepted\n")

    def _count(self, provider: str, answer: _Answer) -> None:
        label = provider if provider in self._verifiers.checks else "unknown"
        metrics.INBOUND_REQUESTS.labels(provider=label, outcome=answer.outcome).inc()
        if answer.outcome == "accepted":
            self._accepted += 1
        elif answer.outcome == "duplicate":
            self._duplicates += 1
        elif answer.status >= 400:
            self._rejected += 1


async def _unsubscribe_answer(
    pages: unsubscribe.UnsubscribePages,
    connection: h11.Connection,
    stream: trio.SocketStream,
    head: h11.Request,
    path: str,
    *,
    timeouts: _Timeouts,
) -> _Answer:
    body = b""
    if head.method == b"POST":
        try:
            read = await _read_body(connection, stream, unsubscribe.MAX_BODY_BYTES, timeouts)
        except h11.RemoteProtocolError as error:
            return _Answer(400, "malformed", f"bad request body: {error}\n", close=True)
        if read is None:
            limit = unsubscribe.MAX_BODY_BYTES
            return _Answer(413, "oversized", f"body over the limit of {limit} bytes\n", True)
        body = read
    content_type = ""
    for name, value in head.headers:
        if name.lower() == b"content-type":
            content_type = value.decode("latin-1")
    page = await pages.answer(
        head.method.decode("ascii", errors="replace"), path, content_type, body
    )
    # After a GET, or a response sent before the body was read, the
    # connection is closed, because the rest of the request is unread.
    close = connection.their_state is not h11.DONE or page.status >= 400
    return _Answer(page.status, page.outcome, page.text, close, page.content_type)


def _content_length(head: h11.Request) -> int | None:
    for name, value in head.headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _next_head(
    connection: h11.Connection, stream: trio.SocketStream
) -> h11.Request | _Answer | None:
    """Read up to the next request head; None when the client closed."""
    while True:
        try:
            event = connection.next_event()
        except h11.RemoteProtocolError as error:
            return _Answer(
                error.error_status_hint, "malformed", f"bad request: {error}\n", close=True
            )
        if event is h11.NEED_DATA:
            data = await stream.receive_some(RECEIVE_SIZE)
            connection.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            return event
        return None


async def _read_body(
    connection: h11.Connection, stream: trio.SocketStream, limit: int, timeouts: _Timeouts
) -> bytes | None:
    """Read the request body; None as soon as it grows past ``limit`` bytes.

    Raises _BodyTimeout when no data arrives for ``timeouts.idle_seconds`` or
    the body is not complete at ``timeouts.deadline``.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            data = b""
            idle_until = trio.current_time() + timeouts.idle_seconds
            with trio.move_on_at(min(idle_until, timeouts.deadline)) as waiting:
                data = await stream.receive_some(RECEIVE_SIZE)
            if waiting.cancelled_caught:
                raise _BodyTimeout
            connection.receive_data(data)
        elif isinstance(event, h11.Data):
            size += len(event.data)
            if size > limit:
                return None
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            return b"".join(chunks)
        else:
            return None


def _provider_of(head: h11.Request | _Answer) -> str:
    if isinstance(head, _Answer):
        return ""
    path = head.target.decode("ascii", errors="replace").partition("?")[0]
    return path.removeprefix(PATH_PREFIX) if path.startswith(PATH_PREFIX) else ""


async def _drain(connection: h11.Connection, stream: trio.SocketStream) -> None:
    """Discard the unread request body, bounded, so closing does not reset the connection.

    Closing a socket with unread received data makes the kernel send a TCP
    reset, which can reach the client before it has read the response.
    """
    if connection.their_state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED):
        return
    try:
        await stream.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return
    discarded = 0
    with trio.move_on_after(DRAIN_SECONDS):
        while discarded < DRAIN_BYTES:
            data = await stream.receive_some(RECEIVE_SIZE)
            if not data:
                return
            discarded += len(data)


async def _send(connection: h11.Connection, stream: trio.SocketStream, answer: _Answer) -> None:
    # After a protocol error h11 still lets a server respond from IDLE.
    if connection.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    body = answer.text.encode()
    headers = [("Content-Type", answer.content_type), ("Content-Length", str(len(body)))]
    if answer.close:
        headers.append(("Connection", "close"))
    data = connection.send(h11.Response(status_code=answer.status, headers=headers)) or b""
    data += connection.send(h11.Data(data=body)) or b""
    data += connection.send(h11.EndOfMessage()) or b""
    await stream.send_all(data)


async def serve_inbound(
    journal: AsyncJournal,
    verifiers: Verifiers,
    host: str,
    port: int,
    *,
    max_body_bytes: int,
    unsubscribe_pages: unsubscribe.UnsubscribePages | None = None,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the inbound listener until cancelled; started() reports the bound address."""
    server = InboundServer(
        journal, verifiers, max_body_bytes=max_body_bytes, unsubscribe_pages=unsubscribe_pages
    )
    await server.serve(host, port, task_status=task_status)
