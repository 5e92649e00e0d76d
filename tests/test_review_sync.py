"""Review synchronisation end to end: the demo's journal against the sandbox truth, then its report.

The demo fails unless, after its last reconciliation, every review in the
journal agrees with its platform field by field (text, stars, author,
times, reply) and in whether it is deleted.  This test runs it with the
sandbox's fixed seed, whose script creates, edits, replies to and deletes
reviews, checks that each kind of change happened, and checks that
``plaudit report`` returns that run's figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import plaudit_env, query

pytestmark = pytest.mark.slow


def run(*arguments: str, timeout: float) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "plaudit", *arguments]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=plaudit_env(), check=False
    )


def events(summary: dict[str, Any], event_type: str) -> int:
    return sum(counts.get(f"{event_type}_events", 0) for counts in summary["platforms"].values())


def test_demo_journal_agrees_and_report_matches(tmp_path: Path) -> None:
    # The demo stops as soon as everything agrees; the limit only matters on a loaded machine.
    demo = run("demo", "--seconds", "60", "--json", "--state-dir", str(tmp_path), timeout=300)
    summary = json.loads(demo.stdout.strip().splitlines()[-1])
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert summary["agrees_with_truth"] is True
    assert summary["discrepancy_count"] == 0
    # The agreement covers every kind of change, not only creations.
    assert events(summary, "review.created") > 0
    assert events(summary, "review.updated") > 0
    assert events(summary, "review.replied") > 0
    assert events(summary, "review.deleted") > 0

    report = run("report", "--state-dir", str(tmp_path), "--json", timeout=120)
    assert report.returncode == 0, report.stderr
    document = json.loads(report.stdout)
    [vendor] = document["vendors"]
    assert vendor["vendor"] == "Willow & Vine Photography"
    figures = {item["platform"]: item for item in vendor["platforms"]}
    for platform, counts in summary["platforms"].items():
        assert figures[platform]["reviews"] == counts["reviews"], platform
        assert figures[platform]["deleted"] == counts["deleted"], platform
        distribution = figures[platform]["stars"]["distribution"]
        assert sum(distribution.values()) == figures[platform]["stars"]["rated"]
    assert sum(item["reviews"] for item in figures.values()) == summary["reviews_synced"]
    funnel = vendor["funnel"]
    journal = tmp_path / "journal.sqlite3"
    assert funnel["couples"] == query(journal, "SELECT count(*) FROM couples")[0][0]
    sent = "SELECT count(DISTINCT couple_id) FROM requests WHERE sent_at IS NOT NULL"
    assert funnel["sent"] == query(journal, sent)[0][0]
    assert funnel["sent"] > 0
    assert vendor["recommendation"]["platform"] in {"google", "facebook"}
    assert vendor["recommendation"]["reason"]
