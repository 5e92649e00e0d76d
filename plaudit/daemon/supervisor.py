"""OTP-style supervision on Trio nurseries.

A `Supervisor` runs the children described by its `ChildSpec` list in one
nursery, one supervising task per child, and restarts each child on its own
(the OTP one_for_one strategy) according to its `RestartType`.

A child is an async callable ``start(ctx)`` that takes a `ChildContext`:

- ``ctx.name`` is the child's name from its spec.
- ``ctx.stop_requested`` is a `trio.Event` that the supervisor sets to
  request a stop.  The child should finish its current step and return.  After
  ``shutdown_grace`` seconds the supervisor cancels it.
- ``ctx.started()`` reports readiness.  It matters only for specs created with
  ``signals_ready=True``: the child stays ``starting`` until the call, and the
  supervisor starts the next sibling only after it.  Other children count as
  running as soon as they begin, and for them the call has no effect.

A supervisor is itself a child: pass its bound ``start`` method as the
``start`` of a `ChildSpec` in the parent.  When the restarts of all its
children exceed its own intensity, ``start`` stops the subtree and raises
`SupervisorEscalation`, which the parent handles like any crash.

Every time in this module (windows, backoff, ``started_at``) is read from
``trio.current_time()``, so tests can drive it with a virtual clock.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from enum import StrEnum
from functools import partial
from typing import Final, final

import trio

from plaudit.config.model import SupervisorConfig
from plaudit.errors import IllegalTransitionError, PlauditError
from plaudit.metrics import ACTOR_RESTARTS, ACTOR_STATE

logger = logging.getLogger(__name__)

_CONFIG_DEFAULTS: Final = SupervisorConfig()

# Each restart waits for a random fraction between 1 - jitter and 1 of its
# exponential delay, so children that crashed together do not restart together.
DEFAULT_JITTER: Final = 0.2

# 2 ** 64 times any sensible initial delay is far past backoff_max, and the cap
# keeps a large restart number from overflowing the float.
_MAX_BACKOFF_EXPONENT: Final = 64


class SupervisorError(PlauditError):
    """A supervisor call is invalid in the supervisor's current state."""


class SupervisorEscalation(SupervisorError):
    """A supervisor's children restarted more often than its intensity allows.

    `Supervisor.start` raises it after the whole subtree has stopped, so the
    parent supervisor counts it as a crash of that child.
    """


class RestartType(StrEnum):
    """When a child that ended is started again (the OTP restart types)."""

    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"

    def restarts_after(self, error: BaseException | None) -> bool:
        """Return whether a child of this type that ended with ``error`` is restarted.

        Permanent children are always restarted, transient ones only after an
        exception, and temporary ones never.
        """
        if self is RestartType.PERMANENT:
            return True
        if self is RestartType.TRANSIENT:
            return error is not None
        return False


class ChildState(StrEnum):
    """Lifecycle of a supervised child, and of a supervisor itself."""

    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


_TRANSITIONS: Final[dict[ChildState, frozenset[ChildState]]] = {
    ChildState.STOPPED: frozenset({ChildState.STARTING}),
    ChildState.STARTING: frozenset(
        {
            ChildState.RUNNING,
            ChildState.BACKOFF,
            ChildState.STOPPING,
            ChildState.STOPPED,
            ChildState.FAILED,
        }
    ),
    ChildState.RUNNING: frozenset(
        {ChildState.BACKOFF, ChildState.STOPPING, ChildState.STOPPED, ChildState.FAILED}
    ),
    ChildState.BACKOFF: frozenset({ChildState.STARTING, ChildState.STOPPED, ChildState.FAILED}),
    # An escalating supervisor stops its children first and then fails.
    ChildState.STOPPING: frozenset({ChildState.STOPPED, ChildState.FAILED}),
    # Only an operator restart, or a parent restarting a subtree, leaves FAILED.
    ChildState.FAILED: frozenset({ChildState.STARTING}),
}

_ACTIVE_STATES: Final = frozenset(
    {ChildState.STARTING, ChildState.RUNNING, ChildState.BACKOFF, ChildState.STOPPING}
)


