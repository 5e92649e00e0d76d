"""``plaudit demo --chaos``: the fault plan, the figures, and one short real run."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from plaudit.chaos import PLATFORMS, SYNC_INTERVAL, fault_plan, kill_times, settings_at
from plaudit.chaos_figures import (
    SyncJob,
    duplicated_created,
    failed_targets,
    recovery_seconds,
    scheduled_cycles,
    sync_accuracy,
    webhook_figures,
)
from plaudit.reviews.model import Review
from plaudit.webhooks.router import webhook_id
from tests.support import plaudit_env

REQUIRED_KEYS = (
    "availability",
    "webhook_delivery_rate",
    "webhook_delivered_eventually",
    "recovery_seconds_median",
    "recovery_seconds_max",
    "sync_accuracy",
    "missing_reviews",
    "duplicate_reviews",
    "stale_reviews",
    "lost_side_effects",
    "duplicated_side_effects",
    "requests_due",
    "kills",
    "seed",
)


def review(review_id: str, *, text: str = "Lovely day", deleted: str | None = None) -> Review:
    return Review(
        platform="google",
        review_id=review_id,
        profile="accounts/1/locations/2",
        stars=5,
        text=text,
        author="Ana",
        created_at="2026-01-01T00:00:00Z",
        updated_at="2026-01-01T00:00:00Z",
        deleted_at=deleted,
    )


def test_fault_plan_is_seeded() -> None:
    assert fault_plan(60, random.Random(3)) == fault_plan(60, random.Random(3))
    assert fault_plan(60, random.Random(3)) != fault_plan(60, random.Random(4))


def test_fault_plan_has_long_outage() -> None:
    windows = fault_plan(100, random.Random(1))
    outages = [window for window in windows if window.kind == "outage"]
    assert max(window.end - window.start for window in outages) == pytest.approx(40)
    assert {window.kind for window in windows} == {"outage", "rate_limit", "latency"}


def test_settings_keep_transient_errors() -> None:
    windows = fault_plan(100, random.Random(1))
    outage = next(window for window in windows if window.kind == "outage")
    during = settings_at(outage.platform, outage.start + 1, windows)
    assert during["error_rate"] == 1.0
    after = settings_at(outage.platform, 99.9, windows)
    assert after["error_rate"] == 0.2
    assert all(settings_at(name, 0.0, windows)["error_rate"] == 0.2 for name in PLATFORMS)


def test_kill_times_bounded() -> None:
    assert len(kill_times(40, random.Random(1))) == 2
    assert len(kill_times(10_000, random.Random(1))) == 6
    moments = kill_times(100, random.Random(9))
    assert moments == sorted(moments)
    assert all(10 <= moment <= 85 for moment in moments)


def test_cycles_count_missing_jobs() -> None:
    first = 100
    started, ended = first * SYNC_INTERVAL - 1, (first + 4) * SYNC_INTERVAL + 1
    jobs = [
        SyncJob("google", "a", first, "succeeded", first * SYNC_INTERVAL + 1),
        SyncJob("google", "a", first + 1, "succeeded", (first + 2) * SYNC_INTERVAL + 1),
        SyncJob("google", "a", first + 2, "failed", None),
    ]
    # Slots 100..103 count: one in time, one late, one failed, one never enqueued.
    cycles = scheduled_cycles(jobs, SYNC_INTERVAL, started, ended, [])
    assert cycles["counted"] == 4
    assert cycles["failed"] == 3
    assert cycles["availability"] == 0.25


def test_cycles_leave_out_outages() -> None:
    first = 100
    started, ended = first * SYNC_INTERVAL - 1, (first + 2) * SYNC_INTERVAL + 1
    jobs = [SyncJob("yelp", "b", first, "succeeded", first * SYNC_INTERVAL + 1)]
    outage = [("yelp", (first + 1) * SYNC_INTERVAL + 1, (first + 1) * SYNC_INTERVAL + 2)]
    cycles = scheduled_cycles(jobs, SYNC_INTERVAL, started, ended, outage)
    assert cycles["counted"] == 1
    assert cycles["availability"] == 1.0
    assert cycles["availability_including_outages"] == 0.5


def test_recovery_from_next_success() -> None:
    jobs = [
        SyncJob("facebook", "p", 1, "succeeded", 99.0),
        SyncJob("facebook", "p", 2, "succeeded", 103.5),
        SyncJob("facebook", "p", 3, "succeeded", 104.0),
        SyncJob("google", "q", 2, "succeeded", 100.5),
    ]
    assert recovery_seconds(jobs, [("facebook", 100.0)]) == [3.5]
    assert recovery_seconds(jobs, [("yelp", 100.0)]) == [float("inf")]


def test_webhook_rates() -> None:
    events = [("e1", "review.created", 10.0), ("e2", "review.created", 18.0)]
    accepted = {webhook_id("hook", "e1"): 11.0, webhook_id("hook", "e2"): 30.0}
    figures = webhook_figures(events, accepted, endpoint="hook", phase_ended=20.0)
    # e2 is younger than the allowance at the phase end, so only e1 counts in the run.
    assert figures["within_run"] == 1.0
    assert figures["eventually"] == 1.0
    assert figures["never_delivered"] == 0
    lost = webhook_figures(events, {}, endpoint="hook", phase_ended=20.0)
    assert lost["within_run"] == 0.0
    assert lost["never_delivered"] == 2


def test_duplicated_created_ignores_restores() -> None:
    events = [
        ("review.created:google:r1", "review.created", 1.0),
        ("review.created:google:r1:restored:2026", "review.created", 2.0),
        ("review.updated:google:r1:x:y", "review.updated", 3.0),
    ]
    assert duplicated_created(events) == 0


def test_accuracy_counts_problems() -> None:
    truth = [review("r1"), review("r2", text="Edited"), review("r3"), review("gone", deleted="x")]
    journal = [review("r1"), review("r2"), review("extra")]
    figures = sync_accuracy(journal, truth)
    assert figures["missing_reviews"] == 1
    assert figures["stale_reviews"] == 1
    assert figures["duplicate_reviews"] == 1
    # r1 right, out of three expected plus one extra.
    assert figures["sync_accuracy"] == 0.25
    assert sync_accuracy(truth[:3], truth)["sync_accuracy"] == 1.0


def test_accuracy_ignores_edit_before_deletion() -> None:
    # Edited, then deleted before the next sync: the journal keeps the content it saw.
    truth = [review("r1", text="Edited", deleted="2026-01-02T00:00:00Z"), review("r2")]
    journal = [review("r1", deleted="2026-01-03T00:00:00Z"), review("r2")]
    figures = sync_accuracy(journal, truth)
    assert figures["sync_accuracy"] == 1.0
    assert figures["sync_differences"] == []
    undeleted = sync_accuracy([review("r1"), review("r2")], truth)
    assert undeleted["stale_reviews"] == 1
    assert "deleted" in undeleted["sync_differences"][0]


def test_targets_name_failures() -> None:
    summary = {
        "availability": 0.9995,
        "webhook_delivery_rate": 0.98,
        "webhook_delivered_eventually": 1.0,
        "recovery_seconds_max": None,
        "sync_accuracy": 1.0,
        "lost_side_effects": 0,
        "duplicated_side_effects": 1,
    }
    assert failed_targets(summary) == [
        "webhook_delivery_rate",
        "recovery_seconds_max",
        "duplicated_side_effects",
    ]


@pytest.mark.slow
def test_chaos_run_keeps_every_side_effect(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "plaudit", "demo", "--chaos",
        "--seconds", "40", "--seed", "5", "--json", "--state-dir", str(tmp_path),
    ]  # fmt: skip
    # 40 s of faults, then a grace period of up to 60 s and a drain; 300 s is generous.
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=plaudit_env(), check=False
    )
    assert result.stdout.strip(), result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    for key in REQUIRED_KEYS:
        assert key in summary, key
    details = {key: summary[key] for key in (*REQUIRED_KEYS, "converged_in_grace")}
    assert summary["seed"] == 5
    assert summary["kills"] >= 1, details
    assert summary["sync_accuracy"] == 1.0, summary["sync_differences"]
    assert summary["lost_side_effects"] == 0, details
    assert summary["duplicated_side_effects"] == 0, details
    assert summary["requests_due"] > 0, details
    assert summary["marketplace"]["sync_accuracy"] == 1.0, summary["marketplace"]
    assert summary["marketplace"]["incidents_opened"] >= 1, summary["marketplace"]
    assert summary["webhook_delivered_eventually"] == 1.0, details
    assert result.returncode == (0 if not summary["failed_targets"] else 1)
    assert summary["targets"]["availability"] == {"limit": ">=", "value": 0.999}
    assert summary["targets"]["recovery_seconds_max"] == {"limit": "<=", "value": 10.0}
    assert summary["storefront_outages"] >= 1, details
