"""The Twilio client over real HTTP against the loopback stand-in, and keyword parsing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx
import pytest
import trio

from plaudit.config.model import RetryConfig, SmsConfig
from plaudit.messaging.sms import (
    MAX_BODY_CHARS,
    SmsError,
    TwilioClient,
    check_sms_config,
    classify_keyword,
)
from plaudit.sandbox.http_stub import StubRequest, StubResponse, serve_stub
from plaudit.sandbox.twilio import ACCOUNT_SID, AUTH_TOKEN, ListOutcome, Outcome, TwilioStandIn

NUMBER = "+13125550142"
# Short waits so that in-call retries stay fast on a loaded machine.
RETRY = RetryConfig(max_attempts=3, backoff_initial=0.01, backoff_max=0.05, retry_after_max=2.0)


def sms_config(base_url: str, **changes: object) -> SmsConfig:
    fields: dict[str, object] = {
        "account_sid": ACCOUNT_SID,
        "auth_token_file": "/unused",
        "from_number": "+13125550100",
        "base_url": base_url,
        "status_callback_url": "",
        "timeout": 5.0,
        "retry": RETRY,
    }
    fields.update(changes)
    return SmsConfig(**fields)  # type: ignore[arg-type]


@asynccontextmanager
async def twilio(
    *script: Outcome, token: str = AUTH_TOKEN, slow_seconds: float = 5.0, **changes: object
) -> AsyncIterator[tuple[TwilioStandIn, TwilioClient]]:
    stand_in = TwilioStandIn(script=script, slow_seconds=slow_seconds)
    async with trio.open_nursery() as nursery:
        base_url = await nursery.start(stand_in.serve)
        client = TwilioClient(sms_config(base_url, **changes), token)
        try:
            yield stand_in, client
        finally:
            await client.aclose()
            nursery.cancel_scope.cancel()


async def test_send_posts_twilio_form() -> None:
    async with twilio() as (stand_in, client):
        accepted = await client.send(NUMBER, "Thank you, Ana & Ben")

    (message,) = stand_in.messages
    assert accepted.sid == message.sid
    assert accepted.sid.startswith("SM")
    assert message.to == NUMBER
    assert message.sender == "+13125550100"
    assert message.body == "Thank you, Ana & Ben"


async def test_send_uses_messaging_service() -> None:
    service = "MG" + "a" * 32
    async with twilio(from_number="", messaging_service_sid=service) as (stand_in, client):
        await client.send(NUMBER, "hello")

    assert stand_in.messages[0].sender == service


async def test_wrong_token_rejected_without_retry() -> None:
    async with twilio(token="wrong") as (stand_in, client):
        with pytest.raises(SmsError) as caught:
            await client.send(NUMBER, "hello")

    assert caught.value.outcome == "rejected"
    assert caught.value.status == 401
    assert stand_in.requests == 1
    assert stand_in.messages == []


@pytest.mark.parametrize(
    ("outcome", "code", "suppress"),
    [("invalid_number", 21211, "hard_bounce"), ("unsubscribed", 21610, "unsubscribe")],
)
async def test_rejection_names_suppression(outcome: Outcome, code: int, suppress: str) -> None:
    async with twilio(outcome) as (stand_in, client):
        with pytest.raises(SmsError) as caught:
            await client.send(NUMBER, "hello")

    assert caught.value.outcome == "rejected"
    assert caught.value.code == code
    assert caught.value.suppress == suppress
    assert stand_in.requests == 1
    assert client.statistics().rejected == 1


@pytest.mark.parametrize("outcome", ["server_error", "rate_limited"])
async def test_retryable_failure_retried_in_call(outcome: Outcome) -> None:
    async with twilio(outcome) as (stand_in, client):
        accepted = await client.send(NUMBER, "hello")

    assert stand_in.requests == 2
    assert [message.sid for message in stand_in.messages] == [accepted.sid]
    assert client.statistics().retried == 1


async def test_outage_gives_up_retryable() -> None:
    async with twilio("server_error", "server_error", "server_error") as (stand_in, client):
        with pytest.raises(SmsError) as caught:
            await client.send(NUMBER, "hello")

    assert caught.value.outcome == "retryable"
    assert caught.value.retryable
    assert stand_in.requests == 3
    assert stand_in.messages == []


@pytest.mark.parametrize("outcome", ["disconnect", "accept_then_disconnect"])
async def test_lost_answer_not_retried_in_call(outcome: Outcome) -> None:
    async with twilio(outcome) as (stand_in, client):
        with pytest.raises(SmsError) as caught:
            await client.send(NUMBER, "hello")

    assert caught.value.outcome == "unknown"
    assert caught.value.retryable
    assert stand_in.requests == 1
    assert client.statistics().unknown == 1


async def test_slow_answer_times_out_unknown() -> None:
    async with twilio("slow", slow_seconds=30.0, timeout=0.5) as (stand_in, client):
        with pytest.raises(SmsError) as caught:
            await client.send(NUMBER, "hello")

    assert caught.value.outcome == "unknown"
    assert stand_in.requests == 1


async def test_long_body_is_cut() -> None:
    async with twilio() as (stand_in, client):
        await client.send(NUMBER, "x" * (MAX_BODY_CHARS + 50))

    body = stand_in.messages[0].body
    assert len(body) == MAX_BODY_CHARS
    assert body.endswith("…")


async def test_status_callback_fired_signed() -> None:
    stand_in = TwilioStandIn()
    async with trio.open_nursery() as nursery:
        base_url = await nursery.start(stand_in.serve)
        # The stand-in posts its callbacks to itself, which responds 404.
        callback = f"{base_url}/status"
        client = TwilioClient(sms_config(base_url, status_callback_url=callback), AUTH_TOKEN)
        accepted = await client.send(NUMBER, "hi")
        with trio.fail_after(30):
            while len(stand_in.callbacks) < 2:
                await trio.sleep(0.01)
        await client.aclose()
        nursery.cancel_scope.cancel()

    assert stand_in.messages[0].status_callback == callback
    statuses = [entry.fields["MessageStatus"] for entry in stand_in.callbacks]
    assert statuses == ["sent", "delivered"]
    assert {entry.fields["MessageSid"] for entry in stand_in.callbacks} == {accepted.sid}
    assert [entry.status for entry in stand_in.callbacks] == [404, 404]


async def test_held_send_fires_no_callbacks() -> None:
    stand_in = TwilioStandIn(script=["accept_then_hold", "ok"])
    async with trio.open_nursery() as nursery:
        base_url = await nursery.start(stand_in.serve)
        # The stand-in posts its callbacks to itself, which responds 404.
        config = sms_config(base_url, status_callback_url=f"{base_url}/status")
        client = TwilioClient(config, AUTH_TOKEN)
        with pytest.raises(SmsError) as caught:
            await client.send(NUMBER, "held")
        accepted = await client.send(NUMBER, "sent")
        with trio.fail_after(30):
            while len(stand_in.callbacks) < 2:
                await trio.sleep(0.01)
        await client.aclose()
        nursery.cancel_scope.cancel()

    held, sent = stand_in.messages
    assert caught.value.outcome == "unknown"
    assert held.held
    assert not sent.held
    assert {entry.fields["MessageSid"] for entry in stand_in.callbacks} == {accepted.sid}


async def list_resources(client: TwilioClient, **filters: str) -> list[dict[str, Any]]:
    """Read the stand-in's first list page over HTTP and return its message resources."""
    path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    async with httpx.AsyncClient(
        base_url=client.config.base_url, auth=(ACCOUNT_SID, AUTH_TOKEN)
    ) as http:
        response = await http.get(path, params={"To": NUMBER, **filters})
    assert response.status_code == 200
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


