"""Web Push with VAPID over real HTTP against the loopback push service stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio

from plaudit.config.model import PushConfig, RetryConfig
from plaudit.errors import PlauditError
from plaudit.journal import Journal
from plaudit.messaging.push import (
    MAX_PLAINTEXT_BYTES,
    InvalidSubscription,
    PushError,
    PushSender,
    PushSubscription,
    active_subscriptions,
    add_subscription,
    encrypt_payload,
    load_vapid_key,
    remove_subscription,
    validate_subscription,
    vapid_public_key,
)
from plaudit.messaging.push_ctl import parse_subscription
from plaudit.sandbox.webpush import SUBSCRIBE_PATH, PushStandIn, write_vapid_key

RETRY = RetryConfig(max_attempts=3, backoff_initial=0.01, backoff_max=0.05, retry_after_max=2.0)


def push_config(key_path: Path, *, allow_private: bool = True) -> PushConfig:
    return PushConfig(
        vapid_private_key_file=str(key_path),
        subject="mailto:hello@willow.example",
        ttl=3600,
        timeout=5.0,
        retry=RETRY,
        allow_private_endpoints=allow_private,
    )


@asynccontextmanager
async def push_service(
    tmp_path: Path, *script: int, allow_private: bool = True
) -> AsyncIterator[tuple[PushStandIn, PushSender]]:
    service = PushStandIn(script=script)
    key_path = tmp_path / "vapid.pem"
    write_vapid_key(key_path)
    sender = PushSender(
        push_config(key_path, allow_private=allow_private), load_vapid_key(str(key_path))
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(service.serve)
        try:
            yield service, sender
        finally:
            await sender.aclose()
            nursery.cancel_scope.cancel()


async def test_push_decrypts_at_browser(tmp_path: Path) -> None:
    async with push_service(tmp_path) as (service, sender):
        subscription = service.subscribe()
        accepted = await sender.send(
            subscription, {"title": "Thank you", "body": "A review helps"}, topic="request-7"
        )

    (received,) = service.received
    assert accepted.status == 201
    assert accepted.location.startswith(service.base_url + "/message/")
    assert received.payload == {"title": "Thank you", "body": "A review helps"}
    assert received.ttl == "3600"
    assert received.topic == "request-7"
    assert service.rejected == []


async def test_vapid_key_matches_config(tmp_path: Path) -> None:
    async with push_service(tmp_path) as (service, sender):
        await sender.send(service.subscribe(), {"title": "t"}, topic="t")

    expected = vapid_public_key(load_vapid_key(str(tmp_path / "vapid.pem")))
    assert service.received[0].vapid_key == expected


@pytest.mark.parametrize("status", [404, 410])
async def test_gone_subscription_reported(tmp_path: Path, status: int) -> None:
    async with push_service(tmp_path, status) as (service, sender):
        with pytest.raises(PushError) as caught:
            await sender.send(service.subscribe(), {"title": "t"}, topic="t")

    assert caught.value.gone
    assert not caught.value.retryable
    assert caught.value.status == status
    assert sender.statistics().gone == 1


async def test_server_error_retried_in_call(tmp_path: Path) -> None:
    async with push_service(tmp_path, 500, 429) as (service, sender):
        await sender.send(service.subscribe(), {"title": "t"}, topic="t")

    assert len(service.received) == 1
    assert sender.statistics().accepted == 1


async def test_bad_request_is_permanent(tmp_path: Path) -> None:
    async with push_service(tmp_path, 400) as (service, sender):
        with pytest.raises(PushError) as caught:
            await sender.send(service.subscribe(), {"title": "t"}, topic="t")

    assert not caught.value.retryable
    assert not caught.value.gone
    assert service.received == []


async def test_loopback_endpoint_refused_by_default(tmp_path: Path) -> None:
    async with push_service(tmp_path, allow_private=False) as (service, sender):
        subscription = service.subscribe()
        with pytest.raises(InvalidSubscription, match="https"):
            await sender.send(subscription, {"title": "t"}, topic="t")
        https = PushSubscription(
            endpoint=subscription.endpoint.replace("http://", "https://"),
            p256dh=subscription.p256dh,
            auth=subscription.auth,
        )
        with pytest.raises(PushError, match="loopback"):
            await sender.send(https, {"title": "t"}, topic="t")

    assert service.received == []
    assert service.rejected == []


def test_subscription_keys_validated() -> None:
    good = PushSubscription(
        endpoint="https://push.invalid/abc",
        p256dh="B" + "A" * 86,
        auth="AAAAAAAAAAAAAAAAAAAAAA",
    )
    with pytest.raises(InvalidSubscription, match="P-256"):
        validate_subscription(good, allow_http=False)
    with pytest.raises(InvalidSubscription, match="65-byte"):
        validate_subscription(
            PushSubscription(endpoint=good.endpoint, p256dh="AAAA", auth=good.auth),
            allow_http=False,
        )
    with pytest.raises(InvalidSubscription, match="https"):
        validate_subscription(
            PushSubscription(endpoint="ftp://push.invalid/x", p256dh="AA", auth="AA"),
            allow_http=True,
        )


async def test_payload_over_limit_rejected(tmp_path: Path) -> None:
    async with push_service(tmp_path) as (service, _sender):
        subscription = service.subscribe()

    with pytest.raises(ValueError, match="shorten"):
        encrypt_payload(subscription, b"x" * (MAX_PLAINTEXT_BYTES + 1))
    assert len(encrypt_payload(subscription, b"x" * MAX_PLAINTEXT_BYTES)) == 4096


def test_vapid_key_file_errors(tmp_path: Path) -> None:
    with pytest.raises(PlauditError, match="cannot read"):
        load_vapid_key(str(tmp_path / "missing.pem"))
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    with pytest.raises(PlauditError, match="not a PEM"):
        load_vapid_key(str(bad))


def test_subscriptions_stored_per_couple(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "journal.sqlite3", lease_seconds=60)
    first = PushSubscription(endpoint="https://push.invalid/1", p256dh="p", auth="a")
    second = PushSubscription(endpoint="https://push.invalid/2", p256dh="p", auth="a")
    try:
        with journal.transaction() as tx:
            tx.execute(
                "INSERT INTO couples (email, names, emails, wedding_date, venue, vendor,"
                " consent_email, consent_sms, created_at, updated_at)"
                " VALUES ('ana@example.com', '[]', '[]', '2026-05-02', '', 'v', 1, 0, 0, 0)"
            )
            add_subscription(tx, 1, first)
            add_subscription(tx, 1, second)
        with journal.transaction() as tx:
            removed = remove_subscription(tx, first.endpoint, reason="gone")
            again = remove_subscription(tx, first.endpoint, reason="gone")
            active = active_subscriptions(tx, 1)
        with journal.transaction() as tx:
            add_subscription(tx, 1, first)
            restored = active_subscriptions(tx, 1)
    finally:
        journal.close()

    assert removed is True
    assert again is False
    assert active == [second]
    assert restored == [first, second]


async def test_oversized_message_fails_permanently(tmp_path: Path) -> None:
    async with push_service(tmp_path) as (service, sender):
        with pytest.raises(PushError, match="shorten") as caught:
            await sender.send(service.subscribe(), {"body": "x" * 5000}, topic="t")

    assert not caught.value.retryable
    assert not caught.value.gone
    assert service.received == []


def test_endpoint_with_credentials_rejected() -> None:
    subscription = PushSubscription(
        endpoint="https://user:secret@push.invalid/abc",
        p256dh="B" + "A" * 86,
        auth="AAAAAAAAAAAAAAAAAAAAAA",
    )

    with pytest.raises(InvalidSubscription, match="credentials"):
        validate_subscription(subscription, allow_http=False)


async def test_sandbox_subscribe_route(tmp_path: Path) -> None:
    async with push_service(tmp_path) as (service, sender):
        async with httpx.AsyncClient() as client:
            response = await client.post(f"{service.base_url}{SUBSCRIBE_PATH}")
        subscription = parse_subscription(response.json())
        await sender.send(subscription, {"title": "hello"}, topic="t")

    assert response.status_code == 201
    assert service.received[0].payload == {"title": "hello"}
