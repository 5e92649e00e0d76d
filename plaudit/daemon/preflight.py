"""Checks made before the supervision tree starts, so operator mistakes fail fast.

A port or socket path that is already taken would otherwise show up as a
service task that crashes and restarts until its budget runs out.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path

from plaudit.errors import PlauditError


class PreflightError(PlauditError):
    """A resource the daemon needs is taken or unusable."""


def check_listen_port(host: str, port: int, *, table: str) -> None:
    """Raise PreflightError when ``host:port`` of the ``[table]`` listener cannot be bound."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            reason = (
                "is already in use"
                if error.errno == errno.EADDRINUSE
                else f"cannot be bound ({error.strerror})"
            )
            raise PreflightError(
                f"{table} address {host}:{port} {reason}; set [{table}] port to a free port, "
                "or stop the other process"
            ) from error


def first_non_directory(path: Path) -> Path | None:
    """Return ``path`` or its nearest existing ancestor when that is not a directory."""
    for candidate in (path, *path.parents):
        try:
            if candidate.exists():
                return None if candidate.is_dir() else candidate
        except OSError:
            # Unreadable here, such as a parent without search permission:
            # creating the directory reports that with its own message.
            return None
    return None


def check_control_socket(path: Path) -> None:
    """Raise PreflightError when the socket's directory is a file or a live daemon uses ``path``."""
    blocking = first_non_directory(path.parent)
    if blocking is not None:
        raise PreflightError(
            f"cannot create the control socket {path}: {blocking} is a file, not a directory; "
            "name a directory with --runtime-dir or [control] socket, or move that file away"
        )
    if not path.exists():
        return
    if not path.is_socket():
        raise PreflightError(
            f"control socket path {path} exists and is not a socket; "
            "remove it or set [control] socket"
        )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return  # a stale file from a process that died; the server replaces it
    raise PreflightError(
        f"control socket {path} is in use by a running daemon; stop it, or set "
        "[control] socket or --runtime-dir to another path"
    )
