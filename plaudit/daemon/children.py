"""Per-child records of a supervisor: each child's spec, context, mutable record and statistics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass
from typing import Final, final

import trio

from plaudit.config.model import SupervisorConfig
from plaudit.daemon.child_lifecycle import ChildState, RestartType
from plaudit.daemon.restart_policy import DEFAULT_POLICY, RestartPolicy, RestartWindow

_CONFIG_DEFAULTS: Final = SupervisorConfig()


@final
class ChildContext:
    """A child's name, its stop request and its readiness signal."""

    __slots__ = ("_on_started", "name", "stop_requested")

    def __init__(self, name: str, *, on_started: Callable[[], object] | None = None) -> None:
        self.name = name
        self.stop_requested = trio.Event()
        self._on_started = on_started

    def started(self) -> None:
        """Report that the child is ready.  Calls after the first have no effect."""
        on_started, self._on_started = self._on_started, None
        if on_started is not None:
            on_started()

    def __repr__(self) -> str:
        return f"<ChildContext {self.name!r} stop_requested={self.stop_requested.is_set()}>"


StartFunction = Callable[[ChildContext], Awaitable[None]]
TransitionHook = Callable[[str, ChildState, ChildState, BaseException | None], None]


@final
@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to run one child and what to do when it ends."""

    name: str
    start: StartFunction
    _: KW_ONLY
    restart: RestartType = RestartType.PERMANENT
    policy: RestartPolicy = DEFAULT_POLICY
    # Seconds between the stop request and the hard cancel.  A supervisor used
    # as a child needs at least the sum of its own children's graces here.
    shutdown_grace: float = _CONFIG_DEFAULTS.shutdown_grace
    signals_ready: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("child name is empty. Give every child a unique name")
        if self.shutdown_grace < 0:
            raise ValueError(
                f"shutdown_grace of child {self.name!r} must be 0 or more, "
                f"got {self.shutdown_grace}"
            )


@final
@dataclass(frozen=True, slots=True)
class ChildStatistics:
    """A snapshot of one child, with times in ``trio.current_time()`` seconds."""

    name: str
    state: ChildState
    restart_type: RestartType
    restarts: int
    last_error: str | None
    last_exit_at: float | None
    started_at: float | None


@final
@dataclass(frozen=True, slots=True)
class SupervisorStatistics:
    """A snapshot of a supervisor and its children in start order."""

    name: str
    state: ChildState
    restarts: int
    children: tuple[ChildStatistics, ...]


@final
class ChildRecord:
    """The supervisor's mutable record of one child."""

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.state = ChildState.STOPPED
        self.restarts = 0
        self.attempts = 0
        self.window = RestartWindow(spec.policy)
        self.last_error: BaseException | None = None
        self.last_exit_at: float | None = None
        self.started_at: float | None = None
        self.ctx: ChildContext | None = None
        # The scope of the running attempt, and of the wait before a restart.
        self.scope = trio.CancelScope()
        self.backoff_scope = trio.CancelScope()
        self.stop_requested = False
        # Set when the child runs or ends; set while no supervising task exists.
        self.settled = trio.Event()
        self.done = trio.Event()
        self.settled.set()
        self.done.set()

    def statistics(self) -> ChildStatistics:
        error = None if self.last_error is None else repr(self.last_error)
        return ChildStatistics(
            name=self.spec.name,
            state=self.state,
            restart_type=self.spec.restart,
            restarts=self.restarts,
            last_error=error,
            last_exit_at=self.last_exit_at,
            started_at=self.started_at,
        )

    def __repr__(self) -> str:
        return f"<child {self.spec.name!r} {self.state} restarts={self.restarts}>"
