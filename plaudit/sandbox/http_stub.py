"""A minimal HTTP/1.1 server on loopback for the sandbox's provider stand-ins.

It reads each request whole with h11 on plain Trio sockets, so it runs under
a virtual clock as well as a real one, and passes it to an async handler.
The handler returns the response, or None to close the connection without
one (a scripted disconnect).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final, final

import h11
import msgspec
import trio

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES: Final = 1024 * 1024
_READ_SIZE: Final = 65536
LOOPBACK_HOSTS: Final = ("127.0.0.1", "::1")


@final
class StubRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One request: method, path, query string, lower-case headers and body."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@final
class StubResponse(msgspec.Struct, frozen=True, kw_only=True):
    """One response; ``headers`` are added to Content-Length."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = msgspec.field(default_factory=dict)


Handler = Callable[[StubRequest], Awaitable[StubResponse | None]]


async def serve_stub(
    handler: Handler,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``handler`` on a loopback address until cancelled; ``started`` gets the base URL."""
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"stand-ins listen on loopback only, got host {host!r}; use 127.0.0.1")
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()
    url = f"http://[{bound[0]}]:{bound[1]}" if ":" in host else f"http://{host}:{bound[1]}"

    async def connection(stream: trio.SocketStream) -> None:
        try:
            await _serve_connection(handler, stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError) as error:
            log.debug("sandbox.connection_lost", extra={"error": repr(error)})
        finally:
            await trio.aclose_forcefully(stream)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, connection, listeners)
        task_status.started(url)


async def _serve_connection(handler: Handler, stream: trio.SocketStream) -> None:
    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_BYTES)
    while True:
        request = await _read_request(connection, stream)
        if request is None:
            return
        response = await handler(request)
        if response is None:
            return
        headers = [("content-length", str(len(response.body))), *response.headers.items()]
        data = connection.send(h11.Response(status_code=response.status, headers=headers)) or b""
        data += connection.send(h11.Data(data=response.body)) or b""
        data += connection.send(h11.EndOfMessage()) or b""
        await stream.send_all(data)
        if connection.our_state is h11.MUST_CLOSE or connection.their_state is h11.MUST_CLOSE:
            return
        connection.start_next_cycle()


async def _read_request(
    connection: h11.Connection, stream: trio.SocketStream
) -> StubRequest | None:
    head: h11.Request | None = None
    chunks: list[bytes] = []
    size = 0
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(await stream.receive_some(_READ_SIZE))
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            size += len(event.data)
            if size > MAX_REQUEST_BYTES:
                return None
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage) and head is not None:
            target = head.target.decode("ascii", errors="replace")
            path, _, query = target.partition("?")
            return StubRequest(
                method=head.method.decode("ascii"),
                path=path,
                query=query,
                headers={
                    name.decode("latin-1").lower(): value.decode("latin-1")
                    for name, value in head.headers
                },
                body=b"".join(chunks),
            )
        else:
            return None
