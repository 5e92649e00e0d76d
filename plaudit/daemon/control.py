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

Peers are checked with SO_PEERCRED (Linux): root, the daemon's own user, the
configured uids and members of the configured gids may connect.

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
import struct
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Sequence,
)
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, final

import msgspec
import trio

from plaudit.errors import ControlError, PlauditError

logger = logging.getLogger(__name__)

Handler = Callable[[str, dict[str, Any]], Awaitable[Any]]
"""Runs one command: ``(command, args) -> JSON-able result`` or an async iterable of them."""

PeerPolicy = Callable[["PeerCredentials"], bool]

MAX_REQUEST_LINE = 64 * 1024
# Responses such as a long job list are far larger than any request.
MAX_RESPONSE_LINE = 64 * 1024 * 1024
RECEIVE_SIZE = 64 * 1024
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

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


class ErrorCode(StrEnum):
    """The ``error.code`` values a response can carry."""

    BAD_REQUEST = "bad_request"
    UNKNOWN_COMMAND = "unknown_command"
    INVALID_ARGUMENT = "invalid_argument"
    PERMISSION_DENIED = "permission_denied"
    FAILED = "failed"
    INTERNAL = "internal"


class InvalidArgument(ControlError):
    """An invalid argument of a known command, raised by a handler."""


class UnknownCommand(ControlError):
    """A command that the handler does not implement, raised by the handler."""


class ControlResponseError(ControlError):
    """An error response from the daemon; ``code`` is an `ErrorCode` value."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


@final
class ControlTimeoutError(ControlError):
    """The daemon sent no response in time, but it may still be running the command."""

    def __init__(self, message: str, *, command: str, timeout: float) -> None:
        super().__init__(message)
        self.command = command
        self.timeout = timeout


class LineTooLongError(ControlError):
    """A line exceeded the maximum length before its newline arrived."""


class _BadRequestError(ControlError):
    def __init__(self, message: str, request_id: Any = None) -> None:
        super().__init__(message)
        self.request_id = request_id


@final
class LineBuffer:
    """Bytes received so far, split into newline-terminated lines of bounded length.

    After an over-long line the buffer discards input up to the next newline,
    so the lines after it are read normally.
    """

    def __init__(self, max_line: int) -> None:
        self._max_line = max_line
        self._buffer = bytearray()
        self._discarding = False

    def __repr__(self) -> str:
        return f"<LineBuffer buffered={len(self._buffer)} max_line={self._max_line}>"

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_line(self) -> bytes | None:
        """Remove and return the next complete line without its newline, or None.

        Raises LineTooLongError once for each line longer than the maximum.
        """
        if self._discarding and not self._skip_to_newline():
            return None

        end = self._buffer.find(b"\n", 0, self._max_line + 1)
        if end >= 0:
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            return line

        if len(self._buffer) <= self._max_line:
            return None

        self._discarding = True
        self._skip_to_newline()
        raise LineTooLongError(f"line is longer than {self._max_line} bytes")

    def _skip_to_newline(self) -> bool:
        end = self._buffer.find(b"\n")
        if end < 0:
            self._buffer.clear()
            return False

        del self._buffer[: end + 1]
        self._discarding = False
        return True


# -- wire format --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ControlRequest:
    """One decoded request line."""

    command: str
    args: dict[str, Any]
    id: str | int | None = None


def encode_request(
    command: str, args: dict[str, Any] | None = None, request_id: Any = None
) -> bytes:
    """Encode one request line, newline included."""
    request: dict[str, Any] = {"command": command, "args": args or {}}
    if request_id is not None:
        request["id"] = request_id
    return _encoder.encode(request) + b"\n"


def parse_request(line: bytes) -> ControlRequest:
    """Decode one request line, raising _BadRequestError with the reason."""
    try:
        data = _decoder.decode(line)
    except msgspec.DecodeError as exc:
        message = f"request is not valid JSON ({exc}); send one JSON object per line"
        raise _BadRequestError(message) from exc
    except RecursionError as exc:
        # Deeply nested arrays exhaust the decoder's stack before the line limit.
        message = "request nests too deeply; send a flat JSON object per line"
        raise _BadRequestError(message) from exc

    if not isinstance(data, dict):
        raise _BadRequestError(
            f'request must be a JSON object such as {{"command": "status"}}, got {_json_type(data)}'
        )

    request_id = data.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, str | int | None):
        raise _BadRequestError(f'"id" must be a string or an integer, got {_json_type(request_id)}')

    command = data.get("command")
    if not isinstance(command, str) or not command:
        message = 'request has no "command" string; send e.g. {"command": "status"}'
        raise _BadRequestError(message, request_id)

    args = data.get("args")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise _BadRequestError(f'"args" must be a JSON object, got {_json_type(args)}', request_id)

    return ControlRequest(command=command, args=args, id=request_id)


def encode_result(result: Any, request_id: Any, *, more: bool | None = None) -> bytes:
    """Encode a success response line; ``more`` marks the lines of a stream."""
    response: dict[str, Any] = {"ok": True, "result": result, "id": request_id}
    if more is not None:
        response["more"] = more
    return _encoder.encode(response) + b"\n"


def encode_error(code: ErrorCode, message: str, request_id: Any) -> bytes:
    """Encode an error response line."""
    response = {"ok": False, "error": {"code": str(code), "message": message}, "id": request_id}
    return _encoder.encode(response) + b"\n"


def decode_response(line: bytes, *, command: str) -> tuple[Any, bool | None]:
    """Decode a response line into ``(result, more)``, raising ControlError for errors."""
    try:
        data = _decoder.decode(line)
    except msgspec.DecodeError as exc:
        raise ControlError(f"the daemon sent an invalid response to {command!r}: {exc}") from exc
    except RecursionError as exc:
        raise ControlError(f"the response to {command!r} nests too deeply to decode") from exc

    if not isinstance(data, dict) or not isinstance(data.get("ok"), bool):
        raise ControlError(f'the daemon sent a response to {command!r} without an "ok" field')

    if not data["ok"]:
        error = data.get("error")
        if not isinstance(error, dict):
            error = {}
        message = str(error.get("message", f"{command!r} failed without a message"))
        raise ControlResponseError(message, code=str(error.get("code", ErrorCode.INTERNAL)))

    more = data.get("more")
    return data.get("result"), more if isinstance(more, bool) else None


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


# -- peer credentials ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerCredentials:
    """The process on the other end of a connection, as the kernel reports it."""

    pid: int
    uid: int
    gid: int


def peer_allowed(
    uid: int,
    gid: int,
    groups: Sequence[int],
    *,
    daemon_uid: int,
    allowed_uids: Sequence[int],
    allowed_gids: Sequence[int],
) -> bool:
    """Return whether a peer may use the control socket.

    Root, the daemon's own user and the listed uids are allowed, and so are
    peers whose primary group or one of whose supplementary ``groups`` is listed.
    """
    if uid in (0, daemon_uid) or uid in allowed_uids:
        return True
    return gid in allowed_gids or any(group in allowed_gids for group in groups)


def read_peer_credentials(sock: trio.socket.SocketType) -> PeerCredentials:
    """Read SO_PEERCRED of a connected Unix socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return PeerCredentials(pid=pid, uid=uid, gid=gid)


