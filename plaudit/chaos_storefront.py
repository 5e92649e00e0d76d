"""The marketplace storefront in ``plaudit demo --chaos``: its faults and its figures.

The chaos config gets the demo's storefront profile (WeddingWire,
``willow-barn``), polled every ``POLL_INTERVAL`` seconds.  Through the fault
phase 10 % of page requests get a 500, which the in-call retry of
``[platforms.marketplace.retry]`` absorbs.  Three windows at fixed shares of
the phase go further: every page request gets a 500, then every one a
bot-challenge page, then every page comes 3 s late.  The first two are
storefront outages: the profile's health degrades and an incident opens,
and the run reports how long after each outage the first storefront job
succeeded, and the profile's sync accuracy against the sandbox's truth.
The grace period after the fault phase also waits for the site's incidents
to resolve, so the run shows the recovery as well as the degradation.

NOTE: the storefront's recovery is not held to the 10 s target of the API
platforms.  A failed fetch also waits out the profile's poll interval
before the next request, so polite polling bounds it from below.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any, Final, final

from plaudit.chaos_figures import SyncJob, finite, recovery_seconds, sync_accuracy
from plaudit.demo import MARKETPLACE_PROFILE, MARKETPLACE_SITE, marketplace_demo_config
from plaudit.reviews.model import Review

# The fault endpoint of the sandbox's marketplace stand-in.
FAULTS_PATH: Final = "/_sandbox/marketplace/faults"
# Seconds between storefront polls; production allows 900 at least.
POLL_INTERVAL: Final = 5.0
STOREFRONT_JOB: Final = f"{MARKETPLACE_SITE}.storefront"

NO_STOREFRONT_FAULTS: Final[dict[str, Any]] = {
    "error_rate": 0.0,
    "challenge_rate": 0.0,
    "latency": 0.0,
}
BASE_STOREFRONT_FAULTS: Final[dict[str, Any]] = {"error_rate": 0.1}


@final
@dataclasses.dataclass(frozen=True, slots=True)
class StorefrontWindow:
    """Storefront faults from ``start`` to ``end`` seconds into the fault phase."""

    kind: str  # "errors", "challenge" or "slow"
    start: float
    end: float
    settings: dict[str, Any]

    @property
    def outage(self) -> bool:
        """True when every page request fails while the window lasts."""
        return self.kind in ("errors", "challenge")


def storefront_plan(seconds: float) -> list[StorefrontWindow]:
    """Return the storefront's fault windows of a fault phase ``seconds`` long."""
    return [
        StorefrontWindow("errors", 0.15 * seconds, 0.30 * seconds, {"error_rate": 1.0}),
        StorefrontWindow("challenge", 0.45 * seconds, 0.60 * seconds, {"challenge_rate": 1.0}),
        StorefrontWindow("slow", 0.70 * seconds, 0.80 * seconds, {"latency": 3.0}),
    ]


def storefront_settings_at(elapsed: float, windows: list[StorefrontWindow]) -> dict[str, Any]:
    """Return the storefront's fault settings at ``elapsed`` seconds into the phase."""
    settings = NO_STOREFRONT_FAULTS | BASE_STOREFRONT_FAULTS
    for window in windows:
        if window.start <= elapsed < window.end:
            settings |= window.settings
    return settings


def is_outage(settings: dict[str, Any]) -> bool:
    """Return whether the settings fail every page request."""
    return bool(settings["error_rate"] >= 1.0 or settings["challenge_rate"] >= 1.0)


def storefront_config(base_url: str) -> str:
    """Return the marketplace tables of the chaos config, breaker and retries scaled down."""
    return (
        marketplace_demo_config(base_url, poll_interval=POLL_INTERVAL)
        + """
[platforms.marketplace.breaker]
open_initial = 1.0
open_max = 4.0

[platforms.marketplace.retry]
max_attempts = 2
attempt_timeout = 8.0
deadline = 10.0
backoff_initial = 0.2
backoff_max = 1.0
"""
    )


def read_storefront_jobs(journal: Path) -> list[SyncJob]:
    """Return the storefront jobs of the chaos profile, as SyncJob records."""
    connection = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            "SELECT key, state, finished_at FROM jobs WHERE kind = ?", (STOREFRONT_JOB,)
        ).fetchall()
    finally:
        connection.close()
    jobs = []
    for key, state, finished_at in rows:
        _kind, profile, slot = str(key).split(":", 2)
        if profile == MARKETPLACE_PROFILE and slot.isdigit():
            jobs.append(SyncJob(MARKETPLACE_SITE, profile, int(slot), str(state), finished_at))
    return jobs


def retried_storefront_jobs(journal: Path) -> int:
    """Return how many storefront jobs needed more than one attempt."""
    connection = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        (count,) = connection.execute(
            "SELECT count(*) FROM jobs WHERE kind = ? AND attempts > 1", (STOREFRONT_JOB,)
        ).fetchone()
    finally:
        connection.close()
    return int(count)


def read_incidents(journal: Path) -> list[tuple[str, float, float | None]]:
    """Return the cause, opening and resolution time of each incident of the storefront's site."""
    connection = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            "SELECT cause, opened_at, resolved_at FROM incidents WHERE platform = ? ORDER BY id",
            (MARKETPLACE_SITE,),
        ).fetchall()
    finally:
        connection.close()
    return [(str(cause), float(opened), resolved) for cause, opened, resolved in rows]


def open_incidents(journal: Path) -> int:
    """Return how many incidents of the storefront's site are still open."""
    if not journal.exists():
        return 0
    return sum(1 for _cause, _opened, resolved in read_incidents(journal) if resolved is None)


def storefront_figures(
    journal: Path,
    *,
    outage_ends: list[float],
    reviews: list[Review],
    truth: list[Review],
) -> dict[str, Any]:
    """Return the storefront profile's figures: failures, incidents, recovery and accuracy."""
    jobs = read_storefront_jobs(journal)
    incidents = read_incidents(journal)
    recoveries = recovery_seconds(jobs, [(MARKETPLACE_SITE, ended) for ended in outage_ends])
    accuracy = sync_accuracy(
        [review for review in reviews if review.platform == MARKETPLACE_SITE], truth
    )
    return {
        "profile": f"{MARKETPLACE_SITE}:{MARKETPLACE_PROFILE}",
        "jobs_succeeded": sum(1 for job in jobs if job.state == "succeeded"),
        "jobs_failed": sum(1 for job in jobs if job.state in ("failed", "dead")),
        "jobs_retried": retried_storefront_jobs(journal),
        "incidents_opened": len(incidents),
        "incidents_resolved": sum(1 for _cause, _opened, resolved in incidents if resolved),
        "incidents_open_at_end": sum(1 for _cause, _opened, resolved in incidents if not resolved),
        "incident_causes": sorted({cause for cause, _opened, _resolved in incidents}),
        "recovery_seconds": [finite(seconds) for seconds in recoveries],
        "sync_accuracy": accuracy["sync_accuracy"],
        "reviews_expected": accuracy["reviews_expected"],
        "sync_differences": accuracy["sync_differences"],
    }
