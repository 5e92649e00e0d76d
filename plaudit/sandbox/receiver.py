"""A webhook receiver on loopback with scripted faults, for tests, the demo and the benchmark.

The receiver verifies every request's Standard Webhooks signature, records
it, and responds according to its script: each request takes the next
:class:`Fault` (500s, slow responses, hangs, connection resets, redirects,
garbage), and once the script is used up every request gets 200.  It speaks
HTTP/1.1 with keep-alive through h11 on plain Trio sockets, so it runs
under a virtual clock as well as a real one.
"""

from __future__ import annotations

import enum
import logging
import socket
import sqlite3
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, final

import h11
import trio

from plaudit.webhooks.router import webhook_id
from plaudit.webhooks.signing import Secret, VerificationError, generate_secret, verify

log = logging.getLogger(__name__)

# The largest request head h11 buffers; deliveries are a few KiB.
MAX_BODY_BYTES: Final = 1024 * 1024
_READ_SIZE: Final = 65536


class FaultKind(enum.StrEnum):
    STATUS = "status"  # respond with ``status`` (500, 410, 404, ...)
    SLOW = "slow"  # wait ``seconds``, then respond 200
    HANG = "hang"  # never respond
    RESET = "reset"  # abort the connection with a TCP reset
    REDIRECT = "redirect"  # respond 302 with a Location header
    GARBAGE = "garbage"  # send bytes that are not HTTP, then close
    OK_GARBAGE = "ok_garbage"  # respond 200 with a body that is not JSON


@final
@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    status: int = 500
    seconds: float = 0.0


@final
@dataclass(slots=True)
class Received:
    """One request as the receiver saw it."""

    webhook_id: str
    body: bytes
    headers: dict[str, str]
    # None when the signature verified, else why it did not.
    verify_error: str | None
    # The status sent; None while it is pending or when the fault sent none.
    status: int | None
    at: float


@final
@dataclass(slots=True)
class Receiver:
    """Scripted receiver state; serve it with :func:`serve_receiver`."""

    secrets: Sequence[Secret]
    script: deque[Fault] = field(default_factory=deque)
    # Unix time for signature checks; tests on a virtual clock pass their own.
    clock: Callable[[], float] | None = None
    received: list[Received] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"<Receiver received={len(self.received)} scripted={len(self.script)}>"

    def add_faults(self, faults: Iterable[Fault]) -> None:
        self.script.extend(faults)

    def accepted_ids(self) -> set[str]:
        """Return the webhook ids that got a 2xx response and had a valid signature."""
        return {
            item.webhook_id
            for item in self.received
            if item.verify_error is None and item.status is not None and 200 <= item.status < 300
        }

    def statistics(self) -> dict[str, int]:
        return {
            "requests": len(self.received),
            "accepted": len(self.accepted_ids()),
            "bad_signatures": sum(1 for item in self.received if item.verify_error is not None),
            "scripted_faults_left": len(self.script),
        }

    def now(self) -> float:
        return self.clock() if self.clock is not None else time.time()

    def next_fault(self) -> Fault | None:
        return self.script.popleft() if self.script else None


