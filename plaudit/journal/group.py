"""The Trio facade of the journal, with group commit.

Write operations submitted while the writer is busy, or within ``window``
seconds of the oldest waiting one, share one BEGIN IMMEDIATE transaction and
so one fsync.  Each runs in its own savepoint: an operation that raises is
rolled back alone and its exception goes to its own caller, while the rest
of the group commits.  A caller returns only after the COMMIT that contains
its operation, so a returned call is durable.

Cancellation: a caller cancelled while its operation is still queued
withdraws it, and the operation never runs.  Once the writer has taken the
operation into a group, the caller waits (shielded) for that group's commit
and then raises Cancelled, so the operation is applied and committed in
full even though the caller does not see its result.  Either way nothing is
half-applied.

All SQLite work, reads included, runs on one worker thread at a time
(a CapacityLimiter of 1), because a sqlite3 connection must not be used
from two threads at once.
"""

from __future__ import annotations

import collections
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast, final

import outcome
import trio

from plaudit.errors import JournalError
from plaudit.journal import operations
from plaudit.journal.models import Event, GroupCommitStatistics, Job, JobState
from plaudit.journal.operations import Effects
from plaudit.journal.store import Journal
from plaudit.journal.tx import Tx

log = logging.getLogger(__name__)

T = TypeVar("T")


@final
class _Request:
    """One write operation waiting for its group's commit."""

    __slots__ = ("arrived_at", "done", "grouped", "operation", "result")

    def __init__(self, operation: Callable[[Tx], Any], arrived_at: float) -> None:
        self.operation = operation
        # Trio time of submission: the group must start within ``window`` of it.
        self.arrived_at = arrived_at
        self.done = trio.Event()
        self.result: outcome.Outcome[Any] | None = None
        # Set once the writer has put the request into a group, after which
        # the caller can no longer withdraw it.
        self.grouped = False

    def settle(self, result: outcome.Outcome[Any]) -> None:
        self.result = result
        self.done.set()


