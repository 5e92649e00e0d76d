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


def check_metrics_port(host: str, port: int) -> None:
    """Raise PreflightError when ``host:port`` cannot be bound."""
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
                f"metrics address {host}:{port} {reason}; set [metrics] port to a free port, "
                "or stop the other process"
            ) from error


def check_control_socket(path: Path) -> None:
    """Raise PreflightError when a live daemon already accepts connections on ``path``."""
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
