"""Wiring webhooks into the daemon: the emit hook, the actor, and reloads."""

from __future__ import annotations

import logging

from plaudit.actors.webhooks import WebhookActor
from plaudit.config import Config
from plaudit.journal import AsyncJournal
from plaudit.webhooks.endpoints import build_endpoints
from plaudit.webhooks.router import OWNER, Router

log = logging.getLogger(__name__)

# Deliveries are claimed this many at a time, so one commit covers a batch.
CLAIM_BATCH = 64
# A new event waits at most this long for its first attempt.
POLL_SECONDS = 0.25


def start_webhooks(config: Config, journal: AsyncJournal) -> tuple[Router, WebhookActor]:
    """Install the fan-out hook on ``journal`` and build the delivery actor."""
    endpoints = build_endpoints(config.webhooks)
    router = Router(endpoints)
    journal.journal.set_emit_hooks([router])
    actor = WebhookActor(
        journal,
        endpoints,
        lease_seconds=config.journal.lease_seconds,
        concurrency=config.webhooks.concurrency,
        batch=CLAIM_BATCH,
        poll_interval=POLL_SECONDS,
    )
    log.info(
        "webhooks.configured",
        extra={"endpoints": [endpoint.name for endpoint in endpoints]},
    )
    return router, actor


def reconfigure_webhooks(router: Router, actor: WebhookActor, config: Config) -> None:
    """Apply reloaded endpoints to events emitted and deliveries claimed from now on."""
    endpoints = build_endpoints(config.webhooks)
    router.configure(endpoints)
    actor.reconfigure(endpoints)
    log.info(
        "webhooks.reconfigured",
        extra={"endpoints": [endpoint.name for endpoint in endpoints]},
    )


__all__ = ["OWNER", "reconfigure_webhooks", "start_webhooks"]