@pytest.mark.parametrize("key", ["DateSent", "DateSent>", "DateSent<"])
async def test_dated_list_leaves_out_held(key: str) -> None:
    async with twilio("accept_then_hold", "ok") as (stand_in, client):
        with pytest.raises(SmsError):
            await client.send(NUMBER, "held")
        await client.send(NUMBER, "sent")
        day = datetime.fromtimestamp(stand_in.messages[1].created_at, UTC).strftime("%Y-%m-%d")
        listed = await list_resources(client, **{key: day})

    assert [message["body"] for message in listed] == ["sent"]


async def test_unfiltered_list_shows_held_queued() -> None:
    async with twilio("accept_then_hold", "ok") as (stand_in, client):
        with pytest.raises(SmsError):
            await client.send(NUMBER, "held")
        await client.send(NUMBER, "sent")
        sent, held = await list_resources(client)

    assert held["sid"] == stand_in.messages[0].sid
    assert held["status"] == "queued"
    assert held["date_sent"] is None
    assert held["date_created"] is not None
    assert sent["status"] == "queued"
    assert sent["date_sent"] == sent["date_created"]


@pytest.mark.parametrize("outcome", ["server_error", "rate_limited"])
async def test_scripted_list_failure_retried(outcome: ListOutcome) -> None:
    stand_in = TwilioStandIn(list_script=[outcome])
    async with trio.open_nursery() as nursery:
        base_url = await nursery.start(stand_in.serve)
        client = TwilioClient(sms_config(base_url), AUTH_TOKEN)
        listed = await client.list_newest(NUMBER)
        await client.aclose()
        nursery.cancel_scope.cancel()

    assert listed == []
    assert len(stand_in.list_queries) == 2


