"""The synchronous journal: job lifecycle, leases, retries, outbox and reads."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plaudit import metrics
from plaudit.errors import IllegalTransitionError, JobNotFoundError, JournalError
from plaudit.journal import MIGRATIONS, Job, JobPolicy, JobState, Journal, LeaseLostError, Tx
from plaudit.journal.policy import retry_delay

START = 1_700_000_000.0


class FakeClock:
    """Unix time that moves only when a test advances it."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite3"


@pytest.fixture
def journal(path: Path, clock: FakeClock) -> Iterator[Journal]:
    opened = Journal.open(
        path,
        clock=clock,
        instance="test-1",
        lease_seconds=30.0,
        max_attempts=3,
        retry_initial=5.0,
        retry_max=60.0,
        rng=random.Random(7),
    )
    yield opened
    opened.close()


def add(journal: Journal, key: str, *, owner: str = "google", **fields: Any) -> int:
    job_id = journal.enqueue(
        kind=fields.pop("kind", "sync"),
        owner=owner,
        key=key,
        payload=fields.pop("payload", {"n": key}),
        **fields,
    )
    assert job_id is not None
    return job_id


def claim_one(journal: Journal, owner: str = "google") -> Job:
    jobs = journal.claim(owner)
    assert len(jobs) == 1
    return jobs[0]


def emit_review(tx: Tx) -> None:
    tx.emit(
        type="review.created",
        key="review:g:1",
        platform="google",
        subject="g:1",
        payload={"stars": 5},
    )


# Enqueue


def test_enqueue_returns_new_id(journal: Journal) -> None:
    job_id = add(journal, "sync:a")

    job = journal.get(job_id)
    assert job.state is JobState.READY
    assert job.payload == {"n": "sync:a"}
    assert job.attempts == 0
    assert job.max_attempts == 3
    assert job.next_run_at == START


def test_enqueue_idempotent_by_key(journal: Journal) -> None:
    first = add(journal, "sync:a")
    second = journal.enqueue(kind="other", owner="facebook", key="sync:a", payload={"x": 1})

    assert second is None
    assert [job.id for job in journal.jobs()] == [first]
    assert journal.get(first).kind == "sync"


def test_enqueue_rejects_non_object_payload(journal: Journal) -> None:
    with pytest.raises(TypeError, match="payload of 'k' must be a dict"):
        journal.enqueue(kind="sync", owner="google", key="k", payload=[1, 2])  # type: ignore[arg-type]


def test_enqueue_rejects_empty_kind(journal: Journal) -> None:
    with pytest.raises(ValueError, match="kind must be a non-empty string"):
        journal.enqueue(kind="", owner="google", key="k", payload={})


def test_enqueue_rejects_unencodable_payload(journal: Journal) -> None:
    with pytest.raises(ValueError, match="cannot be encoded as JSON"):
        journal.enqueue(kind="sync", owner="google", key="k", payload={"when": object()})

    assert journal.jobs() == []


# Claim


def test_claim_sets_lease(journal: Journal, clock: FakeClock) -> None:
    job_id = add(journal, "a")
    clock.advance(1.0)

    job = claim_one(journal)

    assert job.id == job_id
    assert job.state is JobState.RUNNING
    assert job.attempts == 1
    assert job.lease_owner == "test-1"
    assert job.lease_expires_at == START + 1.0 + 30.0
    assert journal.get(job_id) == job


def test_claim_order_by_due_time_then_id(journal: Journal, clock: FakeClock) -> None:
    late = add(journal, "late", run_at=START - 1.0)
    first = add(journal, "first", run_at=START - 5.0)
    second = add(journal, "second", run_at=START - 5.0)

    jobs = journal.claim("google", limit=10)

    assert [job.id for job in jobs] == [first, second, late]


def test_claim_skips_future_jobs(journal: Journal, clock: FakeClock) -> None:
    add(journal, "later", run_at=START + 10.0)

    assert journal.claim("google") == []
    clock.advance(10.0)
    assert len(journal.claim("google")) == 1


def test_claim_only_own_jobs(journal: Journal) -> None:
    add(journal, "fb", owner="facebook")

    assert journal.claim("google") == []


def test_claim_filters_kinds(journal: Journal) -> None:
    add(journal, "a", kind="sync")
    reply = add(journal, "b", kind="reply")

    jobs = journal.claim("google", kinds=["reply"], limit=5)

    assert [job.id for job in jobs] == [reply]


def test_claim_respects_limit(journal: Journal) -> None:
    for index in range(5):
        add(journal, f"job-{index}")

    assert len(journal.claim("google", limit=2)) == 2
    assert len(journal.claim("google", limit=10)) == 3


