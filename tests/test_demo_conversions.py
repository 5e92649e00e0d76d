"""``plaudit demo`` shows a vendor's picture: recent reviews, matched couples, conversions.

The demo's Google world starts at the current UTC hour, and its script
writes one Google review by each couple that received a request.  The
daemon must confirm those matches, stop the couples' follow-ups, emit
``request.converted`` and deliver it to the demo's webhook receiver, and
``plaudit report`` must show the conversion and recent months.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from plaudit.matching.links import review_groups
from plaudit.sandbox.demo_reviews import COUPLE_REVIEWS
from tests.support import plaudit_env, query

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


@pytest.fixture(scope="module")
def demo_state(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One demo run: its state directory and its ``--json`` summary."""
    state = tmp_path_factory.mktemp("demo")
    # The sandbox script lasts half of --seconds; the other half leaves room to converge.
    result = plaudit("demo", "--seconds", "30", "--json", "--state-dir", str(state), timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    return state, json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def vendor_report(demo_state: tuple[Path, dict[str, Any]]) -> dict[str, Any]:
    """The demo vendor's figures from ``plaudit report --json``."""
    result = plaudit("report", "--state-dir", str(demo_state[0]), "--json", timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    (vendor,) = json.loads(result.stdout)["vendors"]
    return dict(vendor)


def test_demo_summary_counts_conversions(demo_state: tuple[Path, dict[str, Any]]) -> None:
    state, summary = demo_state
    journal = state / "journal.sqlite3"
    converted = query(journal, "SELECT count(*) FROM events WHERE type = 'request.converted'")

    assert summary["reviews_matched"] == len(COUPLE_REVIEWS)
    assert summary["requests_converted"] > 0
    assert converted[0][0] >= summary["requests_converted"]


def test_demo_conversions_reach_webhook_receiver(demo_state: tuple[Path, dict[str, Any]]) -> None:
    state, summary = demo_state
    journal = state / "journal.sqlite3"
    converted = query(journal, "SELECT count(*) FROM events WHERE type = 'request.converted'")

    assert converted[0][0] > 0
    assert summary["conversion_webhooks_delivered"] == converted[0][0]


def test_demo_matches_link_couple_reviews(demo_state: tuple[Path, dict[str, Any]]) -> None:
    journal = demo_state[0] / "journal.sqlite3"
    rows = query(
        journal,
        "SELECT reviews.author, reviews.platform, review_matches.couple_id,"
        " review_matches.decided_by FROM review_matches JOIN reviews"
        " ON reviews.platform = review_matches.platform"
        " AND reviews.review_id = review_matches.review_id"
        " WHERE review_matches.state = 'confirmed'",
    )

    authors = sorted(str(row[0]) for row in rows)
    assert authors == sorted(name for name, _stars, _comment in COUPLE_REVIEWS)
    assert {row[1] for row in rows} == {"google"}
    assert {row[3] for row in rows} == {"automatic"}
    # One review per couple, so each confirmed match names another couple.
    assert len({row[2] for row in rows}) == len(rows)


def test_demo_review_links_group_couples(demo_state: tuple[Path, dict[str, Any]]) -> None:
    # What ``plaudit ctl review links`` returns, read from the journal file.
    journal = demo_state[0] / "journal.sqlite3"
    connection = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        groups = review_groups(connection)
    finally:
        connection.close()

    assert len(groups) == len(COUPLE_REVIEWS)
    for group in groups:
        assert [review.platform for review in group.reviews] == ["google"]
    names = sorted(" & ".join(group.names) for group in groups)
    assert names == ["Lena Vogel", "Maya Ortiz & Jonah Reed", "Priya Nair & Sam Cole"]


def test_demo_follow_ups_stop_on_review(demo_state: tuple[Path, dict[str, Any]]) -> None:
    journal = demo_state[0] / "journal.sqlite3"
    matched = {
        int(row[0])
        for row in query(journal, "SELECT couple_id FROM review_matches WHERE state = 'confirmed'")
    }
    stopped = query(
        journal,
        "SELECT couple_id FROM requests WHERE state = 'stopped' AND last_error = 'stopped: review'",
    )

    assert matched
    assert {int(row[0]) for row in stopped} == matched


def test_report_shows_google_conversion(vendor_report: dict[str, Any]) -> None:
    google = {item["platform"]: item for item in vendor_report["platforms"]}["google"]

    assert google["matched"] == len(COUPLE_REVIEWS)
    assert google["conversion_rate"] > 0
    assert google["median_days_to_review"] is not None
    assert vendor_report["funnel"]["reviewed"] == len(COUPLE_REVIEWS)
    assert vendor_report["funnel"]["conversion_rate"] > 0
    assert vendor_report["links"]["couples_with_reviews"] == len(COUPLE_REVIEWS)


def test_report_trend_names_recent_months(vendor_report: dict[str, Any]) -> None:
    google = {item["platform"]: item for item in vendor_report["platforms"]}["google"]
    # The newest review is at most an hour old; 40 days covers a month boundary.
    recent = (datetime.now(UTC) - timedelta(days=40)).strftime("%Y-%m")

    assert max(google["reviews_per_month"]) >= recent
    assert google["trend"]["recent_reviews"] > 0
    assert google["trend"]["direction"] != "no data"
