"""The circuit breaker's state machine, on a hand-driven clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing

from plaudit.actors.base import Actor, Effects
from plaudit.config.model import BreakerConfig
from plaudit.daemon.children import ChildContext
from plaudit.errors import IllegalTransitionError, PlatformError
from plaudit.journal import AsyncJournal, Job, Journal
from plaudit.metrics import REGISTRY
from plaudit.reliability.breaker import BreakerState, CircuitBreaker, check_transition


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_breaker(clock: Clock, **settings: float) -> tuple[CircuitBreaker, list[str]]:
    changes: list[str] = []
    config = BreakerConfig(**settings)  # type: ignore[arg-type]
    breaker = CircuitBreaker(
        "test",
        config,
        clock=clock,
        on_change=lambda name, old, new: changes.append(f"{old}->{new}"),
    )
    return breaker, changes


def gauge(state: str) -> float | None:
    return REGISTRY.get_sample_value(
        "plaudit_circuit_breaker_state", {"breaker": "test", "state": state}
    )


def test_consecutive_failures_open() -> None:
    clock = Clock()
    breaker, changes = make_breaker(clock, failure_threshold=3, minimum_calls=100)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert changes == ["closed->open"]
    assert breaker.allow() is False


def test_success_resets_consecutive_count() -> None:
    clock = Clock()
    breaker, _ = make_breaker(clock, failure_threshold=3, minimum_calls=100)
    for _ in range(10):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    assert breaker.state is BreakerState.CLOSED


def test_failure_ratio_opens() -> None:
    clock = Clock()
    breaker, _ = make_breaker(
        clock, failure_threshold=100, failure_ratio=0.5, minimum_calls=6, window_seconds=60
    )
    for _ in range(2):
        breaker.record_success()
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_success()
    # Six calls, three failed: half.
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN


def test_ratio_needs_minimum_volume() -> None:
    clock = Clock()
    breaker, _ = make_breaker(clock, failure_threshold=100, minimum_calls=10)
    for _ in range(4):
        breaker.record_success()
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.statistics().window_calls == 8


def test_ratio_window_forgets_old_calls() -> None:
    clock = Clock()
    breaker, _ = make_breaker(
        clock, failure_threshold=100, minimum_calls=4, failure_ratio=0.5, window_seconds=60
    )
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    clock.now += 61
    breaker.record_success()
    breaker.record_success()
    breaker.record_success()
    breaker.record_failure()
    # Only the last four calls are in the window: one failure in four.
    assert breaker.state is BreakerState.CLOSED
    assert breaker.statistics().window_failures == 1


def test_half_open_admits_single_probe() -> None:
    clock = Clock()
    breaker, changes = make_breaker(clock, failure_threshold=1, open_initial=30)
    breaker.record_failure()
    clock.now += 29.5
    assert breaker.allow() is False
    assert breaker.open_remaining() == pytest.approx(0.5)
    clock.now += 0.5
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.open_remaining() == 0.0
    assert breaker.allow() is True
    assert breaker.allow() is False
    assert breaker.statistics().probe_in_flight is True
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow() is True
    assert changes == ["closed->open", "open->half-open", "half-open->closed"]


def test_probe_failure_reopens_longer() -> None:
    clock = Clock()
    breaker, changes = make_breaker(clock, failure_threshold=1, open_initial=10, open_max=35)
    breaker.record_failure()
    intervals = []
    for _ in range(4):
        intervals.append(breaker.open_remaining())
        clock.now += breaker.open_remaining()
        assert breaker.allow() is True
        breaker.record_failure()
    assert intervals == [10, 20, 35, 35]
    assert breaker.statistics().times_opened == 5
    assert changes.count("half-open->open") == 4


def test_open_time_resets_after_recovery() -> None:
    clock = Clock()
    breaker, _ = make_breaker(clock, failure_threshold=1, open_initial=10)
    breaker.record_failure()
    clock.now += 10
    breaker.allow()
    breaker.record_failure()
    clock.now += 20
    breaker.allow()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.open_remaining() == 10


def test_released_probe_can_be_retaken() -> None:
    clock = Clock()
    breaker, _ = make_breaker(clock, failure_threshold=1)
    breaker.record_failure()
    clock.now += 30
    assert breaker.allow() is True
    breaker.release_probe()
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow() is True


def test_late_failure_while_open_ignored() -> None:
    clock = Clock()
    breaker, _ = make_breaker(clock, failure_threshold=1, open_initial=10)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.open_remaining() == 10
    assert breaker.statistics().times_opened == 1


def test_illegal_transitions_raise() -> None:
    check_transition("test", BreakerState.CLOSED, BreakerState.OPEN)
    with pytest.raises(IllegalTransitionError, match="cannot go from closed to half-open"):
        check_transition("test", BreakerState.CLOSED, BreakerState.HALF_OPEN)
    with pytest.raises(IllegalTransitionError, match="from open to closed"):
        check_transition("test", BreakerState.OPEN, BreakerState.CLOSED)


def test_gauge_follows_state() -> None:
    clock = Clock()
    breaker, _ = make_breaker(clock, failure_threshold=1)
    assert gauge("closed") == 1
    breaker.record_failure()
    assert gauge("open") == 1
    assert gauge("closed") == 0
    clock.now += 30
    assert breaker.state is BreakerState.HALF_OPEN
    assert gauge("half-open") == 1


def test_repr_and_statistics() -> None:
    clock = Clock()
    breaker, _ = make_breaker(clock, failure_threshold=2)
    breaker.record_failure()
    assert repr(breaker) == "<CircuitBreaker test closed consecutive=1 open_seconds=30>"
    statistics = breaker.statistics()
    assert statistics.state == "closed"
    assert statistics.consecutive_failures == 1
    assert statistics.window_failures == 1
    assert statistics.open_remaining == 0.0


# --- the breaker in the actor shell, with a real journal ------------------------------------


class FlakyActor(Actor):
    """Fails every job with a retryable error while ``failing`` is set."""

    kinds = ("flaky.job",)

    def __init__(self, journal: AsyncJournal) -> None:
        config = BreakerConfig(failure_threshold=2, open_initial=30.0)
        breaker = CircuitBreaker(
            "flaky", config, clock=trio.current_time, on_change=self.breaker_changed
        )
        super().__init__(
            "flaky", journal, lease_seconds=60.0, poll_interval=1.0, batch=4, breaker=breaker
        )
        self.failing = True
        self.handled: list[tuple[int, float]] = []

    async def handle(self, job: Job) -> Effects | None:
        self.handled.append((job.id, trio.current_time()))
        if self.failing:
            raise PlatformError("HTTP 503 from the platform", retryable=True, status=503)
        return None


@pytest.fixture
def journal_clock() -> trio.testing.MockClock:
    """A virtual clock that jumps only after 50 ms of real idleness.

    A plain autojump clock would jump while the journal's worker thread
    commits, because a task waiting for a thread counts as blocked.
    """
    return trio.testing.MockClock(autojump_threshold=0.05)


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[tuple[Journal, AsyncJournal]]:
    journal = Journal.open(tmp_path / "journal.sqlite3", instance="breaker-1")
    async_journal = AsyncJournal(journal)
    async with trio.open_nursery() as nursery:
        await nursery.start(async_journal.run)
        yield journal, async_journal
        nursery.cancel_scope.cancel()
    journal.close()


async def make_actor(async_journal: AsyncJournal, jobs: int) -> tuple[FlakyActor, list[int]]:
    ids = []
    for index in range(jobs):
        job_id = await async_journal.enqueue(
            kind="flaky.job", owner="flaky", key=f"flaky:{index}", payload={}
        )
        assert job_id is not None
        ids.append(job_id)
    return FlakyActor(async_journal), ids


async def test_open_breaker_holds_jobs_unattempted(
    writer: tuple[Journal, AsyncJournal], journal_clock: trio.abc.Clock
) -> None:
    journal, async_journal = writer
    actor, ids = await make_actor(async_journal, 3)
    ctx = ChildContext("flaky")
    began = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(actor.start, ctx)
        await trio.sleep(20)
        # Two failures opened the breaker; the third job was handed back unattempted.
        assert [job_id for job_id, _ in actor.handled] == ids[:2]
        assert journal.get(ids[2]).attempts == 0
        assert journal.get(ids[2]).state == "ready"

        actor.failing = False
        await trio.sleep(15)
        ctx.stop_requested.set()

    states = [journal.get(job_id).state for job_id in ids]
    assert states == ["succeeded"] * 3
    # The probe ran when the open interval ended, 30 s after the breaker opened.
    probe_at = actor.handled[2][1] - began
    assert 30.0 <= probe_at < 31.0
    assert actor.handled[2][0] == ids[2]
    assert actor.breaker is not None
    assert actor.breaker.state is BreakerState.CLOSED
    assert journal.get(ids[0]).attempts == 2


async def test_probe_brings_failed_job_forward(
    writer: tuple[Journal, AsyncJournal], journal_clock: trio.abc.Clock
) -> None:
    journal, async_journal = writer
    actor, ids = await make_actor(async_journal, 2)
    ctx = ChildContext("flaky")
    began = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(actor.start, ctx)
        await trio.sleep(5)
        actor.failing = False
        # Both jobs wait for a retry seconds of wall time away; none is due.
        assert {journal.get(job_id).state for job_id in ids} == {"failed"}
        await trio.sleep(30)
        ctx.stop_requested.set()

    assert [journal.get(job_id).state for job_id in ids] == ["succeeded", "succeeded"]
    later = [at - began for _, at in actor.handled[2:]]
    assert len(later) == 2
    assert all(30.0 <= at < 31.0 for at in later)
