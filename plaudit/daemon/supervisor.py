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

The child lifecycle is in `plaudit.daemon.child_lifecycle`, the restart budgets
in `plaudit.daemon.restart_policy` and the per-child records in
`plaudit.daemon.children`.  This module re-exports their public names.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from functools import partial
from typing import final

import trio

from plaudit.daemon.child_lifecycle import ACTIVE_STATES, ChildState, RestartType, check_transition
from plaudit.daemon.children import (
    ChildContext,
    ChildRecord,
    ChildSpec,
    ChildStatistics,
    StartFunction,
    SupervisorStatistics,
    TransitionHook,
)
from plaudit.daemon.restart_policy import (
    DEFAULT_JITTER,
    DEFAULT_POLICY,
    RestartPolicy,
    RestartVerdict,
    RestartWindow,
    decide_restart,
)
from plaudit.errors import PlauditError
from plaudit.metrics import ACTOR_RESTARTS, ACTOR_STATE

__all__ = [
    "DEFAULT_JITTER",
    "ChildContext",
    "ChildSpec",
    "ChildState",
    "ChildStatistics",
    "RestartPolicy",
    "RestartType",
    "StartFunction",
    "Supervisor",
    "SupervisorError",
    "SupervisorEscalation",
    "SupervisorStatistics",
    "TransitionHook",
    "check_transition",
]

logger = logging.getLogger(__name__)


class SupervisorError(PlauditError):
    """A supervisor call is invalid in the supervisor's current state."""


class SupervisorEscalation(SupervisorError):
    """A supervisor's children restarted more often than its intensity allows.

    `Supervisor.start` raises it after the whole subtree has stopped, so the
    parent supervisor counts it as a crash of that child.
    """


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
        intensity: RestartPolicy = DEFAULT_POLICY,
        rng: random.Random | None = None,
        on_event: TransitionHook | None = None,
    ) -> None:
        self.name = name
        self._children: list[ChildRecord] = []
        self._intensity = intensity
        self._window = RestartWindow(intensity)
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
        self._children.append(ChildRecord(spec))
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
        if self._state in ACTIVE_STATES:
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

    def _spawn(self, child: ChildRecord) -> None:
        if self._nursery is None:
            raise SupervisorError(f"supervisor {self.name!r} is not running. Start it first")
        child.stop_requested = False
        child.settled = trio.Event()
        child.done = trio.Event()
        self._nursery.start_soon(self._supervise, child, name=f"supervise {child.spec.name}")

    async def _supervise(self, child: ChildRecord) -> None:
        # The shield keeps outside cancellation away from the child, which
        # stops only through _stop_child, in order and within its grace.
        try:
            with trio.CancelScope(shield=True):
                if not child.stop_requested:
                    await self._supervise_child(child)
        except BaseException as exc:
            if child.state in ACTIVE_STATES:
                self._transition(child, ChildState.FAILED, exc)
            raise
        finally:
            child.settled.set()
            child.done.set()

    async def _supervise_child(self, child: ChildRecord) -> None:
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

    async def _run_attempt(self, child: ChildRecord) -> Exception | None:
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

    def _record_exit(self, child: ChildRecord, error: Exception | None) -> None:
        child.last_exit_at = trio.current_time()
        if error is not None:
            child.last_error = error
        if child.scope.cancelled_caught:
            logger.warning(
                "child.killed child=%s shutdown_grace=%.3f",
                child.spec.name,
                child.spec.shutdown_grace,
            )

    def _mark_ready(self, child: ChildRecord, attempt: int) -> None:
        # A context kept from an earlier attempt must not mark a later one ready.
        if child.attempts == attempt and child.state is ChildState.STARTING:
            self._transition(child, ChildState.RUNNING)

    def _end(self, child: ChildRecord, error: Exception | None) -> None:
        self._transition(child, ChildState.STOPPED, error)
        logger.log(
            logging.INFO if error is None else logging.WARNING,
            "child.stopped child=%s error=%r",
            child.spec.name,
            error,
            exc_info=error,
        )

    def _admit_restart(self, child: ChildRecord, error: Exception | None) -> float | None:
        """Count a restart against both budgets and return its delay, or None when refused."""
        decision = decide_restart(child.window, self._window, trio.current_time())
        if decision.verdict is RestartVerdict.FAIL:
            self._fail(child, error)
            return None
        if decision.verdict is RestartVerdict.ESCALATE:
            # The child is within its own budget, so supervisor.escalated is its only log line.
            self._transition(child, ChildState.FAILED, error)
            self._escalate(child, error)
            return None

        child.restarts += 1
        ACTOR_RESTARTS.labels(actor=child.spec.name).inc()
        return child.spec.policy.backoff(decision.restart_number, self._rng)

    async def _back_off(self, child: ChildRecord, delay: float, error: Exception | None) -> bool:
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

    def _fail(self, child: ChildRecord, error: Exception | None) -> None:
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

    def _escalate(self, child: ChildRecord, error: Exception | None) -> None:
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

    async def _stop_child(self, child: ChildRecord, *, hard: bool) -> None:
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
        self, child: ChildRecord, new: ChildState, error: BaseException | None = None
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

    def _find(self, name: str) -> ChildRecord:
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
