"""Control socket peers: their kernel-reported credentials and the policy that checks them.

Peers are checked with SO_PEERCRED (Linux): root, the daemon's own user, the
configured uids and members of the configured gids may connect.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import trio

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid

PeerPolicy = Callable[["PeerCredentials"], bool]


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
