"""``plaudit inspect``: run one deliverability parser on a file and print one JSON object."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import msgspec

from plaudit.errors import PlauditError
from plaudit.messaging.deliverability.arf import parse_arf
from plaudit.messaging.deliverability.bounces import parse_bounce
from plaudit.messaging.deliverability.dmarc import parse_dmarc
from plaudit.messaging.deliverability.mime import MAX_MESSAGE_BYTES


def _bounce(data: bytes) -> dict[str, Any]:
    result: dict[str, Any] = msgspec.to_builtins(parse_bounce(data))
    return result


def _arf(data: bytes) -> dict[str, Any]:
    report = parse_arf(data)
    result: dict[str, Any] = msgspec.to_builtins(report)
    # Same leading keys as a bounce, so one consumer can read both.
    return {
        "kind": report.kind,
        "final": True if report.kind == "complaint" else None,
        "status": None,
        "recipient": report.recipient,
        "reason": report.reason,
        **result,
    }


def _dmarc(data: bytes) -> dict[str, Any]:
    result: dict[str, Any] = msgspec.to_builtins(parse_dmarc(data))
    return result


PARSERS: dict[str, Callable[[bytes], dict[str, Any]]] = {
    "bounce": _bounce,
    "arf": _arf,
    "dmarc": _dmarc,
}


def read_input(path: str) -> bytes:
    """Read the file, raising PlauditError naming the path when it cannot be read."""
    try:
        with Path(path).open("rb") as stream:
            data = stream.read(MAX_MESSAGE_BYTES + 1)
    except OSError as error:
        reason = error.strerror or error.__class__.__name__
        raise PlauditError(f"cannot read {path}: {reason}") from error

    return data


def inspect_main(report_type: str, path: str, *, out: TextIO = sys.stdout) -> int:
    """Parse the file with the parser for ``report_type`` and print the result as one JSON line."""
    parser = PARSERS.get(report_type)
    if parser is None:
        raise PlauditError(
            f"unknown report type {report_type!r}: expected one of {', '.join(PARSERS)}"
        )

    result = parser(read_input(path))
    out.write(msgspec.json.encode(result).decode() + "\n")
    return 0
