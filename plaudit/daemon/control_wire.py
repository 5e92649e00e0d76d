"""The control socket's wire format: one JSON object per line, each way.

A request is ``{"command": "status", "args": {...}, "id": 7}``.  A response
is ``{"ok": true, "result": ..., "id": 7}`` or ``{"ok": false, "error":
{"code": "...", "message": "..."}, "id": 7}``; the lines of a streamed
result also carry ``"more"``.  :mod:`plaudit.daemon.control` serves this
format and :mod:`plaudit.daemon.control_client` sends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, final

import msgspec

from plaudit.errors import ControlError

MAX_REQUEST_LINE = 64 * 1024
# Responses such as a long job list are far larger than any request.
MAX_RESPONSE_LINE = 64 * 1024 * 1024
RECEIVE_SIZE = 64 * 1024
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


class LineTooLongError(ControlError):
    """A line exceeded the maximum length before its newline arrived."""


class BadRequestError(ControlError):
    """A request line that is not a valid request; ``request_id`` is its id when it had one."""

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
    """Decode one request line, raising BadRequestError with the reason."""
    try:
        data = _decoder.decode(line)
    except msgspec.DecodeError as exc:
        message = f"request is not valid JSON ({exc}); send one JSON object per line"
        raise BadRequestError(message) from exc
    except RecursionError as exc:
        # Deeply nested arrays exhaust the decoder's stack before the line limit.
        message = "request nests too deeply; send a flat JSON object per line"
        raise BadRequestError(message) from exc

    if not isinstance(data, dict):
        raise BadRequestError(
            f'request must be a JSON object such as {{"command": "status"}}, got {_json_type(data)}'
        )

    request_id = data.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, str | int | None):
        raise BadRequestError(f'"id" must be a string or an integer, got {_json_type(request_id)}')

    command = data.get("command")
    if not isinstance(command, str) or not command:
        message = 'request has no "command" string; send e.g. {"command": "status"}'
        raise BadRequestError(message, request_id)

    args = data.get("args")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise BadRequestError(f'"args" must be a JSON object, got {_json_type(args)}', request_id)

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
