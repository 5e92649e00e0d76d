"""A verified Facebook Page push, from the inbound listener to a targeted sync on the sandbox."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from plaudit.actors.listing import ListingActor
from plaudit.actors.sources import FacebookSource
from plaudit.config.model import (
    BreakerConfig,
    FacebookConfig,
    FacebookPage,
    InboundConfig,
    InboundFacebook,
)
from plaudit.connectors.facebook import facebook_client, signature_of
from plaudit.inbound import inbox
from plaudit.inbound.providers import Verifiers
from plaudit.inbound.server import InboundServer
from plaudit.journal import AsyncJournal, Journal, Tx
from plaudit.messaging.deliverability.suppression import SuppressionPolicy
from plaudit.sandbox import SandboxOptions, serve_sandbox
from plaudit.sandbox import facebook as fb_sandbox

APP_SECRET = "push-app-secret"
PAGE = fb_sandbox.PAGE_IDS[0]


class Setup:
    def __init__(self, journal: Journal, writer: AsyncJournal, listener: str, sandbox: str) -> None:
        self.journal = journal
        self.writer = writer
        self.listener = listener
        self.sandbox = sandbox

    def actor(self) -> ListingActor:
        config = FacebookConfig(
            api_base=f"{self.sandbox}/facebook/v19.0",
            pages=[FacebookPage(page_id=PAGE, access_token=fb_sandbox.SANDBOX_PAGE_TOKEN)],
        )
        tokens = {PAGE: fb_sandbox.SANDBOX_PAGE_TOKEN}
        source = FacebookSource(config, facebook_client(config, page_tokens=tokens))
        return ListingActor(
            self.writer, source, sync_interval=3600.0, breaker=BreakerConfig(), lease_seconds=60.0
        )

    async def push(self, page_id: str, *, secret: str = APP_SECRET) -> httpx.Response:
        body = json.dumps(
            {
                "object": "page",
                "entry": [
                    {
                        "id": page_id,
                        "time": 1_760_000_000,
                        "changes": [{"field": "ratings", "value": {"verb": "add"}}],
                    }
                ],
            }
        ).encode()
        headers = {"X-Hub-Signature-256": signature_of(body, secret)}
        async with httpx.AsyncClient(timeout=30) as client:
            return await client.post(
                f"{self.listener}/inbound/facebook", content=body, headers=headers
            )

    async def process_pushes(self) -> None:
        ids = [row[0] for row in self.journal.query("SELECT id FROM inbound_events ORDER BY id")]
        for inbound_id in ids:

            def process(tx: Tx, inbound_id: int = inbound_id) -> inbox.Outcome | None:
                return inbox.process(
                    tx,
                    inbound_id,
                    policy=SuppressionPolicy(),
                    platforms=frozenset({"facebook"}),
                )

            await self.writer.transaction(process)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    (tmp_path / "fb.secret").write_text(APP_SECRET)
    config = InboundConfig(
        host="127.0.0.1",
        port=0,
        facebook=InboundFacebook(app_secret_file=str(tmp_path / "fb.secret")),
    )
    journal = Journal.open(tmp_path / "journal.sqlite3", instance="push-test")
    async with trio.open_nursery() as nursery:
        writer = AsyncJournal(journal)
        await nursery.start(writer.run)
        server = InboundServer(writer, Verifiers(config), max_body_bytes=config.max_body_bytes)
        host, port = await nursery.start(server.serve, "127.0.0.1", 0)
        sandbox = await nursery.start(serve_sandbox, SandboxOptions(seed=5, script_seconds=0))
        yield Setup(journal, writer, f"http://{host}:{port}", sandbox)
        nursery.cancel_scope.cancel()
    journal.close()


async def test_ratings_push_syncs_that_page(setup: Setup) -> None:
    response = await setup.push(PAGE)
    assert response.status_code == 200
    await setup.process_pushes()

    actor = setup.actor()
    jobs = await setup.writer.claim("facebook", kinds=["facebook.sync"])
    assert [job.payload for job in jobs] == [{"profile": PAGE, "push": True}]
    effects = await actor.handle(jobs[0])
    await setup.writer.complete(jobs[0].id, effects)
    await actor.source.aclose()

    stored = setup.journal.query(
        "SELECT profile, count(*) FROM reviews WHERE platform = 'facebook' GROUP BY profile"
    )
    assert stored == [(PAGE, 30)]
    events = setup.journal.query("SELECT count(*) FROM events WHERE type = 'review.created'")
    assert events == [(30,)]


async def test_forged_push_enqueues_nothing(setup: Setup) -> None:
    response = await setup.push(PAGE, secret="guessed")
    assert response.status_code == 403
    await setup.process_pushes()
    assert setup.journal.query("SELECT id FROM jobs WHERE kind = 'facebook.sync'") == []


async def test_push_for_unconfigured_page_fetches_nothing(setup: Setup) -> None:
    response = await setup.push("999999")
    assert response.status_code == 200
    await setup.process_pushes()

    actor = setup.actor()
    jobs = await setup.writer.claim("facebook", kinds=["facebook.sync"])
    assert len(jobs) == 1
    assert await actor.handle(jobs[0]) is None
    await actor.source.aclose()
    assert setup.journal.query("SELECT count(*) FROM reviews") == [(0,)]