def read_supplementary_groups(pid: int) -> tuple[int, ...]:
    """Read the supplementary groups of a process from /proc/PID/status.

    Returns no groups when the process is gone or /proc is unreadable.
    """
    # NOTE: the pid is the process that connected.  If it exited and the pid
    # was reused, these are another process's groups; the connection then
    # belongs to a process that inherited the descriptor.
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return ()

    for line in status.splitlines():
        if line.startswith("Groups:"):
            return tuple(int(group) for group in line.split()[1:] if group.isdigit())
    return ()


def default_peer_policy(
    *, daemon_uid: int, allowed_uids: Sequence[int], allowed_gids: Sequence[int]
) -> PeerPolicy:
    """Build the policy the server applies when none is given, using `peer_allowed`."""

    def allowed_with(peer: PeerCredentials, groups: Sequence[int]) -> bool:
        return peer_allowed(
            peer.uid,
            peer.gid,
            groups,
            daemon_uid=daemon_uid,
            allowed_uids=allowed_uids,
            allowed_gids=allowed_gids,
        )

    def allowed(peer: PeerCredentials) -> bool:
        if allowed_with(peer, ()):
            return True
        # /proc is read only when the uid and primary gid were not enough.
        return bool(allowed_gids) and allowed_with(peer, read_supplementary_groups(peer.pid))

    return allowed


# -- server -------------------------------------------------------------------


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
        except _BadRequestError as exc:
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


# -- clients ------------------------------------------------------------------