@final
class AsyncJournal:
    """Trio access to a :class:`Journal`, committing concurrent writes in groups.

    Start :meth:`run` in a nursery before submitting writes; reads work
    without it.  Once wrapped, the Journal must be used only through this
    object.
    """

    def __init__(self, journal: Journal, *, window: float = 0.002, max_batch: int = 256) -> None:
        """Wrap ``journal``; ``window`` is in seconds (0 commits every operation alone)."""
        if isinstance(window, bool) or not isinstance(window, int | float):
            raise TypeError(f"window must be a number of seconds, got {window!r}")
        if not math.isfinite(window) or window < 0:
            raise ValueError(
                f"window must be a finite, non-negative number of seconds, got {window!r}"
            )
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch must be an integer of at least 1, got {max_batch!r}")

        self.journal = journal
        self.window = float(window)
        # A zero window means no grouping at all, which the benchmark uses as a baseline.
        self.max_batch = max_batch if window > 0 else 1
        self._limiter = trio.CapacityLimiter(1)
        self._queue: collections.deque[_Request] = collections.deque()
        self._arrived = trio.Event()
        self._running = False
        self._commits = 0
        self._operations = 0
        self._failed_commits = 0
        self._max_group_size = 0
        self._withdrawn = 0

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped"
        return (
            f"<AsyncJournal {state} path={str(self.journal.path)!r} commits={self._commits} "
            f"queued={len(self._queue)}>"
        )

    def statistics(self) -> GroupCommitStatistics:
        """Return the group-commit counters."""
        mean = self._operations / self._commits if self._commits else 0.0
        return GroupCommitStatistics(
            running=self._running,
            commits=self._commits,
            operations=self._operations,
            failed_commits=self._failed_commits,
            mean_group_size=mean,
            max_group_size=self._max_group_size,
            last_commit_seconds=self.journal.last_commit_seconds,
            queued=len(self._queue),
            withdrawn=self._withdrawn,
        )

    # The writer

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Commit queued writes in groups until cancelled.

        When cancelled, a group already handed to the worker thread still
        commits; operations still queued fail with JournalError.
        """
        if self._running:
            raise JournalError(f"the writer of the journal {self.journal.path} is already running")

        self._running = True
        try:
            task_status.started()
            while True:
                group = await self._next_group()
                await self._commit(group)
        finally:
            self._running = False
            self._fail_queued()

    async def _next_group(self) -> list[_Request]:
        while not self._queue:
            await self._wait_for_arrival()

        # Wait for company only while the oldest request is younger than the window.
        deadline = self._queue[0].arrived_at + self.window
        with trio.move_on_at(deadline):
            while len(self._queue) < self.max_batch:
                await self._wait_for_arrival()

        size = min(len(self._queue), self.max_batch)
        group = [self._queue.popleft() for _ in range(size)]
        for request in group:
            request.grouped = True
        return group

    async def _wait_for_arrival(self) -> None:
        self._arrived = trio.Event()
        await self._arrived.wait()

    async def _commit(self, group: list[_Request]) -> None:
        work = [request.operation for request in group]
        try:
            results = await trio.to_thread.run_sync(
                self.journal.run_group, work, limiter=self._limiter
            )
        except Exception as error:
            # The whole transaction failed: every caller in the group gets the error.
            self._failed_commits += 1
            log.error(  # noqa: TRY400 - the callers receive the exception with its traceback
                "journal.group_failed",
                extra={
                    "path": str(self.journal.path),
                    "operations": len(group),
                    "error": str(error),
                },
            )
            for request in group:
                request.settle(outcome.Error(_group_error(error)))
            return
        except BaseException:
            # Cancelled before the worker thread started, so nothing ran.
            for request in group:
                request.settle(outcome.Error(self._stopped_error()))
            raise

        self._commits += 1
        self._operations += len(group)
        self._max_group_size = max(self._max_group_size, len(group))
        for request, result in zip(group, results, strict=True):
            request.settle(result)

    def _fail_queued(self) -> None:
        while self._queue:
            request = self._queue.popleft()
            request.grouped = True
            request.settle(outcome.Error(self._stopped_error()))

    def _stopped_error(self) -> JournalError:
        return JournalError(
            f"the writer of the journal {self.journal.path} is not running; "
            "start AsyncJournal.run in a nursery before writing"
        )

    async def _submit(self, operation: Callable[[Tx], T]) -> T:
        if not self._running:
            raise self._stopped_error()

        request = _Request(operation, trio.current_time())
        self._queue.append(request)
        self._arrived.set()
        try:
            await request.done.wait()
        except BaseException:
            await self._abandon(request)
            raise

        assert request.result is not None  # settle() sets it before done
        return cast(T, request.result.unwrap())

    async def _abandon(self, request: _Request) -> None:
        """Withdraw a cancelled caller's request, or wait for it if the writer has it."""
        if not request.grouped:
            self._queue.remove(request)
            self._withdrawn += 1
            return

        with trio.CancelScope(shield=True):
            await request.done.wait()

    # Writes, each grouped with others

    async def transaction(self, fn: Callable[[Tx], T]) -> T:
        """Run ``fn`` in a savepoint of the next group and return its result after the commit."""
        return await self._submit(fn)

    async def enqueue(
        self,
        *,
        kind: str,
        owner: str,
        key: str,
        payload: dict[str, Any],
        run_at: float | None = None,
        max_attempts: int | None = None,
    ) -> int | None:
        """Add a ready job; return its id, or None when ``key`` exists already."""
        return await self._submit(
            lambda tx: tx.enqueue(
                kind=kind,
                owner=owner,
                key=key,
                payload=payload,
                run_at=run_at,
                max_attempts=max_attempts,
            )
        )

    async def claim(
        self,
        owner: str,
        *,
        kinds: Sequence[str] | None = None,
        limit: int = 1,
        lease_seconds: float | None = None,
    ) -> list[Job]:
        """Lease up to ``limit`` due jobs of ``owner`` (optionally of ``kinds``), earliest first."""
        # Copy the list: the caller may change it before the writer runs the claim.
        snapshot = kinds if kinds is None or isinstance(kinds, str) else tuple(kinds)
        return await self._submit(
            lambda tx: operations.claim(
                tx, owner, kinds=snapshot, limit=limit, lease_seconds=lease_seconds
            )
        )

    async def complete(self, job_id: int, effects: Effects | None = None) -> None:
        """Mark a running job succeeded together with ``effects``; see :meth:`Journal.complete`."""
        await self._submit(lambda tx: operations.complete(tx, job_id, effects))

    async def fail(
        self, job_id: int, error: str, *, retry_after: float | None = None, permanent: bool = False
    ) -> JobState:
        """Record a failed attempt and return the new state, FAILED or DEAD."""
        return await self._submit(
            lambda tx: operations.fail(
                tx, job_id, error, retry_after=retry_after, permanent=permanent
            )
        )

    async def release(self, job_id: int) -> None:
        """Return a running job to ready without counting the attempt."""
        await self._submit(lambda tx: operations.release(tx, job_id))

    async def extend_lease(self, job_id: int, lease_seconds: float | None = None) -> None:
        """Extend the lease of a running job to ``lease_seconds`` from now."""
        await self._submit(lambda tx: operations.extend_lease(tx, job_id, lease_seconds))

    async def retry(self, job_id: int) -> Job:
        """Make a failed or dead job ready now with its attempts reset."""
        return await self._submit(lambda tx: operations.retry(tx, job_id))

    async def recover_expired_leases(self) -> int:
        """Return jobs whose lease expired to ready; return how many there were."""
        return await self._submit(lambda tx: operations.recover_leases(tx, expired_only=True))

    # Reads, on the same worker thread

    async def read(self, fn: Callable[[Journal], T]) -> T:
        """Run ``fn(journal)`` on the worker thread and return its result."""
        return await trio.to_thread.run_sync(fn, self.journal, limiter=self._limiter)

    async def get(self, job_id: int) -> Job:
        """Return one job; raise JobNotFoundError when the id is unknown."""
        return await self.read(lambda journal: journal.get(job_id))

    async def events(self, *, after_id: int = 0, limit: int = 100) -> list[Event]:
        """Return up to ``limit`` outbox events with ids above ``after_id``, oldest first."""
        return await self.read(lambda journal: journal.events(after_id=after_id, limit=limit))


def _group_error(error: Exception) -> Exception:
    """Give each caller its own exception object, so tracebacks do not pile up on one."""
    if isinstance(error, JournalError):
        copy = JournalError(str(error))
        copy.__cause__ = error
        return copy

    return error