def test_claim_skips_running_jobs(journal: Journal) -> None:
    add(journal, "a")
    claim_one(journal)

    assert journal.claim("google") == []


def test_claim_rejects_empty_kinds(journal: Journal) -> None:
    with pytest.raises(ValueError, match="kinds must be a non-empty list"):
        journal.claim("google", kinds=[])


def test_claim_custom_lease(journal: Journal) -> None:
    add(journal, "a")

    job = journal.claim("google", lease_seconds=5.0)[0]

    assert job.lease_expires_at == START + 5.0


# Complete and the outbox


def test_complete_with_effects_commits_both(journal: Journal, clock: FakeClock) -> None:
    job_id = add(journal, "a")
    claim_one(journal)
    clock.advance(2.0)

    def effects(tx: Tx) -> None:
        emit_review(tx)
        tx.enqueue(kind="webhook", owner="webhooks", key="deliver:1", payload={"event": 1})

    journal.complete(job_id, effects)

    job = journal.get(job_id)
    assert job.state is JobState.SUCCEEDED
    assert job.finished_at == START + 2.0
    assert job.lease_owner is None
    assert [event.key for event in journal.events()] == ["review:g:1"]
    assert [job.key for job in journal.jobs(owner="webhooks")] == ["deliver:1"]


def test_effects_raising_rolls_back_both(journal: Journal) -> None:
    job_id = add(journal, "a")
    claim_one(journal)

    def effects(tx: Tx) -> None:
        emit_review(tx)
        raise RuntimeError("parsing the review failed")

    with pytest.raises(RuntimeError, match="parsing the review failed"):
        journal.complete(job_id, effects)

    assert journal.get(job_id).state is JobState.RUNNING
    assert journal.events() == []


def test_effects_bad_sql_translated(journal: Journal, path: Path) -> None:
    job_id = add(journal, "a")
    claim_one(journal)

    with pytest.raises(JournalError, match="no such table: missing") as caught:
        journal.complete(job_id, lambda tx: tx.execute("INSERT INTO missing VALUES (1)"))

    assert str(path) in str(caught.value)
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    assert journal.get(job_id).state is JobState.RUNNING


def test_complete_after_lease_lost(journal: Journal, clock: FakeClock) -> None:
    job_id = add(journal, "a")
    claim_one(journal)
    clock.advance(31.0)
    assert journal.recover_expired_leases() == 1

    with pytest.raises(LeaseLostError, match="no longer running under instance 'test-1'") as caught:
        journal.complete(job_id, emit_review)

    assert caught.value.state == "ready"
    assert journal.events() == []
    assert journal.get(job_id).state is JobState.READY


def test_complete_by_other_instance_refused(journal: Journal, path: Path, clock: FakeClock) -> None:
    job_id = add(journal, "a")
    claim_one(journal)
    other = Journal.open(path, clock=clock, instance="test-2")

    with pytest.raises(LeaseLostError, match="leased by 'test-1'"):
        other.complete(job_id)
    other.close()

    assert journal.get(job_id).state is JobState.RUNNING


def test_complete_unknown_job(journal: Journal) -> None:
    with pytest.raises(JobNotFoundError, match="job 404 not found"):
        journal.complete(404)


def test_complete_twice_refused(journal: Journal) -> None:
    job_id = add(journal, "a")
    claim_one(journal)
    journal.complete(job_id)

    with pytest.raises(LeaseLostError, match="it is succeeded"):
        journal.complete(job_id)


# Fail, backoff and dead jobs


def test_fail_schedules_retry_with_backoff(journal: Journal, clock: FakeClock) -> None:
    job_id = add(journal, "a")
    claim_one(journal)

    state = journal.fail(job_id, "HTTP 503 from the platform")

    job = journal.get(job_id)
    assert state is JobState.FAILED
    assert job.state is JobState.FAILED
    assert job.last_error == "HTTP 503 from the platform"
    assert job.lease_owner is None
    # First attempt: full jitter between 0 and retry_initial.
    assert START <= job.next_run_at <= START + 5.0


def test_backoff_uses_seeded_rng(path: Path, clock: FakeClock) -> None:
    delays: list[float] = []
    for _ in range(2):
        journal = Journal.open(
            path.with_name(f"j{len(delays)}.sqlite3"),
            clock=clock,
            instance="x",
            rng=random.Random(42),
        )
        job_id = add(journal, "a")
        claim_one(journal)
        journal.fail(job_id, "boom")
        delays.append(journal.get(job_id).next_run_at)
        journal.close()

    expected = START + random.Random(42).uniform(0.0, 5.0)
    assert delays == [expected, expected]


