"""The figures of a chaos run, computed from the journal file and the receiver's record.

``plaudit.chaos`` runs the daemon under faults, and the functions here turn what
it left behind into the reported figures.  Each is documented in
``plaudit.chaos``'s module docstring.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final, final

from plaudit.demo import COMPARED, compare
from plaudit.reviews.model import Review
from plaudit.sandbox.request_steps import RequestStep
from plaudit.webhooks.router import webhook_id

# Events younger than this (seconds) at the end of the fault phase are not
# counted in the within-run delivery rate: the first retries of the
# endpoint's schedule (1 s, then 2 s) must fit before the phase ends.
DELIVERY_ALLOWANCE: Final = 5.0

# Differences between the journal and the truth listed in the summary.
DIFFERENCES_SHOWN: Final = 10

TARGETS: Final = {
    "availability": 0.999,
    "webhook_delivery_rate": 0.99,
    "webhook_delivered_eventually": 1.0,
    "recovery_seconds_max": 10.0,
    "sync_accuracy": 1.0,
    "lost_side_effects": 0,
    "duplicated_side_effects": 0,
}
# Figures that must stay at or below their target; the others at or above.
MAXIMUM_TARGETS: Final = frozenset(
    {"recovery_seconds_max", "lost_side_effects", "duplicated_side_effects"}
)
# Request states that end a step without a message: no consent, a stopped campaign.
UNSENDABLE_STATES: Final = frozenset({"suppressed", "stopped"})


def finite(value: float) -> float | None:
    """Return ``value`` rounded to milliseconds, or None when it is infinite."""
    # JSON has no infinity: an outage never recovered from is reported as null.
    return None if math.isinf(value) else round(value, 3)


def read_events(journal: Path) -> list[tuple[str, str, float]]:
    """Return every event's key, type and Unix creation time from the journal file."""
    connection = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT key, type, created_at FROM events ORDER BY id")
        return [(str(key), str(kind), float(created)) for key, kind, created in rows]
    finally:
        connection.close()


@final
@dataclasses.dataclass(frozen=True, slots=True)
class SyncJob:
    """One sync job of the journal: the cycle it belongs to and how it ended."""

    platform: str
    profile: str
    slot: int
    state: str
    finished_at: float | None


def read_sync_jobs(journal: Path) -> list[SyncJob]:
    """Return the sync jobs of every platform; keys read ``<platform>.sync:<profile>:<slot>``."""
    connection = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            "SELECT owner, key, state, finished_at FROM jobs WHERE kind LIKE '%.sync'"
        ).fetchall()
    finally:
        connection.close()
    jobs = []
    for owner, key, state, finished_at in rows:
        _kind, rest = str(key).split(":", 1)
        profile, slot = rest.rsplit(":", 1)
        jobs.append(SyncJob(str(owner), profile, int(slot), str(state), finished_at))
    return jobs


