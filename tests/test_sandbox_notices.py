"""Scripted review notices in a Maildir: schedule, truth and ``plaudit sandbox --maildir``."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from plaudit.journal import Journal
from plaudit.reviews.notifications import import_notifications
from plaudit.reviews.store import load_reviews
from plaudit.sandbox.notices import INITIAL_NOTICES, NoticeScript
from tests.support import plaudit_env

COMPARED = ("profile", "stars", "text", "author", "created_at", "updated_at", "reply_text")


def new_files(maildir: Path) -> list[Path]:
    folder = maildir / "new"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_schedule_spreads_arrivals(tmp_path: Path) -> None:
    script = NoticeScript(tmp_path / "mail", seed=3, script_seconds=30.0, reviews=8)
    times = [at for at, _ in script.schedule]

    assert len(times) == 8
    assert times[:INITIAL_NOTICES] == [0.0] * INITIAL_NOTICES
    assert times == sorted(times)
    assert all(0.0 <= at <= 30.0 for at in times)
    created = [review.created for _, review in script.schedule]
    assert created == sorted(created)


def test_same_seed_same_schedule(tmp_path: Path) -> None:
    first = NoticeScript(tmp_path / "a", seed=3, script_seconds=30.0)
    second = NoticeScript(tmp_path / "b", seed=3, script_seconds=30.0)

    assert [(at, review.review_id) for at, review in first.schedule] == [
        (at, review.review_id) for at, review in second.schedule
    ]


def test_invalid_script_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1 review"):
        NoticeScript(tmp_path / "mail", seed=1, script_seconds=5.0, reviews=0)


async def test_notices_arrive_over_time(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    script = NoticeScript(tmp_path / "mail", seed=3, script_seconds=60.0)
    midpoint = script.schedule[-1][0] - 0.001
    due_by_midpoint = sum(1 for at, _ in script.schedule if at <= midpoint)

    async with trio.open_nursery() as nursery:
        await nursery.start(script.run)
        began = trio.current_time()
        await trio.sleep_until(began + midpoint)
        early = len(new_files(script.maildir))

    assert early <= due_by_midpoint < len(script.schedule)
    assert len(new_files(script.maildir)) == len(script.schedule)
    assert script.statistics() == {"written": 6, "scheduled": 6}


async def test_truth_matches_mailbox_import(tmp_path: Path) -> None:
    script = NoticeScript(tmp_path / "mail", seed=5, script_seconds=0.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(script.run)
    journal = Journal.open(tmp_path / "journal.sqlite3")
    try:
        report = import_notifications(
            journal, script.maildir, profiles={script.site.name: script.profile}
        )
        with journal.transaction() as tx:
            stored = {
                review.review_id: review for review in load_reviews(tx, "zola", script.profile)
            }
    finally:
        journal.close()

    truth = {review.review_id: review for review in script.truth_reviews()}
    assert report.skipped == []
    assert stored.keys() == truth.keys()
    for review_id, expected in truth.items():
        for field in COMPARED:
            assert getattr(stored[review_id], field) == getattr(expected, field), field


@pytest.mark.slow
def test_cli_writes_notices(tmp_path: Path) -> None:
    """Real process; waits at most 120 s for the notices and 60 s for the exit."""
    maildir = tmp_path / "mail"
    command = [
        sys.executable, "-m", "plaudit", "sandbox",
        "--port", "0", "--smtp-port", "0", "--script-seconds", "1", "--maildir", str(maildir),
    ]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=plaudit_env()) as process:
        deadline = time.monotonic() + 120.0
        while len(new_files(maildir)) < 6 and time.monotonic() < deadline:
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)

    assert len(new_files(maildir)) == 6
    assert f"Review notices:   {maildir}" in output
    assert process.returncode == 0
