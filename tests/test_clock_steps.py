"""Forward steps of the wall clock, measured against the monotonic clock, and leases they move."""

from __future__ import annotations

from pathlib import Path

from plaudit.journal import Journal
from plaudit.reliability.clock_steps import STEP_TOLERANCE, ClockStepWatch, shift_overdue_leases

NOW = 1_800_000_000.0


class Clocks:
    def __init__(self) -> None:
        self.wall = NOW
        self.monotonic = 100.0

    def watch(self) -> ClockStepWatch:
        return ClockStepWatch(wall=lambda: self.wall, monotonic=lambda: self.monotonic)


def test_steady_clocks_make_no_step() -> None:
    clocks = Clocks()
    watch = clocks.watch()
    assert watch.forward_step() == 0.0
    clocks.wall += 30.0
    clocks.monotonic += 30.0
    assert watch.forward_step() == 0.0


def test_forward_step_measured_once() -> None:
    clocks = Clocks()
    watch = clocks.watch()
    watch.forward_step()
    clocks.wall += 7205.0
    clocks.monotonic += 5.0
    assert watch.forward_step() == 7200.0
    clocks.wall += 5.0
    clocks.monotonic += 5.0
    assert watch.forward_step() == 0.0
    assert watch.statistics() == {"steps": 1}


def test_drift_within_tolerance_ignored() -> None:
    clocks = Clocks()
    watch = clocks.watch()
    watch.forward_step()
    clocks.wall += 5.0 + STEP_TOLERANCE
    clocks.monotonic += 5.0
    assert watch.forward_step() == 0.0


def test_backward_step_is_not_forward() -> None:
    clocks = Clocks()
    watch = clocks.watch()
    watch.forward_step()
    clocks.wall -= 3600.0
    clocks.monotonic += 5.0
    assert watch.forward_step() == 0.0


def test_only_leases_the_step_expired_move(tmp_path: Path) -> None:
    wall = [NOW]
    journal = Journal.open(tmp_path / "journal.sqlite3", instance="steps-1", clock=lambda: wall[0])
    with journal.transaction() as tx:
        for key in ("alive", "orphaned"):
            tx.enqueue(kind="demo.work", owner="demo", key=key, payload={}, run_at=NOW)
    alive, orphaned = journal.claim("demo", limit=2, lease_seconds=60.0)
    # The orphaned job's lease ran out long before the step.
    with journal.transaction() as tx:
        tx.execute("UPDATE jobs SET lease_expires_at = ? WHERE id = ?", (NOW - 600.0, orphaned.id))

    wall[0] = NOW + 7200.0
    with journal.transaction() as tx:
        moved = shift_overdue_leases(tx, seconds=7200.0)
    assert moved == 1
    assert journal.recover_expired_leases() == 1
    states = dict(journal.query("SELECT id, state FROM jobs"))
    assert states == {alive.id: "running", orphaned.id: "ready"}
    journal.close()
