"""``plaudit report --json`` after ``plaudit demo`` agrees with the demo's journal."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import plaudit_env

pytestmark = pytest.mark.slow


def plaudit(*arguments: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plaudit", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=plaudit_env(),
        check=False,
    )


def journal_rows(state_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(f"file:{state_dir / 'journal.sqlite3'}?mode=ro", uri=True)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def test_report_after_demo_matches_journal(tmp_path: Path) -> None:
    # The demo stops as soon as everything agrees; the limits only matter on a loaded machine.
    demo = plaudit("demo", "--seconds", "30", "--json", "--state-dir", str(tmp_path), timeout=240)
    assert demo.returncode == 0, demo.stderr[-3000:]
    summary = json.loads(demo.stdout.strip().splitlines()[-1])

    finished = plaudit("report", "--state-dir", str(tmp_path), "--json", timeout=120)
    assert finished.returncode == 0, finished.stderr[-3000:]
    (vendor,) = json.loads(finished.stdout)["vendors"]

    live = dict(
        journal_rows(
            tmp_path,
            "SELECT platform, count(*) FROM reviews WHERE deleted_at IS NULL GROUP BY platform",
        )
    )
    reported = {item["platform"]: item["reviews"] for item in vendor["platforms"]}
    assert {name: count for name, count in reported.items() if count} == live
    assert sum(live.values()) == summary["reviews_synced"]

    sent_events = dict(
        journal_rows(
            tmp_path,
            "SELECT platform, count(DISTINCT subject) FROM events"
            " WHERE type = 'request.sent' GROUP BY platform",
        )
    )
    channels = vendor["funnel"]["channels"]
    assert {name: item["requests"] for name, item in channels.items()} == sent_events
    assert sent_events == summary["requests_sent"]

    sent_couples = journal_rows(
        tmp_path, "SELECT count(DISTINCT couple_id) FROM requests WHERE sent_at IS NOT NULL"
    )
    assert vendor["funnel"]["sent"] == sent_couples[0][0]
    # Twilio's delivered callback and the push service's 201 both count; one
    # couple received both, and no e-mail delivery report arrives over plain SMTP.
    assert channels["sms"]["delivered"] == 1
    assert channels["push"]["delivered"] == 1
    assert channels["email"]["delivery_estimated"] is True
    assert vendor["funnel"]["delivered"] == 1
    assert vendor["deliverability"]["delivery_estimated"] is True
