"""The Trio shell shared by every journal-driven actor.

An actor claims its own jobs from the journal, passes each to ``handle`` and
records the outcome.  The effects that ``handle`` returns commit in the same
transaction as the job's completion, so a crash at any instant keeps both or
neither.  Retryable platform errors go back to the journal with a
backoff; permanent ones make the job dead.

Pausing stops claiming; a job already running finishes.  A stop request (the
supervisor's graceful shutdown) also stops claiming; claimed jobs that have
not started are released, and a job cut off by the hard deadline is released
too, so nothing waits for its lease to expire.
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
from plaudit.errors import PlatformError, ReconnectRequiredError
from plaudit.journal import AsyncJournal, Job, LeaseLostError, Tx

log = logging.getLogger(__name__)

Effects = Callable[[Tx], None]


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
    ) -> None:
        self.name = name
        self.journal = journal
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.batch = batch
        self.paused = False
        # "healthy", "degraded" (retryable failures) or "reconnect-required".
        self.health = "healthy"
        self._wakeup = trio.Event()
        self._resumed = trio.Event()
        self._succeeded = 0
        self._failed = 0
        self._released = 0
        self._last_error: str | None = None
        self._last_success_at: float | None = None

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
        log.info("actor.paused", extra={"actor": self.name})

    def resume(self) -> None:
        self.paused = False
        self._resumed.set()
        self.wake()
        log.info("actor.resumed", extra={"actor": self.name})

    def wake(self) -> None:
        """Claim again now rather than at the next poll (new work was queued)."""
        self._wakeup.set()

    async def on_start(self) -> None:
        """Prepare before the first claim (for example, schedule periodic jobs)."""

    async def on_idle(self) -> None:
        """Run once per idle poll (for example, top up the schedule)."""

    async def handle(self, job: Job) -> Effects | None:
        """Do the job's I/O and return the journal writes that record its result."""
        raise NotImplementedError

    async def start(self, ctx: ChildContext) -> None:
        """Run the claim loop until the supervisor requests a stop."""
        await self.on_start()
        ctx.started()
        while not ctx.stop_requested.is_set():
            if self.paused:
                await self._wait_for(ctx, self._resumed, math.inf)
                continue
            # Shielded, because a claim cancelled after its commit would leave
            # jobs running, with no worker, until their leases expire.
            with trio.CancelScope(shield=True):
                jobs = await self.journal.claim(
                    self.name,
                    kinds=self.kinds or None,
                    limit=self.batch,
                    lease_seconds=self.lease_seconds,
                )
            if not jobs:
                await self.on_idle()
                await self._wait_for(ctx, self._wakeup, self.poll_interval)
                continue
            await self._run_claimed(ctx, jobs)

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
            if ctx.stop_requested.is_set() or self.paused:
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
        finally:
            if not finished:
                # Cut off by cancellation (hard shutdown deadline): hand the
                # job back now instead of waiting for its lease to expire.
                await self._release_all([job])
        metrics.JOB_DURATION.labels(job.kind, outcome).observe(trio.current_time() - began)

    async def _attempt(self, job: Job) -> str:
        """Run one job and record its outcome; returns the outcome label."""
        try:
            effects = await self.handle(job)
        except ReconnectRequiredError as error:
            self.health = "reconnect-required"
            return await self._record_failure(job, error, permanent=True)
        except PlatformError as error:
            self.health = "degraded"
            return await self._record_failure(
                job, error, permanent=not error.retryable, retry_after=error.retry_after
            )
        try:
            await self.journal.complete(job.id, effects)
        except LeaseLostError:
            log.warning(
                "job.lease_lost", extra={"actor": self.name, "job": job.id, "kind": job.kind}
            )
            return "lease_lost"
        self._succeeded += 1
        self._last_success_at = time.time()
        self.health = "healthy"
        return "succeeded"

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
