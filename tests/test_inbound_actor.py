"""The inbox actor processes stored requests through the journal and retries failures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plaudit.inbound import inbox
from plaudit.inbound.events import map_events
from plaudit.inbound.inbox import InboxActor
from plaudit.journal import AsyncJournal, Journal
from tests.support import run_actor_until


@pytest.fixture
def sync_journal(tmp_path: Path) -> Iterator[Journal]:
    """A journal file that retries a failed job after 0.05 s to 0.1 s, so a retry fits in a test."""
    journal = Journal.open(
        tmp_path / "journal.sqlite3", instance="inbox-test", retry_initial=0.05, retry_max=0.1
    )
    yield journal
    journal.close()


def delivery_body(event_id: str) -> bytes:
    return json.dumps(
        {
            "event-data": {
                "id": event_id,
                "event": "delivered",
                "timestamp": 1_700_000_000.0,
                "recipient": "couple@example.com",
            }
        }
    ).encode()


async def store(writer: AsyncJournal, event_id: str) -> int | None:
    return await writer.transaction(
        lambda tx: inbox.accept(
            tx, provider="mailgun", delivery_id=event_id, headers={}, body=delivery_body(event_id)
        )
    )


def states(journal: Journal) -> list[Any]:
    return journal.query("SELECT provider_event_id, state FROM inbound_events ORDER BY id")


async def test_actor_processes_stored_requests(writer: AsyncJournal, sync_journal: Journal) -> None:
    await store(writer, "a")
    await store(writer, "b")
    actor = InboxActor(writer, lease_seconds=30, platforms=frozenset(), poll_interval=0.05)

    def all_processed() -> bool:
        return all(state == "processed" for _, state in states(sync_journal))

    await run_actor_until(actor, all_processed, name="inbound", timeout=30)
    assert states(sync_journal) == [("a", "processed"), ("b", "processed")]
    assert len(sync_journal.query("SELECT id FROM message_events")) == 2
    assert actor.statistics().jobs_succeeded == 2


async def test_failed_processing_is_retried(
    writer: AsyncJournal, sync_journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real = map_events

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("disk hiccup while mapping")
        return real(*args, **kwargs)

    monkeypatch.setattr(inbox, "map_events", flaky)
    await store(writer, "c")
    actor = InboxActor(writer, lease_seconds=30, platforms=frozenset(), poll_interval=0.05)
    await run_actor_until(
        actor, lambda: states(sync_journal) == [("c", "processed")], name="inbound", timeout=30
    )
    assert len(calls) == 2
    jobs = sync_journal.query("SELECT state, attempts FROM jobs WHERE kind = 'inbound.process'")
    assert jobs == [("succeeded", 2)]
    assert len(sync_journal.query("SELECT id FROM message_events")) == 1


async def test_repeat_request_enqueues_nothing(writer: AsyncJournal, sync_journal: Journal) -> None:
    assert await store(writer, "d") is not None
    assert await store(writer, "d") is None
    assert len(sync_journal.query("SELECT id FROM jobs")) == 1