def test_failed_job_claimable_when_due(journal: Journal, clock: FakeClock) -> None:
    job_id = add(journal, "a")
    claim_one(journal)
    journal.fail(job_id, "timeout", retry_after=20.0)
    clock.advance(19.0)
    assert journal.claim("google") == []

    clock.advance(1.0)
    job = claim_one(journal)

    assert job.attempts == 2
    assert job.last_error == "timeout"


def test_retry_after_is_lower_bound(journal: Journal) -> None:
    job_id = add(journal, "a")
    claim_one(journal)

    journal.fail(job_id, "HTTP 429", retry_after=120.0)

    assert journal.get(job_id).next_run_at == START + 120.0


def test_fail_dead_at_max_attempts(journal: Journal, clock: FakeClock) -> None:
    job_id = add(journal, "a")
    states = []
    for _ in range(3):
        claim_one(journal)
        states.append(journal.fail(job_id, "HTTP 500"))
        clock.advance(3600.0)

    job = journal.get(job_id)
    assert states == [JobState.FAILED, JobState.FAILED, JobState.DEAD]
    assert job.state is JobState.DEAD
    assert job.finished_at is not None
    assert journal.claim("google") == []


def test_fail_permanent_is_dead(journal: Journal) -> None:
    job_id = add(journal, "a")
    claim_one(journal)

    state = journal.fail(job_id, "HTTP 404: location not found", permanent=True)

    assert state is JobState.DEAD
    assert journal.get(job_id).attempts == 1


def test_fail_after_lease_lost(journal: Journal, clock: FakeClock) -> None:
    job_id = add(journal, "a")
    claim_one(journal)
    clock.advance(31.0)
    journal.recover_expired_leases()

    with pytest.raises(LeaseLostError):
        journal.fail(job_id, "late failure")

    assert journal.get(job_id).last_error is None


def test_fail_truncates_long_error(journal: Journal) -> None:
    job_id = add(journal, "a")
    claim_one(journal)

    journal.fail(job_id, "x" * 10_000)

    assert len(journal.get(job_id).last_error or "") == 4000


def test_fail_rejects_negative_retry_after(journal: Journal) -> None:
    job_id = add(journal, "a")
    claim_one(journal)

    with pytest.raises(ValueError, match="retry_after must not be negative"):
        journal.fail(job_id, "x", retry_after=-1.0)

    assert journal.get(job_id).state is JobState.RUNNING


def test_retry_delay_bounds() -> None:
    policy = JobPolicy(
        instance="x",
        lease_seconds=1.0,
        max_attempts=100,
        retry_initial=5.0,
        retry_max=60.0,
        rng=random.Random(1),
    )
    for attempts in range(1, 12):
        ceiling = min(60.0, 5.0 * 2 ** (attempts - 1))
        for _ in range(50):
            assert 0.0 <= retry_delay(attempts, policy, retry_after=None) <= ceiling


def test_retry_delay_huge_attempts() -> None:
    policy = JobPolicy(
        instance="x",
        lease_seconds=1.0,
        max_attempts=10_000,
        retry_initial=5.0,
        retry_max=60.0,
        rng=random.Random(1),
    )

    assert retry_delay(5000, policy, retry_after=None) <= 60.0


# Release and leases


def test_release_returns_attempt(journal: Journal) -> None:
    job_id = add(journal, "a")
    claim_one(journal)

    journal.release(job_id)

    job = journal.get(job_id)
    assert job.state is JobState.READY
    assert job.attempts == 0
    assert job.lease_owner is None
    assert claim_one(journal).id == job_id


def test_release_of_finished_job_refused(journal: Journal) -> None:
    job_id = add(journal, "a")
    claim_one(journal)
    journal.complete(job_id)

    with pytest.raises(LeaseLostError):
        journal.release(job_id)

    assert journal.get(job_id).state is JobState.SUCCEEDED


def test_extend_lease_prevents_recovery(journal: Journal, clock: FakeClock) -> None:
    job_id = add(journal, "a")
    claim_one(journal)
    clock.advance(20.0)

    journal.extend_lease(job_id)
    clock.advance(20.0)

    assert journal.recover_expired_leases() == 0
    assert journal.get(job_id).lease_expires_at == START + 50.0


def test_extend_lease_after_loss(journal: Journal, clock: FakeClock) -> None:
    job_id = add(journal, "a")
    claim_one(journal)
    clock.advance(31.0)
    journal.recover_expired_leases()

    with pytest.raises(LeaseLostError):
        journal.extend_lease(job_id)


