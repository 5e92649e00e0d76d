"""Sync jobs queued under a wall clock that later stepped back are brought back in."""

from __future__ import annotations

from pathlib import Path

from plaudit.actors.schedule import current_slot, pull_in_sync_jobs
from plaudit.journal import Journal

NOW = 1_800_000_000.0
INTERVAL = 300.0


def due_times(journal: Journal) -> dict[str, float]:
    rows = journal.query("SELECT key, next_run_at FROM jobs")
    return {str(key): float(due) for key, due in rows}


def test_far_future_first_attempt_pulled_to_next_boundary(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "journal.sqlite3", instance="schedule-1")
    with journal.transaction() as tx:
        # Queued two hours ahead, as by a clock that has since stepped back.
        tx.enqueue(kind="demo.sync", owner="demo", key="ahead", run_at=NOW + 7200.0, payload={})
        tx.enqueue(kind="demo.sync", owner="demo", key="next", run_at=NOW + 60.0, payload={})
        tx.enqueue(
            kind="other.sync", owner="demo", key="other-kind", run_at=NOW + 7200.0, payload={}
        )
    with journal.transaction() as tx:
        moved = pull_in_sync_jobs(tx, owner="demo", kind="demo.sync", now=NOW, interval=INTERVAL)

    boundary = (current_slot(NOW, INTERVAL) + 1) * INTERVAL
    assert moved == 1
    assert due_times(journal) == {
        "ahead": boundary,
        "next": NOW + 60.0,
        "other-kind": NOW + 7200.0,
    }
    journal.close()


def test_job_in_retry_backoff_keeps_its_time(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "journal.sqlite3", instance="schedule-2", clock=lambda: NOW)
    with journal.transaction() as tx:
        tx.enqueue(kind="demo.sync", owner="demo", key="failing", run_at=NOW, payload={})
    (job,) = journal.claim("demo", kinds=["demo.sync"])
    journal.fail(job.id, "platform down", retry_after=7200.0)
    before = due_times(journal)["failing"]

    with journal.transaction() as tx:
        moved = pull_in_sync_jobs(tx, owner="demo", kind="demo.sync", now=NOW, interval=INTERVAL)

    assert moved == 0
    assert due_times(journal)["failing"] == before > NOW + INTERVAL
    journal.close()
