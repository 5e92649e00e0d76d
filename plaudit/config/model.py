"""Typed configuration: one msgspec struct per TOML table.

Every struct forbids unknown fields, so a misspelt key is an error rather than
a silently ignored setting.  Durations are in seconds (floats); paths that are
relative are resolved against the state or runtime directory by the loader.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

Seconds = Annotated[float, msgspec.Meta(gt=0)]
NonNegativeSeconds = Annotated[float, msgspec.Meta(ge=0)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
PosixId = Annotated[int, msgspec.Meta(ge=0)]


class Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Base for every config table: unknown keys are rejected.

    Subclasses inherit forbid_unknown_fields.  Each subclass repeats kw_only,
    which msgspec applies to a class's own fields only, and frozen, which
    mypy otherwise assumes is off.
    """

    # Fields that repr() shows as '***' when set, so a logged config shows no secret.
    secret_fields: ClassVar[frozenset[str]] = frozenset()

    def __repr__(self) -> str:
        fields = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            text = "'***'" if name in self.secret_fields and value else repr(value)
            fields.append(f"{name}={text}")
        return f"{type(self).__name__}({', '.join(fields)})"


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
    group_commit_window: NonNegativeSeconds = 0.002
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


class GoogleLocation(Strict, kw_only=True, frozen=True):
    """One Google Business Profile location whose reviews are synced."""

    # The API resource names, such as "accounts/123" and "locations/456".
    account: str
    location: str
    # The vendor's business name as shown on the profile.
    name: str = ""


class GoogleConfig(Strict, kw_only=True, frozen=True):
    """The ``[platforms.google]`` table: Google Business Profile API v4."""

    secret_fields: ClassVar[frozenset[str]] = frozenset({"client_secret", "refresh_token"})

    enabled: bool = True
    # No default on purpose: production uses Google's endpoints, the demo and
    # the tests use the sandbox on loopback.
    api_base: str
    token_url: str
    client_id: str
    # Exactly one of each pair: the secret itself, or a file that contains it.
    client_secret: str = ""
    client_secret_file: str = ""
    refresh_token: str = ""
    refresh_token_file: str = ""
    sync_interval: Seconds = 300.0
    # Google serves at most 50 reviews a page.
    page_size: Annotated[int, msgspec.Meta(ge=1, le=50)] = 50
    request_timeout: Seconds = 30.0
    locations: list[GoogleLocation] = msgspec.field(default_factory=list)


class PlatformsConfig(Strict, kw_only=True, frozen=True):
    """The ``[platforms]`` table: one sub-table per review platform."""

    google: GoogleConfig | None = None


class Config(Strict, kw_only=True, frozen=True):
    """The whole configuration file."""

    daemon: DaemonConfig = msgspec.field(default_factory=DaemonConfig)
    journal: JournalConfig = msgspec.field(default_factory=JournalConfig)
    supervisor: SupervisorConfig = msgspec.field(default_factory=SupervisorConfig)
    control: ControlConfig = msgspec.field(default_factory=ControlConfig)
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    platforms: PlatformsConfig = msgspec.field(default_factory=PlatformsConfig)