def test_recover_expired_on_demand(journal: Journal, clock: FakeClock) -> None:
    expired = add(journal, "a")
    fresh = add(journal, "b")
    claim_one(journal)
    clock.advance(20.0)
    claim_one(journal)
    clock.advance(11.0)

    assert journal.recover_expired_leases() == 1

    job = journal.get(expired)
    assert job.state is JobState.READY
    assert job.attempts == 1
    assert job.lease_owner is None
    assert journal.get(fresh).state is JobState.RUNNING


def test_expired_lease_recovered_at_open(path: Path, clock: FakeClock) -> None:
    first = Journal.open(path, clock=clock, instance="crashed", lease_seconds=30.0)
    job_id = add(first, "a")
    claim_one(first)
    first.close()
    clock.advance(31.0)

    reopened = Journal.open(path, clock=clock, instance="restarted")

    assert reopened.recovered_at_open == 1
    assert reopened.get(job_id).state is JobState.READY
    assert reopened.get(job_id).attempts == 1
    reopened.close()


def test_live_lease_kept_at_open(path: Path, clock: FakeClock) -> None:
    first = Journal.open(path, clock=clock, instance="alive", lease_seconds=30.0)
    job_id = add(first, "a")
    claim_one(first)

    second = Journal.open(path, clock=clock, instance="other")

    assert second.recovered_at_open == 0
    assert second.get(job_id).state is JobState.RUNNING
    first.close()
    second.close()


def test_recover_all_leases_at_open(path: Path, clock: FakeClock) -> None:
    first = Journal.open(path, clock=clock, instance="killed", lease_seconds=300.0)
    job_ids = [add(first, "a"), add(first, "b")]
    first.claim("google", limit=2)
    first.close()

    reopened = Journal.open(path, clock=clock, instance="new", recover_all_leases=True)

    assert reopened.recovered_at_open == 2
    assert [reopened.get(job_id).state for job_id in job_ids] == [JobState.READY] * 2
    reopened.close()


def test_recovered_last_attempt_is_dead(journal: Journal, clock: FakeClock) -> None:
    job_id = add(journal, "a", max_attempts=1)
    claim_one(journal)
    clock.advance(31.0)

    assert journal.recover_expired_leases() == 1

    job = journal.get(job_id)
    assert job.state is JobState.DEAD
    assert "lease expired on the last attempt" in (job.last_error or "")


# Operator retry


def test_retry_from_dead(journal: Journal, clock: FakeClock) -> None:
    job_id = add(journal, "a")
    claim_one(journal)
    journal.fail(job_id, "gone", permanent=True)
    clock.advance(100.0)

    job = journal.retry(job_id)

    assert job.state is JobState.READY
    assert job.attempts == 0
    assert job.next_run_at == START + 100.0
    assert job.finished_at is None
    assert claim_one(journal).id == job_id


def test_retry_from_failed(journal: Journal) -> None:
    job_id = add(journal, "a")
    claim_one(journal)
    journal.fail(job_id, "HTTP 500", retry_after=3600.0)

    job = journal.retry(job_id)

    assert job.state is JobState.READY
    assert job.next_run_at == START


def test_retry_of_succeeded_illegal(journal: Journal) -> None:
    job_id = add(journal, "a")
    claim_one(journal)
    journal.complete(job_id)

    with pytest.raises(IllegalTransitionError, match=f"job {job_id} is succeeded"):
        journal.retry(job_id)


def test_retry_of_running_illegal(journal: Journal) -> None:
    job_id = add(journal, "a")
    claim_one(journal)

    with pytest.raises(IllegalTransitionError, match="is running"):
        journal.retry(job_id)


def test_retry_unknown_job(journal: Journal) -> None:
    with pytest.raises(JobNotFoundError, match="job 99 not found"):
        journal.retry(99)


# Reads


def test_jobs_newest_first_with_filters(journal: Journal) -> None:
    first = add(journal, "a")
    second = add(journal, "b", kind="reply")
    third = add(journal, "c", owner="facebook")

    assert [job.id for job in journal.jobs()] == [third, second, first]
    assert [job.id for job in journal.jobs(kind="reply")] == [second]
    assert [job.id for job in journal.jobs(owner="google", limit=1)] == [second]
    assert [job.id for job in journal.jobs(state="ready", owner="facebook")] == [third]


def test_jobs_rejects_unknown_state(journal: Journal) -> None:
    with pytest.raises(ValueError, match="unknown job state 'done'; use one of ready"):
        journal.jobs(state="done")


def test_jobs_rejects_negative_limit(journal: Journal) -> None:
    with pytest.raises(ValueError, match="limit must be an integer of at least 1, got -1"):
        journal.jobs(limit=-1)