def check_transition(old: ChildState, new: ChildState) -> None:
    """Raise IllegalTransitionError unless a child may move from ``old`` to ``new``."""
    allowed = _TRANSITIONS[old]
    if new not in allowed:
        targets = ", ".join(sorted(allowed))
        raise IllegalTransitionError(
            f"illegal transition from {old} to {new}. A child in state {old} "
            f"can only move to {targets}"
        )


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RestartPolicy:
    """Restart intensity and backoff of one child, or the intensity of a supervisor.

    More than ``max_restarts`` restarts within a sliding window of
    ``within_seconds`` exhaust the budget.  The delay before restart ``n`` of
    the window is ``min(backoff_max, backoff_initial * 2 ** (n - 1))`` seconds
    times a random factor in ``[1 - jitter, 1]``.  A supervisor uses only
    ``max_restarts`` and ``within_seconds`` of its own policy.
    """

    max_restarts: int = _CONFIG_DEFAULTS.max_restarts
    within_seconds: float = _CONFIG_DEFAULTS.within_seconds
    backoff_initial: float = _CONFIG_DEFAULTS.backoff_initial
    backoff_max: float = _CONFIG_DEFAULTS.backoff_max
    jitter: float = DEFAULT_JITTER

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ValueError(f"max_restarts must be 0 or more, got {self.max_restarts}")
        if self.within_seconds <= 0:
            raise ValueError(f"within_seconds must be above 0, got {self.within_seconds}")
        if self.backoff_initial < 0:
            raise ValueError(f"backoff_initial must be 0 or more, got {self.backoff_initial}")
        if self.backoff_max < self.backoff_initial:
            raise ValueError(
                f"backoff_max {self.backoff_max} is below backoff_initial "
                f"{self.backoff_initial}. Raise backoff_max or lower backoff_initial"
            )
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter must be a fraction from 0 to 1, got {self.jitter}")

    @classmethod
    def from_config(cls, cfg: SupervisorConfig, *, jitter: float = DEFAULT_JITTER) -> RestartPolicy:
        """Build the policy of the ``[supervisor]`` table, which has no jitter key."""
        return cls(
            max_restarts=cfg.max_restarts,
            within_seconds=cfg.within_seconds,
            backoff_initial=cfg.backoff_initial,
            backoff_max=cfg.backoff_max,
            jitter=jitter,
        )

    def backoff(self, restart: int, rng: random.Random) -> float:
        """Return the delay in seconds before restart number ``restart`` (from 1) of the window."""
        exponent = min(max(restart - 1, 0), _MAX_BACKOFF_EXPONENT)
        ceiling = min(self.backoff_max, self.backoff_initial * 2.0**exponent)
        return ceiling * rng.uniform(1.0 - self.jitter, 1.0)


_DEFAULT_POLICY: Final = RestartPolicy()


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
    policy: RestartPolicy = _DEFAULT_POLICY
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
class _RestartWindow:
    """Restart times within the last ``within_seconds``, oldest first."""

    __slots__ = ("_max_restarts", "_times", "_within")

    def __init__(self, policy: RestartPolicy) -> None:
        self._max_restarts = policy.max_restarts
        self._within = policy.within_seconds
        self._times: deque[float] = deque()

    def allows(self, now: float) -> bool:
        """Return whether one more restart at ``now`` stays within the budget."""
        while self._times and self._times[0] <= now - self._within:
            self._times.popleft()
        return len(self._times) < self._max_restarts

    def record(self, now: float) -> int:
        """Record a restart and return how many the window now holds."""
        self._times.append(now)
        return len(self._times)

    def reset(self) -> None:
        self._times.clear()

    def __len__(self) -> int:
        return len(self._times)


@final
class _Child:
    """The supervisor's mutable record of one child."""

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.state = ChildState.STOPPED
        self.restarts = 0
        self.attempts = 0
        self.window = _RestartWindow(spec.policy)
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


def _publish_state(name: str, state: ChildState) -> None:
    for candidate in ChildState:
        ACTOR_STATE.labels(actor=name, state=candidate.value).set(int(candidate is state))


