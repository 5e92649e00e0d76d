"""Fan-out of journal events to webhook deliveries, inside the emitting transaction.

:class:`Router` is a journal emit hook: for each new event it enqueues one
``webhook.deliver`` job per enabled endpoint that subscribes to the event's
type, through the same :class:`~plaudit.journal.Tx`.  The review change, its
event and its deliveries therefore commit together or not at all.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Any, Final, final

from plaudit.journal import Event, Tx
from plaudit.webhooks.endpoints import Endpoint

log = logging.getLogger(__name__)

DELIVER_KIND: Final = "webhook.deliver"
OWNER: Final = "webhooks"


def webhook_id(endpoint: str, event_key: str) -> str:
    """Return the ``webhook-id`` of one event's delivery to one endpoint.

    Stable across retries, restarts and replays, so receivers can drop repeats.
    """
    digest = hashlib.sha256(f"{endpoint}\0{event_key}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


def delivery_key(endpoint: str, event_key: str) -> str:
    """Return the idempotency key of the delivery job: one job per endpoint and event."""
    return f"webhook:{endpoint}:{event_key}"


def delivery_job(endpoint: Endpoint, event: Event) -> dict[str, Any]:
    """Return the enqueue arguments of one event's delivery to ``endpoint``."""
    return {
        "kind": DELIVER_KIND,
        "owner": OWNER,
        "key": delivery_key(endpoint.name, event.key),
        "payload": {
            "endpoint": endpoint.name,
            "webhook_id": webhook_id(endpoint.name, event.key),
            "event_id": event.id,
            "event_key": event.key,
            "type": event.type,
            "created_at": event.created_at,
            "data": event.payload,
        },
        "max_attempts": endpoint.max_attempts,
    }


@final
class Router:
    """The emit hook that turns events into deliveries; swap endpoints with ``configure``."""

    def __init__(self, endpoints: Sequence[Endpoint] = ()) -> None:
        self._endpoints: tuple[Endpoint, ...] = tuple(endpoints)
        self._enqueued = 0

    def __repr__(self) -> str:
        return f"<Router endpoints={len(self._endpoints)} enqueued={self._enqueued}>"

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        return self._endpoints

    def configure(self, endpoints: Sequence[Endpoint]) -> None:
        """Use ``endpoints`` for events emitted from now on (an atomic swap)."""
        self._endpoints = tuple(endpoints)

    def __call__(self, tx: Tx, event: Event) -> None:
        for endpoint in self._endpoints:
            if not endpoint.enabled or not endpoint.wants(event.type):
                continue
            if tx.enqueue(**delivery_job(endpoint, event)) is not None:
                self._enqueued += 1
