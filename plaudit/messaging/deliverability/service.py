"""Deliverability in the daemon: the rate monitor, the bounce mailbox and ``ctl deliverability``."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from plaudit.actors.base import ChildContext
from plaudit.actors.bounces import build_bounce_actor
from plaudit.config import Config
from plaudit.config.model import DeliverabilityConfig
from plaudit.errors import ControlError
from plaudit.journal import AsyncJournal, Journal
from plaudit.messaging.deliverability.monitor import (
    DeliverabilityMonitor,
    evaluate,
    load_events,
    suppression_counts,
    thresholds_of,
)
from plaudit.messaging.event_rules import CampaignRulesSource, no_rules

if TYPE_CHECKING:
    from plaudit.daemon.app import Daemon

Command = Callable[[dict[str, Any]], Awaitable[Any]]
StartFunction = Callable[[ChildContext], Awaitable[None]]


def deliverability_children(
    config: Config,
    journal: AsyncJournal,
    *,
    state_dir: Path,
    settings: Callable[[], DeliverabilityConfig] | None = None,
    rules: CampaignRulesSource = no_rules,
) -> list[tuple[str, StartFunction]]:
    """Return the deliverability tasks to supervise: the monitor, and the mailbox when set.

    ``settings`` returns the current ``[deliverability]`` table (the daemon's,
    after reloads); without it the tasks keep ``config``'s.  ``rules`` returns
    the campaigns that a complaint or hard bounce in the mailbox stops.
    """
    current = settings or (lambda: config.deliverability)
    monitor = DeliverabilityMonitor(journal, current)
    children: list[tuple[str, StartFunction]] = [("deliverability", monitor.start)]
    bounces = build_bounce_actor(
        config.deliverability, journal, state_dir=state_dir, settings=current, rules=rules
    )
    if bounces is not None:
        children.append((bounces.name, bounces.start))
    return children


def deliverability_commands(daemon: Daemon) -> dict[str, Command]:
    """Return the ``deliverability`` control command, keyed by name."""

    async def deliverability(args: dict[str, Any]) -> dict[str, Any]:
        journal = daemon.journal
        if journal is None:
            raise ControlError("the journal is not open yet; try again in a moment")
        config = daemon.config
        now = time.time()
        return await journal.read(lambda opened: report(opened, config, now=now))

    return {"deliverability": deliverability}


def report(journal: Journal, config: Config, *, now: float) -> dict[str, Any]:
    """Rates per provider and domain, thresholds, active alerts and suppression counts."""
    settings = config.deliverability
    events = load_events(journal, since=now - max(settings.windows))
    evaluation = evaluate(events, now=now, config=settings)
    result = {
        "at": now,
        "thresholds": thresholds_of(settings),
        "windows": settings.windows,
        "rates": evaluation.rates,
        "alerts": evaluation.alerts,
        "suppressions": suppression_counts(journal),
    }
    # Through JSON, so tuples become lists as they do on the control socket.
    converted: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(result))
    return converted