# ASYNC109: a timeout argument is the public contract of these clients, which
# command-line code calls outside any cancel scope of its own.
async def request(
    path: Path,
    command: str,
    args: dict[str, Any] | None = None,
    *,
    timeout: float = 10.0,  # noqa: ASYNC109
) -> Any:
    """Send one command to the daemon at ``path`` and return its result.

    Raises ControlResponseError when the daemon responds with an error, and
    ControlError when it cannot be reached or does not respond within
    ``timeout`` seconds.
    """
    payload = encode_request(command, args)
    try:
        with trio.fail_after(timeout):
            stream = await trio.open_unix_socket(os.fspath(path))
            async with stream:
                # A daemon that rejects the peer responds and closes without
                # reading the request, so its response is read even then.
                with contextlib.suppress(trio.BrokenResourceError):
                    await stream.send_all(payload)
                line = await _receive_response_line(stream, path, command)
    except trio.TooSlowError as exc:
        raise _timed_out(path, command, timeout) from exc
    except OSError as exc:
        raise _unreachable(path, exc) from exc
    except trio.BrokenResourceError as exc:
        raise _closed_early(path, command) from exc

    return _single_result(line, command)


async def request_stream(
    path: Path,
    command: str,
    args: dict[str, Any] | None = None,
    *,
    timeout: float = 10.0,  # noqa: ASYNC109
) -> AsyncIterator[Any]:
    """Send a streaming command and yield each result until the daemon ends the stream.

    ``timeout`` bounds connecting and sending; waiting between items is unbounded.
    """
    payload = encode_request(command, args)
    try:
        with trio.fail_after(timeout):
            stream = await trio.open_unix_socket(os.fspath(path))
            await stream.send_all(payload)
    except trio.TooSlowError as exc:
        raise _timed_out(path, command, timeout) from exc
    except OSError as exc:
        raise _unreachable(path, exc) from exc

    async with stream:
        buffer = LineBuffer(MAX_RESPONSE_LINE)
        while True:
            line = await _receive_response_line(stream, path, command, buffer)
            result, more = decode_response(line, command=command)
            if not more:
                return
            yield result


def request_sync(
    path: Path | str, command: str, args: dict[str, Any] | None = None, *, timeout: float = 10.0
) -> Any:
    """Send one command like `request`, with blocking sockets, for command-line tools."""
    path = Path(path)
    payload = encode_request(command, args)
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(os.fspath(path))
            # A daemon that rejects the peer responds and closes without
            # reading the request, so its response is read even then.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(payload)
            line = _receive_response_line_sync(sock, path, command, deadline)
    except TimeoutError as exc:
        raise _timed_out(path, command, timeout) from exc
    except OSError as exc:
        raise _unreachable(path, exc) from exc

    return _single_result(line, command)


async def _receive_response_line(
    stream: trio.SocketStream, path: Path, command: str, buffer: LineBuffer | None = None
) -> bytes:
    if buffer is None:
        buffer = LineBuffer(MAX_RESPONSE_LINE)
    while True:
        line = _next_response_line(buffer, command)
        if line is not None:
            return line

        data = await stream.receive_some(RECEIVE_SIZE)
        if not data:
            raise _closed_early(path, command)
        buffer.feed(data)


def _receive_response_line_sync(
    sock: socket.socket, path: Path, command: str, deadline: float
) -> bytes:
    buffer = LineBuffer(MAX_RESPONSE_LINE)
    while True:
        line = _next_response_line(buffer, command)
        if line is not None:
            return line

        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        data = sock.recv(RECEIVE_SIZE)
        if not data:
            raise _closed_early(path, command)
        buffer.feed(data)


def _next_response_line(buffer: LineBuffer, command: str) -> bytes | None:
    try:
        return buffer.next_line()
    except LineTooLongError as exc:
        raise ControlError(
            f"the response to {command!r} is longer than {MAX_RESPONSE_LINE} bytes; "
            f"narrow the request (for example with --limit)"
        ) from exc


def _single_result(line: bytes, command: str) -> Any:
    result, more = decode_response(line, command=command)
    if more is not None:
        raise ControlError(
            f"command {command!r} streams its results; read them with request_stream()"
        )
    return result


def _unreachable(path: Path, exc: OSError) -> ControlError:
    if isinstance(exc, FileNotFoundError | ConnectionRefusedError):
        return ControlError(f"no daemon is listening on {path} (is plaudit running? pass --socket)")
    if isinstance(exc, PermissionError):
        return ControlError(
            f"permission denied opening control socket {path}; run as the daemon's user, "
            f"root, or a member of its group"
        )
    return ControlError(f"cannot connect to control socket {path}: {exc.strerror or exc}")


def _timed_out(path: Path, command: str, timeout: float) -> ControlError:
    return ControlTimeoutError(
        f"the daemon on {path} did not respond to {command!r} within {timeout:g} s, "
        "but it may still complete the command; check its log before repeating it, "
        "or pass a longer --timeout",
        command=command,
        timeout=timeout,
    )


def _closed_early(path: Path, command: str) -> ControlError:
    return ControlError(
        f"the daemon on {path} closed the connection before responding to {command!r}; "
        f"check its log"
    )
