"""The Trio shell shared by every journal-driven actor.

An actor claims its own jobs from the journal, passes each to ``handle`` and
records the outcome.  The effects that ``handle`` returns commit in the same
transaction as the job's completion, so a crash at any instant keeps both or
neither.  Retryable platform errors go back to the journal with a
backoff; permanent ones make the job dead.  While a job runs, its lease is
renewed every third of ``lease_seconds``, so a job that runs longer than one
lease is not recovered and claimed a second time.

Pausing stops claiming; a job already running finishes.  A stop request (the
supervisor's graceful shutdown) also stops claiming; claimed jobs that have
not started are released, and a job cut off by the hard deadline is released
too, so nothing waits for its lease to expire.

With a circuit breaker, jobs wait while the breaker is open: the actor claims
nothing, so waiting never uses an attempt.  When the open interval ends, one
job runs at once as the probe (a failed job due later is brought forward for
it), and after a successful probe every failed job waiting for its retry time
runs now.  A job whose credentials were revoked stops all claiming until a
configuration reload supplies new ones.

When the journal reports a full disk (SQLITE_FULL), the actor's health
becomes ``journal-full``: it logs one error, reports the failure to the
health monitor and claims again after a wait that doubles from 1 s to 30 s.
So a full disk never crashes the actor into its supervisor's restart limit.
The first job that it completes afterwards makes it healthy again.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import msgspec
import trio

from plaudit import metrics
from plaudit.errors import JournalError, PlatformError, ReconnectRequiredError
from plaudit.journal import AsyncJournal, Job, LeaseLostError, Tx
from plaudit.reliability.breaker import BreakerState, CircuitBreaker
from plaudit.reliability.monitor import PlatformHealthMonitor, disk_full

log = logging.getLogger(__name__)

Effects = Callable[[Tx], None]

# The actor health while the journal's disk is full.
JOURNAL_FULL = "journal-full"
# Seconds between claims while the journal's disk is full: doubling from the
# first to the second value.
JOURNAL_FULL_WAIT = 1.0
JOURNAL_FULL_WAIT_MAX = 30.0

# Failed jobs of one owner, earliest retry first, that are not yet due.
_BRING_FORWARD = """
UPDATE jobs SET next_run_at = ?, updated_at = ? WHERE id IN (
    SELECT id FROM jobs WHERE owner = ? AND state = 'failed' AND next_run_at > ?
    ORDER BY next_run_at, id LIMIT ?
)
"""


class ChildContext(Protocol):
    """The handle a supervisor passes to each child it starts."""

    name: str
    stop_requested: trio.Event

    def started(self) -> None: ...


class ActorStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A point-in-time view of an actor for ``ctl status`` and tests."""

    name: str
    paused: bool
    health: str
    jobs_succeeded: int
    jobs_failed: int
    jobs_released: int
    last_error: str | None
    last_success_at: float | None