def scheduled_cycles(
    jobs: list[SyncJob],
    interval: float,
    phase_started: float,
    phase_ended: float,
    outages: list[tuple[str, float, float]],
) -> dict[str, Any]:
    """Count the scheduled cycles of the fault phase and the share that succeeded in time."""
    first = int(phase_started // interval) + 1
    last = int(phase_ended // interval) - 1
    by_cycle = {(job.platform, job.profile, job.slot): job for job in jobs}
    profiles = {(job.platform, job.profile) for job in jobs}
    counted = failed = during_outage = failed_during_outage = 0
    for platform, profile in sorted(profiles):
        for slot in range(first, last + 1):
            begins, ends = slot * interval, (slot + 1) * interval
            job = by_cycle.get((platform, profile, slot))
            ok = (
                job is not None
                and job.state == "succeeded"
                and job.finished_at is not None
                and job.finished_at < ends
            )
            if any(
                name == platform and start < ends and end > begins for name, start, end in outages
            ):
                during_outage += 1
                failed_during_outage += not ok
                continue
            counted += 1
            failed += not ok
    total = counted + during_outage
    return {
        "counted": counted,
        "failed": failed,
        "availability": (counted - failed) / counted if counted else 0.0,
        "availability_including_outages": (
            (total - failed - failed_during_outage) / total if total else 0.0
        ),
    }


def recovery_seconds(jobs: list[SyncJob], outage_ends: list[tuple[str, float]]) -> list[float]:
    """Return, per outage, seconds from its end to its platform's next successful sync.

    An outage after which no sync succeeded counts as infinitely long.
    """
    recoveries = []
    for platform, ended in outage_ends:
        finishes = [
            job.finished_at
            for job in jobs
            if job.platform == platform
            and job.state == "succeeded"
            and job.finished_at is not None
            and job.finished_at >= ended
        ]
        recoveries.append(min(finishes) - ended if finishes else float("inf"))
    return recoveries


def webhook_figures(
    events: list[tuple[str, str, float]],
    accepted: dict[str, float],
    *,
    endpoint: str,
    phase_ended: float,
) -> dict[str, Any]:
    """Return the within-run and eventual delivery rates and the never-delivered count."""
    due = [
        (key, created)
        for key, _type, created in events
        if created <= phase_ended - DELIVERY_ALLOWANCE
    ]
    in_time = sum(
        1 for key, _ in due if accepted.get(webhook_id(endpoint, key), 1e100) <= phase_ended
    )
    delivered = sum(1 for key, _type, _created in events if webhook_id(endpoint, key) in accepted)
    return {
        "events": len(events),
        "within_run": in_time / len(due) if due else 1.0,
        "eventually": delivered / len(events) if events else 1.0,
        "never_delivered": len(events) - delivered,
    }


def duplicated_created(events: list[tuple[str, str, float]]) -> int:
    """Count ``review.created`` events beyond the first per review (restorations aside)."""
    seen: dict[str, int] = {}
    for key, event_type, _created in events:
        if event_type == "review.created" and ":restored:" not in key:
            # Keys read review.created:<platform>:<id>; a repeat would need a second key form.
            review = ":".join(key.split(":")[1:3])
            seen[review] = seen.get(review, 0) + 1
    return sum(count - 1 for count in seen.values())


def request_figures(
    steps: list[RequestStep], received: Iterable[str], *, due_before: float
) -> dict[str, int]:
    """Count request steps due before ``due_before`` that never reached the sink, and repeats.

    ``received`` lists the Message-ID of every message the SMTP sink
    accepted, once per acceptance.  A step counts as sent only when its
    Message-ID is among them, so a step the journal records as sent whose
    message never arrived is lost too.
    """
    arrivals = collections.Counter(received)
    due = [
        step
        for step in steps
        if step.scheduled_at <= due_before and step.state not in UNSENDABLE_STATES
    ]
    never_sent = sum(1 for step in due if step.message_id is None or arrivals[step.message_id] == 0)
    return {
        "requests_due": len(due),
        "requests_never_sent": never_sent,
        "requests_unconfirmed": sum(1 for step in steps if step.unconfirmed),
        "duplicated_messages": sum(count - 1 for count in arrivals.values() if count > 1),
    }


def sync_accuracy(journal_reviews: list[Review], truth: list[Review]) -> dict[str, Any]:
    """Return sync accuracy and its missing, duplicate and stale review counts."""
    problems = compare(journal_reviews, truth)
    missing = {(p.platform, p.review_id) for p in problems if p.problem.startswith("missing")}
    extra = {(p.platform, p.review_id) for p in problems if p.problem.startswith("in the journal")}
    stale = {(p.platform, p.review_id) for p in problems} - missing - extra
    ours = {(review.platform, review.review_id) for review in journal_reviews}
    # Reviews created and deleted between two syncs need not be in the journal.
    expected = {
        (review.platform, review.review_id)
        for review in truth
        if review.deleted_at is None or (review.platform, review.review_id) in ours
    }
    correct = len(expected) - len(missing) - len(stale)
    denominator = len(expected) + len(extra)
    return {
        "sync_accuracy": correct / denominator if denominator else 1.0,
        "reviews_expected": len(expected),
        "missing_reviews": len(missing),
        "duplicate_reviews": len(extra),
        "stale_reviews": len(stale),
        "compared_fields": list(COMPARED),
        # The first differences, so a failed run names the reviews to look at.
        "sync_differences": [
            f"{p.platform} {p.review_id}: {p.problem}" for p in problems[:DIFFERENCES_SHOWN]
        ],
    }


def target_table() -> dict[str, dict[str, Any]]:
    """Return each target as ``{"limit": ">=" or "<=", "value": target}``, for the JSON summary."""
    return {
        name: {"limit": "<=" if name in MAXIMUM_TARGETS else ">=", "value": target}
        for name, target in TARGETS.items()
    }


def failed_targets(summary: dict[str, Any]) -> list[str]:
    """Return the names of the figures that miss their targets."""
    failed = []
    for name, target in TARGETS.items():
        value = summary[name]
        if value is None:
            failed.append(name)
        elif name in MAXIMUM_TARGETS:
            if value > target:
                failed.append(name)
        elif value < target:
            failed.append(name)
    return failed


def _shown(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def print_chaos_summary(summary: dict[str, Any]) -> None:
    print()
    print(f"{'figure':30} {'value':>10}  {'target':>8}  verdict")
    for name, target in TARGETS.items():
        verdict = "FAILED" if name in summary["failed_targets"] else "ok"
        limit = "<=" if name in MAXIMUM_TARGETS else ">="
        print(f"{name:30} {_shown(summary[name]):>10}  {limit} {target!s:>5}  {verdict}")
    for name in (
        "availability_including_outages",
        "scheduled_cycles",
        "failed_cycles",
        "recovery_seconds_median",
        "missing_reviews",
        "duplicate_reviews",
        "stale_reviews",
        "requests_due",
        "requests_never_sent",
        "requests_unconfirmed",
        "kills",
        "kills_during_sends",
        "seed",
    ):
        print(f"{name:30} {_shown(summary[name]):>10}")
    storefront = summary.get("marketplace")
    if storefront is not None:
        print(
            f"marketplace {storefront['profile']}: sync accuracy {storefront['sync_accuracy']}, "
            f"{storefront['incidents_opened']} incidents ({storefront['incidents_resolved']} "
            f"resolved), recovery seconds {storefront['recovery_seconds']}"
        )
    failed = summary["failed_targets"]
    print("every target holds" if not failed else f"targets missed: {', '.join(failed)}")
    if "journal" in summary:
        print(f"journal: {summary['journal']}, daemon log: {summary['daemon_log']}")
