"""The control socket: newline-delimited JSON requests over a Unix stream socket.

Each request is one line, ``{"command": "status", "args": {...}, "id": 7}``, and
gets one response line, ``{"ok": true, "result": ..., "id": 7}`` or
``{"ok": false, "error": {"code": "...", "message": "..."}, "id": 7}``.  A
connection may carry many requests, one after the other.

A handler may return an async iterable instead of a value.  Each item is then
sent as ``{"ok": true, "result": item, "id": 7, "more": true}`` until the
iterable ends, which sends ``{"ok": true, "result": null, "id": 7, "more":
false}``, or until the client disconnects.  Lines that the client sends while
such a stream is open are discarded.

Peers are checked by :mod:`plaudit.daemon.control_peers`; the line format is
in :mod:`plaudit.daemon.control_wire`, and the clients are in
:mod:`plaudit.daemon.control_client`.

A connection must send its first request within ``first_request_timeout``
seconds and each later one within ``idle_timeout``.  When every connection
slot is taken and another client is waiting to connect, the connection that
has waited longest for a request is closed to make room, so idle clients
cannot lock operators out.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import stat
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Sequence,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, final

import msgspec
import trio

from plaudit.daemon.control_peers import (
    PeerPolicy,
    default_peer_policy,
    read_peer_credentials,
)
from plaudit.daemon.control_wire import (
    MAX_REQUEST_LINE,
    RECEIVE_SIZE,
    BadRequestError,
    ControlRequest,
    ErrorCode,
    InvalidArgument,
    LineBuffer,
    LineTooLongError,
    UnknownCommand,
    encode_error,
    encode_result,
    parse_request,
)
from plaudit.errors import ControlError, PlauditError

logger = logging.getLogger(__name__)

Handler = Callable[[str, dict[str, Any]], Awaitable[Any]]
"""Runs one command: ``(command, args) -> JSON-able result`` or an async iterable of them."""

# sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107
# Errors from accept() that mean the process is out of descriptors or memory:
# wait and try again instead of stopping the server.
ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
ACCEPT_RETRY_SECONDS = 0.1
# connect() to a Unix socket completes at once while the server's listen
# backlog has room.  A connect that does not complete within this time is
# taken to mean a live server with a full backlog.
PROBE_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class ControlServerStatistics:
    """Counters of a `ControlServer` since it started."""

    path: str
    connections_open: int
    connections_total: int
    requests_total: int
    peers_rejected: int
    errors: dict[str, int] = field(default_factory=dict)
    # Idle connections closed to make room for a waiting client.
    connections_evicted: int = 0
    # Connections closed because no request arrived in time.
    connections_timed_out: int = 0


@final
class ControlServer:
    """Serves control requests on one Unix socket; see the module docstring for the protocol."""

    def __init__(
        self,
        handler: Handler,
        *,
        peer_policy: PeerPolicy,
        max_connections: int = 64,
        idle_timeout: float = 60.0,
        first_request_timeout: float = 10.0,
    ) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        if idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive seconds, got {idle_timeout}")
        if first_request_timeout <= 0:
            raise ValueError(
                f"first_request_timeout must be positive seconds, got {first_request_timeout}"
            )

        self._handler = handler
        self._peer_policy = peer_policy
        self._max_connections = max_connections
        self._idle_timeout = idle_timeout
        self._first_request_timeout = first_request_timeout
        self._slots = trio.Semaphore(max_connections)
        # Connections waiting for a request, longest-waiting first, by connection number.
        self._idle: dict[int, trio.CancelScope] = {}
        self._connections_evicted = 0
        self._connections_timed_out = 0
        self._path: Path | None = None
        self._connections_open = 0
        self._connections_total = 0
        self._requests_total = 0
        self._peers_rejected = 0
        self._errors: dict[str, int] = {}

    def __repr__(self) -> str:
        return (
            f"<ControlServer path={str(self._path)!r} "
            f"connections={self._connections_open}/{self._max_connections} "
            f"requests={self._requests_total}>"
        )

    def statistics(self) -> ControlServerStatistics:
        return ControlServerStatistics(
            path=str(self._path),
            connections_open=self._connections_open,
            connections_total=self._connections_total,
            requests_total=self._requests_total,
            peers_rejected=self._peers_rejected,
            errors=dict(self._errors),
            connections_evicted=self._connections_evicted,
            connections_timed_out=self._connections_timed_out,
        )

    async def serve(
        self,
        path: Path,
        *,
        mode: int = 0o660,
        task_status: trio.TaskStatus[ControlServer] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Bind ``path``, report this server as started, and serve until cancelled.

        The socket file is removed on exit unless another process replaced it.
        """
        sock = await bind_control_socket(path, mode=mode)
        identity = _file_identity(path)
        self._path = path
        logger.info("control.listening", extra={"path": str(path), "mode": f"{mode:04o}"})
        try:
            async with trio.open_nursery() as nursery:
                task_status.started(self)
                await self._accept_forever(trio.SocketListener(sock), nursery)
        finally:
            sock.close()
            _unlink_if_same(path, identity)
            logger.info("control.stopped", extra={"path": str(path)})

    async def _accept_forever(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        while True:
            if self._slots.value == 0:
                # Every slot is taken: once a client waits in the kernel's
                # listen backlog, close the longest-idle connection for it.
                # With none idle, the client waits for a request to finish.
                await trio.lowlevel.wait_readable(listener.socket)
                if self._slots.value == 0:
                    self._evict_oldest_idle()
            await self._slots.acquire()
            try:
                stream = await listener.accept()
            except OSError as exc:
                self._slots.release()
                if exc.errno not in ACCEPT_CAPACITY_ERRNOS:
                    raise
                logger.warning("control.accept_failed", extra={"error": exc.strerror})
                await trio.sleep(ACCEPT_RETRY_SECONDS)
                continue
            except BaseException:
                self._slots.release()
                raise

            nursery.start_soon(self._run_connection, stream)

    def _evict_oldest_idle(self) -> None:
        if not self._idle:
            return
        number = next(iter(self._idle))
        self._idle.pop(number).cancel()
        self._connections_evicted += 1
        logger.info(
            "control.connection_evicted",
            extra={"connection": number, "max_connections": self._max_connections},
        )

    async def _run_connection(self, stream: trio.SocketStream) -> None:
        self._connections_open += 1
        self._connections_total += 1
        number = self._connections_total
        # except* because a streaming response runs in a nursery, which wraps
        # these errors in an ExceptionGroup.
        try:
            async with stream:
                await self._serve_connection(stream, number)
        except* (trio.BrokenResourceError, trio.ClosedResourceError) as group:
            logger.debug("control.connection_lost", extra={"error": repr(group.exceptions[0])})
        except* trio.TooSlowError:
            logger.info("control.send_timed_out", extra={"timeout_seconds": self._idle_timeout})
        except* Exception:
            # One broken connection must never take the server (and every
            # other operator's connection) down with it.
            logger.exception("control.connection_failed")
        finally:
            self._connections_open -= 1
            self._slots.release()

    async def _serve_connection(self, stream: trio.SocketStream, number: int) -> None:
        if not await self._admit(stream):
            return

        buffer = LineBuffer(MAX_REQUEST_LINE)
        wait = self._first_request_timeout
        while True:
            try:
                line = await self._receive_line(stream, buffer, number=number, wait=wait)
            except LineTooLongError:
                message = f"request line is longer than {MAX_REQUEST_LINE} bytes; split the request"
                await self._send_error(stream, ErrorCode.BAD_REQUEST, message, None)
                continue

            if line is None:
                return
            if line.strip():
                await self._respond(stream, line)
                wait = self._idle_timeout

    async def _admit(self, stream: trio.SocketStream) -> bool:
        try:
            peer = read_peer_credentials(stream.socket)
        except OSError as exc:
            logger.warning("control.peer_credentials_failed", extra={"error": repr(exc)})
            return False

        if self._peer_policy(peer):
            return True

        self._peers_rejected += 1
        logger.warning(
            "control.peer_rejected", extra={"pid": peer.pid, "uid": peer.uid, "gid": peer.gid}
        )
        message = (
            f"permission denied for uid {peer.uid}; add it to [control] allowed_uids "
            f"or add one of its groups to [control] allowed_gids"
        )
        await self._send_error(stream, ErrorCode.PERMISSION_DENIED, message, None)
        return False

    async def _receive_line(
        self, stream: trio.SocketStream, buffer: LineBuffer, *, number: int, wait: float
    ) -> bytes | None:
        """Return the next request line, or None at end of input, after ``wait`` s or eviction."""
        with trio.move_on_after(wait) as scope:
            self._idle[number] = scope
            try:
                while True:
                    line = buffer.next_line()
                    if line is not None:
                        return line

                    data = await stream.receive_some(RECEIVE_SIZE)
                    if not data:
                        return None
                    buffer.feed(data)
            finally:
                self._idle.pop(number, None)

        if scope.deadline <= trio.current_time():
            self._connections_timed_out += 1
            logger.debug("control.connection_idle", extra={"timeout_seconds": wait})
        return None

    async def _respond(self, stream: trio.SocketStream, line: bytes) -> None:
        self._requests_total += 1
        try:
            request = parse_request(line)
        except BadRequestError as exc:
            await self._send_error(stream, ErrorCode.BAD_REQUEST, str(exc), exc.request_id)
            return

        logger.debug("control.request", extra={"command": request.command})
        try:
            result = await self._handler(request.command, request.args)
        except Exception as exc:
            await self._send_error(stream, *self._classify(exc, request.command), request.id)
            return

        if isinstance(result, AsyncIterable):
            await self._send_stream(stream, result, request)
        else:
            await self._send(stream, self._encode_result(result, request, more=None))

    def _encode_result(self, result: Any, request: ControlRequest, *, more: bool | None) -> bytes:
        try:
            return encode_result(result, request.id, more=more)
        except (TypeError, msgspec.EncodeError) as exc:
            code, message = self._classify(exc, request.command)
            return encode_error(code, message, request.id)

    async def _send_stream(
        self, stream: trio.SocketStream, items: AsyncIterable[Any], request: ControlRequest
    ) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_hangup, stream, nursery.cancel_scope)
            iterator = aiter(items)
            # Closing an async generator runs its finally blocks now, not at
            # garbage collection, which Trio cannot schedule.
            closing: contextlib.AbstractAsyncContextManager[object] = contextlib.nullcontext()
            if isinstance(iterator, AsyncGenerator):
                closing = contextlib.aclosing(iterator)
            async with closing:
                await self._send_items(stream, iterator, request)
            nursery.cancel_scope.cancel()

    async def _send_items(
        self, stream: trio.SocketStream, iterator: AsyncIterator[Any], request: ControlRequest
    ) -> None:
        while True:
            try:
                item = await anext(iterator)
            except StopAsyncIteration:
                break
            except Exception as exc:
                await self._send_error(stream, *self._classify(exc, request.command), request.id)
                return

            await self._send(stream, self._encode_result(item, request, more=True))

        await self._send(stream, encode_result(None, request.id, more=False))

    def _classify(self, exc: Exception, command: str) -> tuple[ErrorCode, str]:
        """Map an exception from a handler to the code and message sent to the client."""
        if isinstance(exc, UnknownCommand):
            return ErrorCode.UNKNOWN_COMMAND, str(exc)
        if isinstance(exc, InvalidArgument):
            return ErrorCode.INVALID_ARGUMENT, str(exc)
        if isinstance(exc, PlauditError):
            return ErrorCode.FAILED, str(exc)

        logger.error("control.handler_crashed", extra={"command": command}, exc_info=exc)
        return ErrorCode.INTERNAL, f"internal error while running {command!r}; see the daemon log"

    async def _send_error(
        self, stream: trio.SocketStream, code: ErrorCode, message: str, request_id: Any
    ) -> None:
        self._errors[code] = self._errors.get(code, 0) + 1
        await self._send(stream, encode_error(code, message, request_id))

    async def _send(self, stream: trio.SocketStream, data: bytes) -> None:
        # A client that stops reading must not hold a connection slot forever.
        with trio.fail_after(self._idle_timeout):
            await stream.send_all(data)


