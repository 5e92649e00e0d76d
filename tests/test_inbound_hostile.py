"""Hostile input against the inbound listener and inbox, over real loopback sockets."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from plaudit import metrics
from plaudit.actors.base import Actor, Effects
from plaudit.config.model import InboundConfig, InboundMailgun, InboundSes
from plaudit.daemon.children import ChildContext
from plaudit.inbound import inbox
from plaudit.inbound.events import map_events
from plaudit.inbound.inbox import InboxActor
from plaudit.inbound.inspect import inspect_webhook
from plaudit.inbound.mapping import MalformedPayload, decode_json
from plaudit.inbound.providers import Verifiers
from plaudit.inbound.server import InboundServer
from plaudit.inbound.testing import SnsSigner, mailgun_signature
from plaudit.journal import AsyncJournal, Job, Journal, Tx
from tests.support import run_actor_until

KEY = "key-hostile-test"
MAX_BODY = 4096
IDLE_SECONDS = 0.5
BODY_SECONDS = 2.0
DEEP = b'{"x":' + b"[" * 2000 + b"]" * 2000 + b"}"


class Listener:
    def __init__(self, host: str, port: int, journal: Journal, server: InboundServer) -> None:
        self.host = host
        self.port = port
        self.url = f"http://{host}:{port}"
        self.journal = journal
        self.server = server

    def states(self) -> list[Any]:
        return self.journal.query(
            "SELECT provider_event_id, state, reason FROM inbound_events ORDER BY id"
        )


@pytest.fixture
def sync_journal(tmp_path: Path) -> Iterator[Journal]:
    """A journal file that gives a job 3 attempts, 0.01 s to 0.02 s apart."""
    journal = Journal.open(
        tmp_path / "journal.sqlite3",
        instance="hostile-test",
        max_attempts=3,
        retry_initial=0.01,
        retry_max=0.02,
    )
    yield journal
    journal.close()


@pytest.fixture
async def listener(
    tmp_path: Path, sync_journal: Journal, writer: AsyncJournal
) -> AsyncIterator[Listener]:
    (tmp_path / "mailgun.key").write_text(KEY + "\n")
    certs = tmp_path / "sns"
    certs.mkdir()
    SnsSigner().write(certs)
    config = InboundConfig(
        host="127.0.0.1",
        port=0,
        max_body_bytes=MAX_BODY,
        mailgun=InboundMailgun(signing_key_file=str(tmp_path / "mailgun.key")),
        ses=InboundSes(certificates=[str(certs)]),
    )
    server = InboundServer(
        writer,
        Verifiers(config),
        max_body_bytes=MAX_BODY,
        idle_timeout=IDLE_SECONDS,
        body_timeout=BODY_SECONDS,
    )
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(server.serve, "127.0.0.1", 0)
        yield Listener(host, port, sync_journal, server)
        nursery.cancel_scope.cancel()


def mailgun_raw(event_id: str, timestamp: str) -> bytes:
    """Return a validly signed Mailgun body whose event time is the raw JSON ``timestamp``."""
    now = int(time.time())
    signature = json.dumps(mailgun_signature(KEY, now, f"token-{event_id}"))
    return (
        f'{{"signature": {signature}, "event-data": {{"id": "{event_id}", "event": "failed", '
        f'"severity": "permanent", "timestamp": {timestamp}, '
        f'"recipient": "couple@example.com"}}}}'
    ).encode()


async def post(listener: Listener, provider: str, body: bytes) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(f"{listener.url}/inbound/{provider}", content=body)


async def still_serving(listener: Listener) -> bool:
    response = await post(listener, "mailgun", mailgun_raw(f"alive-{time.time()}", "1700000000"))
    return response.status_code == 200


async def exchange(listener: Listener, data: bytes, *, wait: float = 30.0) -> bytes:
    """Send raw bytes, then read until the server closes or ``wait`` seconds pass."""
    stream = await trio.open_tcp_stream(listener.host, listener.port)
    received = b""
    async with stream:
        if data:
            await stream.send_all(data)
        with trio.move_on_after(wait):
            while True:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                received += chunk
    return received


async def process_inbox(writer: AsyncJournal, done: Callable[[], object]) -> None:
    """Run an inbox actor until ``done()`` is truthy, for at most 60 s."""
    actor = InboxActor(writer, lease_seconds=30, platforms=frozenset(), poll_interval=0.05)
    await run_actor_until(actor, done, name="inbound", timeout=60)


def poison_count(provider: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "plaudit_inbound_events_failed_total", {"provider": provider}
    )
    return value or 0.0


# --- times ------------------------------------------------------------------


async def test_nan_timestamp_rejected(listener: Listener) -> None:
    response = await post(listener, "mailgun", mailgun_raw("mg-nan", "NaN"))
    assert response.status_code == 400
    assert "NaN" in response.text
    assert listener.states() == []


async def test_infinite_timestamp_ignored_with_reason(
    listener: Listener, writer: AsyncJournal
) -> None:
    response = await post(listener, "mailgun", mailgun_raw("mg-inf", "1e400"))
    assert response.status_code == 200
    await process_inbox(writer, lambda: listener.states()[0][1] != "pending")
    [(_, state, reason)] = listener.states()
    assert state == "ignored"
    assert "mg-inf has the time inf" in reason
    assert listener.journal.query("SELECT count(*) FROM message_events") == [(0,)]
    jobs = listener.journal.query("SELECT state FROM jobs WHERE kind = 'inbound.process'")
    assert jobs == [("succeeded",)]


@pytest.mark.parametrize(
    ("provider", "body"),
    [
        ("sendgrid", b'[{"event": "delivered", "email": "a@example.com", "timestamp": 1e400}]'),
        ("sendgrid", b'[{"event": "delivered", "email": "a@example.com", "timestamp": -5}]'),
        ("mailgun", b'{"event-data": {"event": "delivered", "timestamp": 99999999999}}'),
        ("brevo", b'{"event": "delivered", "email": "a@example.com", "ts_epoch": 1e300}'),
        (
            "resend",
            b'{"type": "email.delivered", "created_at": "2200-01-01T00:00:00Z",'
            b' "data": {"to": ["a@example.com"]}}',
        ),
        (
            "facebook",
            b'{"object": "page", "entry": [{"id": "1", "time": 1e400,'
            b' "changes": [{"field": "ratings"}]}]}',
        ),
    ],
)
def test_implausible_time_rejected(provider: str, body: bytes) -> None:
    with pytest.raises(MalformedPayload, match="expected Unix seconds from 0"):
        map_events(provider, body, received_at=1_700_000_000.0, delivery_id="d1")


def test_plausible_time_kept() -> None:
    body = b'[{"event": "delivered", "email": "a@example.com", "timestamp": 1699999000}]'
    [event] = map_events("sendgrid", body, received_at=1_700_000_000.0)
    assert event.occurred_at == 1_699_999_000.0


def test_inspect_reports_infinite_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "inf.json"
    path.write_bytes(b'[{"event": "delivered", "email": "a@example.com", "timestamp": 1e400}]')
    assert inspect_webhook("sendgrid", str(path)) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "has the time inf" in captured.err


# --- poison events ------------------------------------------------------------


async def test_poison_event_failed_others_processed(
    listener: Listener, writer: AsyncJournal, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = inbox.record_event

    def explode_on_poison(tx: Any, message: Any, **kwargs: Any) -> bool:
        if kwargs.get("provider_event_id") == "mg-poison":
            # Write something first, so the test checks that the savepoint undoes it.
            tx.execute("UPDATE inbound_events SET events = 99")
            tx.execute("INSERT INTO message_events (occurred_at) VALUES (NULL)")
        return bool(real(tx, message, **kwargs))

    monkeypatch.setattr(inbox, "record_event", explode_on_poison)
    before = poison_count("mailgun")
    for event_id in ("mg-before", "mg-poison", "mg-after"):
        response = await post(listener, "mailgun", mailgun_raw(event_id, "1700000000"))
        assert response.status_code == 200

    await process_inbox(
        writer, lambda: all(state != "pending" for _, state, _ in listener.states())
    )
    states = {event_id: (state, reason) for event_id, state, reason in listener.states()}
    assert states["mg-before"][0] == "processed"
    assert states["mg-after"][0] == "processed"
    assert states["mg-poison"][0] == "failed"
    assert "NOT NULL constraint failed" in states["mg-poison"][1]
    assert poison_count("mailgun") == before + 1
    events = listener.journal.query("SELECT provider_event_id, events FROM inbound_events")
    assert ("mg-poison", 0) in events
    jobs = listener.journal.query("SELECT state FROM jobs WHERE kind = 'inbound.process'")
    assert jobs == [("succeeded",)] * 3


async def test_mapper_bug_fails_after_max_attempts(
    listener: Listener, writer: AsyncJournal, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("mapper bug")

    monkeypatch.setattr(inbox, "map_events", broken)
    response = await post(listener, "mailgun", mailgun_raw("mg-bug", "1700000000"))
    assert response.status_code == 200
    await process_inbox(writer, lambda: listener.states()[0][1] != "pending")
    [(_, state, reason)] = listener.states()
    assert state == "failed"
    assert "mapper bug" in reason
    jobs = listener.journal.query("SELECT state, attempts FROM jobs WHERE kind = 'inbound.process'")
    assert jobs == [("succeeded", 3)]


# --- deep and invalid JSON ------------------------------------------------------


@pytest.mark.parametrize("provider", ["mailgun", "ses"])
async def test_deep_json_answered_400(listener: Listener, provider: str) -> None:
    response = await post(listener, provider, DEEP)
    assert response.status_code == 400
    assert "nested too deeply" in response.text
    assert await still_serving(listener)


def test_decode_json_rejects_deep_nesting() -> None:
    with pytest.raises(MalformedPayload, match="nested too deeply"):
        decode_json(b"[" * 100_000 + b"]" * 100_000, "SendGrid")


@pytest.mark.parametrize("body", [b"Infinity", b'{"a": -Infinity}', b"\xff\xfe", b"{"])
def test_decode_json_rejects_invalid(body: bytes) -> None:
    with pytest.raises(MalformedPayload, match="not valid JSON"):
        decode_json(body, "SendGrid")


def test_inspect_reports_deep_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "deep.json"
    path.write_bytes(DEEP)
    assert inspect_webhook("sendgrid", str(path)) == 1
    assert "nested too deeply" in capsys.readouterr().err


# --- slow, idle and oversized connections ------------------------------------------


async def test_slow_body_answered_408(listener: Listener) -> None:
    head = (
        b"POST /inbound/mailgun HTTP/1.1\r\nHost: localhost\r\n"
        b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a":'
    )
    response = await exchange(listener, head)
    assert response.startswith(b"HTTP/1.1 408 ")
    assert b"request body not received" in response
    assert await still_serving(listener)


async def test_idle_connection_closed(listener: Listener) -> None:
    assert await exchange(listener, b"") == b""
    assert await still_serving(listener)


async def test_partial_head_closed(listener: Listener) -> None:
    assert await exchange(listener, b"POST /inbound/mailgun HTTP/1.1\r\nHost: x") == b""
    assert await still_serving(listener)


async def test_oversized_body_answered_413(listener: Listener) -> None:
    body = b"x" * (70 * 1024)
    response = await post(listener, "mailgun", body)
    assert response.status_code == 413
    assert f"limit of {MAX_BODY} bytes" in response.text
    assert await still_serving(listener)


def send_blocking(host: str, port: int, request: bytes) -> bytes:
    """Send a whole request before reading, as a simple client does, then read to the end."""
    with socket.create_connection((host, port), timeout=30) as client:
        client.sendall(request)
        received = b""
        while True:
            chunk = client.recv(65536)
            if not chunk:
                return received
            received += chunk


async def test_oversized_body_read_not_reset(listener: Listener) -> None:
    body = b"x" * (70 * 1024)
    head = (
        f"POST /inbound/mailgun HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    response = await trio.to_thread.run_sync(
        send_blocking, listener.host, listener.port, head + body
    )
    assert response.startswith(b"HTTP/1.1 413 ")


async def test_huge_head_answered_431(listener: Listener) -> None:
    request = b"POST /inbound/mailgun HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 200_000 + b"\r\n\r\n"
    response = await trio.to_thread.run_sync(send_blocking, listener.host, listener.port, request)
    assert response.startswith(b"HTTP/1.1 431 ")
    assert await still_serving(listener)


async def test_trickled_body_answered_408(listener: Listener) -> None:
    stream = await trio.open_tcp_stream(listener.host, listener.port)
    received = b""
    async with stream:
        await stream.send_all(
            b"POST /inbound/mailgun HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
        )
        # One byte per 0.1 s never trips the idle limit, only the body deadline.
        with trio.fail_after(60):
            for _ in range(600):
                try:
                    await stream.send_all(b" ")
                except trio.BrokenResourceError:
                    break
                await trio.sleep(0.1)
                with trio.move_on_after(0.05):
                    received += await stream.receive_some(65536)
                if received:
                    break
    assert received.startswith(b"HTTP/1.1 408 ")
    assert await still_serving(listener)


async def test_verifier_bug_keeps_listener(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = listener.server._verifiers.checks["mailgun"]
    calls: list[int] = []

    def broken_once(request: Any, now: float) -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("verifier bug")
        return real(request, now)

    monkeypatch.setitem(listener.server._verifiers.checks, "mailgun", broken_once)
    with pytest.raises(httpx.TransportError):
        await post(listener, "mailgun", mailgun_raw("mg-crash", "1700000000"))
    assert await still_serving(listener)


class CrashingActor(Actor):
    """An actor whose journal writes raise an unexpected error on every attempt."""

    kinds = ("crash.test",)

    async def handle(self, job: Job) -> Effects | None:
        def write(tx: Tx) -> None:
            raise LookupError("effects bug")

        return write


async def test_crashing_job_counts_attempt(sync_journal: Journal, writer: AsyncJournal) -> None:
    await writer.transaction(
        lambda tx: tx.enqueue(kind="crash.test", owner="crasher", key="crash:1", payload={})
    )
    actor = CrashingActor("crasher", writer, lease_seconds=30, poll_interval=0.05)
    # The error still reaches the supervisor, which restarts the actor by its policy.
    with pytest.raises(LookupError, match="effects bug"):
        await actor.start(ChildContext("inbound"))
    [(state, attempts, error)] = sync_journal.query("SELECT state, attempts, last_error FROM jobs")
    assert state == "failed"
    assert attempts == 1
    assert "effects bug" in error
    assert actor.statistics().jobs_failed == 1
