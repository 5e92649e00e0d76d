"""The inbound listener over real HTTP on loopback, with a real journal file."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from plaudit import metrics
from plaudit.config.model import (
    InboundConfig,
    InboundFacebook,
    InboundGoogle,
    InboundMailgun,
    InboundPostmark,
    InboundSendgrid,
    InboundSes,
    InboundTwilio,
)
from plaudit.connectors.facebook import signature_of
from plaudit.inbound import control, inbox
from plaudit.inbound.providers import Verifiers
from plaudit.inbound.server import InboundServer
from plaudit.inbound.testing import (
    PubSubSigner,
    SendgridSigner,
    SnsSigner,
    basic_auth,
    mailgun_event_body,
    pubsub_body,
    twilio_headers,
)
from plaudit.journal import AsyncJournal, Journal, Tx
from plaudit.messaging.deliverability.suppression import SuppressionPolicy

MAILGUN_KEY = "key-inbound-test"
TWILIO_TOKEN = "twilio-token"
PUBLIC_URL = "https://hooks.example.com"
AUDIENCE = "https://hooks.example.com/inbound/google"
MAX_BODY = 4096


class Keys:
    """Credentials for every provider, written to files as an operator would."""

    def __init__(self, folder: Path) -> None:
        self.sendgrid = SendgridSigner()
        self.sns = SnsSigner()
        self.pubsub = PubSubSigner()
        (folder / "sendgrid.key").write_text(self.sendgrid.public_key_text())
        (folder / "mailgun.key").write_text(MAILGUN_KEY + "\n")
        (folder / "postmark.pw").write_text("pm-pass")
        (folder / "twilio.token").write_text(TWILIO_TOKEN)
        (folder / "fb.secret").write_text("fb-secret")
        (folder / "fb.token").write_text("fb-verify")
        certs = folder / "sns"
        certs.mkdir()
        self.sns.write(certs)
        self.pubsub.write_public_key(folder / "google.pem")
        self.config = InboundConfig(
            host="127.0.0.1",
            port=0,
            max_body_bytes=MAX_BODY,
            sendgrid=InboundSendgrid(public_key_file=str(folder / "sendgrid.key")),
            mailgun=InboundMailgun(signing_key_file=str(folder / "mailgun.key")),
            postmark=InboundPostmark(username="pm", password_file=str(folder / "postmark.pw")),
            ses=InboundSes(certificates=[str(certs)]),
            twilio=InboundTwilio(
                auth_token_file=str(folder / "twilio.token"), public_url=PUBLIC_URL
            ),
            facebook=InboundFacebook(
                app_secret_file=str(folder / "fb.secret"),
                verify_token_file=str(folder / "fb.token"),
            ),
            google=InboundGoogle(certificates=[str(folder / "google.pem")], audience=AUDIENCE),
        )


class Listener:
    def __init__(self, url: str, journal: Journal, writer: AsyncJournal, keys: Keys) -> None:
        self.url = url
        self.journal = journal
        self.writer = writer
        self.keys = keys

    def rows(self, provider: str | None = None) -> list[Any]:
        sql = "SELECT provider, provider_event_id, state, headers FROM inbound_events"
        if provider is None:
            return self.journal.query(sql + " ORDER BY id")
        return self.journal.query(sql + " WHERE provider = ? ORDER BY id", [provider])

    def jobs(self) -> list[Any]:
        return self.journal.query("SELECT kind, key FROM jobs ORDER BY id")

    async def process_all(self, platforms: frozenset[str] = frozenset()) -> list[Any]:
        ids = [row[0] for row in self.journal.query("SELECT id FROM inbound_events ORDER BY id")]
        outcomes = []
        for inbound_id in ids:

            def process(tx: Tx, inbound_id: int = inbound_id) -> inbox.Outcome | None:
                return inbox.process(
                    tx, inbound_id, policy=SuppressionPolicy(), platforms=platforms
                )

            outcome = await self.writer.transaction(process)
            outcomes.append(outcome)
        return outcomes


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    folder = tmp_path / "keys"
    folder.mkdir()
    return Keys(folder)


@pytest.fixture
async def listener(
    sync_journal: Journal, writer: AsyncJournal, keys: Keys
) -> AsyncIterator[Listener]:
    async with trio.open_nursery() as nursery:
        server = InboundServer(writer, Verifiers(keys.config), max_body_bytes=MAX_BODY)
        host, port = await nursery.start(server.serve, "127.0.0.1", 0)
        yield Listener(f"http://{host}:{port}", sync_journal, writer, keys)
        nursery.cancel_scope.cancel()


async def post(listener: Listener, provider: str, body: bytes, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(
            f"{listener.url}/inbound/{provider}", content=body, headers=headers
        )


def sendgrid_body(*events: dict[str, Any]) -> bytes:
    return json.dumps(list(events)).encode()


def mailgun_body(event_id: str, event: str, *, timestamp: float | None = None) -> bytes:
    now = int(time.time())
    data = {
        "id": event_id,
        "event": event,
        "timestamp": timestamp or float(now),
        "recipient": "couple@example.com",
        "severity": "permanent",
        "delivery-status": {"message": "550 5.1.1 no such user"},
        "message": {"headers": {"message-id": "req-1@plaudit.test"}},
    }
    return mailgun_event_body(MAILGUN_KEY, data, timestamp=now, token=f"token-{event_id}")


def outcome_count(provider: str, outcome: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "plaudit_inbound_requests_total", {"provider": provider, "outcome": outcome}
    )
    return value or 0.0


async def test_signed_batch_stored_before_ok(listener: Listener) -> None:
    body = sendgrid_body(
        {"email": "a@example.com", "event": "delivered", "timestamp": 1, "sg_event_id": "e1"}
    )
    headers = listener.keys.sendgrid.headers(body, int(time.time()))
    response = await post(listener, "sendgrid", body, **headers)
    assert response.status_code == 200
    rows = listener.rows("sendgrid")
    assert len(rows) == 1
    assert rows[0][2] == "pending"
    assert "x-twilio-email-event-webhook-signature" in json.loads(rows[0][3])
    assert [kind for kind, _ in listener.jobs()] == ["inbound.process"]


async def test_duplicate_request_stored_once(listener: Listener) -> None:
    body = mailgun_body("mg-1", "delivered")
    first = await post(listener, "mailgun", body)
    second = await post(listener, "mailgun", body)
    assert first.status_code == 200
    assert second.status_code == 200
    assert second.text.startswith("duplicate")
    assert len(listener.rows("mailgun")) == 1
    assert len(listener.jobs()) == 1


async def test_forged_signature_rejected(listener: Listener) -> None:
    before = outcome_count("sendgrid", "forged")
    body = sendgrid_body({"email": "a@example.com", "event": "open", "timestamp": 1})
    headers = SendgridSigner().headers(body, int(time.time()))
    response = await post(listener, "sendgrid", body, **headers)
    assert response.status_code == 403
    assert listener.rows() == []
    assert outcome_count("sendgrid", "forged") == before + 1


async def test_unsigned_request_unauthorized(listener: Listener) -> None:
    response = await post(listener, "postmark", b'{"RecordType":"Delivery"}')
    assert response.status_code == 401
    assert listener.rows() == []


async def test_stale_timestamp_rejected(listener: Listener) -> None:
    body = sendgrid_body({"email": "a@example.com", "event": "open", "timestamp": 1})
    headers = listener.keys.sendgrid.headers(body, int(time.time()) - 3600)
    response = await post(listener, "sendgrid", body, **headers)
    assert response.status_code == 403
    assert "replay" in response.text
    assert listener.rows() == []


async def test_oversized_body_rejected(listener: Listener) -> None:
    before = outcome_count("postmark", "oversized")
    body = b"x" * (MAX_BODY + 1)
    response = await post(listener, "postmark", body, **basic_auth("pm", "pm-pass"))
    assert response.status_code == 413
    assert listener.rows() == []
    assert outcome_count("postmark", "oversized") == before + 1


async def test_oversized_chunked_body_rejected(listener: Listener) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"y" * 1024

    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{listener.url}/inbound/postmark",
            content=chunks(),
            headers=basic_auth("pm", "pm-pass"),
        )
    assert response.status_code == 413
    assert listener.rows() == []


async def test_malformed_json_rejected(listener: Listener) -> None:
    response = await post(listener, "mailgun", b"{not json")
    assert response.status_code == 400
    assert listener.rows() == []


async def test_unknown_provider_not_found(listener: Listener) -> None:
    before = outcome_count("unknown", "not_found")
    response = await post(listener, "sparkpost", b"{}")
    assert response.status_code == 404
    assert outcome_count("unknown", "not_found") == before + 1


async def test_unconfigured_provider_not_found(listener: Listener) -> None:
    response = await post(listener, "resend", b"{}")
    assert response.status_code == 404


async def test_get_is_method_not_allowed(listener: Listener) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(f"{listener.url}/inbound/mailgun")
    assert response.status_code == 405


async def test_facebook_handshake_echoes_challenge(listener: Listener) -> None:
    query = {
        "hub.mode": "subscribe",
        "hub.verify_token": "fb-verify",
        "hub.challenge": "1158201444",
    }
    async with httpx.AsyncClient(timeout=30) as client:
        good = await client.get(f"{listener.url}/inbound/facebook", params=query)
        bad = await client.get(
            f"{listener.url}/inbound/facebook", params={**query, "hub.verify_token": "guess"}
        )
    assert good.status_code == 200
    assert good.text == "1158201444"
    assert bad.status_code == 403


async def test_processing_records_and_suppresses(listener: Listener) -> None:
    await post(listener, "mailgun", mailgun_body("mg-fail", "failed"))
    outcomes = await listener.process_all()
    assert outcomes[0].state == "processed"
    events = listener.journal.query("SELECT address, kind, status, provider FROM message_events")
    assert events == [("couple@example.com", "hard_bounce", "5.1.1", "mailgun")]
    suppressed = listener.journal.query("SELECT address, reason FROM suppressions")
    assert suppressed == [("couple@example.com", "hard_bounce")]


async def test_processing_twice_changes_nothing(listener: Listener) -> None:
    await post(listener, "mailgun", mailgun_body("mg-2", "delivered"))
    first = await listener.process_all()
    second = await listener.process_all()
    assert first[0].events == 1
    assert second == [None]
    assert len(listener.journal.query("SELECT id FROM message_events")) == 1


async def test_same_event_in_two_batches_recorded_once(listener: Listener) -> None:
    event = {"email": "b@example.com", "event": "spamreport", "timestamp": 5, "sg_event_id": "e9"}
    for body in (sendgrid_body(event), sendgrid_body(event, {**event, "sg_event_id": "e10"})):
        await post(
            listener, "sendgrid", body, **listener.keys.sendgrid.headers(body, int(time.time()))
        )
    await listener.process_all()
    ids = listener.journal.query("SELECT provider_event_id FROM message_events ORDER BY id")
    assert ids == [("e9",), ("e10",)]


async def test_out_of_order_events_keep_times(listener: Listener) -> None:
    now = time.time()
    await post(listener, "mailgun", mailgun_body("late", "delivered", timestamp=now - 10))
    await post(listener, "mailgun", mailgun_body("early", "accepted", timestamp=now - 60))
    await listener.process_all()
    rows = listener.journal.query("SELECT kind FROM message_events ORDER BY occurred_at")
    assert rows == [("accepted",), ("delivered",)]


async def test_unknown_event_type_ignored_with_reason(listener: Listener) -> None:
    response = await post(listener, "mailgun", mailgun_body("mg-x", "list_member_uploaded"))
    assert response.status_code == 200
    outcomes = await listener.process_all()
    assert outcomes[0].state == "ignored"
    assert "list_member_uploaded" in outcomes[0].reason
    state = listener.journal.query("SELECT state, reason FROM inbound_events")
    assert state[0][0] == "ignored"


async def test_postmark_basic_auth_accepted(listener: Listener) -> None:
    body = json.dumps(
        {
            "RecordType": "Delivery",
            "MessageID": "pm-1",
            "Recipient": "c@example.com",
            "DeliveredAt": "2026-01-01T10:00:00Z",
        }
    ).encode()
    response = await post(listener, "postmark", body, **basic_auth("pm", "pm-pass"))
    assert response.status_code == 200
    stored = json.loads(listener.rows("postmark")[0][3])
    assert "authorization" not in stored


async def test_twilio_status_callback_accepted(listener: Listener) -> None:
    params = [("MessageSid", "SM9"), ("MessageStatus", "undelivered"), ("To", "+15550100")]
    body = "&".join(f"{k}={v}" for k, v in params).encode().replace(b"+", b"%2B")
    headers = twilio_headers(f"{PUBLIC_URL}/inbound/twilio", params, TWILIO_TOKEN)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    response = await post(listener, "twilio", body, **headers)
    assert response.status_code == 200
    assert listener.rows("twilio")[0][1] == "SM9:undelivered"


async def test_ses_confirmation_recorded_not_fetched(listener: Listener) -> None:
    message = listener.keys.sns.sign(
        {
            "Type": "SubscriptionConfirmation",
            "MessageId": "sub-1",
            "Token": "t",
            "TopicArn": "arn:aws:sns:us-east-1:1:ses",
            "Message": "confirm",
            "SubscribeURL": "https://sns.example.invalid/?Action=ConfirmSubscription",
            "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        }
    )
    response = await post(listener, "ses", json.dumps(message).encode())
    assert response.status_code == 200
    outcomes = await listener.process_all()
    assert outcomes[0].state == "confirmation_required"
    report = control.report(listener.journal)
    assert report["counts"] == [{"provider": "ses", "state": "confirmation_required", "count": 1}]
    pending = report["confirmations"][0]
    assert pending["topic"] == "arn:aws:sns:us-east-1:1:ses"
    assert pending["subscribe_url"].startswith("https://sns.example.invalid/")
    assert "open the URL" in control.render_inbound(report)


async def test_google_push_enqueues_targeted_sync(listener: Listener) -> None:
    body = pubsub_body(
        "ps-1",
        {"type": "NEW_REVIEW", "review": "accounts/1001/locations/2001/reviews/r1"},
        published="2026-01-01T10:00:00Z",
    )
    token = listener.keys.pubsub.token(audience=AUDIENCE, now=time.time())
    response = await post(listener, "google", body, Authorization=f"Bearer {token}")
    assert response.status_code == 200
    await listener.process_all(platforms=frozenset({"google"}))
    syncs = listener.journal.query("SELECT kind, payload FROM jobs WHERE kind = 'google.sync'")
    assert len(syncs) == 1
    payload = json.loads(syncs[0][1])
    assert payload["account"] == "accounts/1001"
    assert payload["location"] == "locations/2001"


async def test_facebook_push_skipped_when_unconfigured(listener: Listener) -> None:
    body = json.dumps(
        {
            "object": "page",
            "entry": [{"id": "p1", "time": 1, "changes": [{"field": "ratings", "value": {}}]}],
        }
    ).encode()
    headers = {"X-Hub-Signature-256": signature_of(body, "fb-secret")}
    response = await post(listener, "facebook", body, **headers)
    assert response.status_code == 200
    outcomes = await listener.process_all(platforms=frozenset())
    assert outcomes[0].state == "ignored"
    assert listener.journal.query("SELECT id FROM jobs WHERE kind = 'facebook.sync'") == []


async def test_keep_alive_serves_several_requests(listener: Listener) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        for index in range(3):
            body = mailgun_body(f"ka-{index}", "opened")
            response = await client.post(f"{listener.url}/inbound/mailgun", content=body)
            assert response.status_code == 200
    assert len(listener.rows("mailgun")) == 3


async def test_concurrent_duplicates_stored_once(listener: Listener) -> None:
    body = mailgun_body("mg-race", "delivered")
    statuses: list[int] = []

    async def send() -> None:
        statuses.append((await post(listener, "mailgun", body)).status_code)

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(send)
    assert statuses == [200] * 8
    assert len(listener.rows("mailgun")) == 1
    assert len(listener.jobs()) == 1


async def test_garbage_request_line_rejected(listener: Listener) -> None:
    host, port = listener.url.removeprefix("http://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(b"\x16\x03\x01 not http at all\r\n\r\n")
        with trio.fail_after(30):
            reply = b""
            while chunk := await stream.receive_some(4096):
                reply += chunk
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert listener.rows() == []


async def test_stalled_client_disconnected(writer: AsyncJournal, keys: Keys) -> None:
    async with trio.open_nursery() as nursery:
        server = InboundServer(
            writer, Verifiers(keys.config), max_body_bytes=MAX_BODY, idle_timeout=0.5
        )
        host, port = await nursery.start(server.serve, "127.0.0.1", 0)
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            await stream.send_all(b"POST /inbound/mailgun HTTP/1.1\r\nHost: x\r\n")
            # The server closes the connection once the idle timeout (0.5 s) passes.
            with trio.fail_after(30):
                while await stream.receive_some(4096):
                    pass
        assert server.statistics().connections_open == 0
        nursery.cancel_scope.cancel()
