"""Resend and Facebook events through the inbound listener over real HTTP on loopback.

Each request is signed as the provider signs it.  The checks cover what a
provider can send: a good event, a repeat, a forged or replayed signature,
and a body over the limit, each with its status code and stored rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from plaudit.config.model import InboundConfig, InboundFacebook, InboundResend
from plaudit.connectors.facebook import signature_of
from plaudit.inbound.providers import Verifiers
from plaudit.inbound.server import InboundServer
from plaudit.journal import AsyncJournal, Journal
from plaudit.webhooks.signing import Secret, generate_secret, sign_headers

MAX_BODY = 4096
APP_SECRET = "fb-app-secret"


@dataclass
class Listener:
    url: str
    journal: Journal
    resend_secret: Secret

    def rows(self) -> list[tuple[Any, ...]]:
        return self.journal.query(
            "SELECT provider, provider_event_id, state FROM inbound_events ORDER BY id"
        )


@pytest.fixture
async def listener(tmp_path: Path) -> AsyncIterator[Listener]:
    secret = generate_secret()
    (tmp_path / "resend.secret").write_text(f"{secret.serialize()}\n")
    (tmp_path / "fb.secret").write_text(APP_SECRET)
    config = InboundConfig(
        host="127.0.0.1",
        port=0,
        max_body_bytes=MAX_BODY,
        resend=InboundResend(secret_file=str(tmp_path / "resend.secret")),
        facebook=InboundFacebook(app_secret_file=str(tmp_path / "fb.secret")),
    )
    journal = Journal.open(tmp_path / "journal.sqlite3", instance="inbound-providers")
    try:
        async with trio.open_nursery() as nursery:
            writer = AsyncJournal(journal)
            await nursery.start(writer.run)
            server = InboundServer(writer, Verifiers(config), max_body_bytes=MAX_BODY)
            host, port = await nursery.start(server.serve, "127.0.0.1", 0)
            yield Listener(f"http://{host}:{port}", journal, secret)
            nursery.cancel_scope.cancel()
    finally:
        journal.close()


def resend_body(email_id: str) -> bytes:
    return json.dumps(
        {
            "type": "email.delivered",
            "created_at": "2026-12-04T10:00:00.000Z",
            "data": {"email_id": email_id, "to": ["couple@example.com"]},
        }
    ).encode()


def resend_headers(
    secret: Secret, body: bytes, *, message_id: str, timestamp: int | None = None
) -> dict[str, str]:
    """Return Resend's headers: Standard Webhooks signatures under svix- names."""
    signed = sign_headers(
        [secret],
        webhook_id=message_id,
        timestamp=int(time.time()) if timestamp is None else timestamp,
        body=body,
    )
    return {name.replace("webhook-", "svix-"): value for name, value in signed.items()}


async def post(listener: Listener, provider: str, body: bytes, headers: dict[str, str]) -> Any:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(
            f"{listener.url}/inbound/{provider}", content=body, headers=headers
        )


async def test_resend_event_stored_once(listener: Listener) -> None:
    body = resend_body("e-1")
    headers = resend_headers(listener.resend_secret, body, message_id="msg_resend_1")

    first = await post(listener, "resend", body, headers)
    # The provider retries with the same id and a fresh timestamp.
    again = await post(
        listener,
        "resend",
        body,
        resend_headers(listener.resend_secret, body, message_id="msg_resend_1"),
    )

    assert first.status_code == 200
    assert first.text == "accepted\n"
    assert again.status_code == 200
    assert again.text == "duplicate; stored before\n"
    assert listener.rows() == [("resend", "msg_resend_1", "pending")]


async def test_resend_forged_rejected(listener: Listener) -> None:
    body = resend_body("e-2")
    headers = resend_headers(generate_secret(), body, message_id="msg_forged")

    response = await post(listener, "resend", body, headers)

    assert response.status_code == 403
    assert listener.rows() == []


async def test_resend_replay_rejected(listener: Listener) -> None:
    body = resend_body("e-3")
    old = int(time.time()) - 3600
    headers = resend_headers(listener.resend_secret, body, message_id="msg_old", timestamp=old)

    response = await post(listener, "resend", body, headers)

    assert response.status_code == 403
    assert "timestamp" in response.text
    assert listener.rows() == []


async def test_resend_changed_body_rejected(listener: Listener) -> None:
    body = resend_body("e-4")
    headers = resend_headers(listener.resend_secret, body, message_id="msg_changed")

    response = await post(listener, "resend", resend_body("e-5"), headers)

    assert response.status_code == 403
    assert listener.rows() == []


async def test_resend_oversized_rejected(listener: Listener) -> None:
    body = b'{"type":"email.delivered","pad":"' + b"x" * MAX_BODY + b'"}'
    headers = resend_headers(listener.resend_secret, body, message_id="msg_big")

    response = await post(listener, "resend", body, headers)

    assert response.status_code == 413
    assert listener.rows() == []


async def test_facebook_push_stored(listener: Listener) -> None:
    body = json.dumps(
        {
            "object": "page",
            "entry": [{"id": "p1", "time": 1, "changes": [{"field": "ratings", "value": {}}]}],
        }
    ).encode()

    good = await post(
        listener, "facebook", body, {"X-Hub-Signature-256": signature_of(body, APP_SECRET)}
    )
    forged = await post(
        listener, "facebook", body, {"X-Hub-Signature-256": signature_of(body, "guess")}
    )
    unsigned = await post(listener, "facebook", body, {})

    assert good.status_code == 200
    assert forged.status_code == 403
    assert unsigned.status_code == 401
    [(provider, _event_id, state)] = listener.rows()
    assert provider == "facebook"
    assert state == "pending"