async def serve_receiver(
    receiver: Receiver,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``receiver`` on loopback until cancelled; ``started`` gets its base URL."""
    if host not in ("127.0.0.1", "::1"):
        raise ValueError(f"the receiver listens on loopback only, got host {host!r}")
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()
    url = f"http://[{bound[0]}]:{bound[1]}" if ":" in bound[0] else f"http://{host}:{bound[1]}"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, _handler(receiver), listeners)
        task_status.started(url)


def _handler(receiver: Receiver) -> Callable[[trio.SocketStream], Awaitable[None]]:
    async def handle(stream: trio.SocketStream) -> None:
        try:
            await _serve_connection(receiver, stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            pass
        finally:
            await trio.aclose_forcefully(stream)

    return handle


async def _serve_connection(receiver: Receiver, stream: trio.SocketStream) -> None:
    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_BODY_BYTES)
    while True:
        request = await _read_request(connection, stream)
        if request is None:
            return
        head, body = request
        headers = {name.decode().lower(): value.decode() for name, value in head.headers}
        # Recorded before responding, so a request that hangs is counted too.
        received = _record(receiver, headers, body)
        received.status = await _respond(connection, stream, receiver.next_fault())
        if received.status is None:
            return
        if connection.our_state is h11.MUST_CLOSE or connection.their_state is h11.MUST_CLOSE:
            return
        connection.start_next_cycle()


async def _read_request(
    connection: h11.Connection, stream: trio.SocketStream
) -> tuple[h11.Request, bytes] | None:
    head: h11.Request | None = None
    body = b""
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(_READ_SIZE)
            connection.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage) and head is not None:
            return head, body
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None


async def _respond(
    connection: h11.Connection, stream: trio.SocketStream, fault: Fault | None
) -> int | None:
    """Apply ``fault`` and return the status sent, or None when no response was sent."""
    kind = fault.kind if fault is not None else None
    if kind is FaultKind.HANG:
        await trio.sleep_forever()
    if kind is FaultKind.RESET:
        _reset(stream)
        return None
    if kind is FaultKind.GARBAGE:
        await stream.send_all(b"\x00\x01 this is not HTTP \r\n\r\n")
        return None
    if kind is FaultKind.SLOW and fault is not None:
        await trio.sleep(fault.seconds)

    status, body, extra = 200, b'{"ok":true}', []
    if kind is FaultKind.STATUS and fault is not None:
        status, body = fault.status, b'{"error":"scripted"}'
    elif kind is FaultKind.REDIRECT:
        status, body, extra = 302, b"", [("location", "http://127.0.0.1:9/elsewhere")]
    elif kind is FaultKind.OK_GARBAGE:
        body = b"<html>\xff\xfe not json"
    headers = [("content-length", str(len(body))), ("content-type", "application/json"), *extra]
    # One write for the whole response: fewer system calls under load.
    data = connection.send(h11.Response(status_code=status, headers=headers)) or b""
    data += connection.send(h11.Data(data=body)) or b""
    data += connection.send(h11.EndOfMessage()) or b""
    await stream.send_all(data)
    return status


def _reset(stream: trio.SocketStream) -> None:
    # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.socket.close()


def _record(receiver: Receiver, headers: dict[str, str], body: bytes) -> Received:
    now = receiver.now()
    try:
        verify(receiver.secrets, headers, body, now=now)
        error = None
    except VerificationError as failure:
        error = str(failure)
    received = Received(
        webhook_id=headers.get("webhook-id", ""),
        body=body,
        headers=headers,
        verify_error=error,
        status=None,
        at=now,
    )
    receiver.received.append(received)
    return received


@final
class DemoWebhooks:
    """The receiver ``plaudit demo`` runs: one endpoint, a 500 and a slow response scripted."""

    endpoint = "demo-receiver"

    def __init__(self) -> None:
        self.secret = generate_secret()
        self.receiver = Receiver(secrets=[self.secret])
        self.receiver.add_faults(
            [Fault(FaultKind.STATUS, status=500), Fault(FaultKind.SLOW, seconds=2.0)]
        )

    def config(self, url: str) -> str:
        """Return the ``[[webhooks.endpoints]]`` table that points the daemon here."""
        return f"""
[[webhooks.endpoints]]
name = "{self.endpoint}"
url = "{url}/webhooks"
secrets = ["{self.secret.serialize()}"]
retry_schedule = [1.0, 2.0, 5.0, 10.0]
timeout = 5.0
allow_private = true
"""

    def missing(self, journal: Path) -> int:
        """Return how many review.created events the receiver has not accepted yet."""
        expected = {webhook_id(self.endpoint, key) for key in _created_keys(journal)}
        return len(expected - self.receiver.accepted_ids())

    def summary(self, journal: Path) -> dict[str, int]:
        failed = sum(
            1
            for item in self.receiver.received
            if item.status is None or not 200 <= item.status < 300
        )
        return {
            "webhooks_delivered": len(self.receiver.accepted_ids()),
            "webhooks_failed": failed,
            "webhooks_missing": self.missing(journal),
            "webhooks_bad_signatures": self.receiver.statistics()["bad_signatures"],
        }


def _created_keys(journal: Path) -> list[str]:
    if not journal.exists():
        return []
    connection = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT key FROM events WHERE type = 'review.created'")
        return [str(row[0]) for row in rows]
    except sqlite3.OperationalError:
        # The daemon has not created the tables yet.
        return []
    finally:
        connection.close()
