"""Tables of the daemon process itself: files, journal, restarts, control socket, metrics."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from plaudit.config.base import Port, PositiveInt, PosixId, Seconds, Strict


class DaemonConfig(Strict, kw_only=True, frozen=True):
    """The ``[daemon]`` table: where the process keeps its files and how it stops."""

    state_dir: str = "/var/lib/plaudit"
    runtime_dir: str = "/run/plaudit"
    # SIGTERM/SIGINT: stop claiming work, finish or release leases, exit 0
    # within this many seconds.
    shutdown_timeout: Seconds = 20.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"


class JournalConfig(Strict, kw_only=True, frozen=True):
    """The ``[journal]`` table: the SQLite job journal."""

    # Relative paths are resolved against daemon.state_dir.
    path: str = "journal.sqlite3"
    lease_seconds: Seconds = 60.0
    # How often running daemons return expired leases to ready.
    lease_sweep_interval: Seconds = 15.0
    max_attempts: PositiveInt = 8
    retry_initial: Seconds = 5.0
    retry_max: Seconds = 3600.0
    # Group commit: claims and completions arriving within this window share
    # one fsync.  Zero commits each operation on its own.
    # At most one second: every durable write waits up to this long.
    group_commit_window: Annotated[float, msgspec.Meta(ge=0, le=1.0)] = 0.002
    group_commit_max: PositiveInt = 256


class SupervisorConfig(Strict, kw_only=True, frozen=True):
    """The ``[supervisor]`` table: OTP-style restart policy for every actor."""

    # More than max_restarts restarts within within_seconds escalates: the
    # child is marked failed and its siblings keep running.
    max_restarts: PositiveInt = 5
    within_seconds: Seconds = 60.0
    backoff_initial: Seconds = 0.5
    backoff_max: Seconds = 30.0
    # Time a child gets to finish after it is asked to stop.
    shutdown_grace: Seconds = 5.0


class ControlConfig(Strict, kw_only=True, frozen=True):
    """The ``[control]`` table: the newline-delimited JSON control socket."""

    # Relative paths are resolved against daemon.runtime_dir.
    socket: str = "control.sock"
    # Octal file mode of the socket, as a string such as "0660".
    mode: str = "0660"
    # Peers allowed besides root and the daemon's own user: numeric uids,
    # and members of these numeric gids.
    allowed_uids: list[PosixId] = msgspec.field(default_factory=list)
    allowed_gids: list[PosixId] = msgspec.field(default_factory=list)


class MetricsConfig(Strict, kw_only=True, frozen=True):
    """The ``[metrics]`` table: the Prometheus endpoint."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: Port = 9464