class Actor:
    """Base class: subclasses set ``kinds`` and implement ``handle``."""

    kinds: Sequence[str] = ()

    def __init__(
        self,
        name: str,
        journal: AsyncJournal,
        *,
        lease_seconds: float,
        poll_interval: float = 1.0,
        batch: int = 4,
        breaker: CircuitBreaker | None = None,
        monitor: PlatformHealthMonitor | None = None,
    ) -> None:
        self.name = name
        self.journal = journal
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.batch = batch
        self.paused = False
        # "healthy", "degraded" (retryable failures), "reconnect-required" or
        # "journal-full".
        self.health = "healthy"
        # Waits in a row because the journal's disk was full.
        self._journal_full_waits = 0
        self._wakeup = trio.Event()
        self._resumed = trio.Event()
        self._succeeded = 0
        self._failed = 0
        self._released = 0
        self._last_error: str | None = None
        self._last_success_at: float | None = None
        self.breaker = breaker
        self.monitor = monitor
        # Set by a ReconnectRequiredError; only new credentials clear it.
        self.reconnect_required = False
        self._reconnected = trio.Event()
        if monitor is not None:
            monitor.register(name)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name} health={self.health} paused={self.paused} "
            f"succeeded={self._succeeded} failed={self._failed}>"
        )

    def statistics(self) -> ActorStatistics:
        return ActorStatistics(
            name=self.name,
            paused=self.paused,
            health=self.health,
            jobs_succeeded=self._succeeded,
            jobs_failed=self._failed,
            jobs_released=self._released,
            last_error=self._last_error,
            last_success_at=self._last_success_at,
        )

    def pause(self) -> None:
        """Stop claiming new jobs until ``resume``; the job in hand finishes."""
        self.paused = True
        self._resumed = trio.Event()
        if self.monitor is not None:
            self.monitor.observe_pause(self.name, paused=True)
        log.info("actor.paused", extra={"actor": self.name})

    def resume(self) -> None:
        self.paused = False
        self._resumed.set()
        if self.monitor is not None:
            self.monitor.observe_pause(self.name, paused=False)
        self.wake()
        log.info("actor.resumed", extra={"actor": self.name})

    def wake(self) -> None:
        """Claim again now rather than at the next poll (new work was queued)."""
        self._wakeup.set()

    def credentials_replaced(self) -> None:
        """Claim again after a reconnect-required stop: new credentials were loaded."""
        if not self.reconnect_required:
            return

        self.reconnect_required = False
        self._reconnected.set()
        if self.monitor is not None:
            self.monitor.observe_reconnect(self.name, required=False)
        log.info("actor.credentials_replaced", extra={"actor": self.name})
        self.wake()

    def breaker_changed(self, name: str, old: BreakerState, new: BreakerState) -> None:
        """Pass breaker transitions on to the health monitor (a breaker's ``on_change``)."""
        if self.monitor is not None:
            self.monitor.observe_breaker(self.name, tripped=new is not BreakerState.CLOSED)

    def profile_of(self, job: Job) -> str:
        """Return the platform profile ``job`` works on, or "" when it has none."""
        return ""

    async def on_start(self) -> None:
        """Prepare before the first claim (for example, schedule periodic jobs)."""

    async def on_idle(self) -> None:
        """Run once per idle poll (for example, top up the schedule)."""

    async def handle(self, job: Job) -> Effects | None:
        """Do the job's I/O and return the journal writes that record its result."""
        raise NotImplementedError

    async def start(self, ctx: ChildContext) -> None:
        """Run the claim loop until the supervisor requests a stop."""
        # NOTE: a full disk during on_start() still raises to the supervisor,
        # which restarts the actor by its policy; only the claim loop waits.
        await self.on_start()
        ctx.started()
        while not ctx.stop_requested.is_set():
            if self.paused:
                await self._wait_for(ctx, self._resumed, math.inf)
                continue
            if self.reconnect_required:
                await self._wait_for(ctx, self._reconnected, math.inf)
                continue
            open_for = self.breaker.open_remaining() if self.breaker is not None else 0.0
            if open_for > 0:
                # No on_idle() here: scheduling more work for a platform that is
                # down would only pile up jobs to run after it recovers.
                await self._wait_for(ctx, self._wakeup, open_for)
                continue
            try:
                jobs = await self._claim()
                if not jobs:
                    await self.on_idle()
                    await self._wait_for(ctx, self._wakeup, self.poll_interval)
                    continue
                await self._run_claimed(ctx, jobs)
            except JournalError as error:
                # A full disk ends by itself once space is freed, so the actor
                # waits instead of crashing into its supervisor's restart limit.
                if isinstance(error, LeaseLostError) or not disk_full(error):
                    raise
                await self._wait_for_journal(ctx, error)

    async def _wait_for_journal(self, ctx: ChildContext, error: JournalError) -> None:
        """Mark the actor journal-full, report the failure to the monitor, wait to claim again."""
        self._journal_full_waits += 1
        exponent = min(self._journal_full_waits - 1, 16)
        delay = min(JOURNAL_FULL_WAIT_MAX, JOURNAL_FULL_WAIT * 2.0**exponent)
        if self.health != JOURNAL_FULL:
            log.error(
                "actor.journal_full",
                extra={"actor": self.name, "error": str(error), "retry_in": delay},
            )
        self.health = JOURNAL_FULL
        self._last_error = str(error)
        if self.monitor is not None:
            self.monitor.observe_job(self.name, "", ok=False, seconds=0.0, error=str(error))
        await self._wait_for(ctx, self._wakeup, delay)

    async def _claim(self) -> list[Job]:
        """Claim a batch, or when the breaker is half-open a single probe job."""
        probing = self.breaker is not None and self.breaker.state is BreakerState.HALF_OPEN
        limit = 1 if probing else self.batch
        jobs = await self._claim_up_to(limit)
        if probing and not jobs and await self._bring_forward(1):
            jobs = await self._claim_up_to(1)
        return jobs

    async def _claim_up_to(self, limit: int) -> list[Job]:
        # Shielded, because a claim cancelled after its commit would leave
        # jobs running, with no worker, until their leases expire.
        with trio.CancelScope(shield=True):
            jobs = await self.journal.claim(
                self.name,
                kinds=self.kinds or None,
                limit=limit,
                lease_seconds=self.lease_seconds,
            )
        return jobs

    async def _bring_forward(self, limit: int) -> int:
        """Make up to ``limit`` (-1: all) failed jobs due now; return how many."""

        def update(tx: Tx) -> int:
            cursor = tx.execute(_BRING_FORWARD, (tx.now, tx.now, self.name, tx.now, limit))
            return cursor.rowcount

        count = await self.journal.transaction(update)
        if count:
            log.info("actor.retries_brought_forward", extra={"actor": self.name, "jobs": count})
        return count

    async def _wait_for(self, ctx: ChildContext, event: trio.Event, seconds: float) -> None:
        """Sleep until ``event``, a stop request or ``seconds`` pass, whichever is first."""
        with trio.move_on_after(seconds):
            async with trio.open_nursery() as nursery:

                async def watch(waited: trio.Event) -> None:
                    await waited.wait()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(watch, event)
                nursery.start_soon(watch, ctx.stop_requested)
        if self._wakeup.is_set():
            self._wakeup = trio.Event()

    async def _run_claimed(self, ctx: ChildContext, jobs: list[Job]) -> None:
        for index, job in enumerate(jobs):
            if ctx.stop_requested.is_set() or self.paused or self.reconnect_required:
                await self._release_all(jobs[index:])
                return
            if self.breaker is not None and not self.breaker.allow():
                # The breaker opened during the batch: the rest wait, unattempted.
                await self._release_all(jobs[index:])
                return
            await self._run_one(job)

    async def _release_all(self, jobs: Sequence[Job]) -> None:
        with trio.CancelScope(shield=True):
            for job in jobs:
                try:
                    await self.journal.release(job.id)
                except LeaseLostError:
                    # Its completion committed just before the cancellation.
                    continue
                self._released += 1

    async def _run_one(self, job: Job) -> None:
        began = trio.current_time()
        finished = False
        try:
            outcome = await self._attempt(job)
            finished = True
        except Exception as crash:
            if isinstance(crash, LeaseLostError) or disk_full(crash):
                raise
            # A bug that raises on every attempt would otherwise be released
            # with its attempt uncounted and never reach the dead state.
            finished = True
            await self._record_crash(job, crash)
            raise
        finally:
            if not finished:
                # Cut off by cancellation (hard shutdown deadline): hand the
                # job back now instead of waiting for its lease to expire.
                if self.breaker is not None:
                    self.breaker.release_probe()
                await self._release_all([job])
        seconds = trio.current_time() - began
        metrics.JOB_DURATION.labels(job.kind, outcome).observe(seconds)
        if self.monitor is not None and outcome != "lease_lost":
            error = None if outcome == "succeeded" else self._last_error
            self.monitor.observe_job(
                self.name, self.profile_of(job), ok=error is None, seconds=seconds, error=error
            )

    async def _attempt(self, job: Job) -> str:
        """Run one job and record its outcome; returns the outcome label."""
        probe = self.breaker is not None and self.breaker.state is BreakerState.HALF_OPEN
        try:
            effects = await self._handle_keeping_lease(job)
        except ReconnectRequiredError as error:
            self.health = "reconnect-required"
            if self.breaker is not None:
                self.breaker.release_probe()
            self._stop_for_reconnect(error)
            return await self._record_failure(job, error, permanent=True)
        except PlatformError as error:
            self.health = "degraded"
            self._record_breaker_failure(error)
            return await self._record_failure(
                job, error, permanent=not error.retryable, retry_after=error.retry_after
            )
        except BaseException:
            if self.breaker is not None:
                self.breaker.release_probe()
            raise
        if self.breaker is not None:
            self.breaker.record_success()
        if probe:
            # The platform is back, so failed jobs need not sit out their backoff.
            await self._bring_forward(-1)
        try:
            await self.journal.complete(job.id, effects)
        except LeaseLostError:
            log.warning(
                "job.lease_lost", extra={"actor": self.name, "job": job.id, "kind": job.kind}
            )
            return "lease_lost"
        self._succeeded += 1
        self._last_success_at = time.time()
        if self._journal_full_waits:
            log.info("actor.journal_writable", extra={"actor": self.name})
            self._journal_full_waits = 0
        self.health = "healthy"
        return "succeeded"

    async def _handle_keeping_lease(self, job: Job) -> Effects | None:
        """Run ``handle`` while renewing the job's lease every third of ``lease_seconds``.

        Without renewal, the housekeeping sweep returns a job that runs longer
        than its lease to ready, its completion then fails with a lost lease,
        and the job repeats until it is dead.
        """
        raised: Exception | None = None
        effects: Effects | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._renew_lease, job.id)
            try:
                effects = await self.handle(job)
            except Exception as error:
                # Re-raised below, outside the nursery, so callers catch it
                # as itself rather than inside an ExceptionGroup.
                raised = error
            finally:
                nursery.cancel_scope.cancel()
        if raised is not None:
            raise raised
        return effects

    async def _renew_lease(self, job_id: int) -> None:
        while True:
            await trio.sleep(self.lease_seconds / 3)
            try:
                await self.journal.extend_lease(job_id, self.lease_seconds)
            except LeaseLostError as error:
                # The completion finds the lease lost too and logs it, so renewing stops.
                log.warning(
                    "job.lease_not_renewed",
                    extra={"actor": self.name, "job": job_id, "error": str(error)},
                )
                return
            except JournalError as error:
                # A full disk may clear before the lease expires, so renewing goes on.
                log.warning(
                    "job.lease_not_renewed",
                    extra={"actor": self.name, "job": job_id, "error": str(error)},
                )

    async def _record_crash(self, job: Job, error: Exception) -> None:
        """Count the attempt of a job whose handling raised an unexpected exception."""
        self._failed += 1
        self._last_error = repr(error)
        with trio.CancelScope(shield=True):
            try:
                state = await self.journal.fail(job.id, f"unexpected error: {error!r}")
            except JournalError as failure:
                log.exception(
                    "job.crash_not_recorded",
                    extra={"actor": self.name, "job": job.id, "error": str(failure)},
                )
                return
        log.error(
            "job.crashed",
            extra={"actor": self.name, "job": job.id, "kind": job.kind, "state": str(state)},
        )

    def _record_breaker_failure(self, error: PlatformError) -> None:
        if self.breaker is None:
            return

        if error.retryable:
            self.breaker.record_failure()
        else:
            # The platform responded, so it is up: the request itself was wrong.
            self.breaker.record_success()

    def _stop_for_reconnect(self, error: ReconnectRequiredError) -> None:
        self.reconnect_required = True
        self._reconnected = trio.Event()
        if self.monitor is not None:
            self.monitor.observe_reconnect(self.name, required=True, error=str(error))
        # The operator must act: new credentials in the config, then `plaudit ctl reload`.
        log.error(
            "actor.reconnect_required",
            extra={"actor": self.name, "error": str(error), "action": "reconnect, then reload"},
        )

    async def _record_failure(
        self, job: Job, error: PlatformError, *, permanent: bool, retry_after: float | None = None
    ) -> str:
        self._failed += 1
        self._last_error = str(error)
        state = await self.journal.fail(
            job.id, str(error), retry_after=retry_after, permanent=permanent
        )
        log.warning(
            "job.failed",
            extra={
                "actor": self.name,
                "job": job.id,
                "kind": job.kind,
                "state": str(state),
                "error": str(error),
            },
        )
        return "dead" if str(state) == "dead" else "failed"


def describe(actor: Actor) -> dict[str, Any]:
    """Return the actor's statistics as a JSON-ready dict for ``ctl status``."""
    return msgspec.to_builtins(actor.statistics())  # type: ignore[no-any-return]