async def _cancel_on_hangup(stream: trio.SocketStream, scope: trio.CancelScope) -> None:
    while await stream.receive_some(RECEIVE_SIZE):
        pass
    scope.cancel()


async def serve_control(
    path: Path,
    handler: Handler,
    *,
    mode: int = 0o660,
    allowed_uids: Sequence[int] = (),
    allowed_gids: Sequence[int] = (),
    peer_policy: PeerPolicy | None = None,
    max_connections: int = 64,
    idle_timeout: float = 60.0,
    first_request_timeout: float = 10.0,
    task_status: trio.TaskStatus[ControlServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the control socket at ``path`` until cancelled; started() reports the server.

    ``peer_policy`` replaces the default check built from the daemon's uid,
    ``allowed_uids`` and ``allowed_gids``.
    """
    if peer_policy is None:
        peer_policy = default_peer_policy(
            daemon_uid=os.geteuid(), allowed_uids=allowed_uids, allowed_gids=allowed_gids
        )
    server = ControlServer(
        handler,
        peer_policy=peer_policy,
        max_connections=max_connections,
        idle_timeout=idle_timeout,
        first_request_timeout=first_request_timeout,
    )
    await server.serve(path, mode=mode, task_status=task_status)


# -- binding ------------------------------------------------------------------


async def bind_control_socket(path: Path, *, mode: int) -> trio.socket.SocketType:
    """Create, bind, chmod and listen on a Unix stream socket at ``path``.

    A stale socket file left by a dead daemon is replaced.  A live daemon on
    the path, or a file that is not a socket, raises ControlError.
    """
    if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
        raise ControlError(
            f"control socket path {path} is longer than {MAX_SOCKET_PATH_BYTES} bytes, "
            f"the limit for Unix sockets; set [control] socket or --runtime-dir to a shorter path"
        )

    _make_parent(path)
    await _remove_stale_socket(path)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sock.bind(os.fspath(path))
        # Until chmod runs the file has the umask's mode; the peer credential
        # check still applies to any connection made in that window.
        os.chmod(path, mode)
        sock.listen()
    except OSError as exc:
        sock.close()
        raise ControlError(
            f"cannot create control socket {path}: {exc.strerror}; "
            f"check the permissions of {path.parent} or set [control] socket to another path"
        ) from exc
    return sock


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    except OSError as exc:
        raise ControlError(
            f"cannot create the directory {path.parent} for the control socket: {exc.strerror}; "
            f"create it or set --runtime-dir to a writable directory"
        ) from exc


async def _remove_stale_socket(path: Path) -> None:
    if not _socket_file_exists(path):
        return

    if await _socket_is_live(path):
        raise ControlError(
            f"control socket {path} is in use by a running daemon; "
            f"stop it or set [control] socket / --runtime-dir to another path"
        )

    # NOTE: two daemons starting at the same instant could both see the file as
    # stale; the state-directory lock held by the daemon rules that out.
    _unlink_stale(path)


def _socket_file_exists(path: Path) -> bool:
    """Return whether ``path`` is a socket file, raising ControlError for any other file."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False

    if not stat.S_ISSOCK(info.st_mode):
        raise ControlError(
            f"{path} exists and is not a socket; remove it or set [control] socket to another path"
        )
    return True


def _unlink_stale(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise ControlError(
            f"cannot remove the stale control socket {path}: {exc.strerror}; "
            f"remove it by hand or set [control] socket to another path"
        ) from exc
    logger.info("control.stale_socket_removed", extra={"path": str(path)})


async def _socket_is_live(path: Path) -> bool:
    """Return whether a server accepts connections on the socket file ``path``."""
    probe = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with trio.move_on_after(PROBE_TIMEOUT_SECONDS):
            await probe.connect(os.fspath(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError as exc:
        raise ControlError(
            f"cannot check whether control socket {path} is in use: {exc.strerror}; "
            f"remove it if no daemon is running, or set [control] socket to another path"
        ) from exc
    else:
        return True
    finally:
        probe.close()


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        info = path.lstat()
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _unlink_if_same(path: Path, identity: tuple[int, int] | None) -> None:
    """Remove the socket file unless another process has replaced it since bind."""
    if identity is None or _file_identity(path) != identity:
        return
    try:
        path.unlink()
    except OSError as exc:
        logger.warning("control.unlink_failed", extra={"path": str(path), "error": exc.strerror})
