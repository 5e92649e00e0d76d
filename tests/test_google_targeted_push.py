"""A Pub/Sub push that names one review fetches that review, not the location."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
import trio

from plaudit.actors.google import GoogleActor
from plaudit.config.model import GoogleConfig
from plaudit.connectors.google import GoogleClient
from plaudit.daemon.children import ChildContext
from plaudit.inbound.events import map_events
from plaudit.inbound.inbox import sync_job_for
from plaudit.inbound.testing import pubsub_body
from plaudit.journal import AsyncJournal, Journal
from plaudit.sandbox import SandboxOptions, serve_sandbox
from tests.support import query
from tests.test_google_concurrency import config_for

LOCATION = "accounts/1001/locations/2001"
PUBLISHED = "2026-01-01T00:00:00Z"


def test_push_naming_review_targets_it() -> None:
    body = pubsub_body(
        "m1",
        {"type": "UPDATED_REVIEW", "review": f"{LOCATION}/reviews/AbC-123_x"},
        published=PUBLISHED,
    )
    (event,) = map_events("google", body, received_at=1.8e9)
    job = sync_job_for(event)

    assert event.review == "AbC-123_x"
    assert job is not None
    assert job.payload == {
        "account": "accounts/1001",
        "location": "locations/2001",
        "push": True,
        "review": "AbC-123_x",
    }


def test_review_of_other_location_untargeted() -> None:
    body = pubsub_body(
        "m2",
        {
            "type": "NEW_REVIEW",
            "location": LOCATION,
            "review": "accounts/1001/locations/9999/reviews/r1",
        },
        published=PUBLISHED,
    )
    (event,) = map_events("google", body, received_at=1.8e9)
    job = sync_job_for(event)

    assert event.review is None
    assert job is not None
    assert "review" not in job.payload


class RecordingTransport(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        response = await self._inner.handle_async_request(request)
        await response.aread()
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


async def first_review_id(base_url: str, config: GoogleConfig) -> str:
    client = GoogleClient(
        config, client_secret=config.client_secret, refresh_token=config.refresh_token
    )
    try:
        page = await client.list_reviews_page("accounts/1001", "locations/2001", page_token=None)
    finally:
        await client.aclose()
    return page.reviews[0].review_id


@pytest.mark.parametrize("known", [True, False])
async def test_push_job_targets_review_or_lists(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture, known: bool
) -> None:
    base_url: str = await nursery.start(serve_sandbox, SandboxOptions(seed=4, script_seconds=0))
    config = config_for(base_url, 1)
    review_id = await first_review_id(base_url, config) if known else "NoSuchReview"
    transport = RecordingTransport()
    opened = Journal.open(tmp_path / "journal.sqlite3", instance="targeted-1")
    context = ChildContext("test")

    def client(settings: GoogleConfig) -> GoogleClient:
        return GoogleClient(
            settings,
            client_secret=settings.client_secret,
            refresh_token=settings.refresh_token,
            transport=transport,
        )

    caplog.set_level(logging.INFO, logger="plaudit.actors.google")
    async with trio.open_nursery() as inner:
        writer = AsyncJournal(opened)
        await inner.start(writer.run)
        await writer.enqueue(
            kind="google.sync",
            owner="google",
            key="google.sync:push:1",
            payload={
                "account": "accounts/1001",
                "location": "locations/2001",
                "push": True,
                "review": review_id,
            },
        )
        actor = GoogleActor(writer, config, client, lease_seconds=120.0)
        inner.start_soon(actor.start, context)

        def pushed_job_done() -> bool:
            # A separate connection reads only committed work, and ``opened``
            # belongs to the writer's worker thread while it runs.
            rows = query(opened.path, "SELECT state FROM jobs WHERE key = 'google.sync:push:1'")
            return bool(rows) and rows[0][0] == "succeeded"

        with trio.move_on_after(60.0):
            while not pushed_job_done():
                await trio.sleep(0.1)
        context.stop_requested.set()
        actor.wake()
        await trio.sleep(0.5)
        inner.cancel_scope.cancel()

    assert pushed_job_done()
    opened.close()
    single = f"/google/v4/{LOCATION}/reviews/{review_id}"
    assert single in transport.paths
    modes = [
        record.__dict__.get("mode") for record in caplog.records if record.msg == "google.synced"
    ]
    if known:
        assert "targeted" in modes
    else:
        # Google no longer has the review, and only a complete listing may mark it deleted.
        assert "targeted" not in modes
        assert any(mode in ("full", "incremental") for mode in modes)
