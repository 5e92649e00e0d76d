"""AsyncJournal: group commit, per-operation isolation and cancellation."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Protocol

import pytest
import trio

from plaudit import metrics
from plaudit.errors import JournalError
from plaudit.journal import AsyncJournal, JobState, Journal, LeaseLostError, Tx


class Opener(Protocol):
    async def __call__(self, *, window: float = ..., max_batch: int = ...) -> AsyncJournal: ...


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    opened = Journal.open(tmp_path / "journal.sqlite3", instance="async-1")
    return opened


@pytest.fixture
async def writer(journal: Journal) -> AsyncIterator[Opener]:
    """Start AsyncJournal writers on ``journal``; they stop when the test ends."""
    async with trio.open_nursery() as nursery:

        async def start(*, window: float = 0.002, max_batch: int = 256) -> AsyncJournal:
            async_journal = AsyncJournal(journal, window=window, max_batch=max_batch)
            await nursery.start(async_journal.run)
            return async_journal

        yield start
        nursery.cancel_scope.cancel()
    journal.close()


async def cycle(async_journal: AsyncJournal, owner: str, key: str) -> None:
    await async_journal.enqueue(kind="sync", owner=owner, key=key, payload={"key": key})
    [job] = await async_journal.claim(owner)
    await async_journal.complete(job.id)


async def test_concurrent_cycles_grouped(writer: Opener, journal: Journal) -> None:
    async_journal = await writer(window=0.002)

    async def worker(index: int) -> None:
        # One owner per worker, so each claim finds the job its worker enqueued.
        for round_ in range(10):
            await cycle(async_journal, f"owner-{index}", f"{index}:{round_}")

    async with trio.open_nursery() as nursery:
        for index in range(12):
            nursery.start_soon(worker, index)

    stats = async_journal.statistics()
    counts = await async_journal.read(lambda journal: journal.counts())
    assert counts == [("sync", "succeeded", 120)]
    assert stats.operations == 360
    assert stats.commits < stats.operations
    assert stats.mean_group_size > 1.0
    assert stats.failed_commits == 0


async def test_failing_operation_isolated(writer: Opener, autojump_clock: object) -> None:
    # A long window and a batch of exactly two force both operations into one group.
    async_journal = await writer(window=60.0, max_batch=2)
    errors: list[BaseException] = []

    async def failing() -> None:
        def effects(tx: Tx) -> None:
            tx.enqueue(kind="sync", owner="google", key="rolled-back", payload={})
            raise ValueError("bad review payload")

        try:
            await async_journal.transaction(effects)
        except ValueError as error:
            errors.append(error)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(failing)
        nursery.start_soon(
            lambda: async_journal.enqueue(kind="sync", owner="google", key="kept", payload={})
        )

    keys = await async_journal.read(lambda journal: [job.key for job in journal.jobs()])
    assert [str(error) for error in errors] == ["bad review payload"]
    assert keys == ["kept"]
    assert async_journal.statistics().commits == 1
    assert async_journal.statistics().max_group_size == 2


async def test_bad_sql_isolated(writer: Opener, autojump_clock: object) -> None:
    async_journal = await writer(window=60.0, max_batch=2)
    outcomes: dict[str, object] = {}

    async def run(name: str, sql: str) -> None:
        try:
            await async_journal.transaction(lambda tx: tx.execute(sql).rowcount)
            outcomes[name] = "ok"
        except JournalError as error:
            outcomes[name] = error

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, "bad", "INSERT INTO no_such_table VALUES (1)")
        nursery.start_soon(run, "good", "INSERT INTO cursors VALUES ('o', 'n', 'v', 0)")

    assert outcomes["good"] == "ok"
    assert "no such table: no_such_table" in str(outcomes["bad"])
    cursor = await async_journal.transaction(lambda tx: tx.get_cursor("o", "n"))
    assert cursor == "v"


async def test_lease_lost_isolated(writer: Opener, autojump_clock: object) -> None:
    async_journal = await writer(window=60.0, max_batch=2)
    lost = await async_journal.enqueue(kind="sync", owner="google", key="lost", payload={})
    assert lost is not None
    caught: list[LeaseLostError] = []

    async def complete_unclaimed() -> None:
        try:
            await async_journal.complete(lost)
        except LeaseLostError as error:
            caught.append(error)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(complete_unclaimed)
        nursery.start_soon(
            lambda: async_journal.enqueue(kind="sync", owner="google", key="other", payload={})
        )

    assert [error.job_id for error in caught] == [lost]
    jobs = await async_journal.read(lambda journal: journal.jobs())
    assert sorted(job.key for job in jobs) == ["lost", "other"]


async def test_group_ending_transaction_fails_all(writer: Opener, autojump_clock: object) -> None:
    async_journal = await writer(window=60.0, max_batch=2)
    errors: list[JournalError] = []

    async def submit(work: Callable[[Tx], object]) -> None:
        try:
            await async_journal.transaction(work)
        except JournalError as error:
            errors.append(error)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(submit, lambda tx: tx.enqueue(kind="k", owner="o", key="a", payload={}))
        nursery.start_soon(submit, lambda tx: tx.execute("ROLLBACK"))

    assert len(errors) == 2
    assert all("ended the group's transaction" in str(error) for error in errors)
    assert await async_journal.read(lambda journal: journal.jobs()) == []
    assert async_journal.statistics().failed_commits == 1


async def test_full_cycle_with_effects(writer: Opener) -> None:
    async_journal = await writer()
    job_id = await async_journal.enqueue(kind="sync", owner="google", key="a", payload={"p": 1})

    [job] = await async_journal.claim("google", kinds=["sync"])
    await async_journal.extend_lease(job.id, 120.0)
    await async_journal.complete(
        job.id,
        lambda tx: tx.emit(
            type="review.created", key="r1", platform="google", subject="s", payload={}
        ),
    )

    stored = await async_journal.get(job.id)
    assert job.id == job_id
    assert stored.state is JobState.SUCCEEDED
    assert [event.key for event in await async_journal.events()] == ["r1"]


async def test_fail_release_retry(writer: Opener) -> None:
    async_journal = await writer()
    first = await async_journal.enqueue(kind="sync", owner="google", key="a", payload={})
    second = await async_journal.enqueue(kind="sync", owner="google", key="b", payload={})
    assert first is not None
    assert second is not None

    await async_journal.claim("google", limit=2)
    state = await async_journal.fail(first, "gone", permanent=True)
    await async_journal.release(second)
    retried = await async_journal.retry(first)

    assert state is JobState.DEAD
    assert retried.state is JobState.READY
    assert (await async_journal.get(second)).attempts == 0
    assert await async_journal.recover_expired_leases() == 0


async def test_cancelled_while_queued_withdrawn(writer: Opener, autojump_clock: object) -> None:
    async_journal = await writer(window=60.0, max_batch=10)

    with trio.move_on_after(1.0):
        await async_journal.enqueue(kind="sync", owner="google", key="withdrawn", payload={})
    await async_journal.enqueue(kind="sync", owner="google", key="kept", payload={})

    keys = await async_journal.read(lambda journal: [job.key for job in journal.jobs()])
    assert keys == ["kept"]
    assert async_journal.statistics().withdrawn == 1


async def test_cancelled_after_taken_commits(writer: Opener) -> None:
    async_journal = await writer(window=0)
    entered = threading.Event()
    proceed = threading.Event()

    def slow(tx: Tx) -> int | None:
        entered.set()
        # Bounded: the test sets proceed right after cancelling.
        proceed.wait(timeout=10.0)
        return tx.enqueue(kind="sync", owner="google", key="taken", payload={})

    finished = False
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:

            async def submit() -> None:
                nonlocal finished
                await async_journal.transaction(slow)
                finished = True

            nursery.start_soon(submit)
            await trio.to_thread.run_sync(entered.wait, 10.0)
            scope.cancel()
            proceed.set()

    keys = await async_journal.read(lambda journal: [job.key for job in journal.jobs()])
    assert scope.cancelled_caught
    assert not finished
    assert keys == ["taken"]


async def test_write_without_writer_refused(journal: Journal) -> None:
    async_journal = AsyncJournal(journal)

    with pytest.raises(JournalError, match=r"writer of the journal .* is not running"):
        await async_journal.enqueue(kind="sync", owner="google", key="a", payload={})
    journal.close()


async def test_queued_fail_when_writer_stops(journal: Journal, autojump_clock: object) -> None:
    async_journal = AsyncJournal(journal, window=60.0, max_batch=10)
    errors: list[JournalError] = []

    async def submit() -> None:
        try:
            await async_journal.enqueue(kind="sync", owner="google", key="a", payload={})
        except JournalError as error:
            errors.append(error)

    async with trio.open_nursery() as callers, trio.open_nursery() as writers:
        await writers.start(async_journal.run)
        callers.start_soon(submit)
        await trio.sleep(1.0)
        writers.cancel_scope.cancel()

    assert len(errors) == 1
    assert "not running" in str(errors[0])
    assert journal.jobs() == []
    journal.close()


async def test_second_writer_refused(writer: Opener) -> None:
    async_journal = await writer()

    with pytest.raises(JournalError, match="already running"):
        await async_journal.run()


async def test_reads_without_writer(journal: Journal) -> None:
    journal.enqueue(kind="sync", owner="google", key="a", payload={})
    async_journal = AsyncJournal(journal)

    counts = await async_journal.read(lambda journal: journal.counts())

    assert counts == [("sync", "ready", 1)]
    journal.close()


async def test_zero_window_commits_alone(writer: Opener) -> None:
    async_journal = await writer(window=0)

    async with trio.open_nursery() as nursery:
        for index in range(5):
            nursery.start_soon(cycle, async_journal, f"owner-{index}", f"k{index}")

    stats = async_journal.statistics()
    assert stats.commits == 15
    assert stats.max_group_size == 1


async def test_group_size_metric(writer: Opener, autojump_clock: object) -> None:
    async_journal = await writer(window=60.0, max_batch=3)
    name = "plaudit_journal_commit_operations_sum"
    before = metrics.REGISTRY.get_sample_value(name) or 0.0

    async def enqueue(key: str) -> None:
        await async_journal.enqueue(kind="sync", owner="google", key=key, payload={})

    async with trio.open_nursery() as nursery:
        for index in range(3):
            nursery.start_soon(enqueue, f"k{index}")

    assert metrics.REGISTRY.get_sample_value(name) == before + 3


def test_invalid_window_rejected(journal: Journal) -> None:
    with pytest.raises(ValueError, match="window must be a finite, non-negative"):
        AsyncJournal(journal, window=-1.0)
    journal.close()


async def test_statistics_and_repr(writer: Opener) -> None:
    async_journal = await writer()
    await async_journal.enqueue(kind="sync", owner="google", key="a", payload={})

    stats = async_journal.statistics()
    assert stats.running
    assert stats.commits == 1
    assert stats.queued == 0
    assert stats.last_commit_seconds > 0.0
    assert repr(async_journal).startswith("<AsyncJournal running path=")
