"""Clients of the control socket, for ``plaudit ctl``, the demo and tests.

:func:`request` and :func:`request_stream` run under Trio; :func:`request_sync`
uses blocking sockets for command-line code that runs no event loop.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, final

import trio

from plaudit.daemon.control_wire import (
    MAX_RESPONSE_LINE,
    RECEIVE_SIZE,
    LineBuffer,
    LineTooLongError,
    decode_response,
    encode_request,
)
from plaudit.errors import ControlError


@final
class ControlTimeoutError(ControlError):
    """The daemon sent no response in time, but it may still be running the command."""

    def __init__(self, message: str, *, command: str, timeout: float) -> None:
        super().__init__(message)
        self.command = command
        self.timeout = timeout


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