@final
class Supervisor:
    """Runs children in one nursery and restarts each by its policy (one_for_one).

    Children start in list order and stop in reverse order.  A child that
    exhausts its restart budget is marked failed while its siblings keep
    running.  When the restarts of all children exceed ``intensity``, the
    supervisor stops them all and `start` raises `SupervisorEscalation`.
    """

    def __init__(
        self,
        name: str,
        children: Sequence[ChildSpec] = (),
        *,
        intensity: RestartPolicy = _DEFAULT_POLICY,
        rng: random.Random | None = None,
        on_event: TransitionHook | None = None,
    ) -> None:
        self.name = name
        self._children: list[_Child] = []
        self._intensity = intensity
        self._window = _RestartWindow(intensity)
        self._rng = rng if rng is not None else random.Random()
        self._on_event = on_event
        self._state = ChildState.STOPPED
        self._nursery: trio.Nursery | None = None
        self._main_scope = trio.CancelScope()
        self._finished = trio.Event()
        self._finished.set()
        self._operator_lock = trio.Lock()
        self._escalation: SupervisorEscalation | None = None
        self._escalation_cause: BaseException | None = None
        for spec in children:
            self._add(spec)

    @property
    def state(self) -> ChildState:
        return self._state

    def _add(self, spec: ChildSpec) -> None:
        if any(child.spec.name == spec.name for child in self._children):
            raise ValueError(
                f"duplicate child name {spec.name!r} in supervisor {self.name!r}. "
                "Give every child a unique name"
            )
        self._children.append(_Child(spec))
        _publish_state(spec.name, ChildState.STOPPED)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the tree at the top of a process.

        ``task_status.started()`` is called once every child is up.
        """
        await self.start(ChildContext(self.name, on_started=task_status.started))

    async def start(self, ctx: ChildContext) -> None:
        """Run the tree until it is stopped, cancelled or escalates.

        Raises SupervisorEscalation after the subtree has stopped when the
        children's restarts exceeded this supervisor's intensity.
        """
        self._begin_run()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._forward_stop, ctx.stop_requested)
                await self._supervise_tree(ctx)
                # Every supervising task has returned, so this only ends the forwarding task.
                nursery.cancel_scope.cancel()
        finally:
            self._finish_run()
        if self._escalation is not None:
            raise self._escalation from self._escalation_cause

    async def stop(self) -> None:
        """Stop every child in reverse start order, each within its grace, and wait for all."""
        self._request_stop()
        await self._finished.wait()

    def _begin_run(self) -> None:
        if self._state in _ACTIVE_STATES:
            raise SupervisorError(
                f"supervisor {self.name!r} is already {self._state}. "
                "Stop it before starting it again"
            )
        self._set_state(ChildState.STARTING)
        self._main_scope = trio.CancelScope()
        self._finished = trio.Event()
        self._escalation = None
        self._escalation_cause = None
        # A parent restarting this subtree starts it fresh.
        self._window.reset()
        for child in self._children:
            child.window.reset()

    def _finish_run(self) -> None:
        self._nursery = None
        final_state = ChildState.STOPPED if self._escalation is None else ChildState.FAILED
        self._set_state(final_state)
        self._finished.set()

    async def _forward_stop(self, request: trio.Event) -> None:
        await request.wait()
        self._request_stop()

    def _request_stop(self) -> None:
        self._main_scope.cancel()

    async def _supervise_tree(self, ctx: ChildContext) -> None:
        try:
            with self._main_scope:
                await self._start_children()
                self._set_state(ChildState.RUNNING)
                ctx.started()
                await trio.sleep_forever()
        except BaseException:
            # After an outside cancellation or a broken supervising task, the
            # children still stop in reverse order, each within its grace,
            # before the exception propagates.
            with trio.CancelScope(shield=True):
                await self._stop_children()
            raise
        await self._stop_children()

    async def _start_children(self) -> None:
        for child in self._children:
            self._spawn(child)
            await child.settled.wait()

    async def _stop_children(self) -> None:
        self._set_state(ChildState.STOPPING)
        try:
            for child in reversed(self._children):
                await self._stop_child(child, hard=False)
        except trio.Cancelled:
            # The parent's grace for this subtree ran out, so the remaining
            # children are cancelled at once, still in reverse order.
            with trio.CancelScope(shield=True):
                for child in reversed(self._children):
                    await self._stop_child(child, hard=True)
            raise

    def _set_state(self, new: ChildState) -> None:
        check_transition(self._state, new)
        self._state = new
        logger.info("supervisor.state supervisor=%s state=%s", self.name, new)

    def _spawn(self, child: _Child) -> None:
        if self._nursery is None:
            raise SupervisorError(f"supervisor {self.name!r} is not running. Start it first")
        child.stop_requested = False
        child.settled = trio.Event()
        child.done = trio.Event()
        self._nursery.start_soon(self._supervise, child, name=f"supervise {child.spec.name}")

    async def _supervise(self, child: _Child) -> None:
        # The shield keeps outside cancellation away from the child, which
        # stops only through _stop_child, in order and within its grace.
        try:
            with trio.CancelScope(shield=True):
                if not child.stop_requested:
                    await self._supervise_child(child)
        except BaseException as exc:
            if child.state in _ACTIVE_STATES:
                self._transition(child, ChildState.FAILED, exc)
            raise
        finally:
            child.settled.set()
            child.done.set()

    async def _supervise_child(self, child: _Child) -> None:
        while True:
            error = await self._run_attempt(child)
            if child.stop_requested or not child.spec.restart.restarts_after(error):
                self._end(child, error)
                return

            delay = self._admit_restart(child, error)
            if delay is None:
                return

            if not await self._back_off(child, delay, error):
                self._transition(child, ChildState.STOPPED, error)
                return

    async def _run_attempt(self, child: _Child) -> Exception | None:
        """Run the child's ``start`` once and return the exception it ended with."""
        child.attempts += 1
        on_started = partial(self._mark_ready, child, child.attempts)
        child.ctx = ChildContext(child.spec.name, on_started=on_started)
        child.scope = trio.CancelScope()
        child.started_at = trio.current_time()
        self._transition(child, ChildState.STARTING)
        if not child.spec.signals_ready:
            self._transition(child, ChildState.RUNNING)

        error: Exception | None = None
        try:
            with child.scope:
                await child.spec.start(child.ctx)
        except Exception as exc:  # any crash is handled by the child's restart type
            error = exc

        self._record_exit(child, error)
        return error

    def _record_exit(self, child: _Child, error: Exception | None) -> None:
        child.last_exit_at = trio.current_time()
        if error is not None:
            child.last_error = error
        if child.scope.cancelled_caught:
            logger.warning(
                "child.killed child=%s shutdown_grace=%.3f",
                child.spec.name,
                child.spec.shutdown_grace,
            )

    def _mark_ready(self, child: _Child, attempt: int) -> None:
        # A context kept from an earlier attempt must not mark a later one ready.
        if child.attempts == attempt and child.state is ChildState.STARTING:
            self._transition(child, ChildState.RUNNING)

    def _end(self, child: _Child, error: Exception | None) -> None:
        self._transition(child, ChildState.STOPPED, error)
        logger.log(
            logging.INFO if error is None else logging.WARNING,
            "child.stopped child=%s error=%r",
            child.spec.name,
            error,
            exc_info=error,
        )

    def _admit_restart(self, child: _Child, error: Exception | None) -> float | None:
        """Count a restart against both budgets and return its delay, or None when refused."""
        now = trio.current_time()
        if not child.window.allows(now):
            self._fail(child, error)
            return None
        if not self._window.allows(now):
            # The child is within its own budget, so supervisor.escalated is its only log line.
            self._transition(child, ChildState.FAILED, error)
            self._escalate(child, error)
            return None

        restart_number = child.window.record(now)
        self._window.record(now)
        child.restarts += 1
        ACTOR_RESTARTS.labels(actor=child.spec.name).inc()
        return child.spec.policy.backoff(restart_number, self._rng)

    async def _back_off(self, child: _Child, delay: float, error: Exception | None) -> bool:
        """Wait ``delay`` seconds and return False when a stop request came first."""
        child.backoff_scope = trio.CancelScope()
        self._transition(child, ChildState.BACKOFF, error)
        logger.warning(
            "child.restart child=%s restarts=%d delay=%.3f error=%r",
            child.spec.name,
            child.restarts,
            delay,
            error,
            exc_info=error,
        )
        with child.backoff_scope:
            await trio.sleep(delay)
        return not child.stop_requested

    def _fail(self, child: _Child, error: Exception | None) -> None:
        self._transition(child, ChildState.FAILED, error)
        policy = child.spec.policy
        logger.error(
            "child.failed child=%s restarts=%d max_restarts=%d within_seconds=%.3f error=%r",
            child.spec.name,
            child.restarts,
            policy.max_restarts,
            policy.within_seconds,
            error,
            exc_info=error,
        )

    def _escalate(self, child: _Child, error: Exception | None) -> None:
        self._escalation = SupervisorEscalation(
            f"supervisor {self.name!r} exceeded its restart intensity of "
            f"{self._intensity.max_restarts} restarts within {self._intensity.within_seconds} s. "
            f"The last child to end was {child.spec.name!r}, with {error!r}. "
            "The parent restarts this supervisor by its own policy. Fix the failing child, "
            "or raise this supervisor's intensity if such restarts are expected"
        )
        self._escalation_cause = error
        logger.error(
            "supervisor.escalated supervisor=%s child=%s restarts=%d error=%r",
            self.name,
            child.spec.name,
            len(self._window),
            error,
        )
        self._request_stop()

    async def _stop_child(self, child: _Child, *, hard: bool) -> None:
        """Ask the child to stop, cancel it after its grace (at once if ``hard``), and wait.

        NOTE: a child that shields itself from cancellation can hold this past its grace.
        """
        child.stop_requested = True
        if child.ctx is not None:
            child.ctx.stop_requested.set()
        if child.state in (ChildState.STARTING, ChildState.RUNNING):
            self._transition(child, ChildState.STOPPING)
            logger.info(
                "child.stopping child=%s shutdown_grace=%.3f",
                child.spec.name,
                child.spec.shutdown_grace,
            )
            grace = 0.0 if hard else child.spec.shutdown_grace
            child.scope.deadline = min(child.scope.deadline, trio.current_time() + grace)
        elif hard:
            child.scope.cancel()
        child.backoff_scope.cancel()
        await child.done.wait()

    def _transition(
        self, child: _Child, new: ChildState, error: BaseException | None = None
    ) -> None:
        old = child.state
        check_transition(old, new)
        child.state = new
        _publish_state(child.spec.name, new)
        if new in (ChildState.RUNNING, ChildState.STOPPED, ChildState.FAILED):
            child.settled.set()
        logger.debug("child.state child=%s old=%s new=%s", child.spec.name, old, new)
        if self._on_event is not None:
            self._notify(self._on_event, child.spec.name, old, new, error)

    def _notify(
        self,
        hook: TransitionHook,
        name: str,
        old: ChildState,
        new: ChildState,
        error: BaseException | None,
    ) -> None:
        try:
            hook(name, old, new, error)
        except Exception:  # a broken watcher must not stop supervision
            logger.exception("supervisor.hook_failed supervisor=%s child=%s", self.name, name)

    async def restart(self, name: str) -> None:
        """Restart child ``name`` with a fresh restart budget.

        A child that is still active is stopped first, within its grace.  The
        call returns once the child runs again or has ended.  Raises
        SupervisorError for an unknown name or a supervisor that is not running.
        """
        child = self._find(name)
        async with self._operator_lock:
            self._require_running(name)
            await self._stop_child(child, hard=False)
            # The tree may have begun stopping while this child stopped.
            self._require_running(name)
            child.window.reset()
            logger.info("child.operator_restart child=%s", name)
            self._spawn(child)
        await child.settled.wait()

    def _require_running(self, name: str) -> None:
        if self._state is not ChildState.RUNNING:
            raise SupervisorError(
                f"cannot restart child {name!r} because supervisor {self.name!r} is "
                f"{self._state}. Restart children only while their supervisor is running"
            )

    def _find(self, name: str) -> _Child:
        for child in self._children:
            if child.spec.name == name:
                return child
        known = ", ".join(child.spec.name for child in self._children) or "none"
        raise SupervisorError(
            f"no child named {name!r} in supervisor {self.name!r}. Known children: {known}"
        )

    def statistics(self) -> SupervisorStatistics:
        """Return a snapshot of the supervisor and every child, in start order."""
        children = tuple(child.statistics() for child in self._children)
        return SupervisorStatistics(
            name=self.name,
            state=self._state,
            restarts=sum(child.restarts for child in self._children),
            children=children,
        )

    def __repr__(self) -> str:
        counts = {state: 0 for state in ChildState}
        for child in self._children:
            counts[child.state] += 1
        return (
            f"<Supervisor {self.name!r} {self._state}: {len(self._children)} children, "
            f"{counts[ChildState.RUNNING]} running, {counts[ChildState.FAILED]} failed, "
            f"{sum(child.restarts for child in self._children)} restarts>"
        )
