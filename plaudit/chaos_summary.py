"""The measurements of a ``plaudit demo --chaos`` run, and its summary.

:mod:`plaudit.chaos`'s docstring defines the figures and
:mod:`plaudit.chaos_figures` computes most of them.  The functions here read
their inputs from the journal file, the sandbox's truth and the webhook
receiver, and :func:`summarise` builds the summary that ``--json`` prints.
"""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path
from typing import Any, final

import trio

from plaudit.chaos_faults import FaultInjector
from plaudit.chaos_figures import (
    duplicated_created,
    failed_targets,
    finite,
    read_events,
    read_sync_jobs,
    recovery_seconds,
    scheduled_cycles,
    sync_accuracy,
    target_table,
    webhook_figures,
)
from plaudit.chaos_mail import ChaosMail
from plaudit.chaos_storefront import storefront_figures
from plaudit.demo import MARKETPLACE_SITE, fetch_truth, read_journal
from plaudit.sandbox.receiver import DemoWebhooks, Received
from plaudit.webhooks.router import webhook_id


@final
@dataclasses.dataclass(frozen=True, slots=True)
class RunFacts:
    """Facts the run loop recorded about one chaos run, read by :func:`summarise`."""

    seed: int
    seconds: float
    # Seconds between sync slots in the run's config.
    sync_interval: float
    base_url: str
    journal_path: Path
    log_path: Path
    # Unix times of the fault phase's start and end.
    phase_started: float
    phase_ended: float
    kills: int
    restarts_after_stop: int


def accepted(item: Received) -> bool:
    """Return whether the receiver responded 2xx to a request with a valid signature."""
    return item.verify_error is None and item.status is not None and 200 <= item.status < 300


def accepted_at(webhooks: DemoWebhooks) -> dict[str, float]:
    """Return the Unix time each webhook id was first accepted by the receiver."""
    accepted_times: dict[str, float] = {}
    for item in webhooks.receiver.received:
        if accepted(item) and item.webhook_id not in accepted_times:
            accepted_times[item.webhook_id] = item.at
    return accepted_times


def repeat_deliveries(webhooks: DemoWebhooks) -> int:
    """Count accepted requests beyond the first per webhook id (at-least-once repeats)."""
    ids = [item.webhook_id for item in webhooks.receiver.received if accepted(item)]
    return len(ids) - len(set(ids))


def undelivered(journal_path: Path, webhooks: DemoWebhooks) -> list[str]:
    """Return the keys of journal events whose webhook the receiver has not accepted."""
    accepted_times = accepted_at(webhooks)
    return [
        key
        for key, _type, _created in read_events(journal_path)
        if webhook_id(webhooks.endpoint, key) not in accepted_times
    ]


async def summarise(
    facts: RunFacts,
    *,
    faults: FaultInjector,
    webhooks: DemoWebhooks,
    mail: ChaosMail,
    converged: bool,
    exit_code: int,
) -> dict[str, Any]:
    """Measure the run from the journal file, the truth and the receiver; return the summary."""
    reviews, _ = await trio.to_thread.run_sync(read_journal, facts.journal_path)
    truth = await fetch_truth(facts.base_url)
    accuracy = sync_accuracy(reviews, truth)

    storefront = storefront_figures(
        facts.journal_path,
        outage_ends=faults.storefront_outage_ends,
        reviews=reviews,
        truth=[review for review in truth if review.platform == MARKETPLACE_SITE],
    )

    events = read_events(facts.journal_path)
    sync_jobs = read_sync_jobs(facts.journal_path)
    cycles = scheduled_cycles(
        sync_jobs, facts.sync_interval, facts.phase_started, facts.phase_ended, faults.outage_spans
    )
    recoveries = recovery_seconds(sync_jobs, faults.outage_ends)
    delivery = webhook_figures(
        events,
        accepted_at(webhooks),
        endpoint=webhooks.endpoint,
        phase_ended=facts.phase_ended,
    )
    duplicates = duplicated_created(events)
    mail_figures = mail.figures(facts.journal_path, due_before=facts.phase_ended)

    summary: dict[str, Any] = {
        "seed": facts.seed,
        "seconds": facts.seconds,
        "sync_interval_seconds": facts.sync_interval,
        "availability": cycles["availability"],
        "availability_including_outages": cycles["availability_including_outages"],
        "scheduled_cycles": cycles["counted"],
        "failed_cycles": cycles["failed"],
        "webhook_delivery_rate": delivery["within_run"],
        "webhook_delivered_eventually": delivery["eventually"],
        "webhook_events": delivery["events"],
        "recovery_seconds_median": finite(statistics.median(recoveries)) if recoveries else None,
        "recovery_seconds_max": finite(max(recoveries)) if recoveries else None,
        # API platform outages; the storefront's are counted apart.
        "outages": len(faults.outage_ends),
        "storefront_outages": len(faults.storefront_outage_ends),
        **accuracy,
        "lost_side_effects": (
            delivery["never_delivered"] + duplicates + mail_figures["requests_never_sent"]
        ),
        "duplicated_side_effects": mail_figures["duplicated_messages"],
        "duplicated_created_events": duplicates,
        **mail_figures,
        "kills": facts.kills,
        "faults_injected": faults.faults_injected,
        "webhook_failed_attempts": webhooks.summary(facts.journal_path)["webhooks_failed"],
        # Accepted more than once: harmless, since receivers dedupe by webhook-id.
        "webhook_repeat_deliveries": repeat_deliveries(webhooks),
        "marketplace": storefront,
        "converged_in_grace": converged,
        "daemon_exit_code": exit_code,
        "restarts_after_stop": facts.restarts_after_stop,
        "journal": str(facts.journal_path),
        "daemon_log": str(facts.log_path),
    }
    summary["targets"] = target_table()
    summary["failed_targets"] = failed_targets(summary)
    return summary
