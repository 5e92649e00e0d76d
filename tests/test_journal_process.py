"""Durability across process death: a child commits, is SIGKILLed, and the parent reads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from plaudit.journal import JobState, Journal

ROOT = Path(__file__).resolve().parents[1]

# The child prints one line after each durable step, then waits to be killed.
# Its own sleep bounds the test if the parent never kills it.
CHILD = textwrap.dedent(
    """
    import sys, time
    from plaudit.journal import Journal

    journal = Journal.open(sys.argv[1], instance="child")
    job_id = journal.enqueue(kind="sync", owner="google", key="from-child", payload={"n": 1})
    print(f"enqueued {job_id}", flush=True)
    [job] = journal.claim("google", lease_seconds=3600)
    print(f"claimed {job.id}", flush=True)
    time.sleep(30)
    """
)


def run_child_until_killed(path: Path) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    lines = [child.stdout.readline().strip() for _ in range(2)]
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    child.stdout.close()
    return lines


def test_commit_survives_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"

    lines = run_child_until_killed(path)
    journal = Journal.open(path, instance="parent")
    jobs = journal.jobs()
    journal.close()

    assert lines == ["enqueued 1", "claimed 1"]
    assert [job.key for job in jobs] == ["from-child"]


def test_killed_child_lease_recovered(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    run_child_until_killed(path)

    journal = Journal.open(path, instance="parent", recover_all_leases=True)
    job = journal.get(1)
    journal.close()

    assert journal.recovered_at_open == 1
    assert job.state is JobState.READY
    assert job.attempts == 1