@pytest.mark.parametrize(
    ("body", "keyword"),
    [
        ("STOP", "opt_out"),
        ("stop", "opt_out"),
        (" Unsubscribe ", "opt_out"),
        ("cancel", "opt_out"),
        ("END", "opt_out"),
        ("quit", "opt_out"),
        ("REVOKE", "opt_out"),
        ("opt out", "opt_out"),
        ("Opt  Out", "opt_out"),
        ("STOP.", "opt_out"),
        ("HELP", "help"),
        ("help!", "help"),
        ("START", "opt_in"),
        ("unstop", "opt_in"),
        ("please stop texting me", None),
        ("Thanks, we loved it", None),
        ("", None),
    ],
)
def test_classify_keyword(body: str, keyword: str | None) -> None:
    assert classify_keyword(body) == keyword


def test_config_check_lists_problems() -> None:
    config = sms_config(
        "ftp://127.0.0.1",
        account_sid="XX123",
        from_number="3125550100",
        messaging_service_sid="MG" + "0" * 32,
    )

    problems = check_sms_config(config)
    keys = [key for key, _message in problems]

    assert keys.count("account_sid") == 1
    assert keys.count("base_url") == 1
    assert ("from_number", "set exactly one of from_number and messaging_service_sid") in problems
    assert any("E.164" in message for key, message in problems if key == "from_number")


def test_config_check_accepts_valid() -> None:
    assert check_sms_config(sms_config("http://127.0.0.1:9")) == []


async def test_oversized_error_body_cut() -> None:
    async def handler(request: StubRequest) -> StubResponse:
        return StubResponse(status=500, body=b"x" * (5 * 1024 * 1024))

    async with trio.open_nursery() as nursery:
        base_url = await nursery.start(partial(serve_stub, handler))
        client = TwilioClient(sms_config(base_url), AUTH_TOKEN)
        with pytest.raises(SmsError) as caught:
            await client.send(NUMBER, "hello")
        await client.aclose()
        nursery.cancel_scope.cancel()

    assert caught.value.outcome == "retryable"
    assert caught.value.status == 500
    assert len(str(caught.value)) < 400