def test_counts_by_kind_and_state(journal: Journal) -> None:
    add(journal, "a")
    add(journal, "b")
    add(journal, "c", kind="reply")
    claim_one(journal)

    assert journal.counts() == [("reply", "ready", 1), ("sync", "ready", 1), ("sync", "running", 1)]


def test_events_after_id(journal: Journal) -> None:
    with journal.transaction() as tx:
        for index in range(3):
            tx.emit(
                type="review.created",
                key=f"e{index}",
                platform="google",
                subject=f"g:{index}",
                payload={"i": index},
            )

    events = journal.events()
    later = journal.events(after_id=events[0].id, limit=1)

    assert [event.key for event in events] == ["e0", "e1", "e2"]
    assert [event.key for event in later] == ["e1"]
    assert events[2].payload == {"i": 2}


def test_emit_duplicate_key_ignored(journal: Journal) -> None:
    with journal.transaction() as tx:
        first = tx.emit(type="t", key="same", platform="google", subject="s", payload={"v": 1})
        second = tx.emit(type="t", key="same", platform="google", subject="s", payload={"v": 2})

    assert (first, second) == (True, False)
    assert [event.payload for event in journal.events()] == [{"v": 1}]


def test_get_unknown_job(journal: Journal) -> None:
    with pytest.raises(JobNotFoundError, match="job 7 not found"):
        journal.get(7)


# Transactions, cursors and lifecycle


def test_cursor_round_trip(journal: Journal) -> None:
    with journal.transaction() as tx:
        assert tx.get_cursor("google", "accounts/1/locations/2") is None
        tx.set_cursor("google", "accounts/1/locations/2", "page-token-1")
    with journal.transaction() as tx:
        tx.set_cursor("google", "accounts/1/locations/2", "page-token-2")

    with journal.transaction() as tx:
        assert tx.get_cursor("google", "accounts/1/locations/2") == "page-token-2"


def test_transaction_rolls_back_on_error(journal: Journal) -> None:
    with pytest.raises(KeyError), journal.transaction() as tx:
        tx.enqueue(kind="sync", owner="google", key="a", payload={})
        raise KeyError("abort")

    assert journal.jobs() == []


def test_tx_unusable_after_transaction(journal: Journal) -> None:
    with journal.transaction() as tx:
        stale_tx = tx

    with pytest.raises(JournalError, match=r"transaction on the journal .* has ended"):
        stale_tx.execute("SELECT 1")


def test_nested_transaction_refused(journal: Journal) -> None:
    job_id = add(journal, "a")
    claim_one(journal)

    with pytest.raises(JournalError, match="already open"):
        journal.complete(
            job_id, lambda tx: journal.enqueue(kind="k", owner="o", key="x", payload={})
        )

    assert journal.get(job_id).state is JobState.RUNNING


def test_closed_journal_refused(journal: Journal) -> None:
    journal.close()
    journal.close()

    with pytest.raises(JournalError, match="is closed; open it again"):
        journal.jobs()


def test_statistics_count_commits(journal: Journal) -> None:
    before = journal.statistics()
    add(journal, "a")
    with pytest.raises(JobNotFoundError):
        journal.complete(12345)

    after = journal.statistics()
    assert after.commits == before.commits + 1
    assert after.rollbacks == before.rollbacks + 1
    assert after.instance == "test-1"
    assert after.schema_version == len(MIGRATIONS)


def test_commit_metrics_observed(journal: Journal) -> None:
    name = "plaudit_journal_commit_operations_count"
    before = metrics.REGISTRY.get_sample_value(name) or 0.0

    add(journal, "a")

    assert metrics.REGISTRY.get_sample_value(name) == before + 1


def test_repr_one_line(journal: Journal) -> None:
    text = repr(journal)

    assert "\n" not in text
    assert "instance='test-1'" in text
    assert text.startswith("<Journal open")


def test_release_held_returns_only_own_jobs(tmp_path: Path) -> None:
    """release_held hands back this instance's running jobs and no one else's."""
    path = tmp_path / "journal.sqlite3"
    other = Journal.open(path, instance="other")
    other.enqueue(kind="k", owner="a", key="theirs", payload={})
    [theirs] = other.claim("a")
    other.close()

    journal = Journal.open(path, instance="mine")
    journal.enqueue(kind="k", owner="a", key="mine", payload={})
    [mine] = journal.claim("a")
    assert journal.release_held() == 1
    assert journal.get(mine.id).state == JobState.READY
    assert journal.get(mine.id).attempts == 0
    assert journal.get(theirs.id).state == JobState.RUNNING
    journal.close()
